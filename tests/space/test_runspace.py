"""``manage.py runspace`` as a real process: it serves, then stops cleanly on a signal."""

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

BASE_DIR = Path(__file__).resolve().parents[2]


def environment(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPACE_", "DATABASE_URL", "REDIS_URL"))}
    # SQLite in a temporary var/: the server migrates its own database, never the test run's.
    env["SPACE_VAR_DIR"] = str(tmp_path / "var")
    # The device bridge runs inside runspace: on loopback, on a port nobody else holds.
    env["SPACE_DEVICE_HOST"] = "127.0.0.1"
    env["SPACE_DEVICE_PORT"] = str(free_port("udp"))
    return env


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (a local http URL)
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def start(tmp_path, *args) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runspace", "--port", str(port), *args],
        cwd=BASE_DIR,
        env=environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def listening() -> bool:
        if process.poll() is not None:
            pytest.fail(f"runspace exited early:\n{process.stdout.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    try:
        wait_until(listening, timeout=60, interval=0.2, message=f"runspace listening on {port}")
    except AssertionError:
        process.kill()
        pytest.fail(f"runspace did not listen on {port}:\n{process.communicate()[0]}")
    return process, port


def stop(process: subprocess.Popen, signum: int) -> str:
    process.send_signal(signum)
    try:
        output, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"runspace did not stop on signal {signum}:\n{output}")
    return output


def test_it_serves_the_site_and_stops_cleanly_on_sigterm(tmp_path):
    process, port = start(tmp_path)
    base = f"http://127.0.0.1:{port}"

    # "/" is the web app's dashboard, behind a login: the API's documentation shows the site is served.
    docs_status, docs = get(f"{base}/api/docs/")
    login_status, login = get(f"{base}/admin/login/")
    static_status, css = get(f"{base}/static/admin/css/base.css")

    output = stop(process, signal.SIGTERM)
    assert process.returncode == 0, output
    assert (docs_status, login_status, static_status) == (200, 200, 200)
    assert b"/api/schema/" in docs
    assert b"csrfmiddlewaretoken" in login
    assert b"body" in css
    assert f"Space is listening on http://127.0.0.1:{port}/" in output
    assert "Space stopped." in output
    assert (tmp_path / "var" / "space.sqlite3").exists()  # migrated before serving


def test_it_stops_cleanly_on_sigint(tmp_path):
    process, _ = start(tmp_path)
    output = stop(process, signal.SIGINT)
    assert process.returncode == 0, output
    assert "Space stopped." in output


def test_it_fails_loudly_when_the_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "manage.py", "runspace", "--port", str(port), "--no-migrate"],
            cwd=BASE_DIR,
            env=environment(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode != 0
    assert f"Could not listen on 127.0.0.1:{port}" in result.stderr
