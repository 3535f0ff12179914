"""Devices in the admin: the key shown once, doors and readers inline, live status and commands read-only."""

import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from accesscontrol.models import SystemAuditEntry
from devices import commands
from devices.models import Device, DeviceCommand, DeviceDoor, DeviceReader
from tests.factories import make_access_point, make_operator, make_partition

pytestmark = pytest.mark.django_db

KEY_HEX = "00112233445566778899aabbccddeeff"


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def messages_of(response) -> str:
    return " ".join(str(message) for message in get_messages(response.wsgi_request))


def device_form(doors=(), readers=(), **fields) -> dict:
    data = {"device_id": "1001", "name": "Unit 1", "kind": "control_unit", "enabled": "on", **fields}
    # The OSDP reader part of the page (OSDP devices only), left empty.
    data |= {"osdp-TOTAL_FORMS": "0", "osdp-INITIAL_FORMS": "0"}
    for prefix, rows in (("doors", doors), ("readers", readers)):
        data |= {f"{prefix}-TOTAL_FORMS": str(len(rows)), f"{prefix}-INITIAL_FORMS": "0"}
        for index, (number, point) in enumerate(rows):
            data |= {f"{prefix}-{index}-number": str(number), f"{prefix}-{index}-access_point": str(point.pk)}
    return data


def make_device(device_id=1001, name="Unit 1") -> Device:
    device = Device(device_id=device_id, name=name, kind="control_unit")
    device.set_key()
    device.save()
    return device


def test_a_device_added_without_a_key_shows_its_generated_key_once(admin_client):
    front = make_access_point(name="Front")

    response = admin_client.post(url(Device, "add"), device_form(doors=[(1, front)], readers=[(1, front)]), follow=True)

    key = re.search(r"is ([0-9a-f]{32}) ", messages_of(response)).group(1)
    device = Device.objects.get()
    assert device.key() == bytes.fromhex(key)
    assert (DeviceDoor.objects.get().access_point, DeviceReader.objects.get().number) == (front, 1)
    assert key not in admin_client.get(url(Device, "change", device.pk)).content.decode()
    entry = SystemAuditEntry.objects.get()
    assert entry.action == "add" and key not in str(entry.detail)


def test_a_device_added_with_a_key_keeps_it_and_does_not_show_it(admin_client):
    response = admin_client.post(url(Device, "add"), device_form(key=KEY_HEX.upper()), follow=True)

    assert Device.objects.get().key() == bytes.fromhex(KEY_HEX)
    assert KEY_HEX not in messages_of(response).lower()


@pytest.mark.parametrize("key", ["00" * 15, "zz" * 16, "00" * 16 + "0"])
def test_a_key_that_is_not_32_hex_digits_is_a_form_error(admin_client, key):
    response = admin_client.post(url(Device, "add"), device_form(key=key))

    assert response.status_code == 200
    assert "key" in response.context["adminform"].form.errors
    assert not Device.objects.exists()


def test_generate_a_new_key_shows_each_new_key_once_and_records_it(admin_client):
    first, second = make_device(1, "One"), make_device(2, "Two")
    old = {first.pk: first.key(), second.pk: second.key()}

    response = admin_client.post(
        url(Device, "changelist"),
        {"action": "generate_new_key", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )

    shown = dict(re.findall(r"device id (\d+)\) is ([0-9a-f]{32})", messages_of(response)))
    for device in Device.objects.all():
        assert device.key() == bytes.fromhex(shown[str(device.device_id)]) != old[device.pk]
    assert set(SystemAuditEntry.objects.values_list("action", "via")) == {("rekey_device", "admin")}
    assert SystemAuditEntry.objects.count() == 2


def test_the_live_status_and_the_device_id_are_read_only(admin_client):
    device = make_device()

    admin_client.post(
        url(Device, "change", device.pk),
        device_form(device_id="77", name="Renamed", online="on", firmware="evil"),
    )

    device.refresh_from_db()
    assert (device.name, device.device_id, device.online, device.firmware) == ("Renamed", 1001, False, "")


def test_a_restricted_operator_cannot_map_a_door_to_an_access_point_they_cannot_see(client):
    mine, theirs = make_partition(), make_partition()
    hidden = make_access_point(partition=theirs)
    operator = make_operator(
        "devices.add_device",
        "devices.view_device",
        "devices.add_devicedoor",
        "accesscontrol.view_accesspoint",
        partitions=[mine],
        is_staff=True,
    )
    client.force_login(operator)

    response = client.post(url(Device, "add"), device_form(doors=[(1, hidden)]))

    assert response.status_code == 200
    assert "access_point" in response.context["inline_admin_formsets"][0].formset.errors[0]
    assert not Device.objects.exists()


def test_device_commands_are_read_only_in_the_admin(admin_client, admin_user):
    point = make_access_point(name="Front")
    device = make_device()
    DeviceDoor.objects.create(device=device, number=1, access_point=point)
    command = commands.remote_open(point, operator=admin_user, via="api").commands[0]

    listing = admin_client.get(url(DeviceCommand, "changelist"))
    add = admin_client.get(url(DeviceCommand, "add"))
    change = admin_client.post(url(DeviceCommand, "change", command.pk), {"status": "succeeded"})

    assert listing.status_code == 200 and b"Front" in listing.content
    assert (add.status_code, change.status_code) == (403, 403)
    assert DeviceCommand.objects.get().status == "queued"


def test_a_restricted_operator_sees_only_the_commands_of_their_partitions(client, admin_user):
    mine, theirs = make_partition(), make_partition()
    here, there = make_access_point(partition=mine, name="Here"), make_access_point(partition=theirs, name="There")
    device = make_device()
    DeviceDoor.objects.create(device=device, number=1, access_point=here)
    DeviceDoor.objects.create(device=device, number=2, access_point=there)
    commands.remote_open(here, operator=admin_user, via="api")
    commands.remote_open(there, operator=admin_user, via="api")
    client.force_login(make_operator("devices.view_devicecommand", partitions=[mine], is_staff=True))

    response = client.get(url(DeviceCommand, "changelist"))

    assert [command.access_point for command in response.context["cl"].result_list] == [here]


def test_a_door_moved_in_the_admin_is_saved_and_recorded_once_by_the_action(admin_client):
    front, side = make_access_point(name="Front"), make_access_point(name="Side")
    device = make_device()
    door = DeviceDoor.objects.create(device=device, number=1, access_point=front)
    form = device_form(name="Unit 1", kind="control_unit", description="", station="")
    del form["device_id"]
    form |= {
        "doors-INITIAL_FORMS": "1",
        "doors-TOTAL_FORMS": "1",
        "doors-0-id": str(door.pk),
        "doors-0-device": str(device.pk),
        "doors-0-number": "1",
        "doors-0-access_point": str(side.pk),
    }

    response = admin_client.post(url(Device, "change", device.pk), form)

    assert response.status_code == 302
    assert list(DeviceDoor.objects.values_list("number", "access_point")) == [(1, side.pk)]
    [entry] = SystemAuditEntry.objects.all()
    assert (entry.action, entry.via) == ("update", "admin")
    assert entry.detail == {"changes": {"doors": {"from": [f"1: {front.pk}"], "to": [f"1: {side.pk}"]}}}
