"""A door as Space runs it for devices that do not run their own: the lock relay, the contact, the exit button.

Pure: each method takes the instant (monotonic seconds) and returns what must
happen as a list of effects; the runtime carries them out (drive the relay
through the driver, record an audit event, raise or clear an alarm, show the
new state on the monitor). No I/O, no clock, so the tests walk every path.

The lock is ``locked`` or ``released``: released for a while by a grant, the
exit button or an operator's remote opening, or held released by a mode or an
emergency open until that ends. The contact says ``open`` or ``closed`` (or
nothing, for a door without one). From the two:

- opened while released: ``door_opened``; opened while locked: ``door_forced``
  and a *forced* alarm;
- still open ``held_open_time`` seconds after it opened (unless held released):
  ``door_left_open`` and a *held open* alarm;
- closed: ``door_closed``, the alarm's condition cleared (the alarm itself waits
  for an operator), and a door released for one passage locks again at once, so
  nobody follows through the rest of the open time.

What the monitor shows (:attr:`Door.state`): ``forced``, ``left_open``, ``open``,
``released``, ``locked``, or ``closed`` when the lock state is not Space's to know.
"""

from dataclasses import dataclass

from accesscontrol.choices import AuditKind
from devices.choices import AlarmKind

LOCKED = "locked"
RELEASED = "released"


@dataclass(frozen=True, slots=True)
class Relay:
    """Drive the lock relay: on for ``seconds`` then off (a pulse), on until told otherwise (None), or off."""

    on: bool
    seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """An audit event of the door (an ``AuditKind`` value)."""

    kind: str
    detail: dict | None = None


@dataclass(frozen=True, slots=True)
class AlarmRaised:
    kind: str


@dataclass(frozen=True, slots=True)
class AlarmCleared:
    kind: str


@dataclass(frozen=True, slots=True)
class StateChanged:
    state: str


Effect = Relay | Record | AlarmRaised | AlarmCleared | StateChanged


@dataclass(slots=True)
class DoorTimes:
    open_time: float = 4.0
    held_open_time: float = 30.0  # 0: never an alarm


class Door:
    def __init__(self, times: DoorTimes, *, has_contact: bool = True):
        self.times = times
        self.has_contact = has_contact
        self.lock = LOCKED
        self.release_until: float | None = None  # None while released: held released
        self.held = False  # held released by a mode or an emergency open
        self.is_open = False
        self.opened_at = 0.0
        self.passage = False  # opened during a timed release: relock when it closes
        self.alarm: str | None = None
        self._shown = self.state

    # --- what the monitor shows ---------------------------------------------------------------------

    @property
    def state(self) -> str:
        if self.alarm == AlarmKind.FORCED:
            return "forced"
        if self.alarm == AlarmKind.HELD_OPEN:
            return "left_open"
        if self.is_open:
            return "open"
        return self.lock

    def _changed(self, effects: list) -> list:
        state = self.state
        if state != self._shown:
            self._shown = state
            effects.append(StateChanged(state))
        return effects

    # --- the lock -----------------------------------------------------------------------------------

    def release(self, now: float, seconds: float) -> list:
        """Release for ``seconds`` (a grant, the exit button, a remote opening); a held door stays held."""
        effects: list = []
        if self.held:
            return effects
        self.lock = RELEASED
        self.release_until = now + seconds
        effects.append(Relay(True, seconds))
        return self._changed(effects)

    def exit_request(self, now: float) -> list:
        effects: list = [Record(AuditKind.EXIT_REQUEST)]
        return effects + self.release(now, self.times.open_time)

    def hold_released(self, now: float) -> list:
        """Held released until :meth:`end_hold` (emergency open, a mode that leaves the door open)."""
        self.held = True
        self.lock = RELEASED
        self.release_until = None
        return self._changed([Relay(True)])

    def end_hold(self, now: float) -> list:
        """Back to locked (the end of an emergency or a mode; an emergency close)."""
        was_released = self.lock == RELEASED
        self.held = False
        self.lock = LOCKED
        self.release_until = None
        self.passage = False
        effects: list = [Relay(False)] if was_released else []
        return self._changed(effects)

    # --- the contact --------------------------------------------------------------------------------

    def contact(self, now: float, is_open: bool) -> list:
        if is_open == self.is_open:
            return []
        self.is_open = is_open
        effects: list = []
        if is_open:
            self.opened_at = now
            if self.lock == RELEASED:
                self.passage = not self.held
                effects.append(Record(AuditKind.DOOR_OPENED))
            else:
                self.alarm = AlarmKind.FORCED
                effects += [Record(AuditKind.DOOR_FORCED), AlarmRaised(AlarmKind.FORCED)]
            return self._changed(effects)
        effects.append(Record(AuditKind.DOOR_CLOSED))
        if self.alarm is not None:
            effects.append(AlarmCleared(self.alarm))
            self.alarm = None
        if self.passage and self.lock == RELEASED and not self.held:
            # One passage per release: lock as soon as it closes.
            self.lock = LOCKED
            self.release_until = None
            effects.append(Relay(False))
        self.passage = False
        return self._changed(effects)

    # --- time -----------------------------------------------------------------------------------------

    def tick(self, now: float) -> list:
        effects: list = []
        if self.lock == RELEASED and self.release_until is not None and now >= self.release_until:
            # The relay's own pulse has ended; Space's view follows it.
            self.lock = LOCKED
            self.release_until = None
        held_open = self.times.held_open_time
        if (
            self.is_open
            and self.alarm is None
            and not self.held
            and held_open > 0
            and now - self.opened_at >= held_open
        ):
            self.alarm = AlarmKind.HELD_OPEN
            effects += [Record(AuditKind.DOOR_LEFT_OPEN), AlarmRaised(AlarmKind.HELD_OPEN)]
        return self._changed(effects)
