import asyncio
import threading

import pytest

from accesscontrol.snapshot import SnapshotStore
from devices import encoding
from devices.models import Device, DeviceDoor, DeviceReader
from devices.sdp import encoderlink
from devices.sdp.bridge import Bridge
from tests.devices.client import Client
from tests.factories import make_access_level, make_access_point, make_cardholder, make_key

UID = "04A1B2C3D4E5F6"


class RunningBridge:
    """A real Bridge on 127.0.0.1 on its own event loop thread, as it runs under runbridge."""

    def __init__(self, **options):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.bridge = Bridge(host="127.0.0.1", port=0, **options)
        # A store of its own: each test's database starts empty.
        self.bridge.store = SnapshotStore()
        self.call(self.bridge.start())

    def call(self, coroutine, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self):
        self.call(self.bridge.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    @property
    def port(self) -> int:
        return self.bridge.port

    @property
    def counters(self):
        return self.bridge.counters

    def reload(self):
        """Pick up database changes now instead of at the next refresh."""

        async def reload():
            await self.bridge.read(self.bridge.store.refresh)
            await self.bridge._reload_registry(force=True)

        self.call(reload())


@pytest.fixture
def bridge(transactional_db):
    running = RunningBridge(heartbeat_s=30)
    yield running
    running.stop()


@pytest.fixture
def make_device(transactional_db):
    def make(device_id=4660, key=bytes(range(16)), **fields):
        device = Device(
            device_id=device_id, name=fields.pop("name", f"Device {device_id}"), kind="control_unit", **fields
        )
        device.set_key(key)
        device.save()
        return device

    return make


@pytest.fixture
def client_for(bridge):
    clients = []

    def connect(device, key=bytes(range(16))):
        client = Client(bridge.port, device.device_id, key)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


@pytest.fixture
def site(make_device, bridge):
    door = make_access_point(name="Main entrance", connection="online", open_time=6)
    holder = make_cardholder(make_access_level(door), first_name="Ada", last_name="Lovelace")
    make_key(holder, uid=UID)
    device = make_device()
    DeviceDoor.objects.create(device=device, number=1, access_point=door)
    DeviceReader.objects.create(device=device, number=1, access_point=door)
    bridge.reload()
    return {"door": door, "holder": holder, "device": device}


@pytest.fixture
def device(site, client_for):
    client = client_for(site["device"])
    client.handshake()
    return client


# --- encoders and updaters (tests/devices/test_encoders.py, test_updater.py) ------------------------------


@pytest.fixture
def quick_jobs(monkeypatch):
    """An encoder waits 1 s for a card, and a job gets 1 s more before it times out."""
    monkeypatch.setattr(encoding, "WAIT_CARD_SECONDS", 1)
    monkeypatch.setattr(encoderlink, "JOB_MARGIN_SECONDS", 1.0)


@pytest.fixture
def encoder_bridge(transactional_db):
    running = RunningBridge(heartbeat_s=30, encoder_grace_s=0.5)
    yield running
    running.stop()
