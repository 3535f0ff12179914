"""The PPD workflow end to end: a SimulatedPPD over real HTTP (live_server) programs software offline locks."""

import datetime as dt

import pytest
from django.utils import timezone

from accesscontrol import actions
from accesscontrol.choices import DayType
from accesscontrol.models import ApiKey, AuditEvent, CalendarDay
from devices import cards
from devices.models import LockState
from simulation.offline_lock import OfflineLock
from simulation.ppd import ApiError, SimulatedPPD, factory_config
from tests.devices.test_locks import make_lock
from tests.factories import (
    make_access_level,
    make_access_point,
    make_calendar,
    make_cardholder,
    make_key,
    make_operator,
    make_time_period,
)


def _last_monday_morning() -> dt.datetime:
    """The latest Monday 10:00 (site time, UTC in the tests) that has passed: inside office hours."""
    today = timezone.now().astimezone(dt.UTC)
    monday = (today - dt.timedelta(days=today.weekday())).replace(hour=10, minute=0, second=0, microsecond=0)
    return monday if monday <= today - dt.timedelta(minutes=30) else monday - dt.timedelta(days=7)


MONDAY = _last_monday_morning()


@pytest.fixture
def ppd(live_server):
    _, token = ApiKey.issue(make_operator("devices.use_ppd"), "PPD of the maintenance team")
    return SimulatedPPD(live_server.url, token)


@pytest.fixture
def site(transactional_db):
    calendar = make_calendar()
    point = make_access_point(name="Room 12", calendar=calendar)
    holder = make_cardholder(make_access_level((point, make_time_period())))
    key = make_key(holder, uid="04A1B2C3")
    device = make_lock(point)
    return {"point": point, "calendar": calendar, "holder": holder, "key": key, "device": device}


def card(key) -> bytes:
    return cards.card_bytes_for_key(key, MONDAY - dt.timedelta(days=1))


def fresh_lock(device) -> OfflineLock:
    return OfflineLock(factory_config(device.device_id))


def test_the_ppd_initialises_a_fresh_lock_that_then_opens_for_the_sites_cards(ppd, site):
    device, lock = site["device"], fresh_lock(site["device"])
    outcome, _ = lock.present(card(site["key"]), MONDAY)
    assert (outcome.granted, outcome.reason) == (False, "wrong_site")
    assert [(item["id"], item["reasons"]) for item in ppd.locks(needs_update=True)] == [
        (device.pk, ["never_initialised"])
    ]

    (visit,) = ppd.round({device.pk: lock}, MONDAY)

    assert visit.reasons == ["never_initialised"]
    assert visit.loaded_revision == lock.config.revision != 0
    outcome, _ = lock.present(card(site["key"]), MONDAY)
    assert (outcome.granted, outcome.reason, outcome.key_id) == (True, "granted", site["key"].pk)
    state = LockState.objects.get(device=device)
    assert (state.config_revision, state.initialised_at, state.battery) == (lock.config.revision, MONDAY, 100)
    assert AuditEvent.objects.filter(device=device, kind="lock_updated", operator__isnull=False).count() == 1
    assert ppd.locks(needs_update=True) == []
    # The wrong-site refusal it recorded before it was initialised came up with the round.
    assert list(AuditEvent.objects.filter(device=device, kind="access_denied").values_list("reason", flat=True)) == [
        "wrong_site"
    ]


def test_a_calendar_change_gives_a_new_revision_and_the_next_round_loads_it(ppd, site):
    device, lock = site["device"], fresh_lock(site["device"])
    ppd.round({device.pk: lock}, MONDAY)
    first = lock.config.revision

    CalendarDay.objects.create(calendar=site["calendar"], date=MONDAY.date(), day_type=DayType.HOLIDAY)

    (listed,) = ppd.locks(needs_update=True)
    assert listed["reasons"] == ["configuration_changed"]
    assert listed["config_revision"] != first
    assert listed["state"]["config_revision"] == first
    assert lock.present(card(site["key"]), MONDAY)[0].granted  # it does not know of the holiday yet

    (visit,) = ppd.round({device.pk: lock}, MONDAY + dt.timedelta(minutes=5))

    assert visit.loaded_revision == listed["config_revision"] == lock.config.revision
    outcome, _ = lock.present(card(site["key"]), MONDAY + dt.timedelta(minutes=6))
    assert (outcome.granted, outcome.reason) == (False, "outside_schedule")
    assert ppd.locks(needs_update=True) == []


def test_a_rights_change_at_this_door_gives_a_new_revision(ppd, site):
    device, lock = site["device"], fresh_lock(site["device"])
    ppd.round({device.pk: lock}, MONDAY)
    before = lock.config.revision

    nights = make_time_period(("22:00", "06:00", "sunday"))
    make_access_level((site["point"], nights))

    (listed,) = ppd.locks(needs_update=True)
    assert listed["reasons"] == ["configuration_changed"]
    ppd.round({device.pk: lock}, MONDAY)
    assert lock.config.revision == listed["config_revision"] != before
    assert nights.pk in [period.id for period in lock.config.periods]


def test_audit_uploaded_then_lost_in_a_crash_lands_once_and_is_acknowledged_after(ppd, site):
    device, lock = site["device"], fresh_lock(site["device"])
    ppd.round({device.pk: lock}, MONDAY)
    for minutes in range(3):
        lock.present(card(site["key"]), MONDAY + dt.timedelta(minutes=minutes + 1))
    events = lock.collect_audit()
    assert len(events) == 3

    stored = ppd.upload(device.pk, events)  # ... and the PPD dies before acknowledging on the lock
    assert (stored["received"], stored["new"], stored["stored_up_to"]) == (3, 3, events[-1].id)
    assert len(lock.collect_audit()) == 3  # the lock still holds them

    lock.present(card(site["key"]), MONDAY + dt.timedelta(minutes=10))
    visit = ppd.collect(device.pk, lock)

    assert (visit.uploaded, visit.new, visit.acknowledged) == (4, 1, 4)
    assert lock.collect_audit() == []
    rows = AuditEvent.objects.filter(device=device, kind="access_granted").order_by("device_event_id")
    assert [row.device_event_id for row in rows] == [event.id for event in events] + [events[-1].id + 1]
    assert {(row.cardholder_id, row.key_uid, row.access_point_id) for row in rows} == {
        (site["holder"].pk, "04A1B2C3", site["point"].pk)
    }


def test_bad_input_is_a_400_with_field_errors(ppd, site):
    with pytest.raises(ApiError) as error:
        ppd.api.post(f"/api/v1/ppd/locks/{site['device'].pk}/loaded/", {"config_revision": "new", "battery": 300})

    assert error.value.status == 400
    assert set(error.value.body) == {"config_revision", "blacklist_number", "battery", "at"}
    assert not LockState.objects.exists()


def test_an_operator_without_the_ppd_permission_gets_403_and_no_card_key(live_server, site):
    _, token = ApiKey.issue(make_operator("devices.view_device", "devices.change_device"), "Not a PPD")
    stranger = SimulatedPPD(live_server.url, token)

    for call in (
        lambda: stranger.locks(),
        lambda: stranger.api.get(f"/api/v1/ppd/locks/{site['device'].pk}/config/"),
        lambda: stranger.upload(site["device"].pk, []),
    ):
        with pytest.raises(ApiError) as error:
            call()
        assert error.value.status == 403

    assert not AuditEvent.objects.exists()


def test_a_lock_behind_on_the_blacklist_is_listed_and_brought_up_to_date(ppd, site):
    device, lock = site["device"], fresh_lock(site["device"])
    ppd.round({device.pk: lock}, MONDAY)
    lost = make_key(site["holder"], uid="0BADC0DE")
    actions.cancel_key(lost, operator=None, via="test")
    entry = lost.blacklist_entries.get()
    LockState.objects.filter(device=device).update(blacklist_number=0)
    type(entry).objects.filter(pk=entry.pk).update(created_at=timezone.now() - dt.timedelta(days=8))

    (listed,) = ppd.locks(needs_update=True)
    assert listed["reasons"] == ["blacklist_behind"]

    ppd.round({device.pk: lock}, MONDAY)

    assert lock.blacklist_number == entry.pk
    assert LockState.objects.get(device=device).blacklist_number == entry.pk
    assert ppd.locks(needs_update=True) == []
