"""Time periods, calendars and access levels carry their parts (intervals, days, entries), written as a whole."""

from datetime import date

import pytest

from accesscontrol.models import AccessLevel, AccessLevelEntry, Calendar, TimeInterval, TimePeriod
from accesscontrol.models.schedules import MAX_INTERVALS_PER_PERIOD
from tests.factories import make_access_level, make_access_point, make_calendar, make_time_period, make_zone
from tests.support.api import client_with

pytestmark = pytest.mark.django_db

DAYS = {
    "monday": False,
    "tuesday": False,
    "wednesday": False,
    "thursday": False,
    "friday": False,
    "saturday": False,
    "sunday": False,
    "holiday": False,
    "special1": False,
    "special2": False,
}


def interval(start="08:00:00", end="12:00:00", **days):
    return {"start": start, "end": end, **(days or {"monday": True})}


def test_a_time_period_shows_its_intervals_with_day_flags(admin_client):
    period = make_time_period(("22:00", "06:00", "friday", "holiday"))

    response = admin_client.get(f"/api/v1/time-periods/{period.pk}/")

    [shown] = response.json()["intervals"]
    assert shown == {
        "id": period.intervals.get().pk,
        "start": "22:00:00",
        "end": "06:00:00",
        **DAYS,
        "friday": True,
        "holiday": True,
    }


def test_putting_intervals_replaces_them(admin_client):
    period = make_time_period(("08:00", "12:00", "monday"), ("13:00", "17:00", "monday"))

    response = admin_client.patch(
        f"/api/v1/time-periods/{period.pk}/",
        {"intervals": [interval("06:00:00", "07:00:00", sunday=True)]},
        format="json",
    )

    assert response.status_code == 200
    assert [(row["start"], row["sunday"]) for row in response.json()["intervals"]] == [("06:00:00", True)]
    assert TimeInterval.objects.count() == 1


def test_patching_other_fields_keeps_the_intervals(admin_client):
    period = make_time_period(("08:00", "12:00", "monday"))

    admin_client.patch(f"/api/v1/time-periods/{period.pk}/", {"description": "Mornings"}, format="json")

    assert period.intervals.count() == 1


def test_a_time_period_has_at_most_eight_intervals(admin_client):
    intervals = [interval(f"{hour:02d}:00:00", f"{hour:02d}:30:00") for hour in range(MAX_INTERVALS_PER_PERIOD + 1)]

    response = admin_client.post("/api/v1/time-periods/", {"name": "Busy", "intervals": intervals}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["intervals"]
    assert not TimePeriod.objects.exists()


def test_eight_intervals_are_fine(admin_client):
    intervals = [interval(f"{hour:02d}:00:00", f"{hour:02d}:30:00") for hour in range(MAX_INTERVALS_PER_PERIOD)]

    response = admin_client.post("/api/v1/time-periods/", {"name": "Busy", "intervals": intervals}, format="json")

    assert response.status_code == 201
    assert TimeInterval.objects.count() == MAX_INTERVALS_PER_PERIOD


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (
            {"start": "08:00:00", "end": "12:00:00"},
            {"non_field_errors": ["Mark at least one day on which the interval applies."]},
        ),
        (
            interval("08:00:00", "08:00:00"),
            {"end": ["An interval must not end when it starts (00:00-00:00 is the whole day)."]},
        ),
        (interval("25:00:00", "26:00:00"), None),
    ],
)
def test_a_bad_interval_is_named_by_its_place(admin_client, bad, error):
    response = admin_client.post("/api/v1/time-periods/", {"name": "P", "intervals": [interval(), bad]}, format="json")

    assert response.status_code == 400
    errors = response.json()["intervals"]
    assert list(errors) == ["1"]  # only the bad one, by its place in the list
    if error is not None:
        assert errors["1"] == error
    assert not TimePeriod.objects.exists()


def test_a_calendar_takes_its_days_and_refuses_a_date_twice(admin_client):
    days = [
        {"date": "2030-12-25", "day_type": "holiday", "recurring": True},
        {"date": "2030-05-01", "day_type": "special1"},
    ]

    created = admin_client.post("/api/v1/calendars/", {"name": "Spain", "days": days}, format="json")
    twice = admin_client.post("/api/v1/calendars/", {"name": "Twice", "days": [days[0], days[0]]}, format="json")

    assert created.status_code == 201
    assert [(day["date"], day["day_type"]) for day in created.json()["days"]] == [
        ("2030-05-01", "special1"),
        ("2030-12-25", "holiday"),
    ]
    assert twice.status_code == 400
    assert list(twice.json()) == ["days"]
    assert list(Calendar.objects.values_list("name", flat=True)) == ["Spain"]


def test_an_access_level_entry_names_an_access_point_or_a_zone(admin_client):
    door, zone = make_access_point(), make_zone()

    both = admin_client.post(
        "/api/v1/access-levels/", {"name": "L", "entries": [{"access_point": door.pk, "zone": zone.pk}]}, format="json"
    )
    neither = admin_client.post("/api/v1/access-levels/", {"name": "L", "entries": [{}]}, format="json")
    one_each = admin_client.post(
        "/api/v1/access-levels/",
        {"name": "L", "entries": [{"access_point": door.pk}, {"zone": zone.pk, "time_period": make_time_period().pk}]},
        format="json",
    )

    assert both.status_code == neither.status_code == 400
    assert both.json() == {"entries": {"0": {"non_field_errors": ["Name either an access point or a zone."]}}}
    assert one_each.status_code == 201
    assert AccessLevel.objects.count() == 1
    assert AccessLevelEntry.objects.count() == 2


def test_an_entry_naming_a_door_the_operator_cannot_see_is_refused(partition, other_partition):
    hidden = make_access_point(partition=other_partition)
    client = client_with("accesscontrol.add_accesslevel", "accesscontrol.view_accesspoint", partitions=[partition])

    response = client.post(
        "/api/v1/access-levels/",
        {"name": "L", "partition": partition.pk, "entries": [{"access_point": hidden.pk}]},
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == {
        "entries": {"0": {"access_point": [f'Invalid pk "{hidden.pk}" - object does not exist.']}}
    }
    assert not AccessLevel.objects.exists()


def test_replacing_entries_keeps_the_level_and_its_cardholders(admin_client):
    door, other = make_access_point(), make_access_point()
    level = make_access_level(door)

    response = admin_client.patch(
        f"/api/v1/access-levels/{level.pk}/", {"entries": [{"access_point": other.pk}]}, format="json"
    )

    assert response.status_code == 200
    assert [entry["access_point"] for entry in response.json()["entries"]] == [other.pk]
    assert list(level.entries.values_list("access_point", flat=True)) == [other.pk]


def test_calendars_are_listed_with_their_days(admin_client):
    make_calendar(*[(f"2030-01-{day:02d}", "holiday") for day in range(1, 4)])

    response = admin_client.get("/api/v1/calendars/")

    assert len(response.json()["results"][0]["days"]) == 3


def test_a_day_without_its_date_in_a_patch_is_a_field_error_not_a_server_error(admin_client):
    calendar = make_calendar(("2030-12-25", "holiday"))

    response = admin_client.patch(
        f"/api/v1/calendars/{calendar.pk}/",
        {"name": "0", "description": "", "days": [{"day_type": "holiday", "name": "", "recurring": False}]},
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == {"days": {"0": {"date": ["This field is required."]}}}
    assert list(Calendar.objects.get().days.values_list("date", flat=True)) == [date(2030, 12, 25)]


def test_an_interval_without_its_times_in_a_patch_is_a_field_error(admin_client):
    period = make_time_period(("08:00", "12:00", "monday"))

    response = admin_client.patch(
        f"/api/v1/time-periods/{period.pk}/", {"intervals": [{"sunday": True}]}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "intervals": {"0": {"start": ["This field is required."], "end": ["This field is required."]}}
    }
    assert period.intervals.count() == 1


def test_an_empty_entry_in_a_patch_is_refused_and_the_entries_stay(admin_client):
    door = make_access_point()
    level = make_access_level(door)

    response = admin_client.patch(f"/api/v1/access-levels/{level.pk}/", {"entries": [{}]}, format="json")

    assert response.status_code == 400
    assert response.json() == {"entries": {"0": {"non_field_errors": ["Name either an access point or a zone."]}}}
    assert list(level.entries.values_list("access_point", flat=True)) == [door.pk]


def test_a_complete_list_in_a_patch_still_replaces_the_days(admin_client):
    calendar = make_calendar(("2030-12-25", "holiday"))

    response = admin_client.patch(
        f"/api/v1/calendars/{calendar.pk}/", {"days": [{"date": "2031-01-01", "day_type": "holiday"}]}, format="json"
    )

    assert response.status_code == 200
    assert [day["date"] for day in response.json()["days"]] == ["2031-01-01"]
    assert Calendar.objects.get().name == calendar.name
