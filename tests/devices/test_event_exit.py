"""Each entrance of the devices app records audit events through accesscontrol.events: each reaches every sink once."""

import datetime as dt

import pytest
from django.utils import timezone

from accesscontrol.models import AuditEvent
from devices import commands, encoding, locks, usb_encoders
from devices.choices import EncodeStatus
from devices.models import Device, DeviceDoor
from tests.devices.encoders_support import make_encoder
from tests.devices.test_bridge import access, event
from tests.event_sinks import Sinks
from tests.factories import make_access_point, make_cardholder, make_key, make_operator
from tests.support.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sinks():
    observed = Sinks()
    yield observed
    observed.close()


def every_sink(ids: list[int]) -> dict[str, list[int]]:
    return {"webhook": sorted(ids), "stream": sorted(ids), "monitor": sorted(ids)}


def ids_of(**filters) -> list[int]:
    return sorted(AuditEvent.objects.filter(**filters).values_list("pk", flat=True))


@pytest.fixture
def bridge_sinks(bridge):
    # The bridge publishes from its own event loop: the monitor's channel is read there.
    observed = Sinks(run=bridge.call)
    yield observed
    observed.close()


# The sinks are there before the device connects (``device`` comes after ``bridge_sinks``): its coming online counts.


def test_the_bridges_events_and_online_decisions_reach_every_sink_once(site, bridge_sinks, device):
    assert device.request(event(1))["t"] == "ack"
    assert access(device)["grant"] is True
    # A decision is answered at once and stored with the writer's next batch.
    wait_until(lambda: len(ids_of(device=site["device"])) == 3)

    stored = ids_of(device=site["device"])
    assert list(AuditEvent.objects.filter(pk__in=stored).order_by("pk").values_list("kind", flat=True)) == [
        "device_online",
        "door_opened",
        "access_granted",
    ]
    assert bridge_sinks.reached(3) == every_sink(stored)


def test_an_event_the_bridge_stores_twice_reaches_the_sinks_once(site, bridge_sinks, device):
    device.request(event(5))
    device.handshake()
    assert device.request(event(5))["t"] == "ack"

    stored = ids_of(device=site["device"])
    assert list(AuditEvent.objects.filter(pk__in=stored).values_list("kind", flat=True).order_by("pk")) == [
        "device_online",
        "door_opened",
    ]
    assert bridge_sinks.reached(2) == every_sink(stored)


def test_an_audit_trail_uploaded_by_a_ppd_reaches_every_sink_once_however_often_it_comes(sinks):
    lock = Device.objects.create(device_id=300, name="Room 101 lock", kind="offline_lock")
    DeviceDoor.objects.create(device=lock, number=1, access_point=make_access_point(name="Room 101"))
    trail = [
        locks.UploadedEvent(id=number, at=timezone.now() - dt.timedelta(minutes=number), kind="door_opened")
        for number in (1, 2)
    ]

    first = locks.store_audit(lock, trail)
    again = locks.store_audit(lock, trail)

    assert (first.new, again.new) == (2, 0)
    assert sinks.reached(2) == every_sink(ids_of(device=lock))


def test_a_lock_loaded_by_a_ppd_reaches_every_sink_once(sinks):
    lock = Device.objects.create(device_id=301, name="Room 102 lock", kind="offline_lock")

    locks.record_loaded(lock, config_revision=3, blacklist_number=0, battery=90, at=timezone.now(), operator=None)

    assert sinks.reached(1) == every_sink(ids_of(device=lock, kind="lock_updated"))


def test_a_command_to_two_doors_reaches_every_sink_once_per_door(sinks):
    front, side = make_access_point(name="Front door"), make_access_point(name="Side door")
    unit = Device(device_id=1001, name="Lobby unit", kind="control_unit")
    unit.set_key(bytes(range(16)))
    unit.save()
    DeviceDoor.objects.create(device=unit, number=1, access_point=front)
    operator = make_operator(is_superuser=True)

    for door in (front, side):
        commands.remote_open(door, operator=operator, via="api")

    assert sinks.reached(2) == every_sink(ids_of(kind="remote_open"))


def test_a_usb_encoder_coming_online_reaches_every_sink_once(sinks):
    encoder = Device.objects.create(device_id=7001, name="Front desk encoder", kind="usb_encoder")

    usb_encoders.bridge_connected(encoder.pk, "127.0.0.1")

    assert sinks.reached(1) == every_sink(ids_of(device=encoder, kind="device_online"))


def test_a_key_written_by_an_encoder_reaches_every_sink_once(sinks):
    encoder = make_encoder()
    key = make_key(make_cardholder(first_name="Grace", last_name="Hopper"), uid="04A1B2C3D4E5F6")
    job = encoding.create_encode_job(key, encoder, None)

    encoding.job_progress(job.pk, EncodeStatus.DONE, card_uid=key.uid)

    assert sinks.reached(1) == every_sink(ids_of(kind="key_encoded"))
