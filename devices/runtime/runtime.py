"""The device runtime: readers, doors, inputs and outputs, for drivers whose devices do not decide alone.

A driver (devices/osdp/driver.py) turns what its devices say into calls here:
a card or keys at a reader, an input that changed, a device online or offline,
a tamper or power report. The runtime decides (devices/runtime/decisions.py),
runs each door (devices/runtime/doors.py) and keypad (devices/runtime/keypad.py),
and answers through the driver's two hands, :class:`Driver`: a relay to drive
and a signal to show at a reader. What must be stored goes to the runtime's
:class:`Sink` (audit events exactly once, alarms, device status); what the
monitor shows goes to ``publish``.

Operator commands (open, set mode, emergency open and close, end emergency)
arrive as the device commands that ``devices.commands`` queues for the device
driving the door; :meth:`Runtime.command` carries one out.

Opening modes (docs/modes.md) hold a door released: ``open`` always; ``timed``
while its timed period is active (checked at each ``tick``, and told by the
scheduler's set_mode ``open``); ``toggle``: each grant holds or ends the hold;
``office``: a grant to a cardholder with office rights does so, until the next
mode change. ``standard`` and ``locked`` end the hold (the engine refuses cards
in ``locked``). An emergency wins over every mode; when it ends the door takes
its mode again. A card at a door the mode holds open is still decided and
recorded; the relay is not pulsed.

Everything here runs on one event loop, with no I/O of its own: the runtime is
tested with a recording driver and sink, and every driver gets the same door
and keypad behaviour. Devices that decide alone (SDP/1 controllers and locks
today, UHPPOTE controllers next) use only the decider, as the SDP/1 bridge does.
"""

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from django.utils import timezone

from accesscontrol import engine, live
from accesscontrol.choices import AuditKind, OpeningMode
from accesscontrol.choices import Decision as Reason
from accesscontrol.engine import Decision
from accesscontrol.models import AuditEvent
from accesscontrol.presence import Passage
from devices import metrics
from devices.choices import AlarmKind, CommandOp
from devices.places import Place
from devices.runtime.decisions import Decider, EventIds, access_event
from devices.runtime.doors import AlarmCleared, AlarmRaised, Door, DoorTimes, Record, Relay, StateChanged
from devices.runtime.keypad import CardTimedOut, Keypad, PinEntered

logger = logging.getLogger("space.runtime")

# What a reader shows: (LED colour, seconds, beeps, beep length ms). Granted: green for the open time, a short
# beep; refused: red, a long beep; asking for the PIN: amber while it waits; locked out: red, three beeps.
GRANTED = "granted"
REFUSED = "refused"
ASK_PIN = "ask_pin"
LOCKED_OUT = "locked_out"


@dataclass(frozen=True, slots=True)
class Signal:
    kind: str
    led: str
    seconds: float
    beeps: int
    beep_ms: int


def signal_for(kind: str, seconds: float = 0.0) -> Signal:
    if kind == GRANTED:
        return Signal(GRANTED, "green", seconds, 1, 100)
    if kind == ASK_PIN:
        return Signal(ASK_PIN, "amber", seconds, 1, 50)
    if kind == LOCKED_OUT:
        return Signal(LOCKED_OUT, "red", seconds, 3, 300)
    return Signal(REFUSED, "red", 2.0, 1, 1000)


class Driver(Protocol):
    """What the runtime asks of a driver; both return False when the device cannot be reached now."""

    def relay(self, device_pk: int, output: int, on: bool, seconds: float | None) -> bool: ...

    def signal(self, device_pk: int, reader: int, signal: Signal) -> bool: ...


class Sink(Protocol):
    """Where the runtime's durable results go (devices/runtime/writer.py stores them in batches)."""

    def event(self, event: AuditEvent) -> None: ...

    def alarm(self, kind: str, raised: bool, place: Place | None, device_pk: int, at) -> None: ...

    def device(self, device_pk: int, **fields) -> None: ...

    def passage(self, passage: Passage) -> None: ...


@dataclass(slots=True)
class ReaderConfig:
    device_pk: int
    number: int  # the reader's number on its device (OSDP: 1, or the reader_no for a multi-reader device)
    place: Place | None
    direction: str | None = None  # entry/exit when it differs from the access point's


@dataclass(slots=True)
class DoorConfig:
    device_pk: int  # the device whose outputs and inputs the door is wired to
    number: int
    place: Place
    relay: int = 0
    contact: int | None = None
    rex: int | None = None
    contact_open_when_active: bool = True
    times: DoorTimes = field(default_factory=DoorTimes)
    mode: str = OpeningMode.STANDARD


@dataclass(slots=True)
class DoorHandle:
    config: DoorConfig
    door: Door
    emergency: str | None = None  # "open" or "closed" while an emergency holds it
    toggled: bool = False  # toggle and office modes: a grant held the door released (until the next one, or mode)
    timed_open: bool | None = None  # timed mode: what the last set_mode said of its period (None: not told)


@dataclass(slots=True)
class ReaderHandle:
    config: ReaderConfig
    keypad: Keypad


@dataclass(frozen=True, slots=True)
class KeypadSettings:
    timeout: float = 10.0
    max_wrong: int = 3
    lockout: float = 60.0


class Runtime:
    def __init__(
        self,
        decider: Decider,
        driver: Driver,
        sink: Sink,
        *,
        publish: Callable[[dict], None] = lambda payload: None,
        keypad: KeypadSettings = KeypadSettings(),
        clock: Callable[[], float] = time.monotonic,
        driver_name: str = metrics.OSDP,
    ):
        self.decider = decider
        self.driver_name = driver_name  # the driver label of the decision metrics (devices/metrics.py)
        self.driver = driver
        self.sink = sink
        self.publish = publish
        self.keypad = keypad
        self.clock = clock
        self.ids = EventIds()
        self.counters: Counter = Counter()
        self.readers: dict[tuple[int, int], ReaderHandle] = {}
        self.doors: dict[int, DoorHandle] = {}  # by access point id
        self.doors_by_device: dict[int, list[DoorHandle]] = {}
        self.online: dict[int, bool] = {}
        self.local: dict[int, tuple[bool, bool]] = {}  # device pk -> (tamper, power failed), as last reported

    # --- configuration --------------------------------------------------------------------------

    def configure(self, readers: list[ReaderConfig], doors: list[DoorConfig]) -> None:
        """Take the readers and doors as configured now; a door or keypad already known keeps its state."""
        settings = self.keypad
        self.readers = {
            (r.device_pk, r.number): ReaderHandle(
                r,
                self.readers[(r.device_pk, r.number)].keypad
                if (r.device_pk, r.number) in self.readers
                else Keypad(timeout=settings.timeout, max_wrong=settings.max_wrong, lockout=settings.lockout),
            )
            for r in readers
        }
        handles = {}
        for config in doors:
            known = self.doors.get(config.place.id)
            if known is not None and known.config.device_pk == config.device_pk:
                known.config = config
                known.door.times = config.times
                known.door.has_contact = config.contact is not None
                handles[config.place.id] = known
            else:
                handles[config.place.id] = DoorHandle(
                    config, Door(config.times, has_contact=config.contact is not None)
                )
        self.doors = handles
        self.doors_by_device = {}
        for handle in handles.values():
            self.doors_by_device.setdefault(handle.config.device_pk, []).append(handle)
        for handle in handles.values():
            self._follow_mode(handle)

    def door_for(self, reader: ReaderHandle) -> DoorHandle | None:
        place = reader.config.place
        return self.doors.get(place.id) if place else None

    # --- credentials ------------------------------------------------------------------------------

    def card(self, device_pk: int, reader_no: int, uid: str | None, *, detail: dict | None = None) -> Decision | None:
        """A card read at a reader; ``uid`` None: a read error (bad parity, unknown length), refused and counted."""
        started = time.perf_counter()
        reader = self.readers.get((device_pk, reader_no))
        if reader is None:
            self.counters["reader_unknown"] += 1
            return None
        now = self.clock()
        detail = {"reader": reader_no, **(detail or {})}
        if uid is None:
            self.counters["card_read_errors"] += 1
            self._refuse(reader, Reason.CARD_READ_ERROR, detail, started=started)
            return None
        if reader.keypad.locked(now):
            self._refuse(reader, Reason.PIN_LOCKED_OUT, detail, uid=uid, started=started)
            return None
        decision = self.decider.card(reader.config.place, uid, timezone.now(), direction=reader.config.direction)
        if decision.reason == Reason.PIN_REQUIRED:
            # Card + PIN: the reader asks for the PIN; the decision is made (and recorded) when it comes.
            reader.keypad.await_pin(now, uid)
            self.driver.signal(device_pk, reader_no, signal_for(ASK_PIN, reader.keypad.timeout))
            return decision
        self._decided(reader, decision, detail, started)
        return decision

    def keys(self, device_pk: int, reader_no: int, keys: str) -> list[Decision]:
        started = time.perf_counter()
        reader = self.readers.get((device_pk, reader_no))
        if reader is None:
            self.counters["reader_unknown"] += 1
            return []
        now = self.clock()
        decisions = []
        for entry in reader.keypad.keys(now, keys):
            decisions.append(self._pin_entered(reader, entry, now, started))
        return decisions

    def _pin_entered(self, reader: ReaderHandle, entry: PinEntered, now: float, started: float) -> Decision | None:
        config = reader.config
        detail = {"reader": config.number, "credential": "card+pin" if entry.card_uid else "pin"}
        if reader.keypad.locked(now):
            self._refuse(reader, Reason.PIN_LOCKED_OUT, detail, uid=entry.card_uid or "", started=started)
            return None
        at = timezone.now()
        if entry.card_uid is not None:
            decision = self.decider.card(config.place, entry.card_uid, at, pin=entry.pin, direction=config.direction)
        else:
            decision = self.decider.pin(config.place, entry.pin, at, direction=config.direction)
        if decision.reason in (Reason.WRONG_PIN, Reason.UNKNOWN_PIN):
            self._decided(reader, decision, detail, started)
            if reader.keypad.wrong_pin(now):
                self._record(AuditKind.KEYPAD_LOCKED, config.place, config.device_pk, {"reader": config.number})
                self.driver.signal(config.device_pk, config.number, signal_for(LOCKED_OUT, reader.keypad.lockout))
            return decision
        if decision.granted:
            reader.keypad.right_pin()
        self._decided(reader, decision, detail, started)
        return decision

    def _decided(self, reader: ReaderHandle, decision: Decision, detail: dict, started: float | None = None) -> None:
        """Answer a decision at its reader (and door), store its event; ``started``: when its request arrived."""
        config = reader.config
        self.counters["decisions"] += 1
        event = access_event(decision, config.place, config.device_pk, timezone.now(), {**detail, "online": True})
        event.device_event_id = self.ids.next()
        self.sink.event(event)
        if not decision.granted:
            self.driver.signal(config.device_pk, config.number, signal_for(REFUSED))
            metrics.decided(self.driver_name, False, decision.reason, started)
            return
        if decision.warning == Reason.ANTI_PASSBACK:
            # Soft anti-passback: in, but the operators hear of it.
            self._record(
                AuditKind.ANTI_PASSBACK_VIOLATION,
                config.place,
                config.device_pk,
                {"reader": config.number, "cardholder": decision.cardholder_id},
            )
            # A moment, not a condition: raised and over at once, it waits on the monitor to be acknowledged.
            now = timezone.now()
            self.sink.alarm(AlarmKind.ANTI_PASSBACK, True, config.place, config.device_pk, now)
            self.sink.alarm(AlarmKind.ANTI_PASSBACK, False, config.place, config.device_pk, now)
        self.driver.signal(config.device_pk, config.number, signal_for(GRANTED, decision.open_time))
        handle = self.door_for(reader)
        if handle is not None:
            if self._toggles(handle, decision):
                handle.toggled = not handle.toggled
                self._follow_mode(handle)
            else:
                self._apply(handle, handle.door.release(self.clock(), decision.open_time))
        metrics.decided(self.driver_name, True, decision.reason, started)

    def _toggles(self, handle: DoorHandle, decision: Decision) -> bool:
        """Whether a grant at this door holds it released or ends the hold (toggle; office, for office rights)."""
        mode = handle.config.mode
        if handle.emergency is not None or mode not in (OpeningMode.TOGGLE, OpeningMode.OFFICE):
            return False
        if mode == OpeningMode.TOGGLE:
            return True
        holder = self.decider.store.snapshot.cardholders.get(decision.cardholder_id)
        return holder is not None and holder.office

    def _refuse(
        self, reader: ReaderHandle, reason: str, detail: dict, *, uid: str = "", started: float | None = None
    ) -> None:
        decision = Decision(False, reason, None, uid, 0)
        self._decided(reader, decision, detail, started)

    # --- inputs ---------------------------------------------------------------------------------------

    def inputs(self, device_pk: int, states: tuple[bool, ...]) -> None:
        """A device's input states: each door wired to it sees its contact and exit button."""
        now = self.clock()
        for handle in self.doors_by_device.get(device_pk, ()):
            config = handle.config
            if config.contact is not None and config.contact < len(states):
                is_open = states[config.contact] == config.contact_open_when_active
                self._apply(handle, handle.door.contact(now, is_open))
            if config.rex is not None and config.rex < len(states) and states[config.rex]:
                self._apply(handle, handle.door.exit_request(now))

    # --- devices ------------------------------------------------------------------------------------

    def device_online(self, device_pk: int, online: bool, *, detail: dict | None = None) -> None:
        if self.online.get(device_pk) == online:
            return
        first = device_pk not in self.online
        self.online[device_pk] = online
        if first and online:
            self.sink.device(device_pk, online=True, last_seen_at=timezone.now())
        self.sink.device(device_pk, online=online, last_seen_at=timezone.now())
        if first and online:
            return
        kind = AuditKind.DEVICE_ONLINE if online else AuditKind.DEVICE_OFFLINE
        self._record(kind, None, device_pk, detail or {})
        self.sink.alarm(AlarmKind.OFFLINE, not online, None, device_pk, timezone.now())

    def local_status(self, device_pk: int, *, tamper: bool, power_failed: bool) -> None:
        """Tamper and power reports: each change an event, tamper and power failure alarms."""
        before = self.local.get(device_pk, (False, False))
        self.local[device_pk] = (tamper, power_failed)
        if tamper != before[0]:
            self._record(AuditKind.TAMPER if tamper else AuditKind.TAMPER_CLEARED, None, device_pk, {})
            self.sink.alarm(AlarmKind.TAMPER, tamper, None, device_pk, timezone.now())
            self.sink.device(device_pk, tamper=tamper)
        if power_failed != before[1]:
            kind = AuditKind.POWER_FAILURE if power_failed else AuditKind.POWER_RESTORED
            self._record(kind, None, device_pk, {})
            self.sink.alarm(AlarmKind.POWER, power_failed, None, device_pk, timezone.now())

    def record(self, kind: str, device_pk: int, detail: dict | None = None) -> None:
        """An event of a device (a key set, a secure channel refused), with no door."""
        self._record(kind, None, device_pk, detail or {})

    # --- commands --------------------------------------------------------------------------------------

    def command(self, device_pk: int, op: str, args: dict) -> str | None:
        """Carry out an operator command for a door of ``device_pk``; returns None, or why it failed."""
        number = args.get("door") if isinstance(args, dict) else None
        handle = next((h for h in self.doors_by_device.get(device_pk, ()) if h.config.number == number), None)
        if handle is None:
            return "no such door"
        now = self.clock()
        door = handle.door
        if op == CommandOp.OPEN:
            if handle.emergency == "closed":
                return "the door is in an emergency close"
            self._apply(handle, door.release(now, handle.config.times.open_time))
        elif op == CommandOp.EMERGENCY_OPEN:
            handle.emergency = "open"
            self._apply(handle, door.hold_released(now))
        elif op == CommandOp.EMERGENCY_CLOSE:
            handle.emergency = "closed"
            self._apply(handle, door.end_hold(now))
        elif op == CommandOp.END_EMERGENCY:
            handle.emergency = None
            self._apply(handle, door.end_hold(now))
            self._follow_mode(handle)
        elif op == CommandOp.SET_MODE:
            mode = args.get("mode")
            if mode not in OpeningMode.values:
                return "unknown mode"
            if mode != handle.config.mode:
                handle.toggled = False  # an office or toggle hold ends at the next mode change
            handle.config.mode = mode
            is_open = args.get("open")
            handle.timed_open = is_open if isinstance(is_open, bool) else None
            self._follow_mode(handle)
        else:
            return f"{op} is not a door command"
        return None

    # --- time -------------------------------------------------------------------------------------------

    def tick(self) -> None:
        now = self.clock()
        for handle in self.doors.values():
            if handle.config.mode == OpeningMode.TIMED:
                self._follow_mode(handle)
            effects = handle.door.tick(now)
            if effects:
                self._apply(handle, effects)
        for reader in self.readers.values():
            for timed_out in reader.keypad.tick(now):
                self._card_timed_out(reader, timed_out)

    def _card_timed_out(self, reader: ReaderHandle, timed_out: CardTimedOut) -> None:
        self.counters["pin_timeouts"] += 1
        key = self.decider.store.snapshot.keys_by_uid.get(timed_out.card_uid)
        holder_id = key.cardholder_id if key is not None else None
        decision = Decision(False, Reason.PIN_REQUIRED, holder_id, timed_out.card_uid, 0)
        self._decided(reader, decision, {"reader": reader.config.number, "credential": "card+pin", "timeout": True})

    # --- opening modes ---------------------------------------------------------------------------------------

    def _held_by_mode(self, handle: DoorHandle) -> bool:
        mode = handle.config.mode
        if mode == OpeningMode.OPEN:
            return True
        if mode == OpeningMode.TIMED:
            snapshot = self.decider.store.snapshot
            point = snapshot.access_points.get(handle.config.place.id)
            if point is not None and point.timed_period_id is not None:
                return engine.period_active(snapshot, point.timed_period_id, point.calendar_id, timezone.now())
            return bool(handle.timed_open)  # no period known here: as the scheduler said
        if mode in (OpeningMode.TOGGLE, OpeningMode.OFFICE):
            return handle.toggled
        return False

    def _follow_mode(self, handle: DoorHandle) -> None:
        """Hold the door released, or end the hold, as its mode says now; an emergency leaves it as it is."""
        if handle.emergency is not None:
            return
        door, now = handle.door, self.clock()
        held = self._held_by_mode(handle)
        detail = {"mode": handle.config.mode}
        if held and not door.held:
            self._apply(handle, [*door.hold_released(now), Record(AuditKind.DOOR_RELEASED, detail)])
        elif not held and door.held:
            self._apply(handle, [*door.end_hold(now), Record(AuditKind.DOOR_LOCKED, detail)])

    # --- effects -------------------------------------------------------------------------------------------

    def _apply(self, handle: DoorHandle, effects: list) -> None:
        config = handle.config
        for effect in effects:
            if isinstance(effect, Relay):
                if not self.driver.relay(config.device_pk, config.relay, effect.on, effect.seconds):
                    self.counters["relay_unreachable"] += 1
            elif isinstance(effect, Record):
                self._record(
                    effect.kind, config.place, config.device_pk, {"door": config.number, **(effect.detail or {})}
                )
            elif isinstance(effect, AlarmRaised):
                self.sink.alarm(effect.kind, True, config.place, config.device_pk, timezone.now())
            elif isinstance(effect, AlarmCleared):
                self.sink.alarm(effect.kind, False, config.place, config.device_pk, timezone.now())
            elif isinstance(effect, StateChanged):
                place = config.place
                self.publish(
                    live.door_state_payload(
                        place.id, place.name, place.partition_id, config.device_pk, config.number, effect.state
                    )
                )
                self.sink.device(config.device_pk, door_states={str(config.number): effect.state})

    def _record(self, kind: str, place: Place | None, device_pk: int, detail: dict) -> None:
        event = AuditEvent(
            at=timezone.now(),
            kind=kind,
            access_point_id=place.id if place else None,
            access_point_name=place.name if place else "",
            device_id=device_pk,
            device_event_id=self.ids.next(),
            detail=detail,
        )
        self.sink.event(event)
