"""Real doors end to end: an OSDP bus service against libosdp's own peripheral devices as the readers.

The readers (simulation/osdp_readers.py) are libosdp's PD implementation on a
pseudo-terminal or behind a TCP port standing for a serial-over-IP converter;
Space's side is the bus service as runspace runs it, with the database, the
rules snapshot and the writer. Each test watches what a reader received
(output, LED and buzzer commands) and what was stored.
"""

import random

import pytest

from accesscontrol.choices import AuditKind
from accesscontrol.models import AuditEvent
from accesscontrol.snapshot import SnapshotStore
from devices import commands
from devices.choices import AlarmKind, CommandStatus, DeviceKind
from devices.models import Alarm, Device, DeviceCommand, DeviceDoor, DeviceReader, OsdpBus, OsdpReader
from devices.osdp import cardformats
from devices.osdp.service import BusService
from simulation.osdp_readers import PtyLine, TcpLine
from tests.factories import give_permission, make_access_point, make_cardholder, make_key, make_operator
from tests.support.services import RunningService
from tests.support.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

FACILITY, NUMBER = 12, 3456
CARD = cardformats.encode(cardformats.H10301, FACILITY, NUMBER)
STRANGER = cardformats.encode(cardformats.H10301, FACILITY, 999)
TIMED_ON = 5
GREEN, RED, AMBER = 2, 1, 3  # libosdp's LED colours


@pytest.fixture
def line():
    made = PtyLine()
    yield made
    made.stop()


def commission(line, *, card_format=cardformats.H10301, **point_fields):
    """A door with an OSDP reader at address 1: relay on output 0, the contact on input 0, the exit button on 1."""
    point = make_access_point(open_time=6, **point_fields)
    holder = make_cardholder(pin="2468", first_name="Grace", last_name="Hopper")
    give_permission(holder, point)
    make_key(holder, uid=cardformats.uid_for(cardformats.H10301, FACILITY, NUMBER))
    make_key(make_cardholder(), uid=cardformats.uid_for(cardformats.H10301, FACILITY, 999))
    bus = OsdpBus.objects.create(name="Line A", port=line.url, baud=115200)
    device = Device(device_id=70001, name="Front door reader", kind=DeviceKind.OSDP_READER)
    device.set_key()
    device.save()
    OsdpReader.objects.create(device=device, bus=bus, address=1, card_format=card_format)
    DeviceDoor.objects.create(device=device, number=1, access_point=point, relay=0, contact=0, rex=1)
    DeviceReader.objects.create(device=device, number=1, access_point=point)
    return {"point": point, "holder": holder, "bus": bus, "device": device}


@pytest.fixture
def door(line):
    return commission(line)


def start(site, line, *, install_mode=True):
    reader = line.add_reader(1, scbk=None if install_mode else site["device"].key(), install_mode=install_mode)
    running = RunningService(BusService(site["bus"].pk, store=SnapshotStore()))
    return reader, running


@pytest.fixture
def running(door, line):
    reader, service = start(door, line)
    wait_until(lambda: OsdpReader.objects.get(pk=door["device"].pk).secure, message="no secure channel")
    yield reader, service
    service.stop()


def events(kind, **filters):
    return AuditEvent.objects.filter(kind=kind, **filters)


def output_pulse(command):
    return command.kind == "output" and command.fields["control_code"] == TIMED_ON


def led(color):
    return lambda command: command.kind == "led" and command.fields.get("on_color") == color


# --- the secure channel ---------------------------------------------------------------------------------


def test_a_new_reader_is_given_its_own_key_then_used_only_over_the_secure_channel(door, line, running):
    reader, _ = running
    link = OsdpReader.objects.get(pk=door["device"].pk)
    assert link.key_set_at is not None and link.secure
    assert reader.scbk == door["device"].key() and not reader.install_mode
    assert events(AuditKind.READER_KEY_SET, device=door["device"]).count() == 1
    # What it said of itself is on its row.
    wait_until(lambda: OsdpReader.objects.get(pk=door["device"].pk).serial_number)
    assert Device.objects.get(pk=door["device"].pk).online


def test_a_reader_with_another_key_is_not_used_in_clear(door, line):
    reader = line.add_reader(1, scbk=bytes(range(16)), install_mode=False)
    service = RunningService(BusService(door["bus"].pk, store=SnapshotStore()))
    try:
        wait_until(lambda: events(AuditKind.SECURE_CHANNEL_FAILED, device=door["device"]).exists())
        assert Alarm.objects.filter(kind=AlarmKind.SECURE_CHANNEL, device=door["device"]).exists()
        # The bus keeps trying; the event and the alarm are not repeated while it fails.
        wait_until(lambda: service.service.bus.counters["secure_channel_failed"] >= 2, timeout=20)
        assert events(AuditKind.SECURE_CHANNEL_FAILED, device=door["device"]).count() == 1
        reader.present_card(*CARD)
        assert not OsdpReader.objects.get(pk=door["device"].pk).secure
        assert not events(AuditKind.ACCESS_GRANTED).exists()
        assert reader.received("output") == []
    finally:
        service.stop()


# --- cards --------------------------------------------------------------------------------------------------


def test_a_granted_card_pulses_the_relay_for_the_open_time_with_a_green_led(door, running):
    reader, _ = running
    assert reader.present_card(*CARD)
    pulse = reader.wait_for(output_pulse)
    assert (pulse.fields["output_no"], pulse.fields["timer_count"]) == (0, 60)
    reader.wait_for(led(GREEN))
    reader.wait_for(lambda command: command.kind == "buzzer")
    granted = wait_until(lambda: events(AuditKind.ACCESS_GRANTED).first())
    assert (granted.cardholder_id, granted.access_point_id) == (door["holder"].pk, door["point"].pk)
    assert granted.key_uid == cardformats.uid_for(cardformats.H10301, FACILITY, NUMBER)
    assert granted.detail["facility"] == FACILITY and granted.device_event_id
    assert events(AuditKind.ACCESS_GRANTED).count() == 1


def test_a_refused_card_gets_a_red_led_and_no_relay(door, running):
    reader, _ = running
    reader.present_card(*STRANGER)
    reader.wait_for(led(RED))
    refused = wait_until(lambda: events(AuditKind.ACCESS_DENIED).first())
    assert refused.reason == "no_permission"
    assert reader.received("output") == []


def test_a_card_with_bad_parity_is_a_counted_read_error_never_a_grant(door, running):
    reader, service = running
    data, bits = CARD
    flipped = bytes([data[0] ^ 0x40]) + data[1:]
    reader.present_card(flipped, bits)
    refused = wait_until(lambda: events(AuditKind.ACCESS_DENIED, reason="card_read_error").first())
    assert refused.detail["error"] == "bad_parity"
    assert service.run(lambda: service.service.counters["card_read_errors"]) == 1
    assert reader.received("output") == []


# --- keypads --------------------------------------------------------------------------------------------------


def test_a_pin_alone_opens_a_pin_only_door(door, running):
    door["point"].pin_only = True
    door["point"].save()
    reader, service = running
    service.call(service.service.read(service.service.store.refresh))
    reader.press("2468#")
    reader.wait_for(output_pulse)
    granted = wait_until(lambda: events(AuditKind.ACCESS_GRANTED).first())
    assert granted.cardholder_id == door["holder"].pk and granted.detail["credential"] == "pin"


def test_card_and_pin_asks_for_the_pin_and_opens_once_it_is_typed(door, running):
    door["point"].pin_required = True
    door["point"].save()
    reader, service = running
    service.call(service.service.read(service.service.store.refresh))
    reader.present_card(*CARD)
    reader.wait_for(led(AMBER))
    assert reader.received("output") == []
    reader.press("24")
    reader.press("68#")
    reader.wait_for(output_pulse)
    granted = wait_until(lambda: events(AuditKind.ACCESS_GRANTED).first())
    assert granted.detail["credential"] == "card+pin"


def test_card_and_pin_times_out(door, line, settings):
    settings.SPACE_PIN_TIMEOUT_SECONDS = 1
    door["point"].pin_required = True
    door["point"].save()
    reader, service = start(door, line)
    try:
        wait_until(lambda: OsdpReader.objects.get(pk=door["device"].pk).secure)
        reader.present_card(*CARD)
        refused = wait_until(lambda: events(AuditKind.ACCESS_DENIED, reason="pin_required").first())
        assert refused.detail["timeout"] is True and refused.cardholder_id == door["holder"].pk
        assert reader.received("output") == []
    finally:
        service.stop()


def test_wrong_pins_lock_the_keypad(door, running):
    door["point"].pin_only = True
    door["point"].save()
    reader, service = running
    service.call(service.service.read(service.service.store.refresh))
    for pin in ("1111#", "2222#", "3333#"):
        reader.press(pin)
    wait_until(lambda: events(AuditKind.KEYPAD_LOCKED).exists())
    reader.press("2468#")
    wait_until(lambda: events(AuditKind.ACCESS_DENIED, reason="pin_locked_out").exists())
    assert reader.received("output") == []


# --- the door ------------------------------------------------------------------------------------------------------


def test_a_door_opened_without_a_grant_is_forced_until_it_closes(door, running):
    reader, _ = running
    reader.set_inputs((True, False))
    wait_until(lambda: events(AuditKind.DOOR_FORCED, access_point=door["point"]).exists())
    alarm = wait_until(lambda: Alarm.objects.filter(kind=AlarmKind.FORCED, access_point=door["point"]).first())
    assert alarm.acknowledged_at is None and alarm.cleared_at is None
    reader.set_inputs((False, False))
    wait_until(lambda: events(AuditKind.DOOR_CLOSED, access_point=door["point"]).exists())
    assert wait_until(lambda: Alarm.objects.get(pk=alarm.pk).cleared_at)
    states = wait_until(lambda: Device.objects.get(pk=door["device"].pk).door_states.get("1") == "locked")
    assert states


def test_a_door_held_open_raises_its_alarm(door, line):
    door["point"].held_open_time = 1
    door["point"].save()
    reader, service = start(door, line)
    try:
        wait_until(lambda: OsdpReader.objects.get(pk=door["device"].pk).secure)
        reader.set_inputs((False, True))  # the exit button
        reader.wait_for(output_pulse)
        reader.set_inputs((True, False))  # then the door opens, and stays open
        wait_until(lambda: events(AuditKind.DOOR_OPENED).exists())
        wait_until(lambda: events(AuditKind.DOOR_LEFT_OPEN, access_point=door["point"]).exists())
        assert Alarm.objects.filter(kind=AlarmKind.HELD_OPEN, access_point=door["point"]).exists()
        assert events(AuditKind.EXIT_REQUEST).count() == 1
        assert not events(AuditKind.DOOR_FORCED).exists()
    finally:
        service.stop()


def test_an_operators_remote_opening_reaches_the_relay(door, running):
    reader, _ = running
    operator = make_operator(is_superuser=True)
    issued = commands.remote_open(door["point"], operator=operator, via="test")
    assert issued.queued == 1
    reader.wait_for(output_pulse)
    command = issued.commands[0]
    wait_until(lambda: DeviceCommand.objects.get(pk=command.pk).status == CommandStatus.SUCCEEDED)


# --- the line -------------------------------------------------------------------------------------------------------


def test_a_reader_lost_and_back_is_two_events(door, running):
    reader, _ = running
    reader.stop()
    wait_until(lambda: events(AuditKind.DEVICE_OFFLINE, device=door["device"]).exists(), timeout=30)
    assert not Device.objects.get(pk=door["device"].pk).online
    reader.start()
    wait_until(lambda: events(AuditKind.DEVICE_ONLINE, device=door["device"]).exists(), timeout=30)
    wait_until(lambda: Device.objects.get(pk=door["device"].pk).online)
    reader.present_card(*CARD)
    reader.wait_for(output_pulse)


def test_noise_on_the_line_never_grants_and_never_stops_the_bus(door, line, running):
    reader, service = running
    noise = random.Random(13)
    for _ in range(200):
        line.inject(bytes(noise.randrange(256) for _ in range(noise.randrange(1, 40))))
    line.garble(20, seed=7)
    assert not events(AuditKind.ACCESS_GRANTED).exists()
    assert reader.received("output") == []
    # The line recovers: the card still opens.
    wait_until(lambda: OsdpReader.objects.get(pk=door["device"].pk).secure, timeout=30)
    reader.present_card(*CARD)
    reader.wait_for(output_pulse, timeout=30)
    assert service.thread.is_alive()


def test_a_reader_behind_a_serial_over_ip_converter():
    line = TcpLine()
    try:
        site = commission(line)
        assert site["bus"].port.startswith("socket://127.0.0.1:")
        reader, service = start(site, line)
        try:
            wait_until(lambda: OsdpReader.objects.get(pk=site["device"].pk).secure)
            reader.present_card(*CARD)
            pulse = reader.wait_for(output_pulse)
            assert pulse.fields["timer_count"] == 60
            wait_until(lambda: events(AuditKind.ACCESS_GRANTED).exists())
        finally:
            service.stop()
    finally:
        line.stop()
