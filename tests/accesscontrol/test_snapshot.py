"""The snapshot from the database, and its incremental refresh from RuleChange rows."""

import datetime as dt
from types import SimpleNamespace

import pytest
from django.utils import timezone

from accesscontrol import actions
from accesscontrol.engine import ANY_TIME, FOREVER, NEVER, AccessPointRule, CardholderRule, Interval, KeyRule, decide
from accesscontrol.models import (
    AccessLevelEntry,
    CalendarDay,
    Cardholder,
    Key,
    RuleChange,
    SiteSettings,
    TimeInterval,
)
from accesscontrol.rulechanges import record_everything, record_rule_changes
from accesscontrol.snapshot import SnapshotStore, build_snapshot, get_store, purge_rule_changes
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

UTC = dt.UTC
MONDAY_10 = dt.datetime(2024, 3, 4, 10, tzinfo=UTC)
SUNDAY_10 = dt.datetime(2024, 3, 10, 10, tzinfo=UTC)
UID = "04A1B2C3"


@pytest.fixture
def world():
    """A door in a zone, a second door outside it, office hours, and Alex with a key and the door's level."""
    zone = make_zone()
    door = make_access_point(zones=[zone])
    back_door = make_access_point()
    office = make_time_period()
    level = make_access_level((door, office))
    holder = make_cardholder(level)
    key = make_key(holder, uid=UID)
    site = SiteSettings.load()
    return SimpleNamespace(
        zone=zone, door=door, back_door=back_door, office=office, level=level, holder=holder, key=key, site=site
    )


@pytest.fixture
def store(world):
    store = SnapshotStore()
    store.refresh()
    assert decide(store.snapshot, UID, world.door.pk, MONDAY_10).reason == "granted"
    world.refresh = store.refresh  # for changes in two steps, the second one seen alone
    return store


def test_the_full_build_reads_every_rule(world):
    world.holder.expiration = dt.datetime(2030, 1, 1, tzinfo=UTC)
    world.holder.use_anti_passback = True
    world.holder.set_pin("1234")
    world.holder.save()
    give_permission(world.holder, world.zone)
    make_key(world.holder, uid="aa:bb", status="cancelled", valid_until=dt.datetime(2031, 1, 1, tzinfo=UTC))
    make_key(world.holder, uid="CCDD", status="cancelled")
    night = make_time_period(("22:00", "06:00", "friday", "holiday"))
    calendar = make_calendar((dt.date(2024, 12, 25), "holiday"), (dt.date(2020, 1, 6), "special1", True))
    world.back_door.calendar = calendar
    world.back_door.direction = "entry"
    world.back_door.save()
    world.site.default_calendar = calendar
    world.site.lockdown = True
    world.site.save()
    locked = make_zone(lockdown=True, anti_passback=True)

    snapshot = build_snapshot()

    assert snapshot.lockdown is True
    assert snapshot.default_calendar_id == calendar.pk
    assert snapshot.cardholders[world.holder.pk] == CardholderRule(
        world.holder.pk,
        valid_from=NEVER,
        valid_until=dt.datetime(2030, 1, 1, tzinfo=UTC).timestamp(),
        use_anti_passback=True,
        pin_hash=world.holder.pin_hash,
        pin_index=world.holder.pin_index,
        level_ids=(world.level.pk,),
        zones={world.zone.pk: ANY_TIME},
    )
    assert snapshot.keys_by_uid == {UID: KeyRule(world.key.pk, UID, world.holder.pk, NEVER, FOREVER)}
    assert snapshot.blacklist == {"AABB": dt.datetime(2031, 1, 1, tzinfo=UTC).timestamp(), "CCDD": FOREVER}
    assert snapshot.access_points[world.door.pk] == AccessPointRule(world.door.pk, 4, 10, frozenset({world.zone.pk}))
    assert snapshot.access_points[world.back_door.pk].calendar_id == calendar.pk
    assert snapshot.access_points[world.back_door.pk].direction == "entry"
    assert snapshot.levels[world.level.pk].points == {world.door.pk: (world.office.pk,)}
    assert snapshot.periods[night.pk].intervals == (Interval(22 * 3600, 6 * 3600, 1 << 4 | 1 << 7),)
    assert snapshot.periods[world.office.pk].intervals == (Interval(8 * 3600, 18 * 3600, 0b11111),)
    assert snapshot.calendars[calendar.pk].dates == {dt.date(2024, 12, 25).toordinal(): 1 << 7}
    assert snapshot.calendars[calendar.pk].recurring == {(1, 6): 1 << 8}
    assert snapshot.lockdown_zones == {locked.pk}
    assert snapshot.passback_zones == {locked.pk}


def test_an_expired_key_says_expired(world):
    make_key(world.holder, uid="EE01", status="expired")
    assert decide(build_snapshot(), "EE01", world.door.pk, MONDAY_10).reason == "expired"


# Each change: (what it does to the world, the key and door then asked about, at when, the reason expected).
def create_a_cardholder(w):
    make_key(make_cardholder(w.level), uid="0B0B")
    return "0B0B", w.door, MONDAY_10, "granted"


def ban_the_cardholder(w):
    w.holder.banned = True
    w.holder.save()
    return UID, w.door, MONDAY_10, "banned"


def let_the_cardholder_expire(w):
    w.holder.expiration = MONDAY_10
    w.holder.save()
    return UID, w.door, MONDAY_10, "expired"


def delete_the_cardholder(w):
    actions.delete_cardholder(w.holder, operator=None, via="test")
    return UID, w.door, MONDAY_10, "unknown_key"


def cancel_the_key(w):
    w.key.status = "cancelled"
    w.key.valid_until = MONDAY_10 + dt.timedelta(days=1)
    w.key.save()
    return UID, w.door, MONDAY_10, "blacklisted"


def cancel_the_key_and_issue_its_uid_to_someone_else(w):
    Key.objects.filter(pk=w.key.pk).update(status="cancelled")
    record_rule_changes("key", [w.key.pk])
    other = make_cardholder()
    give_permission(other, w.back_door)
    make_key(other, uid=UID)
    return UID, w.back_door, MONDAY_10, "granted"


def change_the_key_s_uid(w):
    w.key.uid = "0C0C"
    w.key.save()
    return UID, w.door, MONDAY_10, "unknown_key"


def delete_the_key(w):
    w.key.delete()
    return UID, w.door, MONDAY_10, "unknown_key"


def delay_the_key(w):
    w.key.valid_from = MONDAY_10 + dt.timedelta(seconds=1)
    w.key.save()
    return UID, w.door, MONDAY_10, "not_yet_valid"


def delete_the_level_entry(w):
    w.level.entries.get().delete()
    return UID, w.door, MONDAY_10, "no_permission"


def make_the_level_entry_permanent(w):
    entry = w.level.entries.get()
    entry.time_period = None
    entry.save()
    return UID, w.door, SUNDAY_10, "granted"


def move_the_level_entry_to_another_level(w):
    entry = w.level.entries.get()
    entry.access_level = make_access_level()
    entry.save()
    return UID, w.door, MONDAY_10, "no_permission"


def add_a_level_entry_for_the_zone(w):
    AccessLevelEntry.objects.create(access_level=w.level, zone=w.zone)
    return UID, w.door, SUNDAY_10, "granted"


def take_the_level_from_the_cardholder(w):
    w.holder.access_levels.remove(w.level)
    return UID, w.door, MONDAY_10, "no_permission"


def clear_the_cardholder_s_levels(w):
    w.holder.access_levels.clear()
    return UID, w.door, MONDAY_10, "no_permission"


def clear_the_level_s_cardholders(w):
    w.level.cardholders.clear()
    return UID, w.door, MONDAY_10, "no_permission"


def give_a_level_through_its_members(w):
    make_access_level(w.back_door).cardholders.add(w.holder)
    return UID, w.back_door, SUNDAY_10, "granted"


def delete_the_level(w):
    w.level.delete()
    return UID, w.door, MONDAY_10, "no_permission"


def give_a_zone_permission(w):
    give_permission(w.holder, w.zone)
    return UID, w.door, SUNDAY_10, "granted"


def move_the_back_door_into_the_zone(w):
    give_permission(w.holder, w.zone)
    w.back_door.zones.add(w.zone)
    return UID, w.back_door, SUNDAY_10, "granted"


def empty_the_zone(w):
    give_permission(w.holder, w.zone)
    w.back_door.zones.add(w.zone)
    w.refresh()
    w.zone.access_points.clear()
    return UID, w.back_door, SUNDAY_10, "no_permission"


def delete_the_zone(w):
    w.zone.delete()
    return UID, w.door, MONDAY_10, "granted"


def lock_the_zone_down(w):
    w.zone.lockdown = True
    w.zone.save()
    return UID, w.door, MONDAY_10, "lockdown"


def lock_the_door_down(w):
    w.door.lockdown = True
    w.door.save()
    return UID, w.door, MONDAY_10, "lockdown"


def ask_for_a_pin_at_the_door(w):
    w.door.pin_required = True
    w.door.save()
    return UID, w.door, MONDAY_10, "pin_required"


def delete_the_door(w):
    door = SimpleNamespace(pk=w.door.pk)
    w.door.delete()
    return UID, door, MONDAY_10, "unknown_access_point"


def open_the_office_on_sundays(w):
    TimeInterval.objects.create(time_period=w.office, start=dt.time(9), end=dt.time(11), sunday=True)
    return UID, w.door, SUNDAY_10, "granted"


def shorten_office_hours(w):
    interval = w.office.intervals.get()
    interval.end = dt.time(9, 59)
    interval.save()
    return UID, w.door, MONDAY_10, "outside_schedule"


def delete_office_hours(w):
    w.office.intervals.get().delete()
    return UID, w.door, MONDAY_10, "outside_schedule"


def make_monday_a_holiday(w):
    w.site.default_calendar = make_calendar()
    w.site.save()
    CalendarDay.objects.create(calendar=w.site.default_calendar, date=MONDAY_10.date(), day_type="holiday")
    return UID, w.door, MONDAY_10, "outside_schedule"


def give_the_door_a_calendar_with_a_special_day(w):
    w.door.calendar = make_calendar((MONDAY_10.date(), "special1"))
    w.door.save()
    return UID, w.door, MONDAY_10, "outside_schedule"


def delete_the_door_s_calendar(w):
    w.door.calendar = make_calendar((MONDAY_10.date(), "special1"))
    w.door.save()
    w.site.default_calendar = make_calendar((MONDAY_10.date(), "holiday"))
    w.site.save()
    w.refresh()
    w.door.calendar.delete()
    return UID, w.door, MONDAY_10, "outside_schedule"


def move_a_calendar_day(w):
    calendar = make_calendar((MONDAY_10.date(), "holiday"))
    w.site.default_calendar = calendar
    w.site.save()
    w.refresh()
    day = calendar.days.get()
    day.calendar = make_calendar()
    day.save()
    return UID, w.door, MONDAY_10, "granted"


def lock_the_site_down(w):
    w.site.lockdown = True
    w.site.save()
    return UID, w.door, MONDAY_10, "lockdown"


CHANGES = [
    create_a_cardholder,
    ban_the_cardholder,
    let_the_cardholder_expire,
    delete_the_cardholder,
    cancel_the_key,
    cancel_the_key_and_issue_its_uid_to_someone_else,
    change_the_key_s_uid,
    delete_the_key,
    delay_the_key,
    delete_the_level_entry,
    make_the_level_entry_permanent,
    move_the_level_entry_to_another_level,
    add_a_level_entry_for_the_zone,
    take_the_level_from_the_cardholder,
    clear_the_cardholder_s_levels,
    clear_the_level_s_cardholders,
    give_a_level_through_its_members,
    delete_the_level,
    give_a_zone_permission,
    move_the_back_door_into_the_zone,
    empty_the_zone,
    delete_the_zone,
    lock_the_zone_down,
    lock_the_door_down,
    ask_for_a_pin_at_the_door,
    delete_the_door,
    open_the_office_on_sundays,
    shorten_office_hours,
    delete_office_hours,
    make_monday_a_holiday,
    give_the_door_a_calendar_with_a_special_day,
    delete_the_door_s_calendar,
    move_a_calendar_day,
    lock_the_site_down,
]


@pytest.mark.parametrize("change", CHANGES, ids=[change.__name__ for change in CHANGES])
def test_a_refresh_applies_the_change_as_a_full_rebuild_would(world, store, change):
    uid, door, at, reason = change(world)

    refreshed = store.refresh()

    assert store.full_builds == 1, "the change was applied incrementally"
    assert decide(refreshed, uid, door.pk, at).reason == reason
    assert refreshed == build_snapshot()


def test_a_refresh_without_changes_costs_one_query(store, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        assert store.refresh() is store.snapshot


def test_a_cardholder_change_reloads_with_a_handful_of_queries(world, store, django_assert_max_num_queries):
    world.holder.banned = True
    world.holder.save()
    with django_assert_max_num_queries(4):
        assert decide(store.refresh(), UID, world.door.pk, MONDAY_10).reason == "banned"


def test_a_refresh_leaves_the_snapshot_readers_hold_untouched(world, store):
    before = store.snapshot
    world.holder.banned = True
    world.holder.save()
    store.refresh()
    assert decide(before, UID, world.door.pk, MONDAY_10).reason == "granted"
    assert store.snapshot is not before


def test_too_many_changes_rebuild_in_full(world):
    store = SnapshotStore(max_changes=3)
    store.refresh()
    for _ in range(4):
        make_cardholder()
    store.refresh()
    assert store.full_builds == 2
    assert store.snapshot == build_snapshot()


def test_a_bulk_change_asks_for_a_full_rebuild(world, store):
    Cardholder.objects.update(banned=True)
    record_everything()
    assert decide(store.refresh(), UID, world.door.pk, MONDAY_10).reason == "banned"
    assert store.full_builds == 2


def test_recording_more_than_the_bulk_limit_asks_for_a_full_rebuild(world, store):
    record_rule_changes("cardholder", range(1, 5000))
    assert RuleChange.objects.filter(model="*").exists()
    store.refresh()
    assert store.full_builds == 2


def test_an_idle_store_rebuilds_in_case_rows_were_purged(world):
    store = SnapshotStore(max_idle_seconds=0)
    store.refresh()
    store.refresh()
    assert store.full_builds == 2


def test_a_change_committed_late_under_a_lower_id_is_still_applied(world, store):
    # Two writers: the first takes an id, the second commits a higher one before the first commits.
    world.holder.banned = True
    world.holder.save()
    late = RuleChange.objects.filter(model="cardholder").latest("id")
    RuleChange.objects.filter(pk=late.pk).delete()
    make_cardholder()  # the second writer's row
    assert decide(store.refresh(), UID, world.door.pk, MONDAY_10).reason == "granted"

    RuleChange.objects.create(pk=late.pk, model="cardholder", object_id=world.holder.pk)

    assert decide(store.refresh(), UID, world.door.pk, MONDAY_10).reason == "banned"
    assert store.full_builds == 1


def test_it_purges_only_old_rule_changes(world):
    now = timezone.now()
    RuleChange.objects.update(at=now - dt.timedelta(days=2))
    make_cardholder()
    kept = RuleChange.objects.filter(at__gte=now - dt.timedelta(hours=1)).count()

    deleted = purge_rule_changes(dt.timedelta(days=1), now=now)

    assert deleted > 0
    assert RuleChange.objects.count() == kept > 0


def test_the_process_has_one_store():
    assert get_store() is get_store()


def test_a_change_still_open_during_a_full_build_is_applied_when_it_commits(world):
    world.holder.banned = True
    world.holder.save()
    late = RuleChange.objects.filter(model="cardholder").latest("id")
    RuleChange.objects.filter(pk=late.pk).delete()
    Cardholder.objects.filter(pk=world.holder.pk).update(banned=False)  # not committed yet, as the build sees it
    make_cardholder()
    store = SnapshotStore()
    assert decide(store.refresh(), UID, world.door.pk, MONDAY_10).reason == "granted"

    Cardholder.objects.filter(pk=world.holder.pk).update(banned=True)
    RuleChange.objects.create(pk=late.pk, model="cardholder", object_id=world.holder.pk)

    assert decide(store.refresh(), UID, world.door.pk, MONDAY_10).reason == "banned"
    assert store.full_builds == 1


def test_a_jump_in_change_ids_rebuilds_in_full(world, store):
    RuleChange.objects.create(pk=10**9, model="cardholder", object_id=world.holder.pk)
    store.refresh()
    assert store.full_builds == 2
