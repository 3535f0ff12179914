"""Offline audit trails feed presence: a lock's granted passages, uploaded by a PPD, move people in and out of
tracked zones (devices/locks.py ``store_audit``), never undoing a newer passage, and only once."""

import datetime as dt

import pytest

from accesscontrol.choices import Direction, PresenceSource
from accesscontrol.models import Presence, PresenceChange
from accesscontrol.presence import Passage, record_passages
from devices import locks
from devices.models import Device, DeviceDoor
from tests.factories import make_access_point, make_cardholder, make_key, make_zone

pytestmark = pytest.mark.django_db

T = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)


def minutes(n: int) -> dt.datetime:
    return T + dt.timedelta(minutes=n)


@pytest.fixture
def plant():
    """A tracked zone with an online entrance, and an offline lock on its exit door."""
    zone = make_zone(name="Plant", anti_passback=True)
    entrance = make_access_point(name="Plant entrance", connection="online", direction=Direction.ENTRY, zones=[zone])
    exit_door = make_access_point(name="Plant exit", direction=Direction.EXIT, zones=[zone])
    lock = Device.objects.create(device_id=7101, name="Plant exit lock", kind="offline_lock")
    DeviceDoor.objects.create(device=lock, number=1, access_point=exit_door)
    holder = make_cardholder()
    key = make_key(holder)
    return {"zone": zone, "entrance": entrance, "exit": exit_door, "lock": lock, "holder": holder, "key": key}


def granted(event_id: int, at: dt.datetime, key) -> locks.UploadedEvent:
    return locks.UploadedEvent(id=event_id, at=at, kind="access_granted", key_id=key.pk, reason="granted")


def presence_of(plant) -> tuple[bool, dt.datetime, str, int | None]:
    row = Presence.objects.get(cardholder=plant["holder"], zone=plant["zone"])
    return row.inside, row.since, row.source, row.access_point_id


def test_an_offline_trail_moves_people_out_only_when_it_is_newer_and_only_once(plant):
    # Given: they came in through the online entrance at 10:10.
    record_passages(
        [Passage(plant["holder"].pk, minutes(10), frozenset({plant["zone"].pk}), access_point_id=plant["entrance"].pk)]
    )
    inside = (True, minutes(10), PresenceSource.ONLINE, plant["entrance"].pk)
    assert presence_of(plant) == inside

    # When: the exit lock's trail comes back with a passage out at 10:05, older than the entry.
    older = [granted(1, minutes(5), plant["key"])]
    stored = locks.store_audit(plant["lock"], older)

    # Then: it is stored, but they are still inside since the online entry.
    assert stored.new == 1
    assert presence_of(plant) == inside
    changes = PresenceChange.objects.count()

    # When: a later visit brings a refusal and a passage out at 10:30.
    refused = locks.UploadedEvent(id=2, at=minutes(20), kind="access_denied", key_id=plant["key"].pk, reason="expired")
    trail = [*older, refused, granted(3, minutes(30), plant["key"])]
    stored = locks.store_audit(plant["lock"], trail)

    # Then: they are out since 10:30, from the offline trail, by the exit door; one change row more.
    assert stored.new == 2
    outside = (False, minutes(30), PresenceSource.OFFLINE, plant["exit"].pk)
    assert presence_of(plant) == outside
    assert PresenceChange.objects.count() == changes + 1

    # When: the PPD, having died before acknowledging, uploads the same trail again.
    again = locks.store_audit(plant["lock"], trail)

    # Then: nothing changes.
    assert again.new == 0
    assert presence_of(plant) == outside
    assert PresenceChange.objects.count() == changes + 1


def test_a_trail_re_uploaded_after_a_newer_online_entry_does_not_take_them_out(plant):
    exit_trail = [granted(1, minutes(5), plant["key"])]
    locks.store_audit(plant["lock"], exit_trail)
    row = Presence.objects.get(cardholder=plant["holder"], zone=plant["zone"])
    assert (row.inside, row.last_at, row.source) == (False, minutes(5), PresenceSource.OFFLINE)

    record_passages(
        [Passage(plant["holder"].pk, minutes(10), frozenset({plant["zone"].pk}), access_point_id=plant["entrance"].pk)]
    )
    locks.store_audit(plant["lock"], exit_trail)

    assert presence_of(plant) == (True, minutes(10), PresenceSource.ONLINE, plant["entrance"].pk)


def test_an_offline_entry_puts_them_inside_and_an_untracked_zone_stays_untouched(plant):
    untracked = make_zone(name="Lobby")
    door = make_access_point(name="Lobby door", direction=Direction.ENTRY, zones=[plant["zone"], untracked])
    lock = Device.objects.create(device_id=7102, name="Lobby lock", kind="offline_lock")
    DeviceDoor.objects.create(device=lock, number=1, access_point=door)

    locks.store_audit(lock, [granted(1, minutes(1), plant["key"])])

    assert presence_of(plant) == (True, minutes(1), PresenceSource.OFFLINE, door.pk)
    assert not Presence.objects.filter(zone=untracked).exists()
