import datetime as dt

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from accesscontrol.models import AuditEvent, SiteSettings, SystemAuditEntry
from devices.models import Device, DeviceCommand, DeviceDoor
from tests.factories import make_access_point, make_operator, make_partition, make_zone

pytestmark = pytest.mark.django_db

VIEW = "accesscontrol.view_auditevent"
COMMAND = "devices.add_devicecommand"
CHANGE_POINTS = "accesscontrol.change_accesspoint"
CHANGE_ZONES = "accesscontrol.change_zone"
NOON = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def make_device(device_id, *points, **fields):
    device = Device(device_id=device_id, name=f"Unit {device_id}", kind="control_unit", **fields)
    device.set_key()
    device.save()
    for number, point in enumerate(points, start=1):
        DeviceDoor.objects.create(device=device, number=number, access_point=point)
    return device


def store_events(point, count, **fields):
    return AuditEvent.objects.bulk_create(
        AuditEvent(
            at=NOON + dt.timedelta(seconds=n),
            kind=fields.get("kind", "access_granted"),
            access_point=point,
            access_point_name=point.name,
        )
        for n in range(count)
    )


def test_an_operator_without_the_permission_to_view_events_gets_403(client):
    client.force_login(make_operator("accesscontrol.view_cardholder", all_partitions=True))

    assert client.get(reverse("monitor")).status_code == 403


def test_the_page_starts_with_the_last_50_events_of_the_operators_partitions(client, partition):
    client.force_login(make_operator(VIEW, partitions=[partition]))
    ours = store_events(make_access_point(partition=partition, name="Lobby"), 60)
    store_events(make_access_point(partition=make_partition(), name="Vault"), 5)

    response = client.get(reverse("monitor"))

    assert response.status_code == 200
    assert [event.pk for event in response.context["events"]] == [event.pk for event in reversed(ours)][:50]
    assert b"Vault" not in response.content
    assert b'src="/static/monitor.js"' in response.content


def test_door_states_and_device_presence_are_shown(client, partition):
    client.force_login(make_operator(VIEW, partitions=[partition]))
    lobby = make_access_point(partition=partition, name="Lobby")
    device = make_device(1001, lobby)
    Device.objects.filter(pk=device.pk).update(online=True, door_states={"1": "left_open"})

    response = client.get(reverse("monitor"))

    point = response.context["access_points"][0]
    assert (point.name, point.door_state, point.door_label) == ("Lobby", "left_open", "left open")
    assert [(d.name, d.online) for d in response.context["devices"]] == [("Unit 1001", True)]
    assert f'id="access-point-{lobby.pk}"'.encode() in response.content
    assert f'id="device-{device.pk}"'.encode() in response.content


def test_an_operator_without_the_command_permission_sees_no_buttons_and_gets_403_on_post(client, partition):
    client.force_login(make_operator(VIEW, CHANGE_POINTS, CHANGE_ZONES, partitions=[partition]))
    lobby = make_access_point(partition=partition, name="Lobby")
    zone = make_zone(partition=partition)
    make_device(1001, lobby)

    page = client.get(reverse("monitor"))
    opened = client.post(reverse("monitor_command"), {"action": "open", "access_point": lobby.pk})
    locked = client.post(reverse("monitor_command"), {"action": "lockdown", "zone": zone.pk})

    assert b'value="open"' not in page.content
    assert b'value="lockdown"' not in page.content
    assert (opened.status_code, locked.status_code) == (403, 403)
    assert not DeviceCommand.objects.exists()
    zone.refresh_from_db()
    assert zone.lockdown is False
    assert not SystemAuditEntry.objects.exists()


def test_remote_open_queues_the_command_records_it_and_says_so(client, partition):
    operator = make_operator(VIEW, COMMAND, CHANGE_POINTS, partitions=[partition])
    client.force_login(operator)
    lobby = make_access_point(partition=partition, name="Lobby")
    device = make_device(1001, lobby)

    page = client.get(reverse("monitor"))
    response = client.post(reverse("monitor_command"), {"action": "open", "access_point": lobby.pk})

    assert b'data-confirm="Open Lobby now?"' in page.content
    assert response.status_code == 302
    command = DeviceCommand.objects.get()
    assert (command.device, command.op, command.args, command.status) == (device, "open", {"door": 1}, "queued")
    entry = SystemAuditEntry.objects.get()
    assert (entry.operator, entry.action, entry.object_repr, entry.via, entry.address) == (
        operator,
        "open",
        "Lobby",
        "web",
        "127.0.0.1",
    )
    assert entry.detail["commands"] == [command.pk]
    assert [str(m) for m in get_messages(response.wsgi_request)] == ["Remote open of Lobby: 1 device command queued."]
    listed = client.get(reverse("monitor_commands"))
    assert b"Queued" in listed.content


def test_zone_lockdown_and_its_end_set_and_clear_the_flag_with_auditor_rows(client, partition):
    client.force_login(make_operator(VIEW, COMMAND, CHANGE_POINTS, CHANGE_ZONES, partitions=[partition]))
    zone = make_zone(partition=partition, name="Labs")
    lab = make_access_point(partition=partition, zones=[zone])
    make_device(1001, lab)

    page = client.get(reverse("monitor"))
    client.post(reverse("monitor_command"), {"action": "lockdown", "zone": zone.pk})
    zone.refresh_from_db()
    locked = zone.lockdown
    client.post(reverse("monitor_command"), {"action": "end_lockdown", "zone": zone.pk})
    zone.refresh_from_db()

    assert b'data-confirm="Lock down Labs?' in page.content
    assert (locked, zone.lockdown) == (True, False)
    assert list(SystemAuditEntry.objects.order_by("pk").values_list("action", "object_repr")) == [
        ("emergency_close", "Labs"),
        ("end_emergency", "Labs"),
    ]
    assert list(DeviceCommand.objects.order_by("pk").values_list("op", flat=True)) == [
        "emergency_close",
        "end_emergency",
    ]


def test_an_operator_of_one_partition_cannot_command_another_partitions_door_or_the_site(client, partition):
    client.force_login(
        make_operator(VIEW, COMMAND, CHANGE_POINTS, "accesscontrol.change_sitesettings", partitions=[partition])
    )
    make_access_point(partition=partition)
    vault = make_access_point(partition=make_partition(), name="Vault")
    make_device(1001, vault)

    page = client.get(reverse("monitor"))
    door = client.post(reverse("monitor_command"), {"action": "open", "access_point": vault.pk})
    site = client.post(reverse("monitor_command"), {"action": "lockdown", "site": "1"})

    assert b"Lock down site" not in page.content
    assert (door.status_code, site.status_code) == (404, 403)
    assert not DeviceCommand.objects.exists()
    assert SiteSettings.load().lockdown is False
    assert not SystemAuditEntry.objects.exists()


def test_an_operator_of_all_partitions_locks_down_the_whole_site_and_ends_it(client):
    client.force_login(
        make_operator(VIEW, COMMAND, CHANGE_POINTS, "accesscontrol.change_sitesettings", all_partitions=True)
    )
    make_access_point()

    page = client.get(reverse("monitor"))
    client.post(reverse("monitor_command"), {"action": "lockdown", "site": "1"})
    locked = SiteSettings.load().lockdown
    client.post(reverse("monitor_command"), {"action": "end_lockdown", "site": "1"})

    assert b"Lock down site" in page.content
    assert (locked, SiteSettings.load().lockdown) == (True, False)
    assert list(SystemAuditEntry.objects.order_by("pk").values_list("action", flat=True)) == [
        "emergency_close",
        "end_emergency",
    ]


def test_a_command_without_a_target_or_with_an_unknown_action_changes_nothing(client, partition):
    client.force_login(make_operator(VIEW, COMMAND, CHANGE_POINTS, partitions=[partition]))
    lobby = make_access_point(partition=partition)

    unknown = client.post(reverse("monitor_command"), {"action": "explode", "access_point": lobby.pk})
    no_target = client.post(reverse("monitor_command"), {"action": "open"})
    bad_id = client.post(reverse("monitor_command"), {"action": "open", "access_point": "99999999999999999999999"})

    assert (unknown.status_code, no_target.status_code, bad_id.status_code) == (302, 404, 404)
    assert not DeviceCommand.objects.exists()
    assert not SystemAuditEntry.objects.exists()
