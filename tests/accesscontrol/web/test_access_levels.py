"""The access level pages: list with counts, detail with entries, adding and removing entries, partitions."""

import datetime as dt

import pytest

from accesscontrol.choices import Decision
from accesscontrol.engine import decide
from accesscontrol.models import AccessLevel
from accesscontrol.snapshot import SnapshotStore
from tests.accesscontrol.web.places_helpers import client_with, page_text, queries_for, web_rows
from tests.factories import (
    make_access_level,
    make_access_point,
    make_cardholder,
    make_key,
    make_partition,
    make_time_period,
    make_zone,
)

pytestmark = pytest.mark.django_db

LEVELS = (
    "accesscontrol.view_accesslevel",
    "accesscontrol.add_accesslevel",
    "accesscontrol.change_accesslevel",
    "accesscontrol.delete_accesslevel",
    "accesscontrol.view_accesspoint",
    "accesscontrol.view_zone",
    "accesscontrol.view_timeperiod",
)
MONDAY_10 = dt.datetime(2030, 1, 7, 10, 0, tzinfo=dt.UTC)


def test_a_level_is_created_and_a_duplicate_name_is_a_field_error(partition):
    make_access_level(name="Staff", partition=partition)
    client = client_with(*LEVELS, partitions=[partition])

    created = client.post("/access-levels/new/", {"name": "Cleaners", "partition": partition.pk})
    duplicate = client.post("/access-levels/new/", {"name": "Staff", "partition": partition.pk})

    level = AccessLevel.objects.get(name="Cleaners")
    assert created["Location"] == f"/access-levels/{level.pk}/"
    assert duplicate.status_code == 200
    assert duplicate.context["form"].errors == {"name": ["Access level with this Name already exists."]}
    assert [row.object_repr for row in web_rows()] == ["Cleaners"]


def test_an_entry_added_on_the_page_opens_the_door_and_is_recorded(partition):
    door = make_access_point(name="Lobby", partition=partition)
    period = make_time_period(name="Office hours", partition=partition)
    level = make_access_level(name="Staff", partition=partition)
    make_key(make_cardholder(level, partition=partition), uid="0A0B0C0D")
    store = SnapshotStore()
    assert decide(store.refresh(), "0A0B0C0D", door.pk, MONDAY_10).reason == Decision.NO_PERMISSION
    client = client_with(*LEVELS, partitions=[partition])

    response = client.post(f"/access-levels/{level.pk}/entries/", {"access_point": door.pk, "time_period": period.pk})

    assert response.status_code == 302
    assert decide(store.refresh(), "0A0B0C0D", door.pk, MONDAY_10).granted
    (entry,) = level.entries.all()
    (row,) = web_rows("add_entry")
    assert row.detail == {
        "entry": {
            "id": entry.pk,
            "access_point": door.pk,
            "zone": None,
            "time_period": period.pk,
            "text": "access point Lobby, Office hours",
        }
    }


def test_a_removed_entry_closes_the_door_again(partition):
    zone = make_zone(partition=partition)
    door = make_access_point(partition=partition, zones=[zone])
    level = make_access_level(zone, partition=partition)
    make_key(make_cardholder(level, partition=partition), uid="0A0B0C0D")
    store = SnapshotStore()
    assert decide(store.refresh(), "0A0B0C0D", door.pk, MONDAY_10).granted
    client = client_with(*LEVELS, partitions=[partition])

    client.post(f"/access-levels/{level.pk}/entries/", {"remove": level.entries.get().pk})

    assert decide(store.refresh(), "0A0B0C0D", door.pk, MONDAY_10).reason == Decision.NO_PERMISSION
    assert [row.action for row in web_rows()] == ["remove_entry"]


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("both", "Name either an access point or a zone."),
        ("neither", "Name either an access point or a zone."),
        ("again", "The level already has this entry."),
    ],
)
def test_a_bad_entry_is_an_error_and_nothing_changes(partition, target, error):
    door, zone = make_access_point(partition=partition), make_zone(partition=partition)
    level = make_access_level(door, partition=partition)
    client = client_with(*LEVELS, partitions=[partition])
    data = {"both": {"access_point": door.pk, "zone": zone.pk}, "neither": {}, "again": {"access_point": door.pk}}

    response = client.post(f"/access-levels/{level.pk}/entries/", data[target])

    assert response.status_code == 200
    assert response.context["entry_form"].non_field_errors() == [error]
    assert error in page_text(response)
    assert level.entries.count() == 1
    assert web_rows() == []


def test_an_entry_may_name_only_what_the_operator_sees(partition):
    theirs = make_access_point(partition=make_partition())
    level = make_access_level(partition=partition)
    client = client_with(*LEVELS, partitions=[partition])

    response = client.post(f"/access-levels/{level.pk}/entries/", {"access_point": theirs.pk})

    assert list(response.context["entry_form"].errors) == ["access_point"]
    assert not level.entries.exists()


def test_an_operator_reaches_only_their_partitions_levels(partition):
    theirs = make_access_level(name="Theirs", partition=make_partition())
    make_access_level(name="Mine", partition=partition)
    door = make_access_point(partition=partition)
    client = client_with(*LEVELS, partitions=[partition])

    listed = client.get("/access-levels/")
    detail = client.get(f"/access-levels/{theirs.pk}/")
    added = client.post(f"/access-levels/{theirs.pk}/entries/", {"access_point": door.pk})
    edited = client.post(f"/access-levels/{theirs.pk}/edit/", {"name": "Taken", "partition": partition.pk})

    assert [level.name for level in listed.context["page_obj"]] == ["Mine"]
    assert (detail.status_code, added.status_code, edited.status_code) == (404, 404, 404)
    assert not theirs.entries.exists()
    assert AccessLevel.objects.get(pk=theirs.pk).name == "Theirs"


def test_a_viewer_gets_403_and_nothing_changes(partition):
    door = make_access_point(partition=partition)
    level = make_access_level(door, name="Staff", partition=partition)
    client = client_with("accesscontrol.view_accesslevel", "accesscontrol.view_accesspoint", partitions=[partition])

    statuses = [
        client.get(f"/access-levels/{level.pk}/").status_code,
        client.post(f"/access-levels/{level.pk}/entries/", {"remove": level.entries.get().pk}).status_code,
        client.post(f"/access-levels/{level.pk}/edit/", {"name": "Renamed", "partition": partition.pk}).status_code,
        client.post(f"/access-levels/{level.pk}/delete/").status_code,
        client.post("/access-levels/new/", {"name": "New", "partition": partition.pk}).status_code,
    ]

    assert statuses == [200, 403, 403, 403, 403]
    assert list(AccessLevel.objects.values_list("name", flat=True)) == ["Staff"]
    assert level.entries.count() == 1


def test_members_are_counted_among_the_cardholders_the_operator_may_see(partition):
    level = make_access_level(name="Staff", partition=partition)
    make_cardholder(level, partition=partition)
    make_cardholder(level, partition=partition)
    make_cardholder(level, partition=make_partition())
    client = client_with(*LEVELS, "accesscontrol.view_cardholder", partitions=[partition])

    listed = client.get("/access-levels/")
    detail = client.get(f"/access-levels/{level.pk}/")

    assert [(lv.name, lv.member_count, lv.entry_count) for lv in listed.context["page_obj"]] == [("Staff", 2, 0)]
    assert detail.context["member_count"] == 2


def test_deleting_a_level_is_recorded(partition):
    level = make_access_level(make_access_point(partition=partition), name="Old", partition=partition)
    client = client_with(*LEVELS, partitions=[partition])

    response = client.post(f"/access-levels/{level.pk}/delete/")

    assert response["Location"] == "/access-levels/"
    assert not AccessLevel.objects.exists()
    assert [(row.action, row.object_repr) for row in web_rows()] == [("delete", "Old")]


def test_the_level_list_costs_the_same_queries_for_10_and_100_rows(partition):
    door = make_access_point(partition=partition)
    for _ in range(110):
        make_cardholder(make_access_level(door, partition=partition), partition=partition)
    client = client_with(*LEVELS, "accesscontrol.view_cardholder", partitions=[partition])

    assert queries_for(client, "/access-levels/", 10) == queries_for(client, "/access-levels/", 100)
