"""``manage.py runbridge`` as a real process: it listens, stops cleanly on a signal, and holds the bridge's lease."""

import contextlib
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.devices.test_tasks import BRIDGE_KEY
from tests.support.ports import free_port, udp_port_in_use
from tests.support.processes import BASE_DIR, environment, migrated_var_dir, redis_database, stop
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


class RunBridge:
    def __init__(self, env: dict, output: Path, *args: str):
        self.output_path = output
        self.output_file = output.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runbridge", *args],
            cwd=BASE_DIR,
            env=env,
            stdout=self.output_file,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.output_path.read_text()

    def wait_listening(self, port: int) -> None:
        line = f"Device bridge listening on udp://127.0.0.1:{port}"
        wait_until(
            lambda: line in self.output() or self.process.poll() is not None,
            timeout=60,
            message=lambda: f"runbridge saying it listens:\n{self.output()}",
        )
        if self.process.poll() is not None:
            pytest.fail(f"runbridge exited early:\n{self.output()}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.output_file.close()


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory) -> Path:
    return migrated_var_dir(tmp_path_factory)


@pytest.fixture
def runbridge(tmp_path):
    started = []

    def start(env: dict, *args: str) -> RunBridge:
        process = RunBridge(env, tmp_path / f"runbridge{len(started) + 1}.log", *args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_it_listens_until_a_signal_stops_it_cleanly(runbridge, var_dir, signum):
    port = free_port("udp")

    bridge = runbridge(environment(var_dir), "--host", "127.0.0.1", "--port", str(port))
    bridge.wait_listening(port)
    listening = udp_port_in_use(port)
    code = stop(bridge.process, signum)

    assert listening
    assert code == 0, bridge.output()
    assert "Device bridge stopped." in bridge.output()
    assert not udp_port_in_use(port)


def test_it_takes_host_and_port_from_the_settings(runbridge, var_dir):
    port = free_port("udp")

    bridge = runbridge(environment(var_dir, SPACE_DEVICE_HOST="127.0.0.1", SPACE_DEVICE_PORT=str(port)))
    bridge.wait_listening(port)

    assert stop(bridge.process) == 0, bridge.output()


def test_it_fails_loudly_when_the_port_is_taken(runbridge, var_dir):
    port = free_port("udp")

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", port))
        bridge = runbridge(environment(var_dir), "--host", "127.0.0.1", "--port", str(port))
        code = bridge.process.wait(60)

    assert code == 1
    assert f"The device bridge could not start on udp port {port}" in bridge.output()


def test_with_redis_it_holds_the_bridge_lease_so_no_second_bridge_starts(runbridge, var_dir):
    with (
        redis_database() as redis_url,
        contextlib.closing(redis.Redis.from_url(redis_url, decode_responses=True)) as db,
    ):
        env = environment(var_dir, REDIS_URL=redis_url, SPACE_DEVICE_HOST="127.0.0.1")
        port = free_port("udp")
        first = runbridge(env, "--port", str(port))
        first.wait_listening(port)
        holder = db.get(BRIDGE_KEY)

        second = runbridge(env, "--port", "0")
        second_code = second.process.wait(60)
        first_code = stop(first.process)

        assert holder and f":{first.process.pid}:" in holder
        assert second_code == 1
        assert "A device bridge is already running" in second.output()
        assert first_code == 0, first.output()
        assert db.get(BRIDGE_KEY) is None  # released on the way out
