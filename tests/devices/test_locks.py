"""An offline lock's configuration (devices/locks.py) and the reasons it needs a PPD visit."""

import datetime as dt
import json

import pytest
from django.utils import timezone

from accesscontrol import engine
from accesscontrol.choices import AccessPointKind, DayType, ModeSource, OpeningMode
from accesscontrol.models import AuditEvent, BlacklistEntry, ModeSchedule, SiteSettings
from devices import cards, locks
from devices.lockconfig import LockPeriod
from devices.models import Device, DeviceDoor, LockState
from tests.factories import (
    give_permission,
    make_access_level,
    make_access_point,
    make_calendar,
    make_cardholder,
    make_key,
    make_time_period,
    make_zone,
)

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def make_lock(point=None, device_id=7001, **fields) -> Device:
    device = Device.objects.create(
        device_id=device_id, name=fields.pop("name", f"Lock {device_id}"), kind="offline_lock", **fields
    )
    if point is not None:
        DeviceDoor.objects.create(device=device, number=1, access_point=point)
    return device


def loaded(device, config, at=NOW, **fields) -> LockState:
    values = {"config_revision": config.revision, "blacklist_number": 0, "battery": 90, "at": at, **fields}
    return locks.record_loaded(device, operator=None, **values)


def blacklist(key, created_at=NOW, until=NOW + dt.timedelta(days=30)) -> BlacklistEntry:
    entry = BlacklistEntry.objects.create(key=key, key_number=key.pk, uid=key.uid, until=until)
    BlacklistEntry.objects.filter(pk=entry.pk).update(created_at=created_at)
    return entry


def test_the_config_holds_the_point_its_zones_grant_periods_calendar_and_site_key(settings):
    wing, other_zone = make_zone(), make_zone()
    room = make_access_point(kind=AccessPointKind.ROOM, zones=[wing], open_time=5, extended_open_time=12)
    elsewhere = make_access_point(zones=[other_zone])
    office, nights, unused, elsewhere_period = (
        make_time_period(),
        make_time_period(("22:00", "06:00", "saturday")),
        make_time_period(),
        make_time_period(),
    )
    make_access_level((room, office), (elsewhere, elsewhere_period), (other_zone, unused))
    give_permission(make_cardholder(), wing, nights)
    calendar = make_calendar((dt.date(2026, 12, 25), DayType.HOLIDAY, True), (dt.date(2026, 12, 31), DayType.SPECIAL1))
    room.calendar = calendar
    room.save()

    config = locks.lock_config(make_lock(room), NOW)

    site, key = cards.site_card_key()
    assert (config.lock_id, config.access_point_id, config.site, config.card_key) == (7001, room.pk, site, key)
    assert config.zone_ids == (wing.pk,)
    assert [period.id for period in config.periods] == sorted([office.pk, nights.pk])
    by_id = {period.id: period for period in config.periods}
    assert by_id[nights.pk].intervals == ((22 * 3600, 6 * 3600, engine.DAY_BITS["saturday"]),)
    assert config.calendar_recurring == {(12, 25): engine.DAY_BITS["holiday"]}
    assert config.calendar_dates == {dt.date(2026, 12, 31).toordinal(): engine.DAY_BITS["special1"]}
    assert (config.open_time, config.extended_open_time, config.is_room) == (5, 12, True)
    assert config.time_zone == settings.TIME_ZONE
    assert 0 < config.revision < 2**32


def test_a_point_without_a_calendar_takes_the_site_default():
    calendar = make_calendar((dt.date(2026, 5, 1), DayType.HOLIDAY, True))
    site = SiteSettings.load()
    site.default_calendar = calendar
    site.save()

    config = locks.lock_config(make_lock(make_access_point()), NOW)

    assert config.calendar_recurring == {(5, 1): engine.DAY_BITS["holiday"]}


def test_the_time_zone_is_the_sites(settings):
    settings.TIME_ZONE = "America/New_York"

    assert locks.lock_config(make_lock(make_access_point()), NOW).time_zone == "America/New_York"


def test_door_one_is_the_locks_access_point_else_its_first_door():
    first, second, third = make_access_point(), make_access_point(), make_access_point()
    lock = make_lock()
    DeviceDoor.objects.create(device=lock, number=3, access_point=third)
    DeviceDoor.objects.create(device=lock, number=2, access_point=second)
    assert locks.lock_config(lock, NOW).access_point_id == second.pk

    DeviceDoor.objects.create(device=lock, number=1, access_point=first)
    assert locks.lock_config(lock, NOW).access_point_id == first.pk


def test_a_lock_without_a_door_has_no_config():
    with pytest.raises(locks.LockNotMapped, match="drives no door"):
        locks.lock_config(make_lock(), NOW)


def test_the_blacklist_in_force_is_loaded_in_full_and_not_in_the_revision():
    point = make_access_point()
    holder = make_cardholder()
    lock = make_lock(point)
    before = locks.lock_config(lock, NOW)
    old = blacklist(make_key(holder), until=NOW - dt.timedelta(seconds=1))
    first, second = blacklist(make_key(holder)), blacklist(make_key(holder))

    config = locks.lock_config(lock, NOW)

    assert old.pk not in [number for number, _, _ in config.blacklist]
    assert config.blacklist == (
        (first.pk, first.key_number, int(first.until.timestamp())),
        (second.pk, second.key_number, int(second.until.timestamp())),
    )
    assert config.revision == before.revision


@pytest.mark.parametrize(
    "change",
    [
        "grant_period",
        "interval",
        "calendar_day",
        "open_time",
        "zone",
        "room",
    ],
)
def test_the_revision_changes_with_whatever_the_lock_holds(change):
    zone = make_zone()
    point = make_access_point(zones=[zone])
    period = make_time_period()
    make_access_level((point, period))
    calendar = make_calendar()
    point.calendar = calendar
    point.save()
    lock = make_lock(point)
    before = locks.lock_config(lock, NOW).revision

    if change == "grant_period":
        give_permission(make_cardholder(), zone, make_time_period(("06:00", "07:00", "sunday")))
    elif change == "interval":
        period.intervals.update(end=dt.time(19, 0))
    elif change == "calendar_day":
        calendar.days.create(date=dt.date(2027, 1, 1), day_type=DayType.HOLIDAY)
    elif change == "open_time":
        point.open_time = 9
        point.save()
    elif change == "zone":
        point.zones.add(make_zone())
    else:
        point.kind = AccessPointKind.ROOM
        point.save()

    assert locks.lock_config(lock, NOW).revision != before


def test_the_revision_is_stable_and_ignores_periods_no_grant_here_uses():
    point = make_access_point()
    lock = make_lock(point)
    before = locks.lock_config(lock, NOW).revision
    make_access_level((make_access_point(), make_time_period()))

    assert locks.lock_config(lock, NOW).revision == before


# --- the opening mode ----------------------------------------------------------------------------


def make_mode_schedule(*changes) -> ModeSchedule:
    """``changes``: ("HH:MM", mode, day names...) tuples."""
    schedule = ModeSchedule.objects.create(name=f"Schedule {ModeSchedule.objects.count() + 1}")
    for at, mode, *days in changes:
        schedule.changes.create(at=dt.time.fromisoformat(at), mode=mode, **dict.fromkeys(days, True))
    return schedule


def test_without_a_schedule_the_lock_holds_the_points_mode_and_its_timed_period():
    hours = make_time_period(("07:30", "18:00", "monday", "holiday"))
    point = make_access_point(opening_mode=OpeningMode.TIMED, timed_period=hours)

    config = locks.lock_config(make_lock(point), NOW)

    assert config.mode == OpeningMode.TIMED
    assert config.mode_changes == ()
    bits = engine.DAY_BITS["monday"] | engine.DAY_BITS["holiday"]
    assert config.timed_period == LockPeriod(hours.pk, ((7 * 3600 + 1800, 18 * 3600, bits),))
    # The timed period is the lock's own: no grant refers to it, so it is not among the grant periods.
    assert config.periods == ()


def test_the_points_schedule_gives_the_changes_in_time_order_with_their_day_masks():
    schedule = make_mode_schedule(
        ("18:00", OpeningMode.STANDARD, "monday", "friday"),
        ("07:00", OpeningMode.OFFICE, "monday", "friday", "special1"),
        ("09:00", OpeningMode.LOCKED, "holiday"),
    )
    point = make_access_point(mode_schedule=schedule)

    config = locks.lock_config(make_lock(point), NOW)

    weekdays = engine.DAY_BITS["monday"] | engine.DAY_BITS["friday"]
    assert config.mode_changes == (
        (7 * 3600, weekdays | engine.DAY_BITS["special1"], OpeningMode.OFFICE),
        (9 * 3600, engine.DAY_BITS["holiday"], OpeningMode.LOCKED),
        (18 * 3600, weekdays, OpeningMode.STANDARD),
    )
    assert config.mode == OpeningMode.STANDARD


def test_a_point_without_a_schedule_follows_its_lowest_zone_with_one_and_its_own_wins():
    plain = make_zone()
    first, second = make_zone(), make_zone()
    second.mode_schedule = make_mode_schedule(("08:00", OpeningMode.TOGGLE, "tuesday"))
    second.save()
    first.mode_schedule = make_mode_schedule(("08:00", OpeningMode.OFFICE, "tuesday"))
    first.save()
    point = make_access_point(zones=[plain, second, first])
    lock = make_lock(point)

    assert [mode for _, _, mode in locks.lock_config(lock, NOW).mode_changes] == [OpeningMode.OFFICE]

    point.mode_schedule = make_mode_schedule(("06:00", OpeningMode.OPEN, "sunday"))
    point.save()

    assert [mode for _, _, mode in locks.lock_config(lock, NOW).mode_changes] == [OpeningMode.OPEN]


@pytest.mark.parametrize("change", ["mode", "timed_period", "schedule", "schedule_change", "zone_schedule"])
def test_the_revision_changes_with_the_opening_mode_and_its_schedule(change):
    zone = make_zone()
    schedule = make_mode_schedule(("08:00", OpeningMode.OFFICE, "monday"))
    point = make_access_point(zones=[zone])
    lock = make_lock(point)
    if change == "schedule_change":
        point.mode_schedule = schedule
        point.save()
    before = locks.lock_config(lock, NOW).revision

    if change == "mode":
        point.opening_mode = OpeningMode.OPEN
        point.save()
    elif change == "timed_period":
        point.timed_period = make_time_period()
        point.save()
    elif change == "schedule":
        point.mode_schedule = schedule
        point.save()
    elif change == "schedule_change":
        schedule.changes.update(at=dt.time(8, 30))
    else:
        zone.mode_schedule = schedule
        zone.save()

    assert locks.lock_config(lock, NOW).revision != before


def test_the_scheduler_moving_a_scheduled_points_mode_sends_no_visit():
    point = make_access_point(mode_schedule=make_mode_schedule(("08:00", OpeningMode.OFFICE, "monday")))
    lock = make_lock(point)
    loaded(lock, locks.lock_config(lock, NOW))

    point.opening_mode, point.mode_source = OpeningMode.OFFICE, ModeSource.SCHEDULE
    point.save()

    assert reasons(lock) == []


def test_the_opening_mode_goes_through_json_and_back():
    hours = make_time_period(("22:00", "06:00", "saturday"))
    point = make_access_point(
        opening_mode=OpeningMode.TIMED,
        timed_period=hours,
        mode_schedule=make_mode_schedule(("07:00", OpeningMode.TIMED, "saturday", "special2")),
    )
    config = locks.lock_config(make_lock(point), NOW)

    document = json.loads(json.dumps(locks.config_json(config)))

    assert document["mode_changes"] == [[7 * 3600, engine.DAY_BITS["saturday"] | engine.DAY_BITS["special2"], "timed"]]
    assert document["timed_period"] == {"id": hours.pk, "intervals": [[22 * 3600, 6 * 3600, 32]]}
    assert locks.config_from_json(document) == config


def test_a_document_from_before_opening_modes_reads_as_standard():
    document = locks.config_json(locks.lock_config(make_lock(make_access_point()), NOW))
    for field in ("mode", "mode_changes", "timed_period"):
        del document[field]

    config = locks.config_from_json(document)

    assert (config.mode, config.mode_changes, config.timed_period) == (OpeningMode.STANDARD, (), None)


# --- reasons -----------------------------------------------------------------------------------


def reasons(lock, now=NOW) -> list[str]:
    (report,) = locks.lock_reports([lock], now)
    return report.reasons


def test_a_lock_never_loaded_needs_initialising():
    assert reasons(make_lock(make_access_point())) == ["never_initialised"]


def test_a_freshly_loaded_lock_needs_nothing_until_its_configuration_changes():
    point = make_access_point()
    lock = make_lock(point)
    loaded(lock, locks.lock_config(lock, NOW))
    assert reasons(lock) == []

    point.open_time = 8
    point.save()

    assert reasons(lock) == ["configuration_changed"]


def test_a_lock_behind_more_blacklist_entries_than_cards_carry_needs_a_visit():
    lock = make_lock(make_access_point())
    loaded(lock, locks.lock_config(lock, NOW))
    holder = make_cardholder()
    for _ in range(locks.BLACKLIST_CARD_ENTRIES):
        blacklist(make_key(holder))
    assert reasons(lock) == []  # cards bring these

    blacklist(make_key(holder))

    assert reasons(lock) == ["blacklist_behind"]


def test_a_blacklist_entry_cards_have_not_brought_for_a_week_sends_a_ppd():
    lock = make_lock(make_access_point())
    loaded(lock, locks.lock_config(lock, NOW))
    entry = blacklist(make_key(make_cardholder()), created_at=NOW - locks.BLACKLIST_MAX_AGE + dt.timedelta(hours=1))
    assert reasons(lock) == []

    assert reasons(lock, NOW + dt.timedelta(hours=2)) == ["blacklist_behind"]

    LockState.objects.filter(device=lock).update(blacklist_number=entry.pk)  # a card brought it
    assert reasons(lock, NOW + dt.timedelta(hours=2)) == []


def test_low_battery_pending_audit_and_an_old_clock_are_reasons():
    lock = make_lock(make_access_point())
    loaded(lock, locks.lock_config(lock, NOW), battery=locks.BATTERY_LOW - 1)
    LockState.objects.filter(device=lock).update(events_pending=locks.AUDIT_PENDING_LIMIT + 1)

    assert reasons(lock) == ["battery_low", "audit_pending"]
    assert reasons(lock, NOW + locks.CLOCK_MAX_AGE + dt.timedelta(days=1)) == [
        "battery_low",
        "audit_pending",
        "clock_not_set",
    ]


def test_loading_records_the_state_and_a_lock_updated_event():
    point = make_access_point(name="Room 101")
    lock = make_lock(point)
    config = locks.lock_config(lock, NOW)

    state = loaded(lock, config, battery=77, blacklist_number=4)
    later = loaded(lock, config, at=NOW + dt.timedelta(days=1), battery=76, blacklist_number=5)

    assert state.initialised_at == later.initialised_at == NOW
    later.refresh_from_db()
    assert (later.config_revision, later.blacklist_number, later.battery) == (config.revision, 5, 76)
    assert later.clock_set_at == later.reported_at == NOW + dt.timedelta(days=1)
    lock.refresh_from_db()
    assert lock.battery == 76
    events = AuditEvent.objects.filter(device=lock, kind="lock_updated").order_by("at")
    assert [(e.access_point_id, e.access_point_name, e.detail["initialised"]) for e in events] == [
        (point.pk, "Room 101", True),
        (point.pk, "Room 101", False),
    ]


def test_lock_reports_cost_a_fixed_number_of_queries(django_assert_max_num_queries):
    for number in range(20):
        lock = make_lock(make_access_point(zones=[make_zone()]), device_id=8000 + number)
        make_access_level((lock.doors.get().access_point, make_time_period()))
    cards.site_card_key()

    with django_assert_max_num_queries(15):
        reports = locks.lock_reports(now=timezone.now())

    assert len(reports) == 20
