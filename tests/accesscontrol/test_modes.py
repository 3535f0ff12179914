"""Automatic mode changes laid on the calendar: day types, midnight, daylight saving time."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accesscontrol.engine import DAY_BITS, day_mask
from accesscontrol.modes import Change, changes_between, changes_of, mode_at, next_change
from tests.accesscontrol.rules import MADRID, calendar, local, seconds, snapshot, utc

NEW_YORK = ZoneInfo("America/New_York")
EVERY_DAY = day_mask("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKDAYS = day_mask("monday", "tuesday", "wednesday", "thursday", "friday")
ALL_TYPES = sum(DAY_BITS.values())


def change(hhmm: str, mode: str, days: int = EVERY_DAY) -> Change:
    return Change(seconds(hhmm), days, mode)


DAILY = [change("07:00", "open"), change("19:00", "locked")]


def test_the_mode_in_force_is_the_last_change_before():
    site = snapshot()

    assert mode_at(DAILY, site, None, local("2026-05-04 12:00")) == ("open", local("2026-05-04 07:00"))
    assert mode_at(DAILY, site, None, local("2026-05-04 06:59")) == ("locked", local("2026-05-03 19:00"))


def test_a_change_is_in_force_from_its_instant_on():
    site = snapshot()

    assert mode_at(DAILY, site, None, local("2026-05-04 07:00")) == ("open", local("2026-05-04 07:00"))
    assert next_change(DAILY, site, None, local("2026-05-04 07:00")) == ("locked", local("2026-05-04 19:00"))
    assert next_change(DAILY, site, None, local("2026-05-04 06:59:59")) == ("open", local("2026-05-04 07:00"))


def test_no_change_in_eight_days_is_none():
    site = snapshot()

    assert mode_at([], site, None, local("2026-05-04 12:00")) is None
    assert next_change([], site, None, local("2026-05-04 12:00")) is None
    assert mode_at([change("07:00", "open", 0)], site, None, local("2026-05-04 12:00")) is None


def test_a_weekly_change_is_found_a_week_back_and_ahead():
    mondays = [change("08:00", "office", day_mask("monday"))]
    site = snapshot()

    # 2026-05-04 is a Monday.
    assert mode_at(mondays, site, None, local("2026-05-11 07:59")) == ("office", local("2026-05-04 08:00"))
    assert next_change(mondays, site, None, local("2026-05-04 08:00")) == ("office", local("2026-05-11 08:00"))


def test_a_change_at_midnight_belongs_to_its_day():
    weekdays_midnight = [change("00:00", "locked", WEEKDAYS), change("00:00", "open", day_mask("saturday"))]
    site = snapshot()

    # 2026-05-08 is a Friday, the 9th a Saturday.
    assert next_change(weekdays_midnight, site, None, local("2026-05-08 23:59")) == ("open", local("2026-05-09 00:00"))
    assert mode_at(weekdays_midnight, site, None, local("2026-05-09 00:00")) == ("open", local("2026-05-09 00:00"))
    assert mode_at(weekdays_midnight, site, None, local("2026-05-08 23:59")) == ("locked", local("2026-05-08 00:00"))


def test_at_the_same_local_time_the_last_listed_wins():
    site = snapshot()
    both = [change("09:00", "open"), change("09:00", "locked")]

    assert mode_at(both, site, None, local("2026-05-04 09:00")) == ("locked", local("2026-05-04 09:00"))
    assert changes_between(both, site, None, local("2026-05-04 00:00"), local("2026-05-05 00:00")) == [
        (local("2026-05-04 09:00"), "locked")
    ]


def test_a_holiday_of_the_calendar_replaces_the_weekday():
    schedule = [
        change("07:30", "office", WEEKDAYS),
        change("19:00", "locked", WEEKDAYS),
        change("00:00", "locked", day_mask("holiday")),
    ]
    # 2026-05-01 is a Friday and a holiday.
    site = snapshot(calendars=[calendar(30, ("2026-05-01", "holiday"))], default_calendar_id=30)

    assert mode_at(schedule, site, None, local("2026-05-01 12:00")) == ("locked", local("2026-05-01 00:00"))
    assert mode_at(schedule, site, None, local("2026-04-30 12:00")) == ("office", local("2026-04-30 07:30"))
    # Without the calendar it is an ordinary Friday.
    assert mode_at(schedule, snapshot(), None, local("2026-05-01 12:00")) == ("office", local("2026-05-01 07:30"))


def test_the_access_points_calendar_wins_over_the_sites():
    schedule = [change("08:00", "open", WEEKDAYS), change("10:00", "timed", day_mask("special1"))]
    site = snapshot(
        calendars=[calendar(30, ("2026-05-05", "holiday")), calendar(31, ("2026-05-05", "special1"))],
        default_calendar_id=30,
    )

    assert mode_at(schedule, site, 31, local("2026-05-05 12:00")) == ("timed", local("2026-05-05 10:00"))
    assert mode_at(schedule, site, None, local("2026-05-05 12:00")) == ("open", local("2026-05-04 08:00"))


def test_a_recurring_calendar_day_applies_every_year():
    schedule = [change("08:00", "open", WEEKDAYS), change("09:00", "locked", day_mask("special2"))]
    site = snapshot(calendars=[calendar(30, ("2000-12-24", "special2", True))])

    # 2026-12-24 is a Thursday, 2027-12-24 a Friday.
    assert mode_at(schedule, site, 30, local("2026-12-24 12:00")) == ("locked", local("2026-12-24 09:00"))
    assert mode_at(schedule, site, 30, local("2027-12-24 12:00")) == ("locked", local("2027-12-24 09:00"))
    assert mode_at(schedule, site, 30, local("2027-12-23 12:00")) == ("open", local("2027-12-23 08:00"))


# --- daylight saving time ---------------------------------------------------------------------------------


def test_madrid_spring_forward_a_change_in_the_gap_happens_at_the_transition():
    # 2026-03-29: 02:00 local jumps to 03:00 (01:00 UTC).
    schedule = [change("02:30", "open"), change("12:00", "standard")]
    site = snapshot()

    assert next_change(schedule, site, None, local("2026-03-29 00:00")) == ("open", utc("2026-03-29 01:00"))
    assert mode_at(schedule, site, None, utc("2026-03-29 00:59:59")) == ("standard", local("2026-03-28 12:00"))
    assert mode_at(schedule, site, None, utc("2026-03-29 01:00")) == ("open", utc("2026-03-29 01:00"))
    assert changes_between(schedule, site, None, local("2026-03-28 13:00"), local("2026-03-30 13:00")) == [
        (utc("2026-03-29 01:00"), "open"),
        (local("2026-03-29 12:00"), "standard"),
        (local("2026-03-30 02:30"), "open"),
        (local("2026-03-30 12:00"), "standard"),
    ]


def test_madrid_spring_forward_changes_in_the_gap_and_at_its_end_are_one():
    schedule = [change("02:15", "open"), change("03:00", "timed"), change("02:45", "locked")]
    site = snapshot()

    assert changes_between(schedule, site, None, local("2026-03-29 00:00"), local("2026-03-29 04:00")) == [
        (utc("2026-03-29 01:00"), "timed")
    ]


def test_madrid_fall_back_a_change_in_the_repeated_hour_happens_once():
    # 2026-10-25: 03:00 local goes back to 02:00 (at 01:00 UTC); 02:30 happens at 00:30 UTC and 01:30 UTC.
    schedule = [change("02:30", "open"), change("12:00", "standard")]
    site = snapshot()

    found = changes_between(schedule, site, None, local("2026-10-25 00:00"), local("2026-10-25 12:00"))

    assert found == [(utc("2026-10-25 00:30"), "open"), (utc("2026-10-25 11:00"), "standard")]
    assert next_change(schedule, site, None, utc("2026-10-25 00:30")) == ("standard", utc("2026-10-25 11:00"))
    assert mode_at(schedule, site, None, utc("2026-10-25 01:45")) == ("open", utc("2026-10-25 00:30"))


def test_new_york_spring_forward():
    # 2026-03-08: 02:00 local jumps to 03:00 (07:00 UTC).
    schedule = [change("02:00", "locked"), change("06:00", "office")]
    site = snapshot(tz=NEW_YORK)

    assert next_change(schedule, site, None, local("2026-03-08 00:00", NEW_YORK)) == (
        "locked",
        utc("2026-03-08 07:00"),
    )
    assert next_change(schedule, site, None, utc("2026-03-08 07:00")) == ("office", utc("2026-03-08 10:00"))


def test_new_york_fall_back():
    # 2026-11-01: 02:00 local goes back to 01:00 (at 06:00 UTC); 01:00-02:00 happens twice.
    schedule = [change("01:00", "locked"), change("01:59", "open"), change("02:00", "office")]
    site = snapshot(tz=NEW_YORK)

    start, end = local("2026-10-31 12:00", NEW_YORK), local("2026-11-01 12:00", NEW_YORK)
    found = changes_between(schedule, site, None, start, end)

    assert found == [
        (utc("2026-11-01 05:00"), "locked"),
        (utc("2026-11-01 05:59"), "open"),
        (utc("2026-11-01 07:00"), "office"),
    ]
    assert mode_at(schedule, site, None, utc("2026-11-01 06:30")) == ("open", utc("2026-11-01 05:59"))


def test_changes_between_an_empty_range_is_empty():
    site = snapshot()

    assert changes_between(DAILY, site, None, local("2026-05-04 12:00"), local("2026-05-04 12:00")) == []
    assert changes_between(DAILY, site, None, local("2026-05-05 12:00"), local("2026-05-04 12:00")) == []


def test_a_change_outside_the_day_is_refused():
    with pytest.raises(ValueError, match="within the day"):
        Change(86_400, EVERY_DAY, "open")


def test_a_naive_instant_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        mode_at(DAILY, snapshot(), None, dt.datetime(2026, 5, 4, 12))


def test_changes_of_rows():
    assert changes_of([(dt.time(7, 30, 5), EVERY_DAY, "open")]) == [Change(27005, EVERY_DAY, "open")]


# --- properties -------------------------------------------------------------------------------------------

MODES = ("standard", "office", "toggle", "timed", "open", "locked")
schedules = st.lists(
    st.builds(
        Change,
        st.integers(0, 95).map(lambda quarter: quarter * 900) | st.integers(0, 86_399),
        st.integers(0, ALL_TYPES),
        st.sampled_from(MODES),
    ),
    max_size=5,
)
zones = st.sampled_from((MADRID, NEW_YORK, ZoneInfo("UTC"), ZoneInfo("Australia/Lord_Howe")))
# Around the 2026 transitions of both zones, and ordinary days.
starts = st.sampled_from(
    (
        utc("2026-03-07 12:00"),
        utc("2026-03-28 12:00"),
        utc("2026-10-24 12:00"),
        utc("2026-10-31 12:00"),
        utc("2026-04-04 12:00"),
    )
) | st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2027, 1, 1), timezones=st.just(dt.UTC))
spans = st.integers(0, 3 * 86_400)
site_calendar = calendar(30, ("2026-03-08", "holiday"), ("2026-10-25", "special1"), ("2000-03-29", "special2", True))


@settings(max_examples=150)
@given(schedule=schedules, tz=zones, start=starts, span=spans)
def test_changes_between_is_the_stepping_of_next_change(schedule, tz, start, span):
    site = snapshot(tz=tz, calendars=[site_calendar], default_calendar_id=30)
    end = start + dt.timedelta(seconds=span)

    stepped, moment = [], start
    while (found := next_change(schedule, site, None, moment)) is not None and found[1] <= end:
        stepped.append((found[1], found[0]))
        moment = found[1]

    assert changes_between(schedule, site, None, start, end) == stepped


@settings(max_examples=150)
@given(schedule=schedules, tz=zones, start=starts, span=spans)
def test_the_mode_in_force_is_the_last_change_between(schedule, tz, start, span):
    site = snapshot(tz=tz, calendars=[site_calendar])
    end = start + dt.timedelta(seconds=span)

    found = changes_between(schedule, site, 30, start, end)
    in_force = mode_at(schedule, site, 30, end)

    if found:
        assert in_force == (found[-1][1], found[-1][0])
    elif in_force is not None:
        assert in_force[1] <= start
    # No instant twice, and in order.
    instants = [instant for instant, _mode in found]
    assert instants == sorted(set(instants))


@settings(max_examples=150)
@given(schedule=schedules, tz=zones, start=starts)
def test_every_change_of_a_day_happens_once_that_day(schedule, tz, start):
    site = snapshot(tz=tz)
    day = start.astimezone(tz).date()
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=tz)
    following = midnight + dt.timedelta(days=1)

    found = changes_between(schedule, site, None, midnight - dt.timedelta(microseconds=1), following)
    local_days = {instant.astimezone(tz).date() for instant, _mode in found}
    weekday = 1 << day.weekday()
    distinct_times = {c.seconds for c in schedule if c.days & weekday}

    assert local_days <= {day, day + dt.timedelta(days=1)}
    assert len([i for i, _m in found if i.astimezone(tz).date() == day]) <= len(distinct_times)
