"""Device actions: commissioning with the key sealed, door and reader mappings, new keys; each recorded once."""

import pytest
from django.core.exceptions import ValidationError

from accesscontrol.models import SystemAuditEntry
from devices import actions
from devices.models import Device, DeviceDoor, DeviceReader
from tests.factories import make_access_point, make_operator

pytestmark = pytest.mark.django_db

KEY = bytes.fromhex("00112233445566778899aabbccddeeff")


@pytest.fixture
def admin():
    return make_operator(username="root", is_superuser=True)


def commissioned(device_id=1001, name="Unit 1", **kwargs) -> Device:
    device = Device(device_id=device_id, name=name, kind="control_unit")
    actions.commission_device(device, operator=None, via="command", **kwargs)
    return device


def test_commissioning_seals_the_key_maps_doors_and_readers_and_records_no_key(admin):
    front = make_access_point(name="Front")
    device = Device(device_id=7, name="Unit 7", kind="control_unit")

    key = actions.commission_device(
        device,
        doors=[{"number": 1, "access_point": front}],
        readers=[{"number": 2, "access_point": front}],
        operator=admin,
        via="api",
    )

    stored = Device.objects.get()
    assert len(key) == 16 and stored.key() == key
    assert key not in bytes(stored.key_sealed)
    assert list(DeviceDoor.objects.values_list("number", "access_point")) == [(1, front.pk)]
    assert list(DeviceReader.objects.values_list("number", "access_point")) == [(2, front.pk)]
    [row] = SystemAuditEntry.objects.all()
    assert (row.action, row.operator_name, row.via, row.object_id) == (
        "commission_device",
        "root",
        "api",
        str(device.pk),
    )
    assert row.detail == {"doors": {"1": front.pk}, "key": "generated"}
    assert key.hex() not in str(row.detail)


def test_a_given_key_is_kept_and_recorded_as_given():
    device = commissioned(key=KEY)

    assert device.key() == KEY
    assert SystemAuditEntry.objects.get().detail == {"doors": {}, "key": "given"}


def test_an_access_point_another_device_drives_is_refused_and_nothing_is_saved():
    front = make_access_point(name="Front")
    commissioned(doors=[{"number": 1, "access_point": front}])

    with pytest.raises(ValidationError) as refused:
        commissioned(device_id=2, name="Unit 2", doors=[{"number": 3, "access_point": front}])

    assert refused.value.message_dict == {"doors": ['"Front" is door 1 of "Unit 1" already.']}
    assert list(Device.objects.values_list("device_id", flat=True)) == [1001]
    assert SystemAuditEntry.objects.count() == 1


def test_updating_the_doors_replaces_them_moves_updated_at_and_records_the_change(admin):
    front, side = make_access_point(name="Front"), make_access_point(name="Side")
    device = commissioned(doors=[{"number": 1, "access_point": front}])
    loaded_at = Device.objects.get().updated_at

    actions.update_device(device, doors=[{"number": 1, "access_point": side}], operator=admin, via="admin")

    assert list(device.doors.values_list("number", "access_point")) == [(1, side.pk)]
    # The device bridge reloads a device whose updated_at moved.
    assert Device.objects.get().updated_at > loaded_at
    row = SystemAuditEntry.objects.latest("id")
    assert (row.action, row.via) == ("update", "admin")
    assert row.detail == {"changes": {"doors": {"from": [f"1: {front.pk}"], "to": [f"1: {side.pk}"]}}}


def test_an_update_that_changes_nothing_is_not_recorded(admin):
    front = make_access_point()
    device = commissioned(doors=[{"number": 1, "access_point": front}])

    actions.update_device(device, doors=[{"number": 1, "access_point": front}], operator=admin, via="api")

    assert list(SystemAuditEntry.objects.values_list("action", flat=True)) == ["commission_device"]


def test_a_device_keeps_its_id(admin):
    device = commissioned()

    device.device_id = 2002
    with pytest.raises(ValidationError):
        actions.update_device(device, operator=admin, via="api")

    assert list(Device.objects.values_list("device_id", flat=True)) == [1001]


def test_rekeying_gives_a_new_key_and_records_it_without_the_key(admin):
    device = commissioned(key=KEY)

    new = actions.rekey_device(device, operator=admin, via="api")

    assert new != KEY and Device.objects.get().key() == new
    row = SystemAuditEntry.objects.latest("id")
    assert (row.action, row.detail) == ("rekey_device", {"device_id": 1001})
