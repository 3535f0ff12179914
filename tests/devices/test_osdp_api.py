"""API v1 for OSDP: /osdp-buses/, /osdp-readers/ (create commissions; the key never in an answer), /alarms/ with
its acknowledge action; access points' PIN alone and held-open time; doors' wiring on /devices/."""

import datetime as dt

import pytest
from django.utils import timezone

from accesscontrol.models import AuditEvent, SystemAuditEntry
from devices.models import Alarm, Device, DeviceDoor, OsdpBus, OsdpReader
from tests.devices.osdp_support import make_alarm, make_bus, make_osdp_reader
from tests.factories import make_access_point, make_partition
from tests.support.api import client_with

pytestmark = pytest.mark.django_db


def commission(client, on_bus, **fields):
    payload = {"name": "Front reader", "bus": on_bus.pk, "address": 1, **fields}
    return client.post("/api/v1/osdp-readers/", payload, format="json")


# --- buses ------------------------------------------------------------------------------------------


def test_a_bus_is_created_and_listed_with_its_readers_and_live_state(api_admin):
    response = api_admin.post(
        "/api/v1/osdp-buses/", {"name": "Lobby line", "port": "rfc2217://192.0.2.7:4001"}, format="json"
    )

    assert response.status_code == 201, response.json()
    bus = OsdpBus.objects.get()
    reader = make_osdp_reader(bus)
    body = api_admin.get(f"/api/v1/osdp-buses/{bus.pk}/").json()
    assert body | {"updated_at": None} == {
        "id": bus.pk,
        "name": "Lobby line",
        "port": "rfc2217://192.0.2.7:4001",
        "baud": 115200,
        "enabled": True,
        "description": "",
        "online": False,
        "last_error": "",
        "updated_at": None,
        "readers": [reader.pk],
    }


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"port": "COM1"}, "port"),
        ({"port": "socket://192.0.2.7"}, "port"),
        ({"port": ""}, "port"),
        ({"baud": 1200}, "baud"),
        ({"name": ""}, "name"),
    ],
)
def test_a_bad_bus_is_a_400_naming_the_field(api_admin, payload, field):
    response = api_admin.post("/api/v1/osdp-buses/", {"name": "Line", "port": "/dev/ttyUSB0", **payload}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert not OsdpBus.objects.exists()


def test_the_live_state_of_a_bus_is_read_only(api_admin):
    bus = make_bus()

    response = api_admin.patch(f"/api/v1/osdp-buses/{bus.pk}/", {"online": True, "last_error": "x"}, format="json")

    assert response.status_code == 200
    bus.refresh_from_db()
    assert (bus.online, bus.last_error) == (False, "")


def test_a_bus_with_readers_is_not_deleted(api_admin):
    bus = make_bus()
    make_osdp_reader(bus)

    response = api_admin.delete(f"/api/v1/osdp-buses/{bus.pk}/")

    assert response.status_code == 409
    assert OsdpBus.objects.exists()


# --- readers ----------------------------------------------------------------------------------------


def test_creating_a_reader_commissions_it_with_an_id_and_a_key_never_shown(api_admin):
    bus = make_bus()
    front = make_access_point(name="Front")
    Device.objects.create(device_id=500, name="Controller", kind="control_unit")

    response = commission(
        api_admin,
        bus,
        card_format="h10301",
        doors=[{"number": 1, "access_point": front.pk, "relay": 0, "contact": 1, "rex": 2}],
        readers=[{"number": 1, "access_point": front.pk, "direction": "entry"}],
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    device = Device.objects.get(kind="osdp_reader")
    assert (body["id"], body["device_id"], body["has_key"], body["kind"]) == (device.pk, 501, True, "osdp_reader")
    assert (body["key_set_at"], body["secure"]) == (None, False)
    assert body["doors"][0] | {"id": None} == {
        "id": None,
        "number": 1,
        "access_point": front.pk,
        "relay": 0,
        "contact": 1,
        "rex": 2,
        "contact_open_when_active": True,
    }
    assert body["readers"][0]["direction"] == "entry"
    key = device.key().hex()
    for answer in (
        response,
        api_admin.get(f"/api/v1/osdp-readers/{device.pk}/"),
        api_admin.get("/api/v1/osdp-readers/"),
    ):
        assert key not in answer.content.decode().lower()
    assert "key" not in body
    assert SystemAuditEntry.objects.get().action == "create"


def test_what_a_reader_reports_cannot_be_written(api_admin):
    device = make_osdp_reader()

    response = api_admin.patch(
        f"/api/v1/osdp-readers/{device.pk}/",
        {"secure": True, "key_set_at": "2030-01-01T00:00:00Z", "serial_number": "X", "device_id": 9, "online": True},
        format="json",
    )

    assert response.status_code == 200
    reader = OsdpReader.objects.select_related("device").get()
    assert (reader.secure, reader.key_set_at, reader.serial_number) == (False, None, "")
    assert (reader.device.device_id, reader.device.online) == (device.device_id, False)
    assert not SystemAuditEntry.objects.filter(action="update").exists()


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"address": 127}, "address"),
        ({"address": -1}, "address"),
        ({"address": "one"}, "address"),
        ({"kind": "control_unit"}, "kind"),
        ({"card_format": "h1"}, "card_format"),
        ({"bus": 999999}, "bus"),
        ({"name": ""}, "name"),
        ({"doors": [{"number": 1, "access_point": None}]}, "doors"),
        ({"doors": [{"number": 1, "relay": 300}]}, "doors"),
        ({"readers": [{"number": 1, "direction": "up"}]}, "readers"),
        ({"key": "00112233445566778899aabbccddeeff"}, None),
    ],
)
def test_bad_input_is_a_400_with_field_errors(api_admin, fields, error):
    bus = make_bus()
    point = make_access_point()
    for relation in ("doors", "readers"):
        for item in fields.get(relation, ()):
            item.setdefault("access_point", point.pk)

    response = commission(api_admin, bus, **fields)

    if error is None:  # an unknown field is ignored: a key cannot be given
        assert response.status_code == 201
        assert Device.objects.get().key().hex() != fields["key"]
        return
    assert response.status_code == 400, response.json()
    assert error in response.json()
    assert not Device.objects.exists()


def test_a_taken_address_is_a_400_on_address(api_admin):
    bus = make_bus()
    make_osdp_reader(bus, address=4)

    response = commission(api_admin, bus, name="Second", address=4)

    assert response.status_code == 400
    assert "is taken by" in response.json()["address"][0]


def test_a_reader_is_renamed_and_moved_and_deleted_with_its_device(api_admin):
    device = make_osdp_reader(point=make_access_point())
    other = make_bus()

    patched = api_admin.patch(
        f"/api/v1/osdp-readers/{device.pk}/", {"name": "Renamed", "bus": other.pk, "address": 9}, format="json"
    )
    deleted = api_admin.delete(f"/api/v1/osdp-readers/{device.pk}/")

    assert patched.status_code == 200, patched.json()
    assert (patched.json()["name"], patched.json()["bus"], patched.json()["address"]) == ("Renamed", other.pk, 9)
    assert len(patched.json()["doors"]) == 1
    assert deleted.status_code == 204
    assert not Device.objects.exists() and not DeviceDoor.objects.exists()


def test_rekey_seals_a_new_key_and_shows_none(api_admin):
    device = make_osdp_reader()
    OsdpReader.objects.update(key_set_at=timezone.now(), secure=True)
    old = device.key()

    response = api_admin.post(f"/api/v1/osdp-readers/{device.pk}/rekey/")

    assert response.status_code == 200
    device.refresh_from_db()
    assert device.key() != old
    assert device.key().hex() not in response.content.decode()
    assert (response.json()["key_set_at"], response.json()["secure"]) == (None, False)


def test_an_osdp_device_is_neither_created_nor_rekeyed_nor_changed_as_an_sdp1_device(api_admin):
    device = make_osdp_reader()

    created = api_admin.post("/api/v1/devices/", {"device_id": 77, "name": "R", "kind": "osdp_reader"}, format="json")
    rekeyed = api_admin.post(f"/api/v1/devices/{device.pk}/rekey/", {}, format="json")
    changed = api_admin.patch(f"/api/v1/devices/{device.pk}/", {"kind": "control_unit"}, format="json")

    assert (created.status_code, rekeyed.status_code, changed.status_code) == (400, 400, 400)
    assert list(created.json()) == ["kind"] and list(changed.json()) == ["kind"]
    assert "never shown" in rekeyed.json()["non_field_errors"][0]


def test_osdp_readers_need_their_own_permissions():
    bus = make_bus()
    viewer = client_with("devices.view_osdpreader", "devices.view_osdpbus")

    assert viewer.get("/api/v1/osdp-readers/").status_code == 200
    assert commission(viewer, bus).status_code == 403
    assert not Device.objects.exists()


def test_sdp1_doors_carry_their_wiring_through_devices(api_admin):
    point = make_access_point()
    response = api_admin.post(
        "/api/v1/devices/",
        {
            "device_id": 3001,
            "name": "Unit",
            "kind": "control_unit",
            "doors": [{"number": 1, "access_point": point.pk, "relay": 2, "contact": 3, "rex": None}],
            "readers": [{"number": 1, "access_point": point.pk, "direction": "exit"}],
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    assert (response.json()["doors"][0]["relay"], response.json()["readers"][0]["direction"]) == (2, "exit")
    door = DeviceDoor.objects.get()
    assert (door.relay, door.contact, door.rex) == (2, 3, None)


# --- alarms -----------------------------------------------------------------------------------------


def test_alarms_are_listed_and_filtered(api_admin):
    now = timezone.now()
    lobby, dock = make_access_point(name="Lobby"), make_access_point(name="Dock")
    forced = make_alarm(lobby, raised_at=now)
    held = make_alarm(dock, kind="held_open", raised_at=now - dt.timedelta(minutes=1), cleared_at=now)
    seen = make_alarm(dock, kind="tamper", raised_at=now - dt.timedelta(minutes=2), acknowledged_at=now)

    def ids(**query):
        response = api_admin.get("/api/v1/alarms/", query)
        assert response.status_code == 200
        return [row["id"] for row in response.json()["results"]]

    assert ids() == [forced.pk, held.pk, seen.pk]
    assert ids(open="true") == [forced.pk, held.pk]
    assert ids(acknowledged="true") == [seen.pk]
    assert ids(cleared="true") == [held.pk]
    assert ids(kind=["forced", "tamper"]) == [forced.pk, seen.pk]
    assert ids(access_point=dock.pk) == [held.pk, seen.pk]
    row = api_admin.get(f"/api/v1/alarms/{forced.pk}/").json()
    assert (row["kind"], row["access_point_name"], row["acknowledged_by_name"]) == ("forced", "Lobby", "")


@pytest.mark.parametrize("query", [{"kind": "fire"}, {"access_point": "x"}, {"raised_after": "y"}])
def test_a_bad_filter_is_a_400(api_admin, query):
    assert api_admin.get("/api/v1/alarms/", query).status_code == 400


def test_an_alarm_is_acknowledged_once_then_409(partition):
    alarm = make_alarm(make_access_point(partition=partition))
    guard = client_with("devices.view_alarm", "devices.acknowledge_alarm", partitions=[partition])

    first = guard.post(f"/api/v1/alarms/{alarm.pk}/acknowledge/", {"note": "Checked on camera"}, format="json")
    second = guard.post(f"/api/v1/alarms/{alarm.pk}/acknowledge/", {}, format="json")

    assert first.status_code == 200, first.json()
    assert first.json()["note"] == "Checked on camera" and first.json()["acknowledged_at"]
    assert second.status_code == 409
    assert "acknowledged already" in second.json()["detail"]
    assert AuditEvent.objects.filter(kind="alarm_acknowledged").count() == 1


def test_acknowledging_needs_the_permission_in_the_alarms_partition(partition, other_partition):
    alarm = make_alarm(make_access_point(partition=partition))
    watcher = client_with("devices.view_alarm", partitions=[partition])
    elsewhere = client_with("devices.view_alarm", "devices.acknowledge_alarm", partitions=[other_partition])

    refused = watcher.post(f"/api/v1/alarms/{alarm.pk}/acknowledge/", {}, format="json")
    hidden = elsewhere.post(f"/api/v1/alarms/{alarm.pk}/acknowledge/", {}, format="json")

    assert (refused.status_code, hidden.status_code) == (403, 404)
    assert Alarm.objects.get().acknowledged_at is None
    assert not SystemAuditEntry.objects.exists()


def test_a_note_too_long_is_a_400(api_admin):
    alarm = make_alarm(make_access_point())

    response = api_admin.post(f"/api/v1/alarms/{alarm.pk}/acknowledge/", {"note": "x" * 201}, format="json")

    assert response.status_code == 400 and list(response.json()) == ["note"]
    assert Alarm.objects.get().acknowledged_at is None


# --- access points ----------------------------------------------------------------------------------


def test_an_access_point_takes_pin_alone_and_a_held_open_time(api_admin):
    partition = make_partition()
    response = api_admin.post(
        "/api/v1/access-points/",
        {"name": "Keypad door", "partition": partition.pk, "pin_only": True, "held_open_time": 45},
        format="json",
    )
    make_access_point(name="Plain")

    assert response.status_code == 201, response.json()
    assert (response.json()["pin_only"], response.json()["held_open_time"]) == (True, 45)
    names = [row["name"] for row in api_admin.get("/api/v1/access-points/", {"pin_only": "true"}).json()["results"]]
    assert names == ["Keypad door"]
    timed = api_admin.get("/api/v1/access-points/", {"held_open_time": 45}).json()["results"]
    assert [row["name"] for row in timed] == ["Keypad door"]
    too_long = api_admin.patch(f"/api/v1/access-points/{response.json()['id']}/", {"held_open_time": -1}, format="json")
    assert too_long.status_code == 400 and list(too_long.json()) == ["held_open_time"]
