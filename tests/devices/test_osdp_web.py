"""The web app's OSDP pages (buses, commissioning, a reader's settings and key, a door's wiring), PIN alone and
the held-open time on the access point form, and the live monitor's open alarms with their Acknowledge button."""

import pytest
from django.contrib.messages import get_messages
from django.utils import timezone

from accesscontrol.models import AuditEvent, SystemAuditEntry
from devices.models import Alarm, Device, DeviceDoor, DeviceReader, OsdpBus, OsdpReader
from tests.accesscontrol.web.places_helpers import client_with, page_text, web_rows
from tests.devices.osdp_support import make_alarm, make_bus, make_osdp_reader
from tests.factories import make_access_point, make_partition

pytestmark = pytest.mark.django_db

BUSES = ("devices.view_osdpbus",)
READERS = ("devices.view_osdpbus", "devices.view_osdpreader", "devices.view_device", "accesscontrol.view_accesspoint")
COMMISSION = (*READERS, "devices.add_osdpreader")
MONITOR = ("accesscontrol.view_auditevent", "devices.view_alarm")
HTMX = {"HTTP_HX_REQUEST": "true"}


def messages_of(response) -> str:
    return " ".join(str(message) for message in get_messages(response.wsgi_request))


def commission_form(bus, point=None, **fields) -> dict:
    form = {
        "name": "Front reader",
        "kind": "osdp_reader",
        "bus": bus.pk,
        "address": 3,
        "card_format": "auto",
        "enabled": "on",
        "description": "",
        "reads": "on",
        "direction": "",
        "drives_door": "on",
        "relay": 0,
        "contact": 1,
        "rex": 2,
        "contact_open_when_active": "on",
    }
    if point is not None:
        form["access_point"] = point.pk
    return form | fields


# --- buses ------------------------------------------------------------------------------------------


def test_the_bus_list_shows_port_speed_line_and_readers_online():
    bus = make_bus(name="Lobby line", port="socket://192.0.2.5:4001", online=True)
    make_osdp_reader(bus)
    Device.objects.filter(pk=make_osdp_reader(bus).pk).update(online=True)
    make_bus(name="Cellar line", enabled=False)
    client = client_with(*BUSES)

    response = client.get("/osdp-buses/")

    text = page_text(response)
    assert [bus.name for bus in response.context["page_obj"]] == ["Cellar line", "Lobby line"]
    assert "socket://192.0.2.5:4001" in text and "115,200 baud" in text
    assert "1 of 2" in text
    assert '<span class="badge badge-ok">Open</span>' in text and '<span class="badge">Disabled</span>' in text
    assert 'href="/osdp-buses/"' in text  # in the menu


def test_the_bus_page_lists_its_readers_with_secure_channel_key_and_identity(partition):
    bus = make_bus(name="Lobby line", last_error="Port busy")
    point = make_access_point(name="Lobby", partition=partition)
    device = make_osdp_reader(bus, point, address=12)
    OsdpReader.objects.filter(pk=device.pk).update(
        secure=True, key_set_at=timezone.now(), vendor_code="5C2630", serial_number="SN-77"
    )
    client = client_with(*READERS, partitions=[partition])

    text = page_text(client.get(f"/osdp-buses/{bus.pk}/"))

    assert device.name in text and "5C2630" in text and "SN-77" in text
    assert "Last error: Port busy" in text
    assert '<span class="badge badge-ok">On</span>' in text and '<span class="badge badge-ok">Set</span>' in text
    assert "1: Lobby" in text


def test_a_bus_is_created_and_edited_through_the_actions():
    client = client_with(*BUSES, "devices.add_osdpbus", "devices.change_osdpbus")

    created = client.post(
        "/osdp-buses/add/", {"name": "Lobby line", "port": "/dev/ttyUSB0", "baud": 9600, "enabled": "on"}
    )
    bus = OsdpBus.objects.get()
    edited = client.post(
        f"/osdp-buses/{bus.pk}/edit/", {"name": "Lobby line", "port": "rfc2217://192.0.2.4:4001", "baud": 9600}
    )

    assert (created.status_code, created.url) == (302, f"/osdp-buses/{bus.pk}/")
    assert edited.status_code == 302
    bus.refresh_from_db()
    assert (bus.port, bus.enabled) == ("rfc2217://192.0.2.4:4001", False)
    assert [row.action for row in web_rows()] == ["create", "update"]
    assert web_rows()[0].address == "127.0.0.1"


def test_a_port_the_bus_cannot_open_is_a_form_error():
    client = client_with(*BUSES, "devices.add_osdpbus")

    response = client.post("/osdp-buses/add/", {"name": "Line", "port": "socket://192.0.2.4", "baud": 9600})

    assert response.status_code == 200
    assert "takes a host and a TCP port" in response.context["form"].errors["port"][0]
    assert not OsdpBus.objects.exists()


def test_without_the_permission_the_bus_pages_are_403():
    client = client_with("devices.view_device")
    bus = make_bus()

    assert client.get("/osdp-buses/").status_code == 403
    assert client.get(f"/osdp-buses/{bus.pk}/").status_code == 403
    assert client_with(*BUSES).post("/osdp-buses/add/", {"name": "X", "port": "/dev/ttyS0"}).status_code == 403


# --- commissioning and a reader's page ---------------------------------------------------------------


def test_a_reader_is_commissioned_with_its_door_wiring_and_reader(partition):
    bus = make_bus()
    point = make_access_point(name="Front", partition=partition)
    client = client_with(*COMMISSION, partitions=[partition])

    form_page = client.get("/osdp-readers/add/", {"bus": bus.pk})
    response = client.post("/osdp-readers/add/", commission_form(bus, point, direction="entry"), follow=True)

    assert form_page.status_code == 200 and form_page.context["form"].initial["bus"] == str(bus.pk)
    device = Device.objects.get()
    assert response.redirect_chain[-1][0] == f"/devices/{device.pk}/"
    assert (device.device_id, device.kind, device.has_key) == (1, "osdp_reader", True)
    door = DeviceDoor.objects.get()
    assert (door.access_point, door.relay, door.contact, door.rex, door.contact_open_when_active) == (
        point,
        0,
        1,
        2,
        True,
    )
    assert DeviceReader.objects.get().direction == "entry"
    assert "is commissioned (device id 1)" in messages_of(response)
    assert device.key().hex() not in page_text(response)
    [row] = web_rows()
    assert (row.action, row.object_type) == ("commission_osdp_reader", "devices.osdpreader")


def test_a_reader_without_an_access_point_has_no_door_or_reader():
    bus = make_bus()
    client = client_with(*COMMISSION)

    response = client.post("/osdp-readers/add/", commission_form(bus, kind="osdp_io"))

    assert response.status_code == 302
    assert Device.objects.get().kind == "osdp_io"
    assert not DeviceDoor.objects.exists() and not DeviceReader.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"address": 3}, "address"), ({"address": 200}, "address"), ({"contact": 2, "rex": 2}, None)],
)
def test_what_cannot_be_commissioned_is_shown_on_the_form(partition, fields, field):
    bus = make_bus()
    make_osdp_reader(bus, address=3)
    point = make_access_point(partition=partition)
    client = client_with(*COMMISSION, partitions=[partition])

    response = client.post("/osdp-readers/add/", commission_form(bus, point, **fields))

    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors[field or "__all__"]
    assert Device.objects.count() == 1


def test_commissioning_needs_the_permission():
    bus = make_bus()
    client = client_with(*READERS)

    assert client.get("/osdp-readers/add/").status_code == 403
    assert client.post("/osdp-readers/add/", commission_form(bus)).status_code == 403
    assert not Device.objects.exists()


def test_the_device_page_of_a_reader_shows_its_bus_secure_channel_key_identity_and_wiring(partition):
    bus = make_bus(name="Lobby line", port="/dev/ttyUSB3")
    point = make_access_point(name="Front", partition=partition)
    device = make_osdp_reader(bus, point, address=9, relay=1, contact=0, rex=None)
    OsdpReader.objects.filter(pk=device.pk).update(model="R90", firmware="8.1.2", serial_number="SN-9")
    Device.objects.filter(pk=device.pk).update(door_states={"1": "released"})
    client = client_with(*READERS, "devices.change_device", "devices.change_osdpreader", partitions=[partition])

    text = page_text(client.get(f"/devices/{device.pk}/"))

    assert "Lobby line" in text and "/dev/ttyUSB3" in text
    assert '<dt>Address</dt><dd class="mono">9</dd>' in text
    assert '<span class="badge badge-danger">Off</span>' in text
    assert '<span class="badge badge-warn">Not yet</span>' in text
    assert "R90" in text and "8.1.2" in text and "SN-9" in text
    wiring = text[text.index('id="door-1-wiring"') :]
    assert '<td class="num">1</td>' in wiring and "0 <br><small" in wiring and "active: open" in wiring
    assert '<span class="badge door-state badge-warn">released</span>' in text
    assert f'href="/devices/{device.pk}/doors/1/wiring/"' in text
    assert f'href="/devices/{device.pk}/osdp/"' in text
    assert "New secure channel key" in text
    assert device.key().hex() not in text


def test_a_readers_settings_are_edited_and_recorded_on_the_reader():
    device = make_osdp_reader(address=2)
    client = client_with(*READERS, "devices.change_osdpreader")

    page = client.get(f"/devices/{device.pk}/osdp/")
    response = client.post(
        f"/devices/{device.pk}/osdp/",
        {
            "name": "Side reader",
            "kind": "osdp_reader",
            "bus": device.osdp.bus_id,
            "address": 4,
            "card_format": "c1k48",
            "enabled": "on",
        },
    )

    assert page.status_code == 200 and page.context["form"].initial["address"] == 2
    assert response.status_code == 302
    reader = OsdpReader.objects.select_related("device").get()
    assert (reader.device.name, reader.address, reader.card_format) == ("Side reader", 4, "c1k48")
    [row] = web_rows("update")
    assert set(row.detail["changes"]) == {"name", "address", "card_format"}


def test_a_new_secure_channel_key_is_not_shown_and_says_what_to_do():
    device = make_osdp_reader()
    old = device.key()
    client = client_with(*READERS, "devices.change_osdpreader")

    response = client.post(f"/devices/{device.pk}/osdp/rekey/", follow=True)

    device.refresh_from_db()
    assert device.key() != old
    assert "install mode" in messages_of(response)
    assert device.key().hex() not in page_text(response)
    assert client_with(*READERS).post(f"/devices/{device.pk}/osdp/rekey/").status_code == 403


def test_a_doors_wiring_is_edited_and_a_bad_one_is_a_form_error():
    device = make_osdp_reader(point=make_access_point())
    client = client_with(*READERS, "devices.change_device")
    url = f"/devices/{device.pk}/doors/1/wiring/"

    page = client.get(url)
    bad = client.post(url, {"relay": 0, "contact": 5, "rex": 5})
    good = client.post(url, {"relay": 3, "contact": 5, "rex": 6})

    assert page.status_code == 200
    assert bad.status_code == 200 and "different inputs" in str(bad.context["form"].errors)
    assert good.status_code == 302
    door = DeviceDoor.objects.get()
    assert (door.relay, door.contact, door.rex, door.contact_open_when_active) == (3, 5, 6, False)
    assert len(web_rows("update")) == 1
    assert client_with(*READERS).get(url).status_code == 403
    assert client.get(f"/devices/{device.pk}/doors/2/wiring/").status_code == 404


# --- access points ----------------------------------------------------------------------------------


def test_pin_alone_and_the_held_open_time_are_set_on_the_access_point_form(partition):
    point = make_access_point(name="Keypad door", partition=partition)
    client = client_with("accesscontrol.view_accesspoint", "accesscontrol.change_accesspoint", partitions=[partition])
    form = {
        "name": "Keypad door",
        "partition": partition.pk,
        "kind": "door",
        "connection": "offline",
        "opening_mode": "standard",
        "open_time": 4,
        "extended_open_time": 10,
        "direction": "both",
        "pin_only": "on",
        "held_open_time": 0,
    }

    response = client.post(f"/access-points/{point.pk}/edit/", form)

    assert response.status_code == 302
    point.refresh_from_db()
    assert (point.pin_only, point.held_open_time) == (True, 0)
    [row] = web_rows("update")
    assert row.detail["changes"] == {
        "pin_only": {"from": False, "to": True},
        "held_open_time": {"from": 30, "to": 0},
    }
    text = page_text(client.get(f"/access-points/{point.pk}/"))
    assert "<dt>PIN alone</dt><dd>Opens it</dd>" in text and "<dt>Held-open alarm</dt><dd>Never</dd>" in text


# --- the monitor's alarms ---------------------------------------------------------------------------


def test_the_monitor_lists_open_alarms_of_the_operators_partitions_with_acknowledge_buttons(partition):
    mine = make_alarm(make_access_point(name="Lobby", partition=partition), kind="forced")
    seen = make_alarm(make_access_point(name="Dock", partition=partition), acknowledged_at=timezone.now())
    theirs = make_alarm(make_access_point(name="Vault", partition=make_partition()))
    client = client_with(*MONITOR, "devices.acknowledge_alarm", partitions=[partition])

    response = client.get("/monitor/")

    assert [alarm.pk for alarm in response.context["alarms"]] == [mine.pk]
    text = page_text(response)
    assert 'id="monitor-alarms"' in text and "Door forced open" in text
    assert f'hx-post="/alarms/{mine.pk}/acknowledge/"' in text
    assert f"alarm-{seen.pk}" not in text and f"alarm-{theirs.pk}" not in text


def test_the_alarm_panel_is_not_shown_without_the_permission_nor_its_button_without_acknowledge(partition):
    alarm = make_alarm(make_access_point(partition=partition))

    without = page_text(client_with("accesscontrol.view_auditevent", partitions=[partition]).get("/monitor/"))
    watcher = page_text(client_with(*MONITOR, partitions=[partition]).get("/monitor/"))

    assert 'id="monitor-alarms"' not in without
    assert f"alarm-{alarm.pk}" in watcher and "/acknowledge/" not in watcher


def test_acknowledging_from_htmx_answers_with_the_panel_without_the_alarm(partition):
    alarm = make_alarm(make_access_point(partition=partition))
    other = make_alarm(make_access_point(partition=partition), kind="held_open")
    client = client_with(*MONITOR, "devices.acknowledge_alarm", partitions=[partition])

    response = client.post(f"/alarms/{alarm.pk}/acknowledge/", {"note": "On camera"}, **HTMX)

    assert response.status_code == 200
    assert [row.pk for row in response.context["alarms"]] == [other.pk]
    alarm.refresh_from_db()
    assert alarm.acknowledged_at is not None and alarm.note == "On camera"
    assert AuditEvent.objects.get().kind == "alarm_acknowledged"
    assert SystemAuditEntry.objects.get().via == "web"


def test_acknowledging_twice_says_so_and_changes_nothing(partition):
    alarm = make_alarm(make_access_point(partition=partition))
    client = client_with(*MONITOR, "devices.acknowledge_alarm", partitions=[partition])
    client.post(f"/alarms/{alarm.pk}/acknowledge/")

    again = client.post(f"/alarms/{alarm.pk}/acknowledge/", **HTMX)
    plain = client.post(f"/alarms/{alarm.pk}/acknowledge/", follow=True)

    assert "acknowledged already" in page_text(again)
    assert "acknowledged already" in messages_of(plain)
    assert AuditEvent.objects.count() == 1


def test_acknowledging_needs_the_permission_in_the_alarms_partition(partition):
    alarm = make_alarm(make_access_point(partition=partition))

    watcher = client_with(*MONITOR, partitions=[partition]).post(f"/alarms/{alarm.pk}/acknowledge/")
    elsewhere = client_with(*MONITOR, "devices.acknowledge_alarm", partitions=[make_partition()]).post(
        f"/alarms/{alarm.pk}/acknowledge/"
    )

    assert (watcher.status_code, elsewhere.status_code) == (403, 404)
    assert Alarm.objects.get().acknowledged_at is None


def test_the_alarm_panel_is_polled_and_new_door_states_show(partition):
    point = make_access_point(name="Lobby", partition=partition)
    device = make_osdp_reader(point=point)
    Device.objects.filter(pk=device.pk).update(door_states={"1": "locked"})
    client = client_with(*MONITOR, partitions=[partition])

    panel = client.get("/monitor/alarms/")
    text = page_text(client.get("/monitor/"))

    assert panel.status_code == 200 and "No open alarms." in page_text(panel)
    assert '<span class="badge door-state badge-ok">locked</span>' in text
    assert client_with("accesscontrol.view_auditevent").get("/monitor/alarms/").status_code == 403
