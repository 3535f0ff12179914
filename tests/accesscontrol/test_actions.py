"""The domain's actions for grants, access level entries, time periods and calendars.

Each changes what it should, writes one system auditor row, and leaves the rule
change rows the rules snapshot reloads from; a refused action changes nothing.
"""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from accesscontrol import actions
from accesscontrol.models import (
    AccessLevelEntry,
    Calendar,
    CalendarDay,
    CardholderPermission,
    RuleChange,
    SystemAuditEntry,
    TimePeriod,
)
from tests.factories import (
    give_permission,
    make_access_level,
    make_access_point,
    make_calendar,
    make_cardholder,
    make_operator,
    make_partition,
    make_time_period,
    make_zone,
)

pytestmark = pytest.mark.django_db

VIA = "api"


@pytest.fixture
def admin():
    return make_operator(username="root", is_superuser=True)


def rule_changes_after(call) -> set[tuple[str, int]]:
    """Run ``call``; the (model, id) rule change rows it wrote."""
    last = RuleChange.objects.order_by("-id").values_list("id", flat=True).first() or 0
    call()
    return set(RuleChange.objects.filter(id__gt=last).values_list("model", "object_id"))


def rows() -> list[tuple]:
    return list(SystemAuditEntry.objects.order_by("id").values_list("action", "operator_name", "via", "object_id"))


# --- access levels granted to cardholders ------------------------------------------------------------


def test_granting_a_level_gives_it_records_the_operator_and_tells_the_snapshot(admin):
    holder = make_cardholder()
    level = make_access_level(name="Lobby")

    changed = rule_changes_after(lambda: actions.grant_access_level(holder, level, operator=admin, via=VIA))

    assert list(holder.access_levels.all()) == [level]
    assert rows() == [("grant_access_level", "root", VIA, str(holder.pk))]
    assert SystemAuditEntry.objects.get().detail == {"access_level": level.pk, "name": "Lobby"}
    assert changed == {("cardholder", holder.pk)}


def test_granting_a_level_held_already_records_nothing(admin):
    level = make_access_level()
    holder = make_cardholder(level)

    granted = actions.grant_access_level(holder, level, operator=admin, via=VIA)

    assert granted is False
    assert rows() == []


def test_an_operator_cannot_grant_a_level_they_cannot_see_and_nothing_changes():
    mine, other = make_partition(), make_partition()
    holder = make_cardholder(partition=mine)
    foreign = make_access_level(partition=other)
    operator = make_operator("accesscontrol.change_cardholder", "accesscontrol.view_accesslevel", partitions=[mine])

    with pytest.raises(PermissionDenied):
        actions.grant_access_level(holder, foreign, operator=operator, via=VIA)

    assert not holder.access_levels.exists()
    assert rows() == []


def test_revoking_a_level_takes_it_away_and_is_recorded(admin):
    level = make_access_level(name="Lobby")
    holder = make_cardholder(level)

    changed = rule_changes_after(lambda: actions.revoke_access_level(holder, level, operator=admin, via="web"))

    assert not holder.access_levels.exists()
    assert rows() == [("remove_access_level", "root", "web", str(holder.pk))]
    assert changed == {("cardholder", holder.pk)}


def test_a_level_granted_to_many_skips_its_holders_and_is_one_row(admin):
    level = make_access_level()
    holding, fresh, other = make_cardholder(level), make_cardholder(), make_cardholder()
    ids = [holding.pk, fresh.pk, other.pk]

    changed = rule_changes_after(
        lambda: actions.grant_access_level_to_many(level, ids, operator=admin, via="web", detail={"job": 7})
    )

    assert sorted(level.cardholders.values_list("pk", flat=True)) == sorted(ids)
    assert rows() == [("grant_access_level", "root", "web", str(level.pk))]
    assert SystemAuditEntry.objects.get().detail == {"job": 7, "cardholders": sorted([fresh.pk, other.pk])}
    assert changed == {("cardholder", fresh.pk), ("cardholder", other.pk)}


# --- individual permissions --------------------------------------------------------------------------


def test_a_permission_is_added_and_removed_each_with_a_row_and_a_rule_change(admin):
    holder = make_cardholder()
    zone = make_zone()
    period = make_time_period()

    added = []
    on_add = rule_changes_after(
        lambda: added.append(
            actions.add_cardholder_permission(holder, zone=zone, time_period=period, operator=admin, via=VIA)
        )
    )
    [permission] = added
    stored = (permission.cardholder_id, permission.zone_id, permission.access_point_id, permission.time_period_id)
    on_remove = rule_changes_after(lambda: actions.remove_cardholder_permission(permission, operator=admin, via=VIA))

    assert stored == (holder.pk, zone.pk, None, period.pk)
    assert not CardholderPermission.objects.exists()
    assert [row[0] for row in rows()] == ["create", "delete"]
    assert SystemAuditEntry.objects.first().detail == {
        "fields": {"cardholder": holder.pk, "access_point": None, "zone": zone.pk, "time_period": period.pk}
    }
    assert on_add == on_remove == {("cardholder", holder.pk)}


def test_a_permission_needs_an_access_point_or_a_zone_not_both(admin):
    holder = make_cardholder()

    with pytest.raises(ValidationError):
        actions.add_cardholder_permission(
            holder, access_point=make_access_point(), zone=make_zone(), operator=admin, via=VIA
        )

    assert not CardholderPermission.objects.exists()
    assert rows() == []


def test_an_operator_cannot_give_permissions_in_a_partition_they_may_not_use():
    mine, other = make_partition(), make_partition()
    holder = make_cardholder(partition=other)
    door = make_access_point(partition=mine)
    operator = make_operator(
        "accesscontrol.add_cardholderpermission", "accesscontrol.view_accesspoint", partitions=[mine]
    )

    with pytest.raises(PermissionDenied):
        actions.add_cardholder_permission(holder, access_point=door, operator=operator, via=VIA)

    assert not CardholderPermission.objects.exists()
    assert rows() == []


def test_setting_door_permissions_replaces_the_doors_and_keeps_the_zones(admin):
    holder = make_cardholder()
    old_door, new_door, zone = make_access_point(), make_access_point(), make_zone()
    give_permission(holder, old_door)
    give_permission(holder, zone)
    period = make_time_period()

    changed = rule_changes_after(
        lambda: actions.set_cardholder_permissions(
            holder, "access_point", [(new_door, period)], operator=admin, via="ship"
        )
    )

    assert set(holder.permissions.values_list("access_point", "zone", "time_period")) == {
        (new_door.pk, None, period.pk),
        (None, zone.pk, None),
    }
    assert rows() == [("set_permissions", "root", "ship", str(holder.pk))]
    assert SystemAuditEntry.objects.get().detail == {
        "kind": "access_point",
        "removed": 1,
        "granted": [[new_door.pk, period.pk]],
    }
    assert changed == {("cardholder", holder.pk)}


# --- access level entries --------------------------------------------------------------------------


def test_an_entry_is_added_and_removed_and_the_level_is_told_each_time(admin):
    level = make_access_level()
    door = make_access_point(name="Lobby")

    added = []
    on_add = rule_changes_after(
        lambda: added.append(actions.add_access_level_entry(level, access_point=door, operator=admin, via="web"))
    )
    [entry] = added
    entry_id = entry.pk
    on_remove = rule_changes_after(lambda: actions.remove_access_level_entry(entry, operator=admin, via="web"))

    assert not AccessLevelEntry.objects.exists()
    assert [row[:3] for row in rows()] == [("add_entry", "root", "web"), ("remove_entry", "root", "web")]
    assert SystemAuditEntry.objects.first().detail == {
        "entry": {
            "id": entry_id,
            "access_point": door.pk,
            "zone": None,
            "time_period": None,
            "text": "access point Lobby, at any time",
        }
    }
    assert on_add == on_remove == {("accesslevel", level.pk)}


def test_an_operator_cannot_add_an_entry_with_a_door_they_cannot_see():
    mine, other = make_partition(), make_partition()
    level = make_access_level(partition=mine)
    foreign = make_access_point(partition=other)
    operator = make_operator("accesscontrol.change_accesslevel", "accesscontrol.view_accesspoint", partitions=[mine])

    with pytest.raises(PermissionDenied):
        actions.add_access_level_entry(level, access_point=foreign, operator=operator, via="web")

    assert not level.entries.exists()
    assert rows() == []


def test_saving_a_level_with_entries_replaces_them_and_records_the_change(admin):
    old, new = make_access_point(name="Old"), make_access_point(name="New")
    level = make_access_level(old, name="Staff")

    changed = rule_changes_after(
        lambda: actions.save_access_level(level, entries=[{"access_point": new}], operator=admin, via=VIA)
    )

    assert list(level.entries.values_list("access_point", flat=True)) == [new.pk]
    assert rows() == [("update", "root", VIA, str(level.pk))]
    assert SystemAuditEntry.objects.get().detail == {
        "changes": {"entries": {"from": ["access point Old, at any time"], "to": ["access point New, at any time"]}}
    }
    assert ("accesslevel", level.pk) in changed


# --- time periods and calendars --------------------------------------------------------------------


def test_a_time_period_is_created_with_its_intervals_and_recorded(admin):
    partition = make_partition()
    period = TimePeriod(name="Nights", partition=partition)
    night = {"start": dt.time(22), "end": dt.time(6), "saturday": True, "holiday": True}

    changed = rule_changes_after(lambda: actions.save_time_period(period, intervals=[night], operator=admin, via=VIA))

    assert [actions.describe_interval(interval) for interval in period.intervals.all()] == ["22:00-06:00 Sat Hol"]
    assert rows() == [("create", "root", VIA, str(period.pk))]
    assert SystemAuditEntry.objects.get().detail == {"fields": ["intervals", "name", "partition"]}
    assert changed == {("timeperiod", period.pk)}


def test_an_update_records_what_changed_and_nothing_when_nothing_did(admin):
    period = make_time_period(("08:00", "18:00", "monday"), name="Office")
    same = [{"start": dt.time(8), "end": dt.time(18), "monday": True}]

    period.description = "Weekdays"
    actions.save_time_period(period, operator=admin, via=VIA)
    actions.save_time_period(period, intervals=same, operator=admin, via=VIA)

    assert rows() == [("update", "root", VIA, str(period.pk))]
    assert SystemAuditEntry.objects.get().detail == {"changes": {"description": {"from": "", "to": "Weekdays"}}}


def test_an_interval_without_a_day_is_refused_and_the_period_keeps_its_intervals(admin):
    period = make_time_period(("08:00", "18:00", "monday"))

    with pytest.raises(ValidationError):
        actions.save_time_period(period, intervals=[{"start": dt.time(9), "end": dt.time(10)}], operator=admin, via=VIA)

    assert [str(interval) for interval in period.intervals.all()] == ["08:00-18:00"]
    assert rows() == []


def test_a_calendar_is_saved_with_its_days_and_a_date_twice_is_refused(admin):
    christmas = {"date": dt.date(2030, 12, 25), "day_type": "holiday", "name": "Christmas", "recurring": True}
    calendar = Calendar(name="Spain")

    changed = rule_changes_after(lambda: actions.save_calendar(calendar, days=[christmas], operator=admin, via=VIA))
    with pytest.raises(ValidationError):
        actions.save_calendar(calendar, days=[christmas, christmas], operator=admin, via=VIA)

    assert list(calendar.days.values_list("date", "name")) == [(dt.date(2030, 12, 25), "Christmas")]
    assert rows() == [("create", "root", VIA, str(calendar.pk))]
    assert changed == {("calendar", calendar.pk)}


def test_a_calendar_day_is_added_and_removed_and_both_are_recorded(admin):
    calendar = make_calendar()

    on_add = rule_changes_after(
        lambda: actions.add_calendar_day(calendar, dt.date(2030, 5, 1), name="Labour day", operator=admin, via="web")
    )
    day = calendar.days.get()
    on_remove = rule_changes_after(lambda: actions.remove_calendar_day(day, operator=admin, via="web"))

    expected = {"day": {"date": "2030-05-01", "day_type": "holiday", "name": "Labour day", "recurring": False}}
    assert not calendar.days.exists()
    assert [(row.action, row.detail) for row in SystemAuditEntry.objects.order_by("id")] == [
        ("add_day", expected),
        ("remove_day", expected),
    ]
    assert on_add == on_remove == {("calendar", calendar.pk)}


def test_public_holidays_are_added_once_and_a_date_the_calendar_has_stays(admin):
    calendar = make_calendar((dt.date(2030, 1, 1), "special1"))
    holidays = [(dt.date(2030, 1, 1), "New year"), (dt.date(2030, 1, 6), "Epiphany")]

    first = actions.add_public_holidays(calendar, holidays, year=2030, country="ES", operator=admin, via="web")
    again = actions.add_public_holidays(calendar, holidays, year=2030, country="ES", operator=admin, via="web")

    assert (first, again) == ([dt.date(2030, 1, 6)], [])
    assert sorted(calendar.days.values_list("date", "day_type")) == [
        (dt.date(2030, 1, 1), "special1"),
        (dt.date(2030, 1, 6), "holiday"),
    ]
    [row] = SystemAuditEntry.objects.all()
    assert (row.action, row.detail) == ("add_holidays", {"year": 2030, "country": "ES", "added": ["2030-01-06"]})
    assert CalendarDay.objects.count() == 2
