"""The access point, zone and location pages: lists, details, create/edit/delete, zones' members, partitions."""

import datetime as dt

import pytest

from accesscontrol.choices import AuditKind, Decision
from accesscontrol.engine import decide
from accesscontrol.models import AccessPoint, AuditEvent, Location, Zone
from accesscontrol.snapshot import SnapshotStore
from devices.models import Device, DeviceDoor
from tests.accesscontrol.web.places_helpers import client_with, page_text, queries_for, web_rows
from tests.factories import (
    make_access_level,
    make_access_point,
    make_cardholder,
    make_key,
    make_zone,
)
from tests.support.api import client_with as api_client_with

pytestmark = pytest.mark.django_db

POINTS = (
    "accesscontrol.view_accesspoint",
    "accesscontrol.add_accesspoint",
    "accesscontrol.change_accesspoint",
    "accesscontrol.delete_accesspoint",
)
ZONES = ("accesscontrol.view_zone", "accesscontrol.change_zone")
MONDAY_10 = dt.datetime(2030, 1, 7, 10, 0, tzinfo=dt.UTC)


def new_point_form(partition, **fields) -> dict:
    form = {
        "name": "Lobby door",
        "partition": partition.pk,
        "kind": "door",
        "ext_id": "",
        "description": "",
        "connection": "online",
        "opening_mode": "standard",
        "open_time": 4,
        "extended_open_time": 10,
        "direction": "both",
        "held_open_time": 30,
    }
    form.update(fields)
    return form


def edit_form(point: AccessPoint, **fields) -> dict:
    form = new_point_form(
        point.partition,
        name=point.name,
        kind=point.kind,
        connection=point.connection,
        opening_mode=point.opening_mode,
        open_time=point.open_time,
        extended_open_time=point.extended_open_time,
        direction=point.direction,
        held_open_time=point.held_open_time,
        zones=[zone.pk for zone in point.zones.all()],
    )
    if point.pin_only:
        form["pin_only"] = "on"
    form.update(fields)
    return form


# --- access points ---------------------------------------------------------------------------


def test_an_operator_creates_an_access_point_and_the_system_auditor_records_it(partition):
    zone = make_zone(partition=partition)
    client = client_with(*POINTS, "accesscontrol.view_zone", partitions=[partition])

    response = client.post("/access-points/new/", new_point_form(partition, zones=[zone.pk]), REMOTE_ADDR="10.1.2.3")

    point = AccessPoint.objects.get(name="Lobby door")
    assert response.status_code == 302
    assert response["Location"] == f"/access-points/{point.pk}/"
    assert list(point.zones.all()) == [zone]
    assert point.partition == partition
    (row,) = web_rows("create")
    assert (row.object_type, row.object_id, row.address) == ("accesscontrol.accesspoint", str(point.pk), "10.1.2.3")
    assert "zones" in row.detail["fields"]


def test_a_duplicate_name_is_a_field_error_and_nothing_is_created(partition):
    make_access_point(name="Lobby door", partition=partition)
    client = client_with(*POINTS, partitions=[partition])

    response = client.post("/access-points/new/", new_point_form(partition))

    assert response.status_code == 200
    assert response.context["form"].errors == {"name": ["Access point with this Name already exists."]}
    assert AccessPoint.objects.count() == 1
    assert web_rows() == []


def test_the_models_own_rules_are_field_errors(partition):
    client = client_with(*POINTS, partitions=[partition])

    response = client.post(
        "/access-points/new/", new_point_form(partition, opening_mode="timed", open_time=20, extended_open_time=5)
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {"timed_period": ["Timed opening mode needs a time period."]}
    assert 'class="error" role="alert">Timed opening mode needs a time period.' in page_text(response)
    assert not AccessPoint.objects.exists()


def test_an_edit_records_each_changed_field_before_and_after(partition):
    point = make_access_point(name="Back door", partition=partition, open_time=4)
    client = client_with(*POINTS, partitions=[partition])

    response = client.post(f"/access-points/{point.pk}/edit/", edit_form(point, name="Loading bay", open_time=6))

    assert response.status_code == 302
    (row,) = web_rows("update")
    assert row.detail == {
        "changes": {"name": {"from": "Back door", "to": "Loading bay"}, "open_time": {"from": 4, "to": 6}}
    }
    point.refresh_from_db()
    assert (point.name, point.open_time) == ("Loading bay", 6)


def test_an_edit_that_changes_nothing_writes_no_auditor_row(partition):
    point = make_access_point(partition=partition)
    client = client_with(*POINTS, partitions=[partition])

    response = client.post(f"/access-points/{point.pk}/edit/", edit_form(point))

    assert response.status_code == 302
    assert web_rows() == []


def test_an_operator_who_may_only_view_gets_403_and_nothing_changes(partition):
    point = make_access_point(name="Back door", partition=partition)
    client = client_with("accesscontrol.view_accesspoint", partitions=[partition])

    pages = [
        client.get("/access-points/new/"),
        client.post("/access-points/new/", new_point_form(partition)),
        client.get(f"/access-points/{point.pk}/edit/"),
        client.post(f"/access-points/{point.pk}/edit/", edit_form(point, name="Renamed")),
        client.post(f"/access-points/{point.pk}/delete/"),
    ]

    assert [page.status_code for page in pages] == [403, 403, 403, 403, 403]
    assert list(AccessPoint.objects.values_list("name", flat=True)) == ["Back door"]
    assert web_rows() == []


def test_an_operator_without_any_permission_gets_403_on_every_list():
    client = client_with()

    statuses = [client.get(url).status_code for url in ("/access-points/", "/zones/", "/locations/")]

    assert statuses == [403, 403, 403]


def test_an_operator_sees_and_changes_only_their_partitions_access_points(partition, other_partition):
    mine = make_access_point(name="Mine", partition=partition)
    theirs = make_access_point(name="Theirs", partition=other_partition)
    client = client_with(*POINTS, partitions=[partition])

    listed = client.get("/access-points/")
    detail = client.get(f"/access-points/{theirs.pk}/")
    edit = client.post(f"/access-points/{theirs.pk}/edit/", edit_form(theirs, name="Taken"))
    into_theirs = client.post("/access-points/new/", new_point_form(other_partition, name="Sneaky"))
    moved = client.post(f"/access-points/{mine.pk}/edit/", edit_form(mine, partition=other_partition.pk))

    assert [point.name for point in listed.context["page_obj"]] == ["Mine"]
    assert (detail.status_code, edit.status_code) == (404, 404)
    assert list(into_theirs.context["form"].errors) == ["partition"]
    assert list(moved.context["form"].errors) == ["partition"]
    assert sorted(AccessPoint.objects.values_list("name", "partition")) == [
        ("Mine", partition.pk),
        ("Theirs", other_partition.pk),
    ]


def test_an_edit_keeps_the_zones_of_other_partitions(partition, other_partition):
    mine, theirs = make_zone(partition=partition), make_zone(partition=other_partition)
    point = make_access_point(partition=partition, zones=[mine, theirs])
    client = client_with(*POINTS, "accesscontrol.view_zone", partitions=[partition])

    form_page = client.get(f"/access-points/{point.pk}/edit/")
    client.post(f"/access-points/{point.pk}/edit/", edit_form(point, zones=[]))

    assert list(form_page.context["form"].fields["zones"].queryset) == [mine]
    assert list(point.zones.all()) == [theirs]


def test_the_list_searches_and_filters(partition):
    zone = make_zone(partition=partition)
    make_access_point(name="North lobby", partition=partition, zones=[zone])
    make_access_point(name="North stairs", partition=partition)
    make_access_point(name="South lobby", partition=partition, zones=[zone], kind="room")
    client = client_with("accesscontrol.view_accesspoint", "accesscontrol.view_zone", partitions=[partition])

    searched = client.get("/access-points/", {"q": "north"})
    in_zone = client.get("/access-points/", {"zone": zone.pk, "kind": "door"})
    bad = client.get("/access-points/", {"zone": "x"})

    assert [p.name for p in searched.context["page_obj"]] == ["North lobby", "North stairs"]
    assert [p.name for p in in_zone.context["page_obj"]] == ["North lobby"]
    assert bad.status_code == 200
    assert list(bad.context["filterset"].form.errors) == ["zone"]


def test_the_access_point_list_costs_the_same_queries_for_10_and_100_rows(partition):
    zones = [make_zone(partition=partition) for _ in range(3)]
    location = Location.objects.create(name="Main building", partition=partition)
    for number in range(110):
        make_access_point(name=f"Door {number:03d}", partition=partition, location=location, zones=zones[:2])
    client = client_with("accesscontrol.view_accesspoint", "accesscontrol.view_zone", partitions=[partition])

    assert queries_for(client, "/access-points/", 10) == queries_for(client, "/access-points/", 100)


def test_the_detail_shows_zones_location_devices_and_recent_events(partition, other_partition):
    location = Location.objects.create(name="Main building", partition=partition)
    zone, hidden_zone = make_zone(name="Ground floor", partition=partition), make_zone(partition=other_partition)
    point = make_access_point(name="Lobby", partition=partition, location=location, zones=[zone, hidden_zone])
    device = Device.objects.create(device_id=7, name="Lobby controller", kind="control_unit", online=True)
    DeviceDoor.objects.create(device=device, number=1, access_point=point)
    AuditEvent.objects.create(
        at=MONDAY_10, kind=AuditKind.ACCESS_DENIED, reason=Decision.NO_PERMISSION, access_point=point,
        access_point_name="Lobby", cardholder_name="Ana Lopez", key_uid="0A0B0C0D",
    )  # fmt: skip
    client = client_with(
        "accesscontrol.view_accesspoint",
        "accesscontrol.view_zone",
        "accesscontrol.view_auditevent",
        "devices.view_device",
        partitions=[partition],
    )

    response = client.get(f"/access-points/{point.pk}/")

    text = page_text(response)
    assert list(response.context["zones"]) == [zone]
    assert response.context["hidden_zones"] == 1
    assert f'<a href="/locations/{location.pk}/">Main building</a>' in text
    assert f'Door 1 of <a href="/devices/{device.pk}/">Lobby controller</a>' in text
    assert [event.cardholder_name for event in response.context["events"]] == ["Ana Lopez"]
    assert "No permission for this access point" in text


def test_who_may_open_is_the_engines_answer_for_the_cardholders_the_operator_may_see(partition, other_partition):
    door = make_access_point(partition=partition)
    level = make_access_level(door, partition=partition)
    ana = make_cardholder(level, partition=partition, first_name="Ana", last_name="Lopez")
    hidden = make_cardholder(level, partition=other_partition)
    make_key(ana)
    make_key(hidden)
    make_cardholder(partition=partition)
    client = client_with("accesscontrol.view_accesspoint", "accesscontrol.view_cardholder", partitions=[partition])

    response = client.get(f"/access-points/{door.pk}/who-may-open/", HTTP_HX_REQUEST="true")

    assert [holder.pk for holder in response.context["holders"]] == [ana.pk]
    assert response.context["holder_count"] == 1
    assert "<html" not in page_text(response)


@pytest.mark.parametrize("through", ["web", "api"])
def test_putting_a_door_into_a_zone_changes_the_decision_as_the_api_does(partition, through):
    zone, door = make_zone(partition=partition), make_access_point(partition=partition)
    holder = make_cardholder(make_access_level(zone, partition=partition), partition=partition)
    make_key(holder, uid="0A0B0C0D")
    store = SnapshotStore()
    assert decide(store.refresh(), "0A0B0C0D", door.pk, MONDAY_10).reason == Decision.NO_PERMISSION
    permissions = (*POINTS, "accesscontrol.view_zone")

    if through == "web":
        response = client_with(*permissions, partitions=[partition]).post(
            f"/zones/{zone.pk}/access-points/", {"access_point": door.pk}
        )
    else:
        response = api_client_with(*permissions, partitions=[partition]).patch(
            f"/api/v1/access-points/{door.pk}/", {"zones": [zone.pk]}, format="json"
        )

    assert response.status_code in (200, 302)
    decision = decide(store.refresh(), "0A0B0C0D", door.pk, MONDAY_10)
    assert (decision.granted, decision.reason) == (True, Decision.GRANTED)
    assert store.full_builds == 1  # learnt from the change rows, not from a rebuild


def test_requiring_a_pin_on_the_edit_page_reaches_the_engine(partition):
    door = make_access_point(partition=partition)
    make_key(make_cardholder(make_access_level(door, partition=partition), partition=partition), uid="0A0B0C0D")
    store = SnapshotStore()
    assert decide(store.refresh(), "0A0B0C0D", door.pk, MONDAY_10).granted
    client = client_with(*POINTS, partitions=[partition])

    client.post(f"/access-points/{door.pk}/edit/", edit_form(door, pin_required="on"))

    assert decide(store.refresh(), "0A0B0C0D", door.pk, MONDAY_10).reason == Decision.PIN_REQUIRED


def test_deleting_an_access_point_asks_first_then_records_it(partition):
    point = make_access_point(name="Old door", partition=partition)
    client = client_with(*POINTS, partitions=[partition])

    confirm = client.get(f"/access-points/{point.pk}/delete/")
    response = client.post(f"/access-points/{point.pk}/delete/")

    assert confirm.status_code == 200
    assert response["Location"] == "/access-points/"
    assert not AccessPoint.objects.exists()
    (row,) = web_rows("delete")
    assert (row.object_repr, row.object_id) == ("Old door", str(point.pk))


# --- zones -----------------------------------------------------------------------------------


def test_zone_members_are_added_and_removed_and_recorded_on_the_access_point(partition):
    zone = make_zone(name="Ground floor", partition=partition)
    door = make_access_point(name="Lobby", partition=partition)
    client = client_with(*ZONES, *POINTS, partitions=[partition])

    client.post(f"/zones/{zone.pk}/access-points/", {"access_point": door.pk})
    after_add = list(zone.access_points.all())
    client.post(f"/zones/{zone.pk}/access-points/", {"remove": door.pk})

    assert after_add == [door]
    assert not zone.access_points.exists()
    assert [(row.object_id, row.detail) for row in web_rows("update")] == [
        (str(door.pk), {"changes": {"zones": {"from": [], "to": [zone.pk]}}}),
        (str(door.pk), {"changes": {"zones": {"from": [zone.pk], "to": []}}}),
    ]


def test_an_operator_cannot_put_another_partitions_door_into_their_zone(partition, other_partition):
    zone = make_zone(partition=partition)
    theirs = make_access_point(partition=other_partition)
    client = client_with(*ZONES, *POINTS, partitions=[partition])

    response = client.post(f"/zones/{zone.pk}/access-points/", {"access_point": theirs.pk}, follow=True)

    assert not zone.access_points.exists()
    assert "Select a valid choice" in page_text(response)
    assert web_rows() == []


def test_zone_membership_needs_the_permission_to_change_access_points(partition):
    zone = make_zone(partition=partition)
    door = make_access_point(partition=partition, zones=[zone])
    client = client_with(*ZONES, "accesscontrol.view_accesspoint", partitions=[partition])

    response = client.post(f"/zones/{zone.pk}/access-points/", {"remove": door.pk})

    assert response.status_code == 403
    assert list(zone.access_points.all()) == [door]


def test_a_zone_is_created_edited_and_its_lockdown_is_not_a_form_field(partition):
    client = client_with(*ZONES, "accesscontrol.add_zone", partitions=[partition])

    client.post("/zones/new/", {"name": "Labs", "partition": partition.pk, "anti_passback": "on", "lockdown": "on"})
    zone = Zone.objects.get(name="Labs")
    client.post(f"/zones/{zone.pk}/edit/", {"name": "Labs", "partition": partition.pk, "description": "Level 3"})

    zone.refresh_from_db()
    assert (zone.anti_passback, zone.lockdown, zone.description) == (False, False, "Level 3")
    assert [row.action for row in web_rows()] == ["create", "update"]
    assert web_rows("update")[0].detail["changes"] == {
        "description": {"from": "", "to": "Level 3"},
        "anti_passback": {"from": True, "to": False},
    }


def test_the_zone_list_counts_access_points_in_constant_queries(partition):
    for number in range(110):
        zone = make_zone(name=f"Zone {number:03d}", partition=partition)
        make_access_point(partition=partition, zones=[zone])
    client = client_with("accesscontrol.view_zone", "accesscontrol.view_accesspoint", partitions=[partition])

    response = client.get("/zones/", {"per_page": 10})

    assert [zone.access_point_count for zone in response.context["page_obj"]] == [1] * 10
    assert queries_for(client, "/zones/", 10) == queries_for(client, "/zones/", 100)


# --- locations -------------------------------------------------------------------------------


def test_a_location_cannot_be_inside_itself(partition):
    building = Location.objects.create(name="Main building", partition=partition)
    floor = Location.objects.create(name="Floor 1", partition=partition, parent=building)
    client = client_with("accesscontrol.view_location", "accesscontrol.change_location", partitions=[partition])

    response = client.post(
        f"/locations/{building.pk}/edit/", {"name": "Main building", "partition": partition.pk, "parent": floor.pk}
    )

    assert response.context["form"].errors == {"parent": ["A location cannot be inside itself."]}
    building.refresh_from_db()
    assert building.parent is None


def test_the_location_list_and_detail_show_their_access_points(partition):
    building = Location.objects.create(name="Main building", partition=partition)
    make_access_point(name="Lobby", partition=partition, location=building)
    for number in range(110):
        Location.objects.create(name=f"Room {number:03d}", partition=partition, parent=building)
    client = client_with("accesscontrol.view_location", "accesscontrol.view_accesspoint", partitions=[partition])

    listed = client.get("/locations/", {"q": "main"})
    detail = client.get(f"/locations/{building.pk}/")

    assert [(loc.name, loc.access_point_count) for loc in listed.context["page_obj"]] == [("Main building", 1)]
    assert [point.name for point in detail.context["access_points"]] == ["Lobby"]
    assert queries_for(client, "/locations/", 10) == queries_for(client, "/locations/", 100)
