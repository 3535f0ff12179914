"""The device pages of the web app: list with online state, detail with doors, commands and events, rename."""

import datetime as dt

import pytest
from django.utils import timezone

from accesscontrol.choices import AuditKind
from accesscontrol.models import AuditEvent
from devices.choices import CommandOp, CommandStatus
from devices.models import Device, DeviceCommand, DeviceDoor, DeviceReader
from tests.accesscontrol.web.places_helpers import client_with, page_text, queries_for, web_rows
from tests.factories import make_access_point, make_partition

pytestmark = pytest.mark.django_db

VIEW = ("devices.view_device", "accesscontrol.view_accesspoint")
CHANGE = (*VIEW, "devices.change_device")


def make_device(device_id: int, **fields) -> Device:
    fields.setdefault("name", f"Controller {device_id}")
    fields.setdefault("kind", "control_unit")
    return Device.objects.create(device_id=device_id, **fields)


def test_the_list_shows_state_last_seen_firmware_and_doors(partition):
    seen = timezone.now() - dt.timedelta(minutes=5)
    lobby = make_device(1, name="Lobby controller", online=True, last_seen_at=seen, firmware="2.4.1")
    make_device(2, name="Store lock", kind="offline_lock")
    DeviceDoor.objects.create(device=lobby, number=1, access_point=make_access_point(name="Lobby", partition=partition))
    client = client_with(*VIEW, partitions=[partition])

    response = client.get("/devices/")
    online = client.get("/devices/", {"online": "true"})

    text = page_text(response)
    assert [device.name for device in response.context["page_obj"]] == ["Lobby controller", "Store lock"]
    assert '<span class="badge badge-ok">Online</span>' in text
    assert '<span class="badge badge-danger">Offline</span>' in text
    assert "5\xa0minutes ago" in text
    assert "2.4.1" in text
    assert "1: Lobby" in text
    assert [device.name for device in online.context["page_obj"]] == ["Lobby controller"]


def test_doors_of_other_partitions_are_not_named(partition):
    device = make_device(1)
    DeviceDoor.objects.create(
        device=device, number=1, access_point=make_access_point(name="Vault", partition=partition)
    )
    client = client_with(*VIEW, partitions=[make_partition()])

    listed = client.get("/devices/")
    detail = client.get(f"/devices/{device.pk}/")

    assert "Vault" not in page_text(listed)
    assert "Vault" not in page_text(detail)
    assert "Another partition" in page_text(detail)


def test_the_detail_shows_doors_readers_commands_and_events(partition):
    device = make_device(1, door_states={"1": "closed"})
    lobby = make_access_point(name="Lobby", partition=partition)
    hidden = make_access_point(name="Vault", partition=make_partition())
    DeviceDoor.objects.create(device=device, number=1, access_point=lobby)
    DeviceReader.objects.create(device=device, number=2, access_point=lobby)
    mine = DeviceCommand.objects.create(
        device=device, op=CommandOp.OPEN, access_point=lobby, status=CommandStatus.FAILED, error="No answer"
    )
    DeviceCommand.objects.create(device=device, op=CommandOp.OPEN, access_point=hidden)
    AuditEvent.objects.create(
        at=timezone.now(), kind=AuditKind.DOOR_FORCED, access_point=lobby, access_point_name="Lobby", device=device
    )
    AuditEvent.objects.create(
        at=timezone.now(), kind=AuditKind.DOOR_FORCED, access_point=hidden, access_point_name="Vault", device=device
    )
    client = client_with(*VIEW, "devices.view_devicecommand", "accesscontrol.view_auditevent", partitions=[partition])

    response = client.get(f"/devices/{device.pk}/")

    text = page_text(response)
    assert [(door.number, door.access_point, door.state) for door in response.context["doors"]] == [
        (1, lobby, "closed")
    ]
    assert [(reader.number, reader.access_point) for reader in response.context["readers"]] == [(2, lobby)]
    assert list(response.context["commands"]) == [mine]
    assert "No answer" in text
    assert [event.access_point_name for event in response.context["events"]] == ["Lobby"]


def test_renaming_and_disabling_a_device_is_recorded():
    device = make_device(1, name="Old name")
    client = client_with(*CHANGE)

    response = client.post(f"/devices/{device.pk}/edit/", {"name": "Lobby controller", "description": ""})

    assert response["Location"] == f"/devices/{device.pk}/"
    device.refresh_from_db()
    assert (device.name, device.enabled) == ("Lobby controller", False)
    (row,) = web_rows("update")
    assert row.detail == {
        "changes": {"name": {"from": "Old name", "to": "Lobby controller"}, "enabled": {"from": True, "to": False}}
    }


def test_a_duplicate_device_name_is_a_field_error():
    make_device(1, name="Lobby controller")
    device = make_device(2, name="Other")
    client = client_with(*CHANGE)

    response = client.post(f"/devices/{device.pk}/edit/", {"name": "Lobby controller", "enabled": "on"})

    assert response.status_code == 200
    assert response.context["form"].errors == {"name": ["Device with this Name already exists."]}
    assert Device.objects.get(pk=device.pk).name == "Other"


def test_a_viewer_gets_403_and_the_device_stays_as_it_was():
    device = make_device(1, name="Lobby controller")
    client = client_with(*VIEW)

    page = client.get(f"/devices/{device.pk}/edit/")
    posted = client.post(f"/devices/{device.pk}/edit/", {"name": "Renamed"})

    assert (page.status_code, posted.status_code) == (403, 403)
    device.refresh_from_db()
    assert (device.name, device.enabled) == ("Lobby controller", True)
    assert web_rows() == []


def test_an_operator_without_the_device_permission_gets_403():
    assert client_with("accesscontrol.view_accesspoint").get("/devices/").status_code == 403


def test_the_device_list_costs_the_same_queries_for_10_and_100_rows(partition):
    for number in range(1, 111):
        device = make_device(number)
        DeviceDoor.objects.create(device=device, number=1, access_point=make_access_point(partition=partition))
    client = client_with(*VIEW, partitions=[partition])

    assert queries_for(client, "/devices/", 10) == queries_for(client, "/devices/", 100)
