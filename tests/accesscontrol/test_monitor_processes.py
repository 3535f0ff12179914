"""Events raised by the device bridge reach a websocket, in one process (embedded) and across processes (Redis)."""

import asyncio
import json
import subprocess
import sys
import time

import pytest
from websockets.asyncio.client import connect

from tests.devices.client import Client
from tests.support.ports import free_port
from tests.support.processes import BASE_DIR, environment, migrated_var_dir, redis_database, stop
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

DEVICE_ID = 4660
KEY = bytes(range(16))
SETUP = """
import json
from accesscontrol.models import AccessPoint, ApiKey, Operator
from devices.models import Device, DeviceDoor
operator = Operator.objects.create_superuser("monitor", password="x" * 20)
token = ApiKey.issue(operator, "monitor")[1]
door = AccessPoint.objects.create(name="Loading dock", connection="online")
device = Device(device_id=DEVICE_ID, name="Dock unit", kind="control_unit")
device.set_key(bytes(range(16)))
device.save()
DeviceDoor.objects.create(device=device, number=1, access_point=door)
print(json.dumps({"token": token}))
""".replace("DEVICE_ID", str(DEVICE_ID))


def start(env, *command, ready: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "manage.py", *command],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if ready in line:
            return process
        if not line and process.poll() is not None:
            break
    process.kill()
    pytest.fail(f"{command[0]} did not start: {process.stdout.read()}")


async def watch_for_event(http_port: int, token: str, send_event, idle: float = 0.0) -> dict:
    url = f"ws://127.0.0.1:{http_port}/ws/monitor/"
    async with connect(url, additional_headers={"Authorization": f"Api-Key {token}"}) as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        # Idle longer than the Redis client's socket timeout first: a quiet monitor must stay open.
        await asyncio.sleep(idle)
        await asyncio.to_thread(send_event)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            for item in message.get("items", []):
                if item.get("device_event_id") == 77:
                    return item
    raise AssertionError("the event did not reach the websocket")


def device_event(device_port: int):
    def send():
        client = Client(device_port, DEVICE_ID, KEY)
        try:

            def handshake() -> bool:
                try:
                    client.handshake()
                except AssertionError:  # the bridge is not listening yet
                    return False
                return True

            wait_until(handshake, timeout=10, interval=0.3, message="a handshake with the bridge")
            answer = client.request(
                {"t": "event", "ev": {"id": 77, "at": "2026-11-23T10:00:00Z", "kind": "door_forced", "door": 1}}
            )
            assert answer["t"] == "ack"
        finally:
            client.close()

    return send


def prepared(tmp_path_factory, **variables):
    var = migrated_var_dir(tmp_path_factory)
    env = environment(var, SPACE_DEVICE_HOST="127.0.0.1", SPACE_DEVICE_PORT=str(free_port("udp")), **variables)
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SETUP], cwd=BASE_DIR, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return env, json.loads(done.stdout.strip().splitlines()[-1])["token"]


def test_embedded_one_process_serves_the_bridge_and_the_websocket(tmp_path_factory):
    env, token = prepared(tmp_path_factory)
    http_port = free_port()
    server = start(env, "runspace", "--port", str(http_port), "--no-migrate", ready="listening")
    try:
        item = asyncio.run(watch_for_event(http_port, token, device_event(int(env["SPACE_DEVICE_PORT"]))))
    finally:
        stop(server)
    assert (item["kind"], item["access_point_name"]) == ("door_forced", "Loading dock")


def test_with_redis_an_event_of_the_bridge_process_reaches_a_browser_of_the_web_process(tmp_path_factory):
    with redis_database() as redis_url:
        env, token = prepared(tmp_path_factory, REDIS_URL=redis_url, SPACE_BRIDGE_IN_RUNSPACE="false")
        http_port = free_port()
        web = start(env, "runspace", "--port", str(http_port), "--no-migrate", ready="listening")
        bridge = start(env, "runbridge", ready="listening")
        try:
            item = asyncio.run(watch_for_event(http_port, token, device_event(int(env["SPACE_DEVICE_PORT"])), idle=7))
        finally:
            stop(bridge)
            stop(web)
    assert (item["kind"], item["access_point_name"], item["device_event_id"]) == ("door_forced", "Loading dock", 77)
