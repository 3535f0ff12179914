"""``runspace`` serving HTTPS itself, as a real process on loopback with a certificate ``make_certificate`` made.

One server for the module, in the production profile (which with its own TLS
needs no proxy): TLS 1.2 and 1.3 with AEAD ciphers only, HSTS and secure
cookies, the static files, plain HTTP on the same port redirected to https://,
the monitor's websocket over wss:// and the local bridge trusting the site CA.
Then the refusals: the production profile without TLS or a declared proxy,
and certificate files that cannot serve.
"""

import asyncio
import http.client
import json
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.support.ports import free_port
from tests.support.processes import BASE_DIR, environment, migrated_var_dir, stop
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

PASSWORD = "Tls-operator-password-1"
ENCODER_ID = 7301
ENCODER_KEY = "00112233445566778899aabbccddeeff"
SETUP = f"""
import json
from accesscontrol.models import ApiKey, Operator
from devices.models import Device
operator = Operator.objects.create_superuser("tls-admin", password="{PASSWORD}")
token = ApiKey.issue(operator, "monitor")[1]
encoder = Device(device_id={ENCODER_ID}, name="Desk encoder", kind="usb_encoder")
encoder.set_key(bytes.fromhex("{ENCODER_KEY}"))
encoder.save()
print(json.dumps({{"token": token}}))
"""


def manage(env: dict, *args, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Server:
    """``runspace --no-migrate`` with TLS, its output in a file (a pipe nobody reads could fill and block it)."""

    def __init__(self, env: dict, log: Path):
        self.port = free_port()
        self.log_path = log
        with log.open("w") as output:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "runspace", "--port", str(self.port), "--no-migrate"],
                cwd=BASE_DIR,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_listening(self) -> None:
        wait_until(
            lambda: "Space is listening" in self.log() or self.process.poll() is not None,
            timeout=60,
            message=lambda: f"runspace listening:\n{self.log()}",
        )
        if self.process.poll() is not None:
            pytest.fail(f"runspace exited:\n{self.log()}")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    var = migrated_var_dir(tmp_path_factory)
    # The production profile's master key seals the encoder's key: the setup and the server share it.
    env = production(var, SPACE_DEVICE_HOST="127.0.0.1", SPACE_DEVICE_PORT=str(free_port("udp")))
    made = manage(env, "make_certificate", "localhost", "127.0.0.1", "--out", str(var / "tls"))
    assert made.returncode == 0, made.stderr
    done = manage(env, "shell", "-c", SETUP)
    assert done.returncode == 0, done.stderr
    env.update(SPACE_TLS_CERT_FILE=str(var / "tls" / "server.crt"), SPACE_TLS_KEY_FILE=str(var / "tls" / "server.key"))
    server = Server(env, var.parent / "runspace.log")
    try:
        server.wait_listening()
        server.var = var
        server.ca = var / "tls" / "ca.crt"
        server.token = json.loads(done.stdout.strip().splitlines()[-1])["token"]
        yield server
    finally:
        if server.process.poll() is None:
            stop(server.process)


def client_context(site, **versions) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=site.ca)
    for name, value in versions.items():
        setattr(context, name, value)
    return context


def https(site, method: str, path: str, context=None, host: str = "localhost", **headers) -> http.client.HTTPResponse:
    connection = http.client.HTTPSConnection(host, site.port, context=context or client_context(site), timeout=10)
    connection.request(method, path, headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def handshake(site, context: ssl.SSLContext) -> tuple[str, str]:
    """The protocol and cipher a connection agreed on; raises ssl.SSLError when the server refuses."""
    with (
        socket.create_connection(("127.0.0.1", site.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return tls.version(), tls.cipher()[0]


def old_client(site, version: ssl.TLSVersion) -> ssl.SSLContext:
    # OpenSSL 3 refuses TLS 1.0 and 1.1 itself at its default security level: level 0 lets this client offer
    # them, so that any refusal is the server's.
    context = client_context(site, minimum_version=version, maximum_version=version)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def test_an_https_request_verified_against_the_site_ca_is_served_with_hsts(site):
    response = https(site, "GET", "/healthz")
    assert response.status == 200
    assert response.getheader("Strict-Transport-Security") == "max-age=31536000"
    assert f"Space is listening on https://127.0.0.1:{site.port}/" in site.log()


def test_the_static_files_are_served_without_a_proxy_in_front(site):
    assert https(site, "GET", "/static/monitor.js").status == 200


def test_a_client_that_does_not_trust_the_site_ca_refuses_the_server(site):
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(site, ssl.create_default_context())


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2], ids=["TLSv1.3", "TLSv1.2"])
def test_tls_1_3_and_1_2_are_served_with_aead_ciphers(site, version):
    protocol, cipher = handshake(site, client_context(site, minimum_version=version, maximum_version=version))
    assert protocol == {ssl.TLSVersion.TLSv1_3: "TLSv1.3", ssl.TLSVersion.TLSv1_2: "TLSv1.2"}[version]
    assert "GCM" in cipher or "CHACHA20" in cipher


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1], ids=["TLSv1.1", "TLSv1.0"])
def test_tls_1_1_and_1_0_are_refused_by_the_server(site, version):
    with pytest.raises(ssl.SSLError) as refused:
        handshake(site, old_client(site, version))
    assert refused.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION"  # the server's alert, not the client's refusal


def test_a_cipher_without_aead_is_refused_by_the_server(site):
    cbc = client_context(site, maximum_version=ssl.TLSVersion.TLSv1_2)
    cbc.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA256")
    with pytest.raises(ssl.SSLError) as refused:
        handshake(site, cbc)
    assert refused.value.reason == "SSLV3_ALERT_HANDSHAKE_FAILURE"


def test_cookies_are_secure_the_csrf_one_and_the_session_after_login(site):
    connection = http.client.HTTPSConnection("localhost", site.port, context=client_context(site), timeout=10)
    connection.request("GET", "/login/")
    page = connection.getresponse()
    body = page.read().decode()
    csrf_cookie = page.getheader("Set-Cookie")
    assert page.status == 200 and "; Secure" in csrf_cookie
    token = body.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    form = f"csrfmiddlewaretoken={token}&username=tls-admin&password={PASSWORD}"
    connection.request(
        "POST",
        "/login/",
        body=form,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": csrf_cookie.split(";", 1)[0],
            "Origin": f"https://localhost:{site.port}",
            "Referer": f"https://localhost:{site.port}/login/",
        },
    )
    logged_in = connection.getresponse()
    logged_in.read()
    connection.close()
    session = [value for name, value in logged_in.getheaders() if name == "Set-Cookie" and "sessionid=" in value]
    assert logged_in.status == 302, logged_in.status
    assert session and "; Secure" in session[0] and "; HttpOnly" in session[0]


def plain_http(site, path: str, host: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", site.port, timeout=10)
    connection.request("GET", path, headers={"Host": host})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_plain_http_on_the_same_port_is_redirected_to_https(site):
    response = plain_http(site, "/monitor/?door=7", f"localhost:{site.port}")
    assert response.status == 301
    assert response.getheader("Location") == f"https://localhost:{site.port}/monitor/?door=7"
    # The server goes on serving HTTPS after it.
    assert https(site, "GET", "/healthz").status == 200


def test_plain_http_for_a_host_space_does_not_answer_for_is_not_redirected(site):
    response = plain_http(site, "/", f"evil.example:{site.port}")
    assert response.status == 400
    assert response.getheader("Location") is None


def test_the_monitor_websocket_works_over_wss(site):
    async def hello():
        url = f"wss://localhost:{site.port}/ws/monitor/"
        headers = {"Authorization": f"Api-Key {site.token}"}
        async with connect(url, ssl=client_context(site), additional_headers=headers, open_timeout=10) as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    message = asyncio.run(hello())
    assert (message["type"], message["operator"]) == ("hello", "tls-admin")


def test_the_local_bridge_connects_over_wss_trusting_the_site_ca_and_not_without_it(site, tmp_path):
    key_file = tmp_path / "encoder.key"
    key_file.write_text(ENCODER_KEY + "\n")

    def bridge(*extra) -> tuple[subprocess.Popen, Path]:
        log = tmp_path / f"bridge{len(extra)}.log"
        with log.open("w") as output:
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "devices.localbridge", "--server", f"https://localhost:{site.port}"),
                    *("--device-id", str(ENCODER_ID), "--key-file", str(key_file), "--serial", str(tmp_path / "no")),
                    *extra,
                ],
                cwd=BASE_DIR,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        return process, log

    untrusting, untrusting_log = bridge()
    trusting, trusting_log = bridge("--ca-file", str(site.ca))
    try:
        wait_until(
            lambda: "Connected to wss://" in trusting_log.read_text(),
            timeout=20,
            message=lambda: f"the bridge connecting:\n{trusting_log.read_text()}\n{site.log()[-3000:]}",
        )
        wait_until(lambda: "CERTIFICATE_VERIFY_FAILED" in untrusting_log.read_text(), timeout=20, message="refusal")
    finally:
        stop(trusting)
        stop(untrusting)
    assert "Connected to" not in untrusting_log.read_text()


# --- refusals ---------------------------------------------------------------------------------------------------


def production(var: Path, **variables) -> dict:
    return environment(
        var,
        SPACE_PROFILE="production",
        SPACE_SECRET_KEY="s" * 40,
        SPACE_MASTER_KEY="m" * 40,
        SPACE_ALLOWED_HOSTS="localhost,127.0.0.1",
        **variables,
    )


def test_the_production_profile_refuses_to_serve_plain_http_without_a_declared_proxy(tmp_path):
    result = manage(production(tmp_path / "var"), "runspace", "--port", str(free_port()), "--no-migrate")
    assert result.returncode != 0
    assert "The production profile serves HTTPS only" in result.stderr
    assert "SPACE_TLS_CERT_FILE and SPACE_TLS_KEY_FILE" in result.stderr
    assert "SPACE_BEHIND_TLS_PROXY=true" in result.stderr


def test_the_production_profile_serves_behind_a_declared_proxy_trusting_its_forwarded_proto(site, tmp_path):
    env = production(site.var, SPACE_BEHIND_TLS_PROXY="true", SPACE_DEVICE_PORT=str(free_port("udp")))
    server = Server(env, tmp_path / "runspace.log")
    try:
        server.wait_listening()
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", "/healthz", headers={"Host": "localhost", "X-Forwarded-Proto": "https"})
        behind_proxy = connection.getresponse()
        behind_proxy.read()
        connection.request("GET", "/healthz", headers={"Host": "localhost", "X-Forwarded-Proto": "http"})
        plain = connection.getresponse()
        plain.read()
        connection.close()
    finally:
        stop(server.process)
    assert f"Space is listening on http://127.0.0.1:{server.port}/" in server.log()
    assert (behind_proxy.status, behind_proxy.getheader("Strict-Transport-Security")) == (200, "max-age=31536000")
    assert (plain.status, plain.getheader("Location")) == (301, "https://localhost/healthz")


def test_a_key_that_is_not_the_certificates_is_refused_at_start(site, tmp_path):
    env = environment(
        site.var,
        SPACE_TLS_CERT_FILE=str(site.var / "tls" / "server.crt"),
        SPACE_TLS_KEY_FILE=str(site.var / "tls" / "ca.key"),
    )
    result = manage(env, "runspace", "--port", str(free_port()), "--no-migrate")
    assert result.returncode != 0
    assert "Cannot serve HTTPS: the key in" in result.stderr and "does not belong to the certificate" in result.stderr


def test_an_unreadable_certificate_is_refused_at_start(site, tmp_path):
    env = environment(
        site.var,
        SPACE_TLS_CERT_FILE=str(tmp_path / "missing.crt"),
        SPACE_TLS_KEY_FILE=str(site.var / "tls" / "server.key"),
    )
    result = manage(env, "runspace", "--port", str(free_port()), "--no-migrate")
    assert result.returncode != 0
    assert f"Cannot serve HTTPS: cannot read the certificate {tmp_path / 'missing.crt'}" in result.stderr


def test_a_certificate_without_its_key_is_refused(tmp_path):
    env = environment(tmp_path / "var", SPACE_TLS_CERT_FILE=str(tmp_path / "server.crt"))
    result = manage(env, "check")
    assert result.returncode != 0
    assert "SPACE_TLS_CERT_FILE and SPACE_TLS_KEY_FILE go together" in result.stderr
