"""Fixtures every test directory may use (tests/conftest.py loads this module as a plugin)."""

import pytest

from devices import encoding
from devices.models import Device
from devices.sdp import encoderlink
from tests.factories import make_partition
from tests.hotel.support import make_hotel
from tests.support.api import superuser_client
from tests.support.bridge import RunningBridge


@pytest.fixture
def partition():
    return make_partition()


@pytest.fixture
def other_partition():
    return make_partition()


@pytest.fixture
def api_admin():
    """A REST client logged in as a superuser."""
    return superuser_client()


@pytest.fixture
def hotel_site():
    """The small hotel of tests/accesscontrol/hotel_support.py: its rooms, guest areas, lifts, gym and parking."""
    return make_hotel()


# --- the real device bridge ---------------------------------------------------------------------------------


@pytest.fixture
def bridge(transactional_db):
    running = RunningBridge(heartbeat_s=30)
    yield running
    running.stop()


@pytest.fixture
def encoder_bridge(transactional_db):
    running = RunningBridge(heartbeat_s=30, encoder_grace_s=0.5)
    yield running
    running.stop()


@pytest.fixture
def quick_jobs(monkeypatch):
    """An encoder waits 1 s for a card, and a job gets 1 s more before it times out."""
    monkeypatch.setattr(encoding, "WAIT_CARD_SECONDS", 1)
    monkeypatch.setattr(encoderlink, "JOB_MARGIN_SECONDS", 1.0)


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
