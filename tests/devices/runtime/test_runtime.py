"""The device runtime with a driver and a sink that write down what they are asked: decisions at readers,
card + PIN, PIN alone, the keypad lockout, doors from inputs, alarms, commands, devices lost and back."""

import pytest

from accesscontrol.choices import AuditKind
from accesscontrol.choices import Decision as Reason
from accesscontrol.snapshot import SnapshotStore
from devices.choices import AlarmKind, CommandOp
from devices.places import Place
from devices.runtime.decisions import Decider
from devices.runtime.doors import DoorTimes
from devices.runtime.runtime import (
    ASK_PIN,
    GRANTED,
    LOCKED_OUT,
    REFUSED,
    DoorConfig,
    KeypadSettings,
    ReaderConfig,
    Runtime,
)
from tests.factories import give_permission, make_access_point, make_cardholder, make_key
from tests.support.metrics import own_sample

pytestmark = pytest.mark.django_db

READER, IO = 1, 2


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Hands:
    """The driver: relay and signal calls, in order."""

    def __init__(self):
        self.relays: list[tuple] = []
        self.signals: list[tuple] = []
        self.reachable = True

    def relay(self, device_pk, output, on, seconds):
        self.relays.append((device_pk, output, on, seconds))
        return self.reachable

    def signal(self, device_pk, reader, signal):
        self.signals.append((device_pk, reader, signal.kind, signal.led, signal.seconds))
        return self.reachable


class Store:
    """The sink: what would be stored."""

    def __init__(self):
        self.events = []
        self.alarms = []
        self.devices = []

    def event(self, event):
        self.events.append(event)

    def alarm(self, kind, raised, place, device_pk, at):
        self.alarms.append((kind, raised, place.id if place else None, device_pk))

    def device(self, device_pk, **fields):
        self.devices.append((device_pk, fields))

    def kinds(self):
        return [(e.kind, e.reason) for e in self.events]


@pytest.fixture
def door_site():
    point = make_access_point(open_time=5, extended_open_time=12, held_open_time=20)
    pad = make_access_point(pin_only=True)
    alice = make_cardholder(pin="1234")
    give_permission(alice, point)
    give_permission(alice, pad)
    make_key(alice, uid="A1A1A1A1")
    stranger = make_key(make_cardholder(pin="5555"), uid="B2B2B2B2")
    return point, pad, alice, stranger


KEYPAD = KeypadSettings(timeout=10, max_wrong=3, lockout=60)


def runtime_for(point, pad=None, *, wiring=None, keypad=KEYPAD):
    hands, store, clock = Hands(), Store(), Clock()
    shown = []
    runtime = Runtime(Decider(SnapshotStore()), hands, store, publish=shown.append, keypad=keypad, clock=clock)
    place = Place(point.pk, point.name, point.partition_id)
    readers = [ReaderConfig(READER, 1, place)]
    if pad is not None:
        readers.append(ReaderConfig(READER, 2, Place(pad.pk, pad.name, pad.partition_id)))
    wiring = {"device_pk": IO, "relay": 3, "contact": 0, "rex": 1, **(wiring or {})}
    door = DoorConfig(number=1, place=place, times=DoorTimes(point.open_time, point.held_open_time), **wiring)
    runtime.configure(readers, [door])
    return runtime, hands, store, clock, shown


def test_a_granted_card_pulses_the_doors_relay_and_shows_green(door_site):
    point, _, alice, _ = door_site
    runtime, hands, store, _, shown = runtime_for(point)
    decision = runtime.card(READER, 1, "A1A1A1A1")
    assert decision.granted
    assert hands.relays == [(IO, 3, True, 5)]
    assert hands.signals == [(READER, 1, GRANTED, "green", 5)]
    (event,) = store.events
    assert (event.kind, event.cardholder_id, event.access_point_id) == (AuditKind.ACCESS_GRANTED, alice.pk, point.pk)
    assert event.device_id == READER and event.device_event_id
    assert shown[-1]["state"] == "released" and shown[-1]["access_point"] == point.pk


def test_a_refused_card_shows_red_and_leaves_the_door_locked(door_site):
    point, _, _, _ = door_site
    runtime, hands, store, _, _ = runtime_for(point)
    assert not runtime.card(READER, 1, "B2B2B2B2").granted
    assert hands.relays == []
    assert hands.signals == [(READER, 1, REFUSED, "red", 2.0)]
    assert store.kinds() == [(AuditKind.ACCESS_DENIED, Reason.NO_PERMISSION)]


def test_a_read_error_is_counted_and_refused_never_granted(door_site):
    point, _, _, _ = door_site
    runtime, hands, store, _, _ = runtime_for(point)
    assert runtime.card(READER, 1, None, detail={"error": "bad_parity"}) is None
    assert runtime.counters["card_read_errors"] == 1 and hands.relays == []
    assert store.kinds() == [(AuditKind.ACCESS_DENIED, Reason.CARD_READ_ERROR)]
    assert store.events[0].detail["error"] == "bad_parity"


def test_card_and_pin_asks_for_the_pin_then_decides_once(door_site):
    point, _, _, _ = door_site
    point.pin_required = True
    point.save()
    runtime, hands, store, clock, _ = runtime_for(point)
    decision = runtime.card(READER, 1, "A1A1A1A1")
    assert decision.reason == Reason.PIN_REQUIRED
    assert hands.signals == [(READER, 1, ASK_PIN, "amber", 10)] and store.events == []
    clock.now += 3
    (granted,) = runtime.keys(READER, 1, "1234#")
    assert granted.granted and hands.relays == [(IO, 3, True, 5)]
    assert store.kinds() == [(AuditKind.ACCESS_GRANTED, Reason.GRANTED)]
    assert store.events[0].detail["credential"] == "card+pin"


def test_card_and_pin_times_out_as_a_refusal(door_site):
    point, _, alice, _ = door_site
    point.pin_required = True
    point.save()
    runtime, hands, store, clock, _ = runtime_for(point)
    runtime.card(READER, 1, "A1A1A1A1")
    clock.now += 10.5
    runtime.tick()
    assert store.kinds() == [(AuditKind.ACCESS_DENIED, Reason.PIN_REQUIRED)]
    assert store.events[0].cardholder_id == alice.pk and store.events[0].detail["timeout"] is True
    # The PIN typed afterwards is a PIN alone, refused at a door that takes cards.
    runtime.keys(READER, 1, "1234#")
    assert store.kinds()[-1] == (AuditKind.ACCESS_DENIED, Reason.PIN_NOT_ACCEPTED)
    assert hands.relays == []


def test_a_pin_alone_opens_a_pin_only_door(door_site):
    point, pad, alice, _ = door_site
    runtime, hands, store, _, _ = runtime_for(point, pad)
    (decision,) = runtime.keys(READER, 2, "1234#")
    assert decision.granted and decision.cardholder_id == alice.pk
    assert hands.signals == [(READER, 2, GRANTED, "green", 4)]
    assert store.events[0].detail["credential"] == "pin" and store.events[0].key_uid == ""


def test_wrong_pins_lock_the_keypad_with_an_event_and_refuse_everything_meanwhile(door_site):
    point, pad, _, _ = door_site
    runtime, hands, store, clock, _ = runtime_for(point, pad)
    for pin in ("0000", "1111", "2223"):
        runtime.keys(READER, 2, pin + "#")
    assert [k for k, _ in store.kinds()].count(AuditKind.KEYPAD_LOCKED) == 1
    assert hands.signals[-1][2] == LOCKED_OUT
    runtime.keys(READER, 2, "1234#")
    assert store.kinds()[-1] == (AuditKind.ACCESS_DENIED, Reason.PIN_LOCKED_OUT)
    clock.now += 61
    (decision,) = runtime.keys(READER, 2, "1234#")
    assert decision.granted


def test_doors_follow_their_inputs_forced_held_open_and_the_exit_button(door_site):
    point, _, _, _ = door_site
    runtime, hands, store, clock, shown = runtime_for(point)
    runtime.inputs(IO, (True, False))  # the contact opens with no grant
    assert store.kinds()[-1][0] == AuditKind.DOOR_FORCED
    assert store.alarms[-1] == (AlarmKind.FORCED, True, point.pk, IO) and shown[-1]["state"] == "forced"
    runtime.inputs(IO, (False, False))
    assert store.alarms[-1] == (AlarmKind.FORCED, False, point.pk, IO)
    runtime.inputs(IO, (False, True))  # the exit button
    assert store.kinds()[-1][0] == AuditKind.EXIT_REQUEST and hands.relays[-1] == (IO, 3, True, 5)
    runtime.inputs(IO, (True, False))
    assert store.kinds()[-1][0] == AuditKind.DOOR_OPENED
    clock.now += 21
    runtime.tick()
    assert store.kinds()[-1][0] == AuditKind.DOOR_LEFT_OPEN
    assert store.alarms[-1] == (AlarmKind.HELD_OPEN, True, point.pk, IO)


def test_a_contact_wired_the_other_way(door_site):
    point, _, _, _ = door_site
    runtime, _, store, _, _ = runtime_for(point, wiring={"contact_open_when_active": False, "rex": None})
    runtime.inputs(IO, (True,))  # active: closed
    assert store.events == []
    runtime.inputs(IO, (False,))
    assert store.kinds()[-1][0] == AuditKind.DOOR_FORCED


def test_operator_commands_reach_the_door(door_site):
    point, _, _, _ = door_site
    runtime, hands, _, _, shown = runtime_for(point)
    assert runtime.command(IO, CommandOp.OPEN, {"door": 1}) is None
    assert hands.relays[-1] == (IO, 3, True, 5)
    assert runtime.command(IO, CommandOp.EMERGENCY_OPEN, {"door": 1}) is None
    assert hands.relays[-1] == (IO, 3, True, None) and shown[-1]["state"] == "released"
    assert runtime.command(IO, CommandOp.END_EMERGENCY, {"door": 1}) is None
    assert hands.relays[-1] == (IO, 3, False, None) and shown[-1]["state"] == "locked"
    runtime.command(IO, CommandOp.EMERGENCY_CLOSE, {"door": 1})
    assert runtime.command(IO, CommandOp.OPEN, {"door": 1}) == "the door is in an emergency close"
    assert runtime.command(IO, CommandOp.OPEN, {"door": 9}) == "no such door"
    assert runtime.command(IO, CommandOp.SET_MODE, {"door": 1, "mode": "nonsense"}) == "unknown mode"


def test_a_device_lost_and_back_is_two_events_and_an_alarm(door_site):
    point, _, _, _ = door_site
    runtime, _, store, _, _ = runtime_for(point)
    runtime.device_online(READER, True)  # first seen: no event
    assert store.events == []
    runtime.device_online(READER, False)
    runtime.device_online(READER, False)
    runtime.device_online(READER, True)
    assert [k for k, _ in store.kinds()] == [AuditKind.DEVICE_OFFLINE, AuditKind.DEVICE_ONLINE]
    assert store.alarms == [(AlarmKind.OFFLINE, True, None, READER), (AlarmKind.OFFLINE, False, None, READER)]


def test_tamper_and_power_reports_are_events_on_change(door_site):
    point, _, _, _ = door_site
    runtime, _, store, _, _ = runtime_for(point)
    runtime.local_status(READER, tamper=True, power_failed=False)
    runtime.local_status(READER, tamper=True, power_failed=False)
    runtime.local_status(READER, tamper=False, power_failed=True)
    assert [k for k, _ in store.kinds()] == [AuditKind.TAMPER, AuditKind.TAMPER_CLEARED, AuditKind.POWER_FAILURE]


def test_event_ids_rise_and_never_repeat(door_site):
    point, _, _, _ = door_site
    runtime, _, store, _, _ = runtime_for(point)
    for _ in range(50):
        runtime.card(READER, 1, "B2B2B2B2")
    ids = [event.device_event_id for event in store.events]
    assert ids == sorted(ids) and len(set(ids)) == 50


def test_decisions_are_counted_for_the_driver_and_timed_except_a_pin_timeout(door_site):
    point, _, _, _ = door_site
    point.pin_required = True
    point.save()
    runtime, _, _, clock, _ = runtime_for(point)

    def figures():
        labels = {"result": "refused", "reason": Reason.PIN_REQUIRED, "driver": "osdp"}
        return (
            own_sample("space_decisions", "space_decisions_total", **labels),
            own_sample("space_decisions", "space_decisions_total", result="granted", reason="granted", driver="osdp"),
            own_sample("space_decision_seconds", "space_decision_seconds_count", driver="osdp"),
        )

    timed_out, granted, timed = figures()
    runtime.card(READER, 1, "A1A1A1A1")  # asks for the PIN: no decision yet
    assert figures() == (timed_out, granted, timed)
    runtime.keys(READER, 1, "1234#")
    assert figures() == (timed_out, granted + 1, timed + 1)
    runtime.card(READER, 1, "A1A1A1A1")
    clock.now += 10.5
    runtime.tick()  # no PIN came: refused, with no request to time
    assert figures() == (timed_out + 1, granted + 1, timed + 1)
