"""SIGKILL the bridge in the middle of a load run: afterwards every event the devices sent is stored exactly once."""

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.processes import BASE_DIR, environment, migrated_var_dir, stop

pytestmark = pytest.mark.slow

DEVICES = 20
LOAD = ["--rate", "150", "--seconds", "10"]


def manage(env, *args, timeout=180) -> dict:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def wait_for_stored_events(database: Path, at_least: int, deadline: float = 90.0) -> None:
    """Until the bridge has stored ``at_least`` audit events (read from its SQLite file), within ``deadline`` s."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
                if db.execute("SELECT count(*) FROM accesscontrol_auditevent").fetchone()[0] >= at_least:
                    return
        except sqlite3.OperationalError:  # locked for a moment by the bridge's write
            pass
        time.sleep(0.05)
    raise AssertionError(f"the bridge stored fewer than {at_least} events in {deadline} s")


def start_bridge(env, port) -> subprocess.Popen:
    bridge = subprocess.Popen(
        [sys.executable, "manage.py", "runbridge", "--host", "127.0.0.1", "--port", str(port)],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert "listening" in bridge.stdout.readline()
    return bridge


def test_a_killed_bridge_loses_and_duplicates_no_event(tmp_path_factory):
    var = migrated_var_dir(tmp_path_factory)
    port = free_port("udp")
    env = environment(var, SPACE_DEVICE_HOST="127.0.0.1", SPACE_DEVICE_PORT=str(port))
    manage(env, "bench_bridge", "--role", "prepare", "--devices", str(DEVICES))

    bridge = start_bridge(env, port)
    load = subprocess.Popen(
        [sys.executable, "manage.py", "bench_bridge", "--role", "load", "--devices", str(DEVICES), *LOAD],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Killed once the devices' events are being stored (not after a fixed time: a slow start would let the
        # kill land before any session, and the devices would have nothing to notice).
        wait_for_stored_events(var / "space.sqlite3", at_least=200)
        bridge.send_signal(signal.SIGKILL)
        bridge.wait(10)
        time.sleep(0.5)
        bridge = start_bridge(env, port)
        out, err = load.communicate(timeout=120)
        assert load.returncode == 0, err[-3000:]
    finally:
        if load.poll() is None:
            load.kill()
        stop(bridge)
    sent = json.loads(out.strip().splitlines()[-1])
    counted = manage(env, "bench_bridge", "--role", "count")

    assert sent["events_generated"] > 100
    # The devices noticed the bridge go away and came back through a new handshake.
    assert sent["session_breaks"] >= 1
    assert counted["distinct"] == sent["events_generated"]
    assert counted["stored"] == counted["distinct"] and counted["duplicated_ids"] == 0
