"""Steps the browser tests share: logging in, keyboard focus, TOTP codes, a simulated device on the live bridge.

The full operator scenario (log in with a password and a TOTP code, create a
cardholder, grant an access level, issue a key, watch a live event in the
monitor, lock down a zone, be logged off when idle) is built from these.
"""

import asyncio
import threading
import time
from urllib.parse import urlparse

from django.urls import NoReverseMatch, reverse
from django_otp.oath import TOTP

from simulation.sdp_devices import SimulatedDevice

# Fields a login page's second step may name its code field (django-otp's OTPAuthenticationForm says otp_token).
OTP_FIELDS = "input[name=otp_token], input[name=token], input[name=code], input[autocomplete=one-time-code]"
SUBMIT = "button[type=submit], input[type=submit]"


def url_path(name: str, *args) -> str | None:
    """The path of URL name ``name``, or None while no page defines it."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


def login_path() -> str:
    """The web app's login page, or the admin's until the web app has one."""
    return url_path("login") or "/admin/login/"


def totp_code(key_hex: str, at: float | None = None, *, digits: int = 6) -> str:
    """The RFC 6238 code an authenticator app shows for a django-otp TOTP device's key (hex) at ``at`` (now)."""
    totp = TOTP(bytes.fromhex(key_hex), digits=digits)
    if at is not None:
        totp.time = at
    return f"{totp.token():0{digits}d}"


def fresh_totp_code(key_hex: str) -> str:
    """A code valid for a while yet: waits out the last two seconds of a 30-second step."""
    if 30 - time.time() % 30 < 2:
        time.sleep(30 - time.time() % 30 + 0.1)
    return totp_code(key_hex)


def log_in(page, server, username: str, password: str, *, totp_key: str | None = None) -> None:
    """Log in through the login page; with ``totp_key``, answer the two-factor step with a fresh code."""
    page.goto(server.url(login_path()))
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    otp = page.locator(OTP_FIELDS)
    if totp_key and otp.count():  # one form with both steps
        otp.first.fill(fresh_totp_code(totp_key))
        totp_key = None
    with page.expect_navigation():
        page.locator(f"main {SUBMIT}, form {SUBMIT}").first.click()
    if totp_key:  # a second page asks for the code
        page.locator(OTP_FIELDS).first.fill(fresh_totp_code(totp_key))
        with page.expect_navigation():
            page.locator(f"main {SUBMIT}, form {SUBMIT}").first.click()


def wait_for_idle_logoff(page, idle_seconds: float, slack: float = 10) -> None:
    """Touch nothing and wait until the page's idle log-off (static/space.js) has taken it to the login page.

    Start the server with ``start_space(SPACE_SESSION_IDLE_SECONDS=idle_seconds)``.
    """
    page.wait_for_url(lambda url: urlparse(url).path == login_path(), timeout=(idle_seconds + slack) * 1000)


def focused(page) -> dict:
    """What has the keyboard focus: tag, type, name, id, text, and the action of its form ("" outside one)."""
    return page.evaluate(
        """() => {
            const el = document.activeElement;
            return {tag: el.tagName.toLowerCase(), type: el.type || "", name: el.name || "", id: el.id || "",
                    text: (el.innerText || el.value || "").trim().slice(0, 60),
                    form: el.form ? el.form.action : ""};
        }"""
    )


def focus_top_of_page(page) -> None:
    """Put the keyboard's starting point at the top of the page, as on arrival without autofocus."""
    page.evaluate(
        """() => {
            const start = document.createElement("span");
            start.tabIndex = -1;
            document.body.prepend(start);
            start.focus();
            start.addEventListener("blur", () => start.remove());
        }"""
    )


def tab_through(page, presses: int = 40) -> list[dict]:
    """Press Tab from the top of the page up to ``presses`` times; the focused element after each press."""
    focus_top_of_page(page)
    stops = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        stop = focused(page)
        if stop["tag"] == "body" or stop in stops[:1]:  # wrapped round to the start
            break
        stops.append(stop)
    return stops


class DeviceOnBridge:
    """A simulated SDP/1 control unit (simulation/sdp_devices.py) talking to a live server's bridge, on its own thread.

    Make the device in the server's database first (``server.seed("device", ...)``
    returns its key), then ``connect()`` and ``send_event("door_forced")`` or
    ``present_card(uid)``; ``close()`` at the end.
    """

    def __init__(self, server, device_id: int, key_hex: str, readers: dict[int, int] | None = None):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.device = SimulatedDevice(
            device_id, bytes.fromhex(key_hex), ("127.0.0.1", server.device_port), readers=readers or {1: 1}
        )

    def _call(self, coroutine, timeout: float):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def connect(self, timeout: float = 15) -> None:
        """Start and wait for a session; the bridge learns of a device made after it started within seconds."""
        self._call(self.device.connect(timeout), timeout + 5)

    def send_event(self, kind: str, timeout: float = 15, **members) -> int:
        """Send an event (door 1 unless ``door=`` says otherwise) and wait for the server's ack; its event id."""
        members.setdefault("door", 1)
        return self._call(self.device.send_event(kind, **members), timeout)

    def present_card(self, uid: str, reader: int = 1, timeout: float = 15) -> dict:
        """Present a card at ``reader``; the server's decision message."""
        return self._call(self.device.present_card(reader, uid), timeout)

    def close(self) -> None:
        try:
            self._call(self.device.stop(), 10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
