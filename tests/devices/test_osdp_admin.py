"""OSDP in the admin: buses through their actions, a reader commissioned on its device's page (id and key by
Space, never shown), its reported fields read-only, door wiring inline, and alarms acknowledged by an action."""

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from accesscontrol.models import AuditEvent, SystemAuditEntry
from devices.models import Alarm, Device, DeviceDoor, DeviceReader, OsdpBus, OsdpReader
from tests.devices.osdp_support import make_alarm, make_bus, make_osdp_reader
from tests.factories import make_access_point, make_operator, make_partition

pytestmark = pytest.mark.django_db


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def messages_of(response) -> str:
    return " ".join(str(message) for message in get_messages(response.wsgi_request))


def osdp_device_form(bus, point, address=3, **fields) -> dict:
    data = {"device_id": "", "name": "Front reader", "kind": "osdp_reader", "enabled": "on", **fields}
    data |= {"osdp-TOTAL_FORMS": "1", "osdp-INITIAL_FORMS": "0", "osdp-0-bus": str(bus.pk)}
    data |= {"osdp-0-address": str(address), "osdp-0-card_format": "h10301"}
    data |= {"doors-TOTAL_FORMS": "1", "doors-INITIAL_FORMS": "0", "doors-0-number": "1"}
    data |= {"doors-0-access_point": str(point.pk), "doors-0-relay": "1", "doors-0-contact": "0", "doors-0-rex": "2"}
    data |= {"readers-TOTAL_FORMS": "1", "readers-INITIAL_FORMS": "0", "readers-0-number": "1"}
    data |= {"readers-0-access_point": str(point.pk), "readers-0-direction": "entry"}
    return data


def test_a_bus_is_added_and_changed_through_its_actions(admin_client):
    added = admin_client.post(
        url(OsdpBus, "add"), {"name": "Lobby line", "port": "socket://192.0.2.9:4001", "baud": "9600", "enabled": "on"}
    )
    bus = OsdpBus.objects.get()
    changed = admin_client.post(
        url(OsdpBus, "change", bus.pk),
        {
            "name": "Lobby line",
            "port": "/dev/ttyUSB1",
            "baud": "9600",
            "enabled": "on",
            "readers-TOTAL_FORMS": "0",
            "readers-INITIAL_FORMS": "0",
        },
    )

    assert (added.status_code, changed.status_code) == (302, 302)
    bus.refresh_from_db()
    assert bus.port == "/dev/ttyUSB1"
    assert list(SystemAuditEntry.objects.order_by("id").values_list("action", flat=True)) == ["add", "update"]


def test_a_bad_port_is_a_form_error(admin_client):
    response = admin_client.post(url(OsdpBus, "add"), {"name": "Line", "port": "COM1", "baud": "9600"})

    assert response.status_code == 200
    assert "port" in response.context["adminform"].form.errors
    assert not OsdpBus.objects.exists()


def test_an_osdp_reader_is_commissioned_on_the_device_page_without_its_key_shown(admin_client):
    bus, front = make_bus(), make_access_point(name="Front")

    response = admin_client.post(url(Device, "add"), osdp_device_form(bus, front), follow=True)

    device = Device.objects.get()
    assert (device.device_id, device.kind) == (1, "osdp_reader")
    reader = OsdpReader.objects.get()
    assert (reader.bus, reader.address, reader.card_format) == (bus, 3, "h10301")
    door = DeviceDoor.objects.get()
    assert (door.relay, door.contact, door.rex) == (1, 0, 2)
    assert DeviceReader.objects.get().direction == "entry"
    assert device.key().hex() not in response.content.decode() + messages_of(response)
    assert "secure channel key" in messages_of(response)
    [row] = SystemAuditEntry.objects.all()
    assert (row.action, row.object_type) == ("add", "devices.osdpreader")


def test_an_osdp_device_needs_its_bus_and_takes_no_key(admin_client):
    bus, front = make_bus(), make_access_point()
    without_place = osdp_device_form(bus, front) | {"osdp-TOTAL_FORMS": "0"}
    with_key = osdp_device_form(bus, front, key="00112233445566778899aabbccddeeff")

    first = admin_client.post(url(Device, "add"), without_place)
    second = admin_client.post(url(Device, "add"), with_key)

    assert (first.status_code, second.status_code) == (200, 200)
    assert "key" in second.context["adminform"].form.errors
    assert not Device.objects.exists()


def test_an_sdp1_device_has_no_place_on_a_bus(admin_client):
    bus, front = make_bus(), make_access_point()
    form = osdp_device_form(bus, front, kind="control_unit", device_id="77")

    response = admin_client.post(url(Device, "add"), form)

    assert response.status_code == 200
    assert not Device.objects.exists()


def test_the_reader_page_shows_what_it_reported_read_only_and_saves_changes(admin_client):
    front = make_access_point()
    device = make_osdp_reader(point=front, address=4)
    OsdpReader.objects.update(vendor_code="0A0B0C", model="R40", serial_number="SN-1")
    page = admin_client.get(url(Device, "change", device.pk))

    assert page.status_code == 200
    text = page.content.decode()
    assert "0A0B0C" in text and "SN-1" in text
    assert 'name="osdp-0-serial_number"' not in text
    assert 'name="doors-0-relay"' in text


def test_generate_a_new_key_on_an_osdp_reader_shows_no_key(admin_client):
    device = make_osdp_reader()
    old = device.key()

    response = admin_client.post(
        url(Device, "changelist"), {"action": "generate_new_key", "_selected_action": [device.pk]}, follow=True
    )

    device.refresh_from_db()
    assert device.key() != old
    assert device.key().hex() not in messages_of(response)
    assert "install mode" in messages_of(response)
    assert SystemAuditEntry.objects.filter(action="rekey_osdp_reader").count() == 1


def test_alarms_are_acknowledged_by_the_admin_action_once():
    partition = make_partition()
    mine = make_alarm(make_access_point(partition=partition))
    theirs = make_alarm(make_access_point(partition=make_partition()))
    operator = make_operator("devices.view_alarm", "devices.acknowledge_alarm", partitions=[partition], is_staff=True)
    client = Client()
    client.force_login(operator)

    listed = client.get(url(Alarm, "changelist"))
    first = client.post(url(Alarm, "changelist"), {"action": "acknowledge", "_selected_action": [mine.pk]}, follow=True)
    again = client.post(url(Alarm, "changelist"), {"action": "acknowledge", "_selected_action": [mine.pk]}, follow=True)

    assert [alarm.pk for alarm in listed.context["cl"].result_list] == [mine.pk]
    assert "1 alarm acknowledged" in messages_of(first)
    assert "acknowledged already" in messages_of(again)
    assert Alarm.objects.get(pk=mine.pk).acknowledged_by == operator
    assert Alarm.objects.get(pk=theirs.pk).acknowledged_at is None
    assert AuditEvent.objects.filter(kind="alarm_acknowledged").count() == 1


def test_the_admin_pages_render(admin_client):
    bus = make_bus()
    device = make_osdp_reader(bus, point=make_access_point())
    make_alarm(make_access_point(), device=device)
    pages = [
        url(OsdpBus, "changelist"),
        url(OsdpBus, "add"),
        url(OsdpBus, "change", bus.pk),
        url(Alarm, "changelist"),
        url(Device, "add"),
        url(Device, "change", device.pk),
        url(Device, "changelist"),
    ]

    for page in pages:
        assert admin_client.get(page).status_code == 200, page
