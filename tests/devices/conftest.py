"""The device tests' site: a door on a commissioned control unit, a cardholder's card, and SDP/1 clients of the
real bridge (the bridge, make_device, encoder_bridge and quick_jobs fixtures are in tests/support/fixtures.py)."""

import pytest

from devices.models import DeviceDoor, DeviceReader
from tests.devices.client import Client
from tests.factories import make_access_level, make_access_point, make_cardholder, make_key

UID = "04A1B2C3D4E5F6"


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
