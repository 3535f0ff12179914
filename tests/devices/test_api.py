"""API v1 for devices: /devices/ (with nested doors and readers, the key shown once), /device-commands/, /commands/."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from accesscontrol.engine import decide
from accesscontrol.models import AccessPoint, AuditEvent, SiteSettings, SystemAuditEntry, Zone
from accesscontrol.snapshot import SnapshotStore
from devices import commands
from devices.models import Device, DeviceCommand, DeviceDoor, DeviceReader
from tests.factories import (
    make_access_level,
    make_access_point,
    make_cardholder,
    make_key,
    make_operator,
    make_time_period,
    make_zone,
)
from tests.support.api import client_for, client_with, grant

pytestmark = pytest.mark.django_db

KEY_HEX = "00112233445566778899aabbccddeeff"


def make_device(device_id=1001, *doors, **fields) -> Device:
    device = Device(device_id=device_id, name=fields.pop("name", f"Unit {device_id}"), kind="control_unit", **fields)
    device.set_key()
    device.save()
    for number, point in enumerate(doors, start=1):
        DeviceDoor.objects.create(device=device, number=number, access_point=point)
        DeviceReader.objects.create(device=device, number=number, access_point=point)
    return device


def create(api_admin, **fields):
    payload = {"device_id": 1001, "name": "Unit 1", "kind": "control_unit", **fields}
    return api_admin.post("/api/v1/devices/", payload, format="json")


# --- devices and their keys -------------------------------------------------------------------


def test_a_device_is_created_with_the_key_given_and_the_key_is_shown_in_that_response_only(api_admin):
    response = create(api_admin, key=KEY_HEX)

    assert response.status_code == 201
    body = response.json()
    assert body["key"] == KEY_HEX and body["has_key"] is True
    device = Device.objects.get()
    assert device.key() == bytes.fromhex(KEY_HEX)
    assert "key" not in api_admin.get(f"/api/v1/devices/{device.pk}/").json()
    assert "key" not in api_admin.get("/api/v1/devices/").json()["results"][0]


def test_a_device_created_without_a_key_gets_a_generated_one(api_admin):
    response = create(api_admin)

    key = response.json()["key"]
    assert response.status_code == 201
    assert len(key) == 32 and key != "0" * 32
    assert Device.objects.get().key() == bytes.fromhex(key)
    entry = SystemAuditEntry.objects.get()
    assert (entry.action, entry.detail["key"]) == ("create", "generated")
    assert key not in str(entry.detail)


def test_the_raw_key_is_in_no_database_row(api_admin):
    point = make_access_point(name="Main entrance")
    create(api_admin, key=KEY_HEX, doors=[{"number": 1, "access_point": point.pk}])
    device = Device.objects.get()
    rekeyed = api_admin.post(f"/api/v1/devices/{device.pk}/rekey/", {}, format="json").json()["key"]

    needles = [bytes.fromhex(k) for k in (KEY_HEX, rekeyed)]
    needles += [text.encode() for k in (KEY_HEX, rekeyed) for text in (k, k.upper())]
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 (table names from the schema itself)
            for row in cursor.fetchall():
                for value in row:
                    raw = bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
                    assert not any(needle in raw for needle in needles), table


def test_rekey_gives_a_new_key_shown_once(api_admin):
    device = make_device()
    old = device.key()

    response = api_admin.post(f"/api/v1/devices/{device.pk}/rekey/", format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["device_id"]) == (device.pk, 1001)
    device.refresh_from_db()
    assert device.key() == bytes.fromhex(body["key"]) != old
    assert "key" not in api_admin.get(f"/api/v1/devices/{device.pk}/").json()
    assert SystemAuditEntry.objects.get().action == "rekey_device"


def test_rekey_may_set_a_given_key(api_admin):
    device = make_device()

    response = api_admin.post(f"/api/v1/devices/{device.pk}/rekey/", {"key": KEY_HEX}, format="json")

    assert response.json()["key"] == KEY_HEX
    device.refresh_from_db()
    assert device.key() == bytes.fromhex(KEY_HEX)


@pytest.mark.parametrize("key", ["00" * 15, "00" * 17, "zz" * 16, "00 " * 10 + "00", 12345, ["00"] * 16, "", None])
def test_a_key_that_is_not_32_hex_digits_is_refused(api_admin, key):
    device = make_device()
    old = device.key()

    created = create(api_admin, device_id=2002, name="Other", key=key)
    rekeyed = api_admin.post(f"/api/v1/devices/{device.pk}/rekey/", {"key": key}, format="json")

    assert (created.status_code, rekeyed.status_code) == (400, 400)
    assert list(created.json()) == list(rekeyed.json()) == ["key"]
    assert Device.objects.count() == 1
    device.refresh_from_db()
    assert device.key() == old


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"device_id": 0}, "device_id"),
        ({"device_id": 2**32}, "device_id"),
        ({"device_id": "abc"}, "device_id"),
        ({"device_id": 10**30}, "device_id"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"kind": "toaster"}, "kind"),
        ({"enabled": "maybe"}, "enabled"),
        ({"doors": "1=2"}, "doors"),
        ({"doors": [{"number": 0, "access_point": 1}]}, "doors"),
        ({"doors": [{"number": 1, "access_point": 10**12}]}, "doors"),
        ({"readers": [{"number": 2**31, "access_point": 1}]}, "readers"),
        ({"readers": [{"number": "one", "access_point": 1}]}, "readers"),
    ],
)
def test_a_device_breaking_a_rule_is_refused(api_admin, fields, error):
    make_access_point()

    response = create(api_admin, **fields)

    assert response.status_code == 400
    assert list(response.json()) == [error]
    assert not Device.objects.exists()


@pytest.mark.parametrize("body", ['{"name": ', "[1, 2]", "42"])
def test_a_body_that_is_not_an_object_is_refused(api_admin, body):
    response = api_admin.post("/api/v1/devices/", body, content_type="application/json")

    assert response.status_code == 400
    assert not Device.objects.exists()


def test_a_duplicate_device_id_or_name_is_named(api_admin):
    make_device(1001, name="Unit 1")

    same_id = create(api_admin, name="Another")
    same_name = create(api_admin, device_id=1002)

    assert (same_id.status_code, same_name.status_code) == (400, 400)
    assert (list(same_id.json()), list(same_name.json())) == (["device_id"], ["name"])
    assert Device.objects.count() == 1


def test_doors_and_readers_are_written_nested_and_replaced_as_a_whole(api_admin):
    front, side = make_access_point(name="Front"), make_access_point(name="Side")

    created = create(
        api_admin,
        doors=[{"number": 1, "access_point": front.pk}, {"number": 2, "access_point": side.pk}],
        readers=[{"number": 1, "access_point": front.pk}],
    )
    device_url = f"/api/v1/devices/{created.json()['id']}/"
    same = api_admin.patch(device_url, {"doors": created.json()["doors"]}, format="json")
    replaced = api_admin.patch(device_url, {"doors": [{"number": 3, "access_point": front.pk}]}, format="json")

    assert created.status_code == 201
    assert [(d["number"], d["access_point"]) for d in created.json()["doors"]] == [(1, front.pk), (2, side.pk)]
    assert same.status_code == 200
    assert replaced.status_code == 200
    assert [(d["number"], d["access_point"]) for d in replaced.json()["doors"]] == [(3, front.pk)]
    assert list(DeviceDoor.objects.values_list("number", flat=True)) == [3]
    assert list(DeviceReader.objects.values_list("number", flat=True)) == [1]


def test_a_door_number_or_an_access_point_twice_is_refused(api_admin):
    front, side = make_access_point(), make_access_point()

    numbers = create(api_admin, doors=[{"number": 1, "access_point": front.pk}, {"number": 1, "access_point": side.pk}])
    points = create(api_admin, doors=[{"number": 1, "access_point": front.pk}, {"number": 2, "access_point": front.pk}])
    readers = create(
        api_admin, readers=[{"number": 1, "access_point": front.pk}, {"number": 1, "access_point": side.pk}]
    )

    assert [r.status_code for r in (numbers, points, readers)] == [400, 400, 400]
    assert [list(r.json()) for r in (numbers, points, readers)] == [["doors"], ["doors"], ["readers"]]
    assert not Device.objects.exists()


def test_a_door_without_its_access_point_in_a_patch_is_a_field_error_not_a_server_error(api_admin):
    front = make_access_point(name="Front")
    device = make_device(1001, front)

    response = api_admin.patch(
        f"/api/v1/devices/{device.pk}/",
        {"doors": [{"number": 1}], "readers": [{"access_point": front.pk}]},
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == {
        "doors": {"0": {"access_point": ["This field is required."]}},
        "readers": {"0": {"number": ["This field is required."]}},
    }
    assert list(DeviceDoor.objects.values_list("number", "access_point")) == [(1, front.pk)]
    assert list(DeviceReader.objects.values_list("number", "access_point")) == [(1, front.pk)]


def test_an_access_point_driven_by_another_device_is_refused(api_admin):
    front = make_access_point(name="Front")
    make_device(1, front)

    response = create(api_admin, device_id=2, name="Unit 2", doors=[{"number": 1, "access_point": front.pk}])

    assert response.status_code == 400
    assert response.json() == {"doors": ["Another device drives Front already."]}
    assert Device.objects.count() == 1


def test_the_live_status_and_the_id_of_a_device_do_not_change_through_the_api(api_admin):
    device = make_device()

    status = api_admin.patch(f"/api/v1/devices/{device.pk}/", {"online": True, "firmware": "evil"}, format="json")
    moved = api_admin.patch(f"/api/v1/devices/{device.pk}/", {"device_id": 4242}, format="json")
    key = api_admin.patch(f"/api/v1/devices/{device.pk}/", {"key": KEY_HEX}, format="json")

    assert status.status_code == 200
    assert (status.json()["online"], status.json()["firmware"]) == (False, "")
    assert (moved.status_code, list(moved.json())) == (400, ["device_id"])
    assert (key.status_code, list(key.json())) == (400, ["key"])
    device.refresh_from_db()
    assert (device.online, device.firmware, device.device_id) == (False, "", 1001)


def test_devices_filter_by_kind_and_by_access_point(api_admin):
    front = make_access_point()
    unit = make_device(1, front)
    Device.objects.create(device_id=2, name="Encoder", kind="encoder")

    by_kind = api_admin.get("/api/v1/devices/?kind=encoder").json()["results"]
    by_point = api_admin.get(f"/api/v1/devices/?access_point={front.pk}").json()["results"]
    bad = api_admin.get("/api/v1/devices/?access_point=abc")

    assert [d["name"] for d in by_kind] == ["Encoder"]
    assert [d["id"] for d in by_point] == [unit.pk]
    assert bad.status_code == 400


def test_deleting_a_device_is_recorded(api_admin):
    device = make_device()

    response = api_admin.delete(f"/api/v1/devices/{device.pk}/")

    assert response.status_code == 204
    assert not Device.objects.exists()
    assert SystemAuditEntry.objects.get().action == "delete"


# --- permissions and partitions ---------------------------------------------------------------


def test_an_operator_without_device_permissions_gets_403_and_changes_nothing():
    device = make_device()
    client = client_with("accesscontrol.view_accesspoint", all_partitions=True)

    listing = client.get("/api/v1/devices/")
    created = client.post("/api/v1/devices/", {"device_id": 2, "name": "X", "kind": "gateway"}, format="json")
    rekeyed = client.post(f"/api/v1/devices/{device.pk}/rekey/", format="json")
    commands_list = client.get("/api/v1/device-commands/")

    assert [r.status_code for r in (listing, created, rekeyed, commands_list)] == [403] * 4
    assert Device.objects.count() == 1
    assert not SystemAuditEntry.objects.exists()


def test_an_operator_who_may_only_view_devices_cannot_rekey_them():
    device = make_device()
    old = device.key()
    client = client_with("devices.view_device", all_partitions=True)

    response = client.post(f"/api/v1/devices/{device.pk}/rekey/", format="json")

    assert response.status_code == 403
    device.refresh_from_db()
    assert device.key() == old


def test_a_device_may_drive_only_access_points_the_operator_can_see(partition, other_partition):
    hidden = make_access_point(partition=other_partition)
    client = client_with(
        "devices.add_device", "devices.view_device", "accesscontrol.view_accesspoint", partitions=[partition]
    )

    response = client.post(
        "/api/v1/devices/",
        {"device_id": 9, "name": "Unit", "kind": "control_unit", "doors": [{"number": 1, "access_point": hidden.pk}]},
        format="json",
    )

    assert response.status_code == 400
    assert list(response.json()) == ["doors"]
    assert not Device.objects.exists()


def test_doors_on_access_points_the_operator_cannot_see_are_not_dropped_by_a_rewrite(partition, other_partition):
    mine, hidden = make_access_point(partition=partition), make_access_point(partition=other_partition)
    device = make_device(1, mine, hidden)
    client = client_with(
        "devices.change_device", "devices.view_device", "accesscontrol.view_accesspoint", partitions=[partition]
    )

    response = client.patch(
        f"/api/v1/devices/{device.pk}/", {"doors": [{"number": 1, "access_point": mine.pk}]}, format="json"
    )
    renamed = client.patch(f"/api/v1/devices/{device.pk}/", {"name": "Renamed"}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["doors"]
    assert DeviceDoor.objects.filter(device=device).count() == 2
    assert renamed.status_code == 200


# --- device commands --------------------------------------------------------------------------


def test_device_commands_are_listed_and_filtered_by_device_status_and_op(api_admin):
    front, side = make_access_point(), make_access_point()
    one, two = make_device(1, front), make_device(2, side)
    operator = make_operator(is_superuser=True)
    commands.remote_open(front, operator=operator, via="api")
    commands.emergency_close(side, operator=operator, via="api")
    DeviceCommand.objects.filter(device=one).update(status="succeeded")

    by_device = api_admin.get(f"/api/v1/device-commands/?device={two.pk}").json()["results"]
    by_status = api_admin.get("/api/v1/device-commands/?status=succeeded").json()["results"]
    by_op = api_admin.get("/api/v1/device-commands/?op=emergency_close&op=open").json()["results"]
    bad = api_admin.get("/api/v1/device-commands/?status=sleeping")

    assert [c["op"] for c in by_device] == ["emergency_close"]
    assert [(c["device"], c["args"]) for c in by_status] == [(one.pk, {"door": 1})]
    assert len(by_op) == 2
    assert bad.status_code == 400


def test_device_commands_are_read_only(api_admin):
    device = make_device(1, make_access_point())
    command = DeviceCommand.objects.create(device=device, op="open", args={"door": 1})

    created = api_admin.post("/api/v1/device-commands/", {"device": device.pk, "op": "open"}, format="json")
    changed = api_admin.patch(f"/api/v1/device-commands/{command.pk}/", {"status": "succeeded"}, format="json")
    deleted = api_admin.delete(f"/api/v1/device-commands/{command.pk}/")

    assert [r.status_code for r in (created, changed, deleted)] == [405, 405, 405]
    assert DeviceCommand.objects.get().status == "queued"


def test_an_operator_sees_only_the_commands_of_their_partitions(partition, other_partition):
    mine, theirs = make_access_point(partition=partition), make_access_point(partition=other_partition)
    make_device(1, mine, theirs)
    boss = make_operator(is_superuser=True)
    commands.remote_open(mine, operator=boss, via="api")
    commands.remote_open(theirs, operator=boss, via="api")
    client = client_with("devices.view_devicecommand", partitions=[partition])

    listed = client.get("/api/v1/device-commands/").json()["results"]
    hidden = DeviceCommand.objects.get(access_point=theirs)

    assert [c["access_point"] for c in listed] == [mine.pk]
    assert client.get(f"/api/v1/device-commands/{hidden.pk}/").status_code == 404


# --- issuing commands -------------------------------------------------------------------------


def issue(client, **payload):
    return client.post("/api/v1/commands/", payload, format="json")


def test_a_remote_open_answers_with_the_commands_queued(api_admin):
    front = make_access_point()
    device = make_device(1, front)

    response = issue(api_admin, op="open", access_point=front.pk)

    assert response.status_code == 201
    command = DeviceCommand.objects.get()
    assert response.json() == {
        "op": "open",
        "access_point": front.pk,
        "zone": None,
        "site": False,
        "mode": None,
        "access_points": [front.pk],
        "commands": [command.pk],
        "queued": 1,
        "without_device": [],
        "still_in_lockdown": [],
    }
    assert (command.device, command.args, command.status) == (device, {"door": 1}, "queued")
    assert AuditEvent.objects.get().kind == "remote_open"
    assert SystemAuditEntry.objects.get().via == "api"


def test_an_emergency_close_of_a_zone_locks_it_down_even_where_no_device_is(api_admin):
    zone = make_zone()
    front, gate = make_access_point(zones=[zone]), make_access_point(zones=[zone])
    make_device(1, front)

    response = issue(api_admin, op="emergency_close", zone=zone.pk)

    assert response.status_code == 201
    assert (response.json()["queued"], response.json()["without_device"]) == (1, [gate.pk])
    assert Zone.objects.get().lockdown


def test_a_site_lockdown_through_the_api_refuses_keys_at_once(api_admin):
    front = make_access_point()
    make_key(make_cardholder(make_access_level(front)), uid="0A0B0C0D")
    store = SnapshotStore()
    store.refresh()
    check = f"/api/v1/access-points/{front.pk}/check/?uid=0A0B0C0D"
    before = api_admin.get(check).json()["reason"]

    response = issue(api_admin, op="emergency_close", site=True)

    assert response.status_code == 201
    assert SiteSettings.load().lockdown
    assert before == "granted"
    assert api_admin.get(check).json()["reason"] == "lockdown"
    assert decide(store.refresh(), "0A0B0C0D", front.pk, timezone.now()).reason == "lockdown"


def test_setting_a_mode_stores_it(api_admin):
    front = make_access_point()
    make_device(1, front)

    response = issue(api_admin, op="set_mode", access_point=front.pk, mode="toggle")

    assert response.status_code == 201
    assert response.json()["mode"] == "toggle"
    assert AccessPoint.objects.get().opening_mode == "toggle"
    assert DeviceCommand.objects.get().args == {"door": 1, "mode": "toggle"}


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"op": "open"}, "non_field_errors"),
        ({"op": "open", "site": True, "zone": "ZONE"}, "non_field_errors"),
        ({"op": "explode", "access_point": "POINT"}, "op"),
        ({"op": "set_time", "access_point": "POINT"}, "op"),
        ({"access_point": "POINT"}, "op"),
        ({"op": "set_mode", "access_point": "POINT"}, "mode"),
        ({"op": "set_mode", "access_point": "POINT", "mode": "party"}, "mode"),
        ({"op": "open", "access_point": "POINT", "mode": "office"}, "mode"),
        ({"op": "set_mode", "access_point": "POINT", "mode": "timed"}, "mode"),
        ({"op": "open", "access_point": 10**12}, "access_point"),
        ({"op": "open", "access_point": "abc"}, "access_point"),
        ({"op": "open", "access_point": None}, "access_point"),
        ({"op": "open", "zone": -1}, "zone"),
        ({"op": "open", "zone": 10**30}, "zone"),
        ({"op": "open", "site": "perhaps"}, "site"),
    ],
)
def test_a_bad_command_is_a_400_naming_what_is_wrong_and_changes_nothing(api_admin, payload, error):
    point, zone = make_access_point(), make_zone()
    make_device(1, point)
    names = {"POINT": point.pk, "ZONE": zone.pk}
    payload = {name: names.get(value, value) if isinstance(value, str) else value for name, value in payload.items()}

    response = issue(api_admin, **payload)

    assert response.status_code == 400, response.json()
    assert list(response.json()) == [error]
    assert not DeviceCommand.objects.exists()
    assert not AuditEvent.objects.exists()
    assert not SystemAuditEntry.objects.exists()
    assert AccessPoint.objects.get().opening_mode == "standard"


@pytest.mark.parametrize("body", ['{"op": ', "[1]", "7"])
def test_a_command_body_that_is_not_an_object_is_refused(api_admin, body):
    response = api_admin.post("/api/v1/commands/", body, content_type="application/json")

    assert response.status_code == 400
    assert not DeviceCommand.objects.exists()


def test_commands_are_only_posted(api_admin):
    assert api_admin.get("/api/v1/commands/").status_code == 405


def test_issuing_commands_needs_the_permission_to_add_device_commands(partition):
    point = make_access_point(partition=partition)
    make_device(1, point)
    client = client_with("accesscontrol.view_accesspoint", "accesscontrol.change_accesspoint", partitions=[partition])

    response = issue(client, op="emergency_close", access_point=point.pk)

    assert response.status_code == 403
    assert not AccessPoint.objects.get().lockdown
    assert not DeviceCommand.objects.exists()


def test_an_operator_opens_doors_of_their_partitions_only(partition, other_partition):
    mine, theirs = make_access_point(partition=partition), make_access_point(partition=other_partition)
    make_device(1, mine, theirs)
    client = client_with(
        "devices.add_devicecommand",
        "accesscontrol.view_accesspoint",
        "accesscontrol.change_accesspoint",
        partitions=[partition],
    )

    allowed = issue(client, op="open", access_point=mine.pk)
    hidden = issue(client, op="open", access_point=theirs.pk)

    assert allowed.status_code == 201
    assert hidden.status_code == 400
    assert list(hidden.json()) == ["access_point"]
    assert list(DeviceCommand.objects.values_list("access_point", flat=True)) == [mine.pk]


def test_a_door_the_operator_sees_but_may_not_change_is_a_403(partition, other_partition):
    point = make_access_point(partition=other_partition)
    make_device(1, point)
    operator = make_operator(
        "devices.add_devicecommand", "accesscontrol.view_accesspoint", partitions=[partition, other_partition]
    )
    grant(operator, "accesscontrol.change_accesspoint", partitions=[partition])

    response = issue(client_for(operator), op="emergency_close", access_point=point.pk)

    assert response.status_code == 403
    assert not AccessPoint.objects.get().lockdown
    assert not DeviceCommand.objects.exists()
    assert not AuditEvent.objects.exists()


def test_a_zone_reaching_doors_of_another_partition_is_a_403(partition, other_partition):
    zone = make_zone(partition=partition)
    make_access_point(partition=partition, zones=[zone])
    make_access_point(partition=other_partition, zones=[zone])
    client = client_with(
        "devices.add_devicecommand",
        "accesscontrol.view_zone",
        "accesscontrol.change_zone",
        "accesscontrol.change_accesspoint",
        partitions=[partition],
    )

    response = issue(client, op="emergency_close", zone=zone.pk)

    assert response.status_code == 403
    assert not Zone.objects.get().lockdown


def test_a_zone_lockdown_needs_the_right_to_change_the_zone(partition):
    zone = make_zone(partition=partition)
    make_access_point(partition=partition, zones=[zone])
    client = client_with(
        "devices.add_devicecommand",
        "accesscontrol.view_zone",
        "accesscontrol.change_accesspoint",
        partitions=[partition],
    )

    opened = issue(client, op="open", zone=zone.pk)
    closed = issue(client, op="emergency_close", zone=zone.pk)

    assert (opened.status_code, closed.status_code) == (201, 403)
    assert not Zone.objects.get().lockdown


def test_a_site_lockdown_needs_the_right_to_change_the_site_settings():
    make_access_point()
    client = client_with("devices.add_devicecommand", "accesscontrol.change_accesspoint", all_partitions=True)

    response = issue(client, op="emergency_close", site=True)

    assert response.status_code == 403
    assert not SiteSettings.load().lockdown


def test_timed_mode_needs_a_time_period(api_admin):
    point = make_access_point(timed_period=make_time_period())

    response = issue(api_admin, op="set_mode", access_point=point.pk, mode="timed")

    assert response.status_code == 201
    assert AccessPoint.objects.get().opening_mode == "timed"


# --- schema -----------------------------------------------------------------------------------


def test_the_schema_has_the_device_endpoints_and_no_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))

    schema = (tmp_path / "schema.yml").read_text()
    for path in ("/api/v1/devices/{id}/rekey/", "/api/v1/device-commands/", "/api/v1/commands/"):
        assert path in schema
