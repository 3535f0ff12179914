"""The time period pages (weekly grid, interval rows) and the calendar pages (special days, holidays)."""

import datetime as dt

import pytest

from accesscontrol.choices import Decision
from accesscontrol.engine import decide
from accesscontrol.models import Calendar, CalendarDay, TimeInterval, TimePeriod
from accesscontrol.snapshot import SnapshotStore
from accesscontrol.views.schedules import weekly_grid
from tests.accesscontrol.web.places_helpers import client_with, page_text, queries_for, web_rows
from tests.factories import (
    make_access_level,
    make_access_point,
    make_calendar,
    make_cardholder,
    make_key,
    make_partition,
    make_time_period,
)

pytestmark = pytest.mark.django_db

PERIODS = ("accesscontrol.view_timeperiod", "accesscontrol.change_timeperiod")
CALENDARS = ("accesscontrol.view_calendar", "accesscontrol.change_calendar")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "holiday", "special1", "special2")
MONDAY_19 = dt.datetime(2030, 1, 7, 19, 0, tzinfo=dt.UTC)


def rows_form(period: TimePeriod, *rows, extra: int = 0) -> dict:
    """The interval rows as the page posts them: ``rows`` are (start, end, days..., "DELETE"?) for the stored ones
    in order, then the new ones."""
    stored = list(period.intervals.order_by("start", "id"))
    form = {
        "intervals-TOTAL_FORMS": str(len(rows) + extra),
        "intervals-INITIAL_FORMS": str(len(stored)),
        "intervals-MIN_NUM_FORMS": "0",
        "intervals-MAX_NUM_FORMS": "8",
    }
    for index, (start, end, *days) in enumerate(rows):
        prefix = f"intervals-{index}-"
        form[prefix + "start"], form[prefix + "end"] = start, end
        form.update({prefix + day: "on" for day in days})
        if index < len(stored):
            form[prefix + "id"] = str(stored[index].pk)
    return form


# --- the weekly grid -------------------------------------------------------------------------


def cells_on(row: dict, state: str = "on") -> list[int]:
    return [index for index, cell in enumerate(row["cells"]) if cell == state]


def test_the_grid_shades_quarter_hours_and_carries_a_night_into_the_next_weekday():
    period = make_time_period(("08:00", "18:00", "monday"), ("22:00", "06:10", "sunday", "holiday"))

    grid = {row["name"]: row for row in weekly_grid(period.intervals.all())}

    assert cells_on(grid["monday"]) == list(range(0, 24)) + list(range(32, 72))
    assert cells_on(grid["monday"], "part") == [24]  # 06:00-06:15, ten minutes of it
    assert cells_on(grid["sunday"]) == list(range(88, 96))
    assert cells_on(grid["holiday"]) == list(range(88, 96))
    assert cells_on(grid["tuesday"]) == []
    assert grid["holiday"]["summary"] == ["22:00\N{EN DASH}06:10 (to next day)"]


def test_a_whole_day_interval_fills_its_row():
    period = make_time_period(("00:00", "00:00", "special1"))

    grid = {row["name"]: row for row in weekly_grid(period.intervals.all())}

    assert cells_on(grid["special1"]) == list(range(96))
    assert grid["special1"]["summary"] == ["all day"]


def test_the_period_page_shows_the_grid_and_the_interval_rows(partition):
    period = make_time_period(("08:00", "18:00", "monday", "friday"), partition=partition)
    client = client_with(*PERIODS, partitions=[partition])

    response = client.get(f"/time-periods/{period.pk}/")

    text = page_text(response)
    assert text.count('class="slot on') == 2 * 40
    assert response.context["formset"].total_form_count() == 3  # the interval and two empty rows
    assert 'value="08:00"' in text


def test_a_viewer_sees_the_grid_without_the_rows(partition):
    period = make_time_period(partition=partition)
    client = client_with("accesscontrol.view_timeperiod", partitions=[partition])

    response = client.get(f"/time-periods/{period.pk}/")

    assert response.status_code == 200
    assert "formset" not in response.context
    assert "Save intervals" not in page_text(response)


# --- editing intervals -----------------------------------------------------------------------


def test_interval_rows_replace_the_periods_intervals_and_are_recorded(partition):
    period = make_time_period(("08:00", "18:00", "monday", "tuesday"), partition=partition)
    client = client_with(*PERIODS, partitions=[partition])

    response = client.post(
        f"/time-periods/{period.pk}/intervals/",
        rows_form(period, ("07:30", "19:00", "monday", "tuesday"), ("22:00", "06:00", "saturday", "holiday")),
    )

    assert response.status_code == 302
    assert [str(interval) for interval in period.intervals.order_by("start")] == ["07:30-19:00", "22:00-06:00"]
    (row,) = web_rows("update")
    assert row.detail == {
        "changes": {
            "intervals": {
                "from": ["08:00-18:00 Mon Tue"],
                "to": ["07:30-19:00 Mon Tue", "22:00-06:00 Sat Hol"],
            }
        }
    }


def test_a_row_marked_for_removal_is_deleted(partition):
    period = make_time_period(("08:00", "12:00", "monday"), ("13:00", "17:00", "monday"), partition=partition)
    client = client_with(*PERIODS, partitions=[partition])
    form = rows_form(period, ("08:00", "12:00", "monday"), ("13:00", "17:00", "monday"))
    form["intervals-1-DELETE"] = "on"

    client.post(f"/time-periods/{period.pk}/intervals/", form)

    assert [str(interval) for interval in period.intervals.all()] == ["08:00-12:00"]


def test_an_edited_interval_changes_the_engines_decision(partition):
    period = make_time_period(("08:00", "18:00", "monday"), partition=partition)
    door = make_access_point(partition=partition)
    make_key(make_cardholder(make_access_level((door, period), partition=partition), partition=partition), uid="0A0B")
    store = SnapshotStore()
    assert decide(store.refresh(), "0A0B", door.pk, MONDAY_19).reason == Decision.OUTSIDE_SCHEDULE
    client = client_with(*PERIODS, partitions=[partition])

    client.post(f"/time-periods/{period.pk}/intervals/", rows_form(period, ("08:00", "20:00", "monday")))

    assert decide(store.refresh(), "0A0B", door.pk, MONDAY_19).granted
    assert store.full_builds == 1


@pytest.mark.parametrize(
    ("row", "where", "error"),
    [
        (
            ("08:00", "08:00", "monday"),
            "end",
            "An interval must not end when it starts (00:00-00:00 is the whole day).",
        ),
        (("08:00", "18:00"), None, "Mark at least one day on which the interval applies."),
        (("08:00:30", "18:00", "monday"), "start", "Give whole minutes (HH:MM)."),
        (("8 o'clock", "18:00", "monday"), "start", "Enter a valid time."),
    ],
)
def test_a_bad_interval_is_a_field_error_and_nothing_changes(partition, row, where, error):
    period = make_time_period(("08:00", "18:00", "monday"), partition=partition)
    client = client_with(*PERIODS, partitions=[partition])

    response = client.post(f"/time-periods/{period.pk}/intervals/", rows_form(period, row))

    assert response.status_code == 200
    form = response.context["formset"].forms[0]
    assert form.errors == {where or "__all__": [error]}
    assert error in page_text(response)
    assert [str(interval) for interval in period.intervals.all()] == ["08:00-18:00"]
    assert web_rows() == []


def test_the_same_interval_twice_is_an_error(partition):
    period = make_time_period(("08:00", "18:00", "monday"), partition=partition)
    client = client_with(*PERIODS, partitions=[partition])

    response = client.post(
        f"/time-periods/{period.pk}/intervals/",
        rows_form(period, ("08:00", "18:00", "monday"), ("08:00", "18:00", "monday")),
    )

    assert response.context["formset"].forms[1].non_field_errors() == ["This interval is given twice."]
    assert period.intervals.count() == 1


def test_more_than_eight_intervals_are_refused(partition):
    period = make_time_period(partition=partition)
    client = client_with(*PERIODS, partitions=[partition])
    rows = [("08:00", f"{9 + number}:00", "monday") for number in range(8)] + [("20:00", "21:00", "sunday")]

    response = client.post(f"/time-periods/{period.pk}/intervals/", rows_form(period, *rows))

    assert response.context["formset"].non_form_errors() == ["Please submit at most 8 forms."]
    assert [str(interval) for interval in period.intervals.all()] == ["08:00-18:00"]


def test_a_viewer_cannot_post_intervals(partition):
    period = make_time_period(("08:00", "18:00", "monday"), partition=partition)
    client = client_with("accesscontrol.view_timeperiod", partitions=[partition])

    response = client.post(f"/time-periods/{period.pk}/intervals/", rows_form(period, ("00:00", "00:00", *DAYS)))

    assert response.status_code == 403
    assert [str(interval) for interval in period.intervals.all()] == ["08:00-18:00"]


def test_an_operator_reaches_only_their_partitions_periods(partition):
    theirs = make_time_period(("08:00", "18:00", "monday"), partition=make_partition())
    make_time_period(name="Office hours", partition=partition)
    client = client_with(*PERIODS, partitions=[partition])

    listed = client.get("/time-periods/")
    detail = client.get(f"/time-periods/{theirs.pk}/")
    posted = client.post(f"/time-periods/{theirs.pk}/intervals/", rows_form(theirs, ("00:00", "00:00", *DAYS)))

    assert [row[0].name for row in listed.context["rows"]] == ["Office hours"]
    assert (detail.status_code, posted.status_code) == (404, 404)
    assert [str(interval) for interval in theirs.intervals.all()] == ["08:00-18:00"]


def test_a_period_is_created_and_a_duplicate_name_is_a_field_error(partition):
    make_time_period(name="Office hours", partition=partition)
    client = client_with(*PERIODS, "accesscontrol.add_timeperiod", partitions=[partition])

    created = client.post("/time-periods/new/", {"name": "Night shift", "partition": partition.pk})
    duplicate = client.post("/time-periods/new/", {"name": "Office hours", "partition": partition.pk})

    period = TimePeriod.objects.get(name="Night shift")
    assert created["Location"] == f"/time-periods/{period.pk}/"
    assert duplicate.context["form"].errors == {"name": ["Time period with this Name already exists."]}
    assert [row.object_repr for row in web_rows("create")] == ["Night shift"]


def test_a_period_in_use_is_not_deleted(partition):
    period = make_time_period(name="Office hours", partition=partition)
    make_access_level((make_access_point(partition=partition), period), partition=partition)
    client = client_with(*PERIODS, "accesscontrol.delete_timeperiod", partitions=[partition])

    response = client.post(f"/time-periods/{period.pk}/delete/", follow=True)

    assert response.status_code == 200
    assert "is still in use" in page_text(response)
    assert TimePeriod.objects.filter(pk=period.pk).exists()
    assert web_rows() == []


def test_the_period_list_costs_the_same_queries_for_10_and_100_rows(partition):
    for _ in range(110):
        make_time_period(("08:00", "12:00", "monday"), ("13:00", "17:00", "friday"), partition=partition)
    client = client_with("accesscontrol.view_timeperiod", partitions=[partition])

    assert queries_for(client, "/time-periods/", 10) == queries_for(client, "/time-periods/", 100)


# --- calendars -------------------------------------------------------------------------------


def test_a_day_is_added_and_removed_and_both_are_recorded():
    calendar = make_calendar(name="Site holidays")
    client = client_with(*CALENDARS)

    added = client.post(
        f"/calendars/{calendar.pk}/days/",
        {"date": "2030-12-24", "day_type": "special1", "name": "Christmas Eve"},
    )
    day = CalendarDay.objects.get(calendar=calendar)
    removed = client.post(f"/calendars/{calendar.pk}/days/", {"remove": day.pk})

    assert (added.status_code, removed.status_code) == (302, 302)
    assert not calendar.days.exists()
    expected = {"date": "2030-12-24", "day_type": "special1", "name": "Christmas Eve", "recurring": False}
    assert [(row.action, row.detail) for row in web_rows()] == [
        ("add_day", {"day": expected}),
        ("remove_day", {"day": expected}),
    ]


def test_a_date_the_calendar_has_is_a_field_error():
    calendar = make_calendar((dt.date(2030, 12, 25), "holiday"))
    client = client_with(*CALENDARS)

    response = client.post(f"/calendars/{calendar.pk}/days/", {"date": "2030-12-25", "day_type": "special2"})

    assert response.status_code == 200
    assert response.context["day_form"].errors == {
        "date": [f"{calendar} already has 2030-12-25; remove that day first."]
    }
    assert list(calendar.days.values_list("day_type", flat=True)) == ["holiday"]


def test_public_holidays_are_added_once():
    calendar = make_calendar((dt.date(2030, 12, 25), "special1"), name="Berlin")
    client = client_with(*CALENDARS)

    client.post(f"/calendars/{calendar.pk}/holidays/", {"year": 2030, "country": "Germany"})
    client.post(f"/calendars/{calendar.pk}/holidays/", {"year": 2030, "country": "Germany"})

    assert calendar.days.count() == 9
    assert calendar.days.get(date=dt.date(2030, 12, 25)).day_type == "special1"  # stays as it was
    assert calendar.days.get(date=dt.date(2030, 4, 19)).name == "Karfreitag"
    (row,) = web_rows("add_holidays")
    assert row.detail["year"] == 2030 and len(row.detail["added"]) == 8


def test_a_bad_holiday_year_is_a_field_error():
    calendar = make_calendar()
    client = client_with(*CALENDARS)

    response = client.post(f"/calendars/{calendar.pk}/holidays/", {"year": "soon", "country": "Atlantis"})

    assert set(response.context["holidays_form"].errors) == {"year", "country"}
    assert not calendar.days.exists()


def test_the_calendar_page_lists_days_by_month_then_the_recurring_ones():
    calendar = make_calendar(
        (dt.date(2030, 1, 1), "holiday"),
        (dt.date(2030, 1, 6), "holiday"),
        (dt.date(2030, 3, 2), "special1"),
        (dt.date(2000, 5, 1), "holiday", True),
    )
    client = client_with("accesscontrol.view_calendar")

    response = client.get(f"/calendars/{calendar.pk}/")

    months = [(month["title"], len(month["days"])) for month in response.context["months"]]
    assert months == [("January 2030", 2), ("March 2030", 1), ("May, every year", 1)]
    assert "day_form" not in response.context


def test_a_holiday_added_on_the_page_changes_the_engines_decision(partition):
    calendar = make_calendar()
    period = make_time_period(("08:00", "18:00", "monday"), partition=partition)
    door = make_access_point(partition=partition, calendar=calendar)
    make_key(make_cardholder(make_access_level((door, period), partition=partition), partition=partition), uid="0A0B")
    store = SnapshotStore()
    monday_10 = dt.datetime(2030, 1, 7, 10, 0, tzinfo=dt.UTC)
    assert decide(store.refresh(), "0A0B", door.pk, monday_10).granted
    client = client_with(*CALENDARS)

    client.post(f"/calendars/{calendar.pk}/days/", {"date": "2030-01-07", "day_type": "holiday"})

    assert decide(store.refresh(), "0A0B", door.pk, monday_10).reason == Decision.OUTSIDE_SCHEDULE


def test_calendar_pages_need_their_permissions():
    calendar = make_calendar()
    viewer = client_with("accesscontrol.view_calendar")

    statuses = [
        client_with().get("/calendars/").status_code,
        viewer.post(f"/calendars/{calendar.pk}/days/", {"date": "2030-01-01"}).status_code,
        viewer.post(f"/calendars/{calendar.pk}/holidays/", {"year": 2030}).status_code,
        viewer.post(f"/calendars/{calendar.pk}/edit/", {"name": "Renamed"}).status_code,
    ]

    assert statuses == [403, 403, 403, 403]
    assert not calendar.days.exists()
    assert Calendar.objects.get().name == calendar.name


def test_the_calendar_list_costs_the_same_queries_for_10_and_100_rows():
    for _ in range(110):
        make_calendar((dt.date(2030, 1, 1), "holiday"))
    client = client_with("accesscontrol.view_calendar")

    response = client.get("/calendars/", {"per_page": 10})

    assert [calendar.day_count for calendar in response.context["page_obj"]] == [1] * 10
    assert queries_for(client, "/calendars/", 10) == queries_for(client, "/calendars/", 100)


def test_an_interval_row_is_an_interval_model():
    # The rows post the model's own fields: if the model gains a day type, the grid and the rows must follow.
    assert set(DAYS) == {*TimeInterval.DAY_FIELDS, *TimeInterval.DAY_TYPE_FIELDS.values()}
