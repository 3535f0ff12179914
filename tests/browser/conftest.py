"""Fixtures for browser tests: a live Space server in a process of its own, and Debian's Chromium under Playwright.

Each server gets its own var/ directory (a copy of a SQLite database migrated
once per test process), its own secret and master keys, a free TCP port for
HTTP and a free UDP port for the device bridge, so tests run side by side
under ``pytest -n``. ``LiveSpace.seed`` makes operators, cardholders, doors and
devices in that server's database (tests/browser/seed.py, run through
``manage.py shell`` with the server's environment).

The browser is Debian's ``chromium`` (scripts/install.sh --test installs it);
Playwright never downloads one. Pages are 1280x800. ``screenshot(page, name)``
saves a PNG under test-output/screenshots/; a failed test leaves one named
after it there too. An uncaught script error on a page fails the test.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
SCREENSHOTS = BASE_DIR / "test-output" / "screenshots"
CHROMIUM = os.environ.get("SPACE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}
START_TIMEOUT = 60


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environment(var: Path, **variables) -> dict:
    """This process's environment without Space's settings, pointed at ``var`` with SQLite, plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPACE_", "DATABASE_URL", "REDIS_URL", "DJANGO_"))}
    env.update(
        SPACE_VAR_DIR=str(var),
        DATABASE_URL=f"sqlite:///{var / 'space.sqlite3'}",
        PYTHONUNBUFFERED="1",
    )
    env.update({name: str(value) for name, value in variables.items()})
    return env


def screenshot(page, name: str) -> Path:
    """Save what ``page`` shows (its 1280x800 viewport) as test-output/screenshots/``name``.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


class SeedError(AssertionError):
    pass


class LiveSpace:
    """``manage.py runspace`` with its own database, HTTP port and device bridge port."""

    def __init__(self, directory: Path, template: Path, **variables):
        self.var = directory / "var"
        self.var.mkdir(parents=True)
        shutil.copyfile(template, self.var / "space.sqlite3")
        self.http_port = free_tcp_port()
        self.device_port = free_udp_port()
        self.env = clean_environment(
            self.var,
            SPACE_SECRET_KEY=secrets.token_urlsafe(40),
            SPACE_MASTER_KEY=secrets.token_urlsafe(40),
            SPACE_DEVICE_HOST="127.0.0.1",
            SPACE_DEVICE_PORT=self.device_port,
            SPACE_LOG_LEVEL="WARNING",
            **variables,
        )
        self.log_path = directory / "runspace.log"
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def start(self) -> "LiveSpace":
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "runspace", "--host", "127.0.0.1", "--port", str(self.http_port)],
                cwd=BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if "listening" in self.log() and self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"runspace did not start on port {self.http_port}:\n{self.log()[-3000:]}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url("/admin/login/"), timeout=5) as response:  # noqa: S310 (local)
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    # --- the server's database ------------------------------------------------------

    def manage(self, *args: str, timeout: float = 120) -> str:
        """Run ``manage.py`` with this server's environment; its standard output."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise SeedError(f"manage.py {' '.join(args[:2])} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def shell(self, code: str):
        """Run ``code`` in ``manage.py shell`` against this server's database; what it printed last, as JSON."""
        lines = self.manage("shell", "-c", code).strip().splitlines()
        return json.loads(lines[-1]) if lines else None

    def seed_all(self, *calls: tuple[str, dict]) -> list:
        """Several tests/browser/seed.py functions ``(name, kwargs)`` in one process, in order; their results."""
        code = (
            "import json\nfrom tests.browser import seed\n"
            f"calls = json.loads({json.dumps(calls)!r})\n"
            "print(json.dumps([getattr(seed, name)(**kwargs) for name, kwargs in calls]))\n"
        )
        return self.shell(code)

    def seed(self, name: str, **kwargs):
        """One tests/browser/seed.py function against this server's database, e.g. ``seed("operator", ...)``."""
        return self.seed_all((name, kwargs))[0]


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory) -> Path:
    """A SQLite database migrated once per test process; each live server starts from a copy."""
    var = tmp_path_factory.mktemp("space-template")
    env = clean_environment(var, SPACE_SECRET_KEY="template", SPACE_MASTER_KEY="template" * 4)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "--verbosity", "0"],
        cwd=BASE_DIR,
        env=env,
        check=True,
        timeout=300,
    )
    # One self-contained file (no -wal beside it), copied with SQLite's own backup.
    template = var / "template.sqlite3"
    source, target = sqlite3.connect(var / "space.sqlite3"), sqlite3.connect(template)
    try:
        source.backup(target)
        target.execute("PRAGMA journal_mode=DELETE")
    finally:
        source.close()
        target.close()
    return template


@pytest.fixture
def start_space(tmp_path_factory, migrated_database):
    """Start a live server with extra environment variables, e.g. ``start_space(SPACE_SESSION_IDLE_SECONDS=5)``."""
    servers = []

    def start(**variables) -> LiveSpace:
        server = LiveSpace(tmp_path_factory.mktemp("live-space"), migrated_database, **variables)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def space(start_space) -> LiveSpace:
    """A live server with the default settings."""
    return start_space()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, for the tests of one module.

    Module-scoped, not session-scoped: Playwright's synchronous API keeps an
    event loop in this thread while it runs, and Django refuses database work
    from a thread with a running loop; other modules in the same process must
    not inherit it.
    """
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/install.sh --test installs Debian's chromium.")
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.call_failed = report.failed
    return report


@pytest.fixture
def page(browser, request):
    """A fresh page (own cookies) at 1280x800. Uncaught script errors fail the test; a failed test leaves a PNG."""
    context = browser.new_context(viewport=VIEWPORT, locale="en-US", timezone_id="UTC")
    context.set_default_timeout(10_000)
    tab = context.new_page()
    errors = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    try:
        if getattr(request.node, "call_failed", False):
            screenshot(tab, f"FAILED-{request.node.name}")
    finally:
        context.close()
    assert errors == [], f"script errors on the page: {errors}"
