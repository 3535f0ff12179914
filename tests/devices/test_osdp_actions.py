"""OSDP actions: buses (their port checked), commissioning readers with an id and a sealed key of their own,
their settings, doors' wiring and new keys; each recorded once in the system auditor."""

import pytest
from django.core.exceptions import ValidationError

from accesscontrol.models import SystemAuditEntry
from devices import actions
from devices.models import Device, DeviceDoor, DeviceReader, OsdpBus, OsdpReader
from tests.devices.osdp_support import make_bus, make_osdp_reader
from tests.factories import make_access_point, make_operator

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin():
    return make_operator(username="root", is_superuser=True)


def commission(bus, address=1, *, name="Front reader", kind="osdp_reader", operator=None, **kwargs) -> Device:
    reader = OsdpReader(bus=bus, address=address, card_format=kwargs.pop("card_format", "auto"))
    device = Device(name=name, kind=kind)
    return actions.commission_osdp_reader(device, reader, operator=operator, via="api", **kwargs)


# --- buses -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "port",
    [
        "/dev/ttyUSB0",
        "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0",
        "socket://10.0.0.5:4001",
        "socket://converter.example:4001",
        "rfc2217://10.0.0.5:4001",
        "rfc2217://[2001:db8::5]:4001",
        "loop://",
        " /dev/ttyS1 ",
    ],
)
def test_a_bus_is_created_on_a_serial_port_or_a_pyserial_url_and_recorded(admin, port):
    bus = actions.create_osdp_bus(name="Lobby line", port=port, baud=9600, operator=admin, via="api")

    stored = OsdpBus.objects.get()
    assert (stored, stored.port, stored.baud) == (bus, port.strip(), 9600)
    [row] = SystemAuditEntry.objects.all()
    assert (row.action, row.object_type, row.operator_name, row.detail["port"]) == (
        "create",
        "devices.osdpbus",
        "root",
        port.strip(),
    )


@pytest.mark.parametrize(
    ("port", "says"),
    [
        ("", "neither a serial device"),
        ("COM3", "neither a serial device"),
        ("http://10.0.0.5:4001", "neither a serial device"),
        ("socket://10.0.0.5", "takes a host and a TCP port"),
        ("socket://:4001", "takes a host and a TCP port"),
        ("socket://10.0.0.5:99999", "no valid TCP port"),
        ("rfc2217://10.0.0.5:4001/path", "takes a host and a TCP port"),
        ("/dev/../etc/passwd", "no serial device path"),
        ("/var/run/tty", "no serial device path"),
        ("/dev/tty USB0", "no serial device path"),
        ("loop://host", "takes no host"),
    ],
)
def test_a_port_that_cannot_be_opened_is_a_clear_error_on_the_port(admin, port, says):
    with pytest.raises(ValidationError) as refused:
        actions.create_osdp_bus(name="Lobby line", port=port, operator=admin, via="api")

    assert list(refused.value.message_dict) == ["port"]
    assert says in refused.value.message_dict["port"][0]
    assert not OsdpBus.objects.exists()
    assert not SystemAuditEntry.objects.exists()


def test_a_bus_with_an_unknown_speed_or_a_taken_name_is_refused(admin):
    make_bus(name="Taken")

    with pytest.raises(ValidationError) as speed:
        actions.create_osdp_bus(name="Other", port="/dev/ttyUSB0", baud=1234, operator=admin, via="api")
    with pytest.raises(ValidationError) as name:
        actions.create_osdp_bus(name="Taken", port="/dev/ttyUSB0", operator=admin, via="api")

    assert list(speed.value.message_dict) == ["baud"]
    assert list(name.value.message_dict) == ["name"]


def test_an_update_records_what_changed_and_nothing_when_nothing_did(admin):
    bus = make_bus(name="Line", port="/dev/ttyUSB0")

    actions.update_osdp_bus(bus, port="socket://10.0.0.9:4001", baud=38400, operator=admin, via="web")
    actions.update_osdp_bus(bus, port="socket://10.0.0.9:4001", operator=admin, via="web")

    bus.refresh_from_db()
    assert (bus.port, bus.baud) == ("socket://10.0.0.9:4001", 38400)
    [row] = SystemAuditEntry.objects.all()
    assert row.detail == {
        "changes": {
            "port": {"from": "/dev/ttyUSB0", "to": "socket://10.0.0.9:4001"},
            "baud": {"from": 115200, "to": 38400},
        }
    }


def test_an_update_to_a_bad_port_changes_nothing(admin):
    bus = make_bus(port="/dev/ttyUSB0")

    with pytest.raises(ValidationError):
        actions.update_osdp_bus(bus, port="telnet://10.0.0.9:23", operator=admin, via="web")

    bus.refresh_from_db()
    assert bus.port == "/dev/ttyUSB0"
    assert not SystemAuditEntry.objects.exists()


# --- commissioning ------------------------------------------------------------------------------------


def test_commissioning_gives_the_next_free_device_id_and_a_sealed_key_never_returned(admin):
    Device.objects.create(device_id=4660, name="Controller", kind="control_unit")
    bus = make_bus()
    front = make_access_point(name="Front")

    device = commission(
        bus,
        3,
        operator=admin,
        card_format="h10301",
        doors=[{"access_point": front, "relay": 1, "contact": 0, "rex": 1, "contact_open_when_active": False}],
        readers=[{"access_point": front, "direction": "entry"}],
    )

    stored = Device.objects.get(pk=device.pk)
    assert (stored.device_id, stored.kind, stored.has_key) == (4661, "osdp_reader", True)
    key = stored.key()
    assert len(key) == 16 and key not in bytes(stored.key_sealed)
    reader = OsdpReader.objects.get()
    assert (reader.device, reader.bus, reader.address, reader.card_format) == (stored, bus, 3, "h10301")
    assert (reader.key_set_at, reader.secure) == (None, False)
    door = DeviceDoor.objects.get()
    assert (door.number, door.access_point, door.relay, door.contact, door.rex, door.contact_open_when_active) == (
        1,
        front,
        1,
        0,
        1,
        False,
    )
    assert list(DeviceReader.objects.values_list("number", "access_point", "direction")) == [(1, front.pk, "entry")]
    [row] = SystemAuditEntry.objects.all()
    assert (row.action, row.object_type, row.object_id, row.via) == (
        "commission_osdp_reader",
        "devices.osdpreader",
        str(device.pk),
        "api",
    )
    assert row.detail["device_id"] == 4661 and row.detail["key"] == "generated"
    assert (row.detail["doors"], row.detail["readers"]) == ({"1": front.pk}, {"1": front.pk})
    assert key.hex() not in str(row.detail)


def test_the_first_device_gets_id_1_and_the_next_one_2(admin):
    bus = make_bus()

    first, second = commission(bus, 1, name="One"), commission(bus, 2, name="Two")

    assert (first.device_id, second.device_id) == (1, 2)
    assert first.key() != second.key()


def test_an_address_taken_on_the_bus_is_refused_with_who_has_it(admin):
    bus = make_bus()
    commission(bus, 5, name="Front reader")

    with pytest.raises(ValidationError) as refused:
        commission(bus, 5, name="Back reader")
    elsewhere = commission(make_bus(), 5, name="Back reader")

    assert refused.value.message_dict == {"address": ["Address 5 on this bus is taken by Front reader."]}
    assert OsdpReader.objects.filter(address=5).count() == 2
    assert elsewhere.osdp.address == 5


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"kind": "control_unit"}, "kind"),
        ({"address": 127}, "address"),
        ({"card_format": "h99999"}, "card_format"),
        ({"name": ""}, "name"),
        ({"doors": [{"access_point": None, "relay": 1}]}, "doors"),
        ({"doors": [{"relay": 256}]}, "doors"),
        ({"doors": [{"contact": 2, "rex": 2}]}, "doors"),
        ({"readers": [{"direction": "sideways"}]}, "readers"),
    ],
)
def test_what_a_reader_cannot_be_is_a_field_error_and_nothing_is_stored(admin, fields, error):
    bus = make_bus()
    point = make_access_point()
    for relation in ("doors", "readers"):
        for item in fields.get(relation, ()):
            item.setdefault("access_point", point)
    name = fields.pop("name", "Front reader")
    kind = fields.pop("kind", "osdp_reader")
    address = fields.pop("address", 1)
    card_format = fields.pop("card_format", "auto")

    with pytest.raises((ValidationError, ValueError)) as refused:
        commission(bus, address, name=name, kind=kind, card_format=card_format, **fields)

    if isinstance(refused.value, ValidationError):
        assert error in refused.value.message_dict
    assert not Device.objects.exists()
    assert not SystemAuditEntry.objects.exists()


def test_every_error_is_reported_at_once():
    bus = make_bus()
    make_osdp_reader(bus, address=1)

    with pytest.raises(ValidationError) as refused:
        commission(bus, 1, name="", kind="gateway")

    assert set(refused.value.message_dict) == {"name", "kind", "address"}


def test_a_door_another_device_drives_is_refused(admin):
    front = make_access_point(name="Front")
    make_osdp_reader(point=front)

    with pytest.raises(ValidationError) as refused:
        commission(make_bus(), 1, name="Second", doors=[{"access_point": front}])

    assert "doors" in refused.value.message_dict


def test_an_osdp_device_is_not_commissioned_as_an_sdp1_device(admin):
    with pytest.raises(ValidationError) as refused:
        actions.commission_device(Device(device_id=9, name="R", kind="osdp_reader"), operator=admin, via="api")

    assert list(refused.value.message_dict) == ["kind"]


# --- settings, keys, wiring ---------------------------------------------------------------------------


def test_an_update_moves_the_reader_and_records_each_change_on_the_reader(admin):
    front, side = make_access_point(name="Front"), make_access_point(name="Side")
    device = make_osdp_reader(point=front, address=7)
    reader, other_bus = device.osdp, make_bus(name="Basement line")
    reader.bus, reader.address, reader.card_format = other_bus, 9, "c1k35"
    reader.device.name = "Moved reader"

    actions.update_osdp_reader(
        reader,
        doors=[{"access_point": side, "relay": 2, "contact": 3}],
        readers=[{"access_point": side, "direction": "exit"}],
        operator=admin,
        via="web",
    )

    stored = OsdpReader.objects.select_related("device").get()
    assert (stored.bus, stored.address, stored.card_format, stored.device.name) == (
        other_bus,
        9,
        "c1k35",
        "Moved reader",
    )
    assert stored.device.device_id == device.device_id and stored.device.key() == device.key()
    [row] = SystemAuditEntry.objects.filter(action="update")
    assert row.object_type == "devices.osdpreader"
    changes = row.detail["changes"]
    assert set(changes) == {"name", "bus", "address", "card_format", "doors", "readers", "wiring"}
    assert changes["address"] == {"from": 7, "to": 9}
    assert changes["wiring"]["to"] == [
        "door 1: relay 2, contact 3 (open when active), exit button none",
        "reader 1: exit",
    ]


def test_an_update_that_changes_nothing_records_nothing(admin):
    reader = make_osdp_reader(point=make_access_point()).osdp

    actions.update_osdp_reader(reader, operator=admin, via="web")

    assert not SystemAuditEntry.objects.filter(action="update").exists()


def test_an_osdp_device_stays_on_osdp(admin):
    device = make_osdp_reader()
    sdp = Device.objects.create(device_id=99999, name="Controller", kind="control_unit")
    device.kind = "control_unit"
    sdp.kind = "osdp_io"

    for changed in (device, sdp):
        with pytest.raises(ValidationError) as refused:
            actions.update_device(changed, operator=admin, via="api")
        assert list(refused.value.message_dict) == ["kind"]
    assert Device.objects.get(pk=device.pk).kind == "osdp_reader"


def test_a_new_key_is_sealed_never_returned_and_the_reader_must_take_it_again(admin):
    device = make_osdp_reader()
    OsdpReader.objects.filter(pk=device.pk).update(key_set_at="2030-01-01T00:00:00Z", secure=True)
    reader = OsdpReader.objects.select_related("device").get()
    old = device.key()

    result = actions.rekey_osdp_reader(reader, operator=admin, via="admin")

    assert result is None
    reader.refresh_from_db()
    reader.device.refresh_from_db()
    assert reader.device.key() != old
    assert (reader.key_set_at, reader.secure) == (None, False)
    [row] = SystemAuditEntry.objects.filter(action="rekey_osdp_reader")
    assert reader.device.key().hex() not in str(row.detail)


def test_an_osdp_device_gets_no_shown_key_through_rekey_device(admin):
    device = make_osdp_reader()
    old = device.key()

    with pytest.raises(ValidationError):
        actions.rekey_device(device, operator=admin, via="api")

    device.refresh_from_db()
    assert device.key() == old


def test_decommissioning_removes_the_device_its_doors_and_readers(admin):
    device = make_osdp_reader(point=make_access_point())
    pk = device.pk

    actions.decommission_osdp_reader(device.osdp, operator=admin, via="api")

    assert not Device.objects.exists() and not OsdpReader.objects.exists()
    assert not DeviceDoor.objects.exists() and not DeviceReader.objects.exists()
    [row] = SystemAuditEntry.objects.filter(action="delete")
    assert (row.object_type, row.object_id) == ("devices.osdpreader", str(pk))


def test_a_doors_wiring_is_changed_and_recorded_on_its_device(admin):
    device = make_osdp_reader(point=make_access_point())
    door = DeviceDoor.objects.get()

    actions.update_door_wiring(
        door, relay=1, contact=0, rex=1, contact_open_when_active=False, operator=admin, via="web"
    )

    door.refresh_from_db()
    assert (door.relay, door.contact, door.rex, door.contact_open_when_active) == (1, 0, 1, False)
    [row] = SystemAuditEntry.objects.filter(action="update")
    assert (row.object_type, row.object_id) == ("devices.device", str(device.pk))
    assert row.detail["changes"]["wiring"] == {
        "from": "default",
        "to": "door 1: relay 1, contact 0 (closed when active), exit button 1",
    }


def test_a_contact_and_exit_button_on_one_input_is_refused(admin):
    make_osdp_reader(point=make_access_point())
    door = DeviceDoor.objects.get()

    with pytest.raises(ValidationError) as refused:
        actions.update_door_wiring(
            door, relay=0, contact=4, rex=4, contact_open_when_active=True, operator=admin, via="web"
        )

    assert "different inputs" in str(refused.value.message_dict["doors"])
    door.refresh_from_db()
    assert door.contact is None
