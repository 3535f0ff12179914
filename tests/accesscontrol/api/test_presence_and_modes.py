"""API v1 for mode schedules (nested changes), presence, a zone's occupancy and forgiveness, and the roll-call."""

import datetime as dt

import pytest
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from accesscontrol.models import ModeChange, ModeSchedule, Presence, SystemAuditEntry
from tests.factories import make_access_point, make_cardholder, make_partition, make_zone
from tests.support.api import client_with

pytestmark = pytest.mark.django_db

SCHEDULES = ("accesscontrol.view_modeschedule", "accesscontrol.add_modeschedule", "accesscontrol.change_modeschedule")
FORGIVE = ("accesscontrol.view_zone", "accesscontrol.forgive_presence")
MUSTER = "accesscontrol.view_muster"


def inside(zone, *holders, minutes_ago: int = 10):
    at = timezone.now() - dt.timedelta(minutes=minutes_ago)
    for holder in holders:
        Presence.objects.create(cardholder=holder, zone=zone, inside=True, since=at, last_at=at)


def change(**fields) -> dict:
    return {"at": "07:30", "mode": "office", "monday": True, **fields}


# --- mode schedules -------------------------------------------------------------------------------


def test_a_mode_schedule_is_created_with_its_changes_and_recorded_once(partition):
    client = client_with(*SCHEDULES, partitions=[partition])

    response = client.post(
        "/api/v1/mode-schedules/",
        {"name": "Lobby", "partition": partition.pk, "changes": [change(), change(at="19:00", mode="standard")]},
        format="json",
    )

    assert response.status_code == 201, response.data
    assert [(item["at"], item["mode"]) for item in response.data["changes"]] == [
        ("07:30:00", "office"),
        ("19:00:00", "standard"),
    ]
    [entry] = SystemAuditEntry.objects.all()
    assert (entry.action, entry.via, entry.detail["fields"]) == ("create", "api", ["changes", "name", "partition"])


@pytest.mark.parametrize(
    "bad, field",
    [
        (change(monday=False), "non_field_errors"),
        (change(mode="ajar"), "mode"),
        (change(at="25:00"), "at"),
        (change(at="07:30:15"), "at"),
        ({"mode": "office", "monday": True}, "at"),
    ],
)
def test_a_bad_change_is_a_400_naming_its_field_and_nothing_is_stored(partition, bad, field):
    client = client_with(*SCHEDULES, partitions=[partition])

    response = client.post(
        "/api/v1/mode-schedules/", {"name": "Lobby", "partition": partition.pk, "changes": [bad]}, format="json"
    )

    assert response.status_code == 400
    assert field in response.data["changes"][0]
    assert not ModeSchedule.objects.exists() and not SystemAuditEntry.objects.exists()


def test_two_changes_at_the_same_time_and_day_with_different_modes_are_refused(partition):
    client = client_with(*SCHEDULES, partitions=[partition])

    response = client.post(
        "/api/v1/mode-schedules/",
        {"name": "Lobby", "partition": partition.pk, "changes": [change(), change(mode="open")]},
        format="json",
    )

    assert response.status_code == 400
    assert "changes" in response.data
    assert not ModeSchedule.objects.exists()


def test_a_patch_with_changes_replaces_them(partition):
    schedule = ModeSchedule.objects.create(name="Lobby", partition=partition)
    ModeChange.objects.create(schedule=schedule, at=dt.time(8), mode="open", sunday=True)
    client = client_with(*SCHEDULES, partitions=[partition])

    response = client.patch(f"/api/v1/mode-schedules/{schedule.pk}/", {"changes": [change()]}, format="json")

    assert response.status_code == 200
    assert [str(item) for item in schedule.changes.all()] == ["07:30 Office"]
    [entry] = SystemAuditEntry.objects.all()
    assert entry.detail["changes"]["changes"] == {"from": ["08:00 open Sun"], "to": ["07:30 office Mon"]}


def test_access_points_and_zones_name_a_schedule_and_the_mode_source_is_read_only(partition):
    schedule = ModeSchedule.objects.create(name="Lobby", partition=partition)
    point = make_access_point(partition=partition)
    client = client_with(
        "accesscontrol.view_accesspoint",
        "accesscontrol.change_accesspoint",
        "accesscontrol.view_modeschedule",
        partitions=[partition],
    )

    response = client.patch(
        f"/api/v1/access-points/{point.pk}/",
        {"mode_schedule": schedule.pk, "mode_source": "operator", "mode_changed_at": "2030-01-01T00:00:00Z"},
        format="json",
    )

    point.refresh_from_db()
    assert response.status_code == 200
    assert (point.mode_schedule_id, point.mode_source, point.mode_changed_at) == (schedule.pk, "configured", None)
    assert response.data["mode_source"] == "configured"


def test_a_zones_presence_rules_are_written_and_checked(partition):
    zone = make_zone(partition=partition)
    client = client_with("accesscontrol.view_zone", "accesscontrol.change_zone", partitions=[partition])

    good = client.patch(
        f"/api/v1/zones/{zone.pk}/",
        {"passback_kind": "soft", "passback_minutes": 20, "roll_call": True, "max_occupancy": 30},
        format="json",
    )
    bad = client.patch(
        f"/api/v1/zones/{zone.pk}/", {"passback_kind": "sideways", "max_occupancy": -1, "occupancy_correction": 9}
    )

    zone.refresh_from_db()
    assert good.status_code == 200
    assert (zone.passback_kind, zone.passback_minutes, zone.roll_call, zone.max_occupancy) == ("soft", 20, True, 30)
    assert bad.status_code == 400 and set(bad.data) == {"passback_kind", "max_occupancy"}
    assert zone.occupancy_correction == 0


# --- presence -------------------------------------------------------------------------------------


def test_presence_is_listed_for_the_zones_of_the_operators_partitions_and_filtered(partition):
    mine, theirs = make_zone(partition=partition, anti_passback=True), make_zone(partition=make_partition())
    ada, alan = make_cardholder(), make_cardholder()
    inside(mine, ada, alan)
    inside(theirs, ada)
    Presence.objects.filter(cardholder=alan).update(inside=False)
    client = client_with("accesscontrol.view_presence", partitions=[partition])

    everything = client.get("/api/v1/presence/")
    filtered = client.get("/api/v1/presence/", {"inside": "true", "zone": mine.pk})

    assert everything.data["count"] == 2
    assert [(row["cardholder"], row["zone"]) for row in filtered.data["results"]] == [(ada.pk, mine.pk)]
    assert client.post("/api/v1/presence/", {}, format="json").status_code in (403, 405)


def test_the_occupancy_is_read_and_corrected(partition):
    zone = make_zone(partition=partition, max_occupancy=3)
    inside(zone, make_cardholder(), make_cardholder())
    client = client_with(*FORGIVE, partitions=[partition])

    read = client.get(f"/api/v1/zones/{zone.pk}/occupancy/")
    corrected = client.post(f"/api/v1/zones/{zone.pk}/occupancy/", {"count": 3}, format="json")
    bad = client.post(f"/api/v1/zones/{zone.pk}/occupancy/", {"count": -2}, format="json")

    assert read.data == {"zone": zone.pk, "count": 2, "counted": 2, "correction": 0, "limit": 3, "full": False}
    assert corrected.data == {"zone": zone.pk, "count": 3, "counted": 2, "correction": 1, "limit": 3, "full": True}
    assert bad.status_code == 400 and "count" in bad.data
    assert SystemAuditEntry.objects.get().action == "correct_occupancy"


def test_forgive_ends_one_cardholder_or_everyone_inside(partition):
    zone = make_zone(partition=partition, anti_passback=True)
    ada, alan, bob = make_cardholder(), make_cardholder(), make_cardholder()
    inside(zone, ada, alan, bob)
    client = client_with(*FORGIVE, partitions=[partition])

    one = client.post(f"/api/v1/zones/{zone.pk}/forgive/", {"cardholder": ada.pk}, format="json")
    unknown = client.post(f"/api/v1/zones/{zone.pk}/forgive/", {"cardholder": 10**9}, format="json")
    rest = client.post(f"/api/v1/zones/{zone.pk}/forgive/", {}, format="json")

    assert one.data == {"zone": zone.pk, "cardholder": ada.pk, "ended": 1}
    assert unknown.status_code == 400 and "cardholder" in unknown.data
    assert rest.data == {"zone": zone.pk, "cardholder": None, "ended": 2}
    assert not Presence.objects.filter(inside=True).exists()


def test_without_forgive_presence_in_the_zones_partition_nothing_changes(partition):
    zone = make_zone(partition=partition, anti_passback=True)
    inside(zone, make_cardholder())
    viewer = client_with("accesscontrol.view_zone", partitions=[partition])
    elsewhere = client_with(*FORGIVE, partitions=[make_partition()])

    answers = [
        viewer.post(f"/api/v1/zones/{zone.pk}/forgive/", {}, format="json").status_code,
        viewer.post(f"/api/v1/zones/{zone.pk}/occupancy/", {"count": 0}, format="json").status_code,
        viewer.get(f"/api/v1/zones/{zone.pk}/occupancy/").status_code,
        elsewhere.post(f"/api/v1/zones/{zone.pk}/forgive/", {}, format="json").status_code,
    ]

    assert answers == [403, 403, 200, 404]
    assert Presence.objects.filter(inside=True).count() == 1
    assert not SystemAuditEntry.objects.exists()


# --- roll-call ------------------------------------------------------------------------------------


def test_the_roll_call_lists_areas_with_counts_and_each_areas_people(partition):
    hall = make_zone(name="Hall", partition=partition, roll_call=True, max_occupancy=5)
    make_zone(name="Hidden", partition=make_partition(), roll_call=True)
    ada = make_cardholder(first_name="Ada", last_name="Lovelace", phone_number="+441234")
    alan = make_cardholder(first_name="Alan", last_name="Turing")
    inside(hall, ada, minutes_ago=30)
    inside(hall, alan, minutes_ago=5)
    client = client_with(MUSTER, partitions=[partition])

    areas = client.get("/api/v1/roll-call/")
    people = client.get(f"/api/v1/roll-call/{hall.pk}/")
    found = client.get(f"/api/v1/roll-call/{hall.pk}/", {"q": "love"})

    assert [(area["name"], area["count"], area["full"]) for area in areas.data["results"]] == [("Hall", 2, False)]
    assert [person["last_name"] for person in people.data["results"]] == ["Turing", "Lovelace"]
    assert people.data["count"] == 2
    assert [(person["cardholder"], person["phone_number"]) for person in found.data["results"]] == [(ada.pk, "+441234")]


def test_the_roll_call_of_an_area_not_theirs_or_not_an_area_is_a_404_and_without_muster_a_403(partition):
    elsewhere = make_zone(partition=make_partition(), roll_call=True)
    plain = make_zone(partition=partition)
    client = client_with(MUSTER, partitions=[partition])
    viewer = client_with("accesscontrol.view_zone", partitions=[partition])

    assert client.get(f"/api/v1/roll-call/{elsewhere.pk}/").status_code == 404
    assert client.get(f"/api/v1/roll-call/{plain.pk}/").status_code == 404
    assert viewer.get("/api/v1/roll-call/").status_code == 403


def test_the_schema_documents_the_new_endpoints():
    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]

    for path in (
        "/api/v1/mode-schedules/",
        "/api/v1/mode-schedules/{id}/",
        "/api/v1/presence/",
        "/api/v1/zones/{id}/occupancy/",
        "/api/v1/zones/{id}/forgive/",
        "/api/v1/roll-call/",
        "/api/v1/roll-call/{zone_id}/",
    ):
        assert path in paths, path
    assert set(paths["/api/v1/zones/{id}/occupancy/"]) >= {"get", "post"}
    assert "400" in paths["/api/v1/zones/{id}/forgive/"]["post"]["responses"]
