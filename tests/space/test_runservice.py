"""``manage.py runservice NAME`` as a real process, for a connector: it announces where it listens,
holds the connector's lease, so that a second copy refuses to start, and gives the lease back when stopped."""

import contextlib
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from core.lease import KEY_PREFIX
from tests.support.processes import BASE_DIR, environment, migrated_var_dir, redis_database, stop
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunService:
    def __init__(self, env: dict, output: Path, *args: str):
        self.output_path = output
        self.output_file = output.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runservice", *args],
            cwd=BASE_DIR,
            env=env,
            stdout=self.output_file,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.output_path.read_text()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.output_file.close()


@pytest.fixture
def runservice(tmp_path):
    started = []

    def start(env: dict, *args: str) -> RunService:
        process = RunService(env, tmp_path / f"runservice{len(started) + 1}.log", *args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


def test_a_connector_holds_its_lease_so_no_second_copy_starts(runservice, tmp_path_factory):
    var = migrated_var_dir(tmp_path_factory)
    port = free_tcp_port()
    with (
        redis_database() as redis_url,
        contextlib.closing(redis.Redis.from_url(redis_url, decode_responses=True)) as db,
    ):
        env = environment(var, REDIS_URL=redis_url, SPACE_SHIP_PORT="7200", SPACE_SHIP_BIND="127.0.0.1")
        first = runservice(env, "ship", "--port", str(port))
        listening = f"SHIP connector listening on tcp://127.0.0.1:{port} (SIGTERM or Ctrl-C stops it)"
        assert wait_until(lambda: listening in first.output() or first.process.poll() is not None, timeout=60)
        holder = db.get(KEY_PREFIX + "connector-ship")

        second = runservice(env, "ship", "--port", "0")
        second_code = second.process.wait(60)
        first_code = stop(first.process)

        assert listening in first.output(), first.output()
        assert holder and f":{first.process.pid}:" in holder
        assert second_code == 1
        assert (
            "A SHIP connector is already running: another process holds the lease space:lease:connector-ship."
            in second.output()
        )
        assert first_code == 0
        assert "SHIP connector stopped." in first.output()
        assert db.get(KEY_PREFIX + "connector-ship") is None  # released on the way out
