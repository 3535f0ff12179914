"""``manage.py commission_device``: a device with its key (printed once when generated), doors and readers."""

import io
import re

import pytest
from django.core.management import CommandError, call_command

from accesscontrol.models import AccessPoint, SiteSettings, SystemAuditEntry
from devices import commands
from devices.models import Device, DeviceDoor, DeviceReader
from tests.factories import make_access_point

pytestmark = pytest.mark.django_db

KEY_HEX = "00112233445566778899aabbccddeeff"


def commission(*args) -> str:
    out = io.StringIO()
    call_command("commission_device", *args, stdout=out)
    return out.getvalue()


def printed_key(output: str) -> str:
    return re.search(r"Device key \(not shown again\): ([0-9a-f]{32})$", output.strip()).group(1)


def test_it_commissions_a_device_with_a_generated_key_printed_once():
    front, side = make_access_point(name="Front door"), make_access_point(name="Side door")

    output = commission(
        "--device-id", "1001", "--kind", "control_unit", "--name", "Unit 1",
        "--door", "1=Front door", "--door", f"2={side.pk}",
    )  # fmt: skip

    device = Device.objects.get()
    assert (device.device_id, device.name, device.kind, device.enabled) == (1001, "Unit 1", "control_unit", True)
    assert device.key() == bytes.fromhex(printed_key(output))
    assert output.count(printed_key(output)) == 1
    assert sorted(DeviceDoor.objects.values_list("number", "access_point")) == [(1, front.pk), (2, side.pk)]
    assert sorted(DeviceReader.objects.values_list("number", "access_point")) == [(1, front.pk), (2, side.pk)]
    entry = SystemAuditEntry.objects.get()
    assert (entry.action, entry.via, entry.object_id) == ("commission_device", "command", str(device.pk))
    assert entry.detail == {"doors": {"1": front.pk, "2": side.pk}, "key": "generated"}


def test_a_given_key_is_stored_and_not_printed():
    output = commission("--device-id", "7", "--kind", "updater", "--name", "Lobby updater", "--key", KEY_HEX.upper())

    assert Device.objects.get().key() == bytes.fromhex(KEY_HEX)
    assert KEY_HEX not in output.lower()
    assert "Device key" not in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--key", "00" * 15], "32 hex digits"),
        (["--key", "zz" * 16], "32 hex digits"),
        (["--door", "1=Nowhere"], 'no access point named "Nowhere"'),
        (["--door", "1=999999"], "no access point"),
        (["--door", "Front door"], "NUMBER=ACCESS_POINT"),
        (["--door", "x=Front door"], "NUMBER=ACCESS_POINT"),
        (["--door", "0=Front door"], "A door number is 1 to"),
        (["--door", "1=Front door", "--door", "1=Side door"], "Each door number may appear once"),
        (["--door", "1=Front door", "--door", "2=Front door"], "one door only"),
    ],
)
def test_bad_input_is_a_clear_error_and_commissions_nothing(args, message):
    make_access_point(name="Front door")
    make_access_point(name="Side door")

    with pytest.raises(CommandError, match=message):
        commission("--device-id", "5", "--kind", "control_unit", "--name", "Unit", *args)

    assert not Device.objects.exists()
    assert not SystemAuditEntry.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device-id", "1", "--name", "Other"], "--device-id: Device with this Device id already exists"),
        (["--device-id", "2", "--name", "Unit 1"], "--name: Device with this Name already exists"),
        (["--device-id", "0", "--name", "Other"], "--device-id"),
        (["--device-id", str(2**32), "--name", "Other"], "--device-id"),
    ],
)
def test_a_duplicate_or_out_of_range_device_is_refused(args, message):
    commission("--device-id", "1", "--kind", "gateway", "--name", "Unit 1")

    with pytest.raises(CommandError, match=message):
        commission("--kind", "gateway", *args)

    assert Device.objects.count() == 1


def test_an_access_point_driven_by_another_device_is_refused():
    make_access_point(name="Front door")
    commission("--device-id", "1", "--kind", "control_unit", "--name", "Unit 1", "--door", "1=Front door")

    with pytest.raises(CommandError, match='"Front door" is door 1 of "Unit 1" already'):
        commission("--device-id", "2", "--kind", "control_unit", "--name", "Unit 2", "--door", "3=Front door")

    assert Device.objects.count() == 1


def test_commissioning_needs_a_kind_and_a_name():
    with pytest.raises(CommandError, match="--kind and --name"):
        commission("--device-id", "1", "--name", "Unit 1")
    with pytest.raises(CommandError):
        commission("--device-id", "1", "--kind", "toaster", "--name", "Unit 1")


def test_rekey_prints_the_new_key_once():
    commission("--device-id", "1", "--kind", "control_unit", "--name", "Unit 1", "--key", KEY_HEX)

    output = commission("--device-id", "1", "--rekey")

    device = Device.objects.get()
    assert device.key() == bytes.fromhex(printed_key(output)) != bytes.fromhex(KEY_HEX)
    assert SystemAuditEntry.objects.latest("id").action == "rekey_device"


def test_rekey_with_a_given_key_does_not_print_it():
    commission("--device-id", "1", "--kind", "control_unit", "--name", "Unit 1")

    output = commission("--device-id", "1", "--rekey", "--key", KEY_HEX)

    assert Device.objects.get().key() == bytes.fromhex(KEY_HEX)
    assert KEY_HEX not in output


def test_rekey_refuses_an_unknown_device_and_other_options():
    commission("--device-id", "1", "--kind", "control_unit", "--name", "Unit 1")

    with pytest.raises(CommandError, match="no device with id 2"):
        commission("--device-id", "2", "--rekey")
    with pytest.raises(CommandError, match="leave out --name"):
        commission("--device-id", "1", "--rekey", "--name", "Renamed")

    assert Device.objects.get().name == "Unit 1"


# --- the demo site's devices --------------------------------------------------------------------


def test_the_demo_commissions_keyed_control_units_for_every_online_door():
    out = io.StringIO()
    call_command("seed_demo", stdout=out)

    online = set(AccessPoint.objects.filter(connection="online").values_list("pk", flat=True))
    driven = set(DeviceDoor.objects.values_list("access_point", flat=True))
    units = Device.objects.filter(kind__in=["control_unit", "updater"])
    assert online and driven == online
    assert set(DeviceReader.objects.values_list("device", "number", "access_point")) == set(
        DeviceDoor.objects.values_list("device", "number", "access_point")
    )
    assert all(len(unit.key()) == 16 for unit in units)
    assert len({unit.key() for unit in units}) == units.count()
    assert not any(unit.key().hex() in out.getvalue() for unit in units)
    # A simulator can now be driven: a site lockdown reaches every door a device drives.
    issued = commands.emergency_close(SiteSettings.load(), operator=None, via="command")
    assert issued.queued == len(online)
