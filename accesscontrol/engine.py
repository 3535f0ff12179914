"""The decision engine: may this key open this access point at this instant?

Pure: plain data in (a :class:`Snapshot` of the rules), a :class:`Decision` out.
No ORM, no clock (the instant is an argument), no I/O, so the device bridge, the
API and the tests all get the same answer from the same code.

Precedence, first failing check wins:

1. key lookup: an issued key by UID; else a cancelled key still blacklisted
   (``blacklisted``); else ``unknown_key``.
2. key validity window: ``not_yet_valid`` / ``expired``.
3. cardholder: ``banned``, then its activation/expiration window
   (``not_yet_valid`` / ``expired``).
4. ``unknown_access_point``.
5. ``lockdown`` (the site, the access point or one of its zones), unless the
   cardholder overrides lockdown. Emergencies outrank everything below.
6. ``privacy`` (the room's latch is on), unless the cardholder overrides privacy.
7. permission: ``no_permission`` when no grant names the point or one of its zones,
   ``outside_schedule`` when grants do but none of their time periods is active.
   (5b. ``door_locked``: the access point's opening mode is ``locked``, unless the
   cardholder overrides lockdown.)
8. ``anti_passback``: a cardholder who uses anti-passback entering a zone they are
   already inside (hard anti-passback; after the zone's re-entry minutes it
   lets them in again). Soft anti-passback grants with the warning
   ``anti_passback``, for the caller to raise an alarm.
8b. ``zone_full``: entering a zone whose occupancy limit is reached (someone
   already counted inside it is not refused).
9. PIN last, so a keypad is only asked for when everything else would let the
   cardholder in: ``pin_required`` / ``wrong_pin``.

A PIN typed alone (:func:`decide_pin`) stands for the key lookup: the access
point must take PINs alone (``pin_not_accepted``), the PIN must be a
cardholder's (``unknown_pin``, found by its index, accesscontrol/pins.py), and
then checks 3 to 8 apply to that cardholder as to a card's.

A cardholder identified otherwise (a face terminal's 1:N match,
:func:`decide_holder`) stands for the key lookup too: checks 3 to 8 apply, and
9 unless the caller checked a PIN itself.

Times: validity windows are absolute instants (POSIX timestamps, compared as
floats); schedules are wall-clock times in the site's time zone. On the
spring-forward day the skipped wall-clock hour simply never happens; on the
fall-back day the repeated hour matches its intervals both times.
"""

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple
from zoneinfo import ZoneInfo

from accesscontrol.choices import Decision as Reason
from accesscontrol.choices import Direction, OpeningMode, PassbackKind
from accesscontrol.pins import pin_index, pin_matches

FOREVER = math.inf
NEVER = -math.inf

# A grant's periods: the ids of the time periods it may be used in; ANY_TIME when
# one of the grants naming the target has no time period.
ANY_TIME: tuple[int, ...] = ()

# Bits of an interval's day mask: 0-6 are date.weekday() values, then day types.
DAY_BITS = {
    "monday": 1 << 0,
    "tuesday": 1 << 1,
    "wednesday": 1 << 2,
    "thursday": 1 << 3,
    "friday": 1 << 4,
    "saturday": 1 << 5,
    "sunday": 1 << 6,
    "holiday": 1 << 7,
    "special1": 1 << 8,
    "special2": 1 << 9,
}

_EMPTY: frozenset[int] = frozenset()
GRANTED = Reason.GRANTED.value
UNKNOWN_KEY = Reason.UNKNOWN_KEY.value
BLACKLISTED = Reason.BLACKLISTED.value
EXPIRED = Reason.EXPIRED.value
NOT_YET_VALID = Reason.NOT_YET_VALID.value
BANNED = Reason.BANNED.value
UNKNOWN_ACCESS_POINT = Reason.UNKNOWN_ACCESS_POINT.value
NO_PERMISSION = Reason.NO_PERMISSION.value
OUTSIDE_SCHEDULE = Reason.OUTSIDE_SCHEDULE.value
PIN_REQUIRED = Reason.PIN_REQUIRED.value
WRONG_PIN = Reason.WRONG_PIN.value
LOCKDOWN = Reason.LOCKDOWN.value
PRIVACY = Reason.PRIVACY.value
ANTI_PASSBACK = Reason.ANTI_PASSBACK.value
UNKNOWN_PIN = Reason.UNKNOWN_PIN.value
PIN_NOT_ACCEPTED = Reason.PIN_NOT_ACCEPTED.value
ZONE_FULL = Reason.ZONE_FULL.value
DOOR_LOCKED = Reason.DOOR_LOCKED.value
UNKNOWN_CARDHOLDER = Reason.UNKNOWN_CARDHOLDER.value
_SOFT = PassbackKind.SOFT.value
_LOCKED = OpeningMode.LOCKED.value
_OPEN = OpeningMode.OPEN.value
_TIMED = OpeningMode.TIMED.value
_NOBODY: Mapping[int, int] = {}
_ENTRY = Direction.ENTRY.value
_EXIT = Direction.EXIT.value


def normalize_uid(uid: str) -> str:
    """Uppercase hex without separators; the same rule as the Key model's (kept here so the engine stays ORM-free)."""
    return uid.replace(":", "").replace(" ", "").upper()


def day_mask(*names: str) -> int:
    return sum(DAY_BITS[name] for name in set(names))


def timestamp(moment: dt.datetime | None, default: float) -> float:
    return default if moment is None else moment.timestamp()


# --- the snapshot -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CardholderRule:
    id: int
    valid_from: float = NEVER
    valid_until: float = FOREVER
    banned: bool = False
    override_lockdown: bool = False
    override_privacy: bool = False
    use_anti_passback: bool = False
    extended_open_time: bool = False
    office: bool = False  # may put a door in office mode (its grant toggles the door held open)
    pin_hash: str = ""
    pin_index: str = ""
    level_ids: tuple[int, ...] = ()
    # Individual permissions: access point id / zone id -> periods.
    points: dict[int, tuple[int, ...]] = field(default_factory=dict)
    zones: dict[int, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KeyRule:
    id: int
    uid: str
    cardholder_id: int
    valid_from: float = NEVER
    valid_until: float = FOREVER


@dataclass(frozen=True, slots=True)
class AccessPointRule:
    id: int
    open_time: int = 4
    extended_open_time: int = 10
    zone_ids: frozenset[int] = _EMPTY
    calendar_id: int | None = None
    direction: str = Direction.BOTH.value
    pin_required: bool = False
    lockdown: bool = False
    pin_only: bool = False
    mode: str = OpeningMode.STANDARD.value  # the opening mode in force
    timed_period_id: int | None = None


@dataclass(frozen=True, slots=True)
class ZoneRule:
    id: int
    lockdown: bool = False
    anti_passback: bool = False
    passback_kind: str = PassbackKind.HARD.value
    passback_seconds: int = 0  # timed anti-passback: entering again is allowed this long after entering
    roll_call: bool = False
    max_occupancy: int | None = None
    occupancy_correction: int = 0  # added to the people counted inside (an operator's correction)

    @property
    def tracked(self) -> bool:
        """Whether entries and exits are recorded as presence in this zone."""
        return self.anti_passback or self.roll_call or self.max_occupancy is not None


@dataclass(frozen=True, slots=True)
class AccessLevelRule:
    id: int
    points: dict[int, tuple[int, ...]] = field(default_factory=dict)
    zones: dict[int, tuple[int, ...]] = field(default_factory=dict)


class Interval(NamedTuple):
    """Seconds after local midnight; ``end <= start`` crosses midnight (0-0 is the whole day)."""

    start: int
    end: int
    days: int


@dataclass(frozen=True, slots=True)
class TimePeriodRule:
    id: int
    intervals: tuple[Interval, ...] = ()


@dataclass(frozen=True, slots=True)
class CalendarRule:
    id: int
    # date.toordinal() -> day type bit; (month, day) -> bit for days that recur every year.
    dates: dict[int, int] = field(default_factory=dict)
    recurring: dict[tuple[int, int], int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Snapshot:
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    lockdown: bool = False
    default_calendar_id: int | None = None
    cardholders: dict[int, CardholderRule] = field(default_factory=dict)
    keys_by_uid: dict[str, KeyRule] = field(default_factory=dict)
    blacklist: dict[str, float] = field(default_factory=dict)
    access_points: dict[int, AccessPointRule] = field(default_factory=dict)
    zones: dict[int, ZoneRule] = field(default_factory=dict)
    levels: dict[int, AccessLevelRule] = field(default_factory=dict)
    periods: dict[int, TimePeriodRule] = field(default_factory=dict)
    calendars: dict[int, CalendarRule] = field(default_factory=dict)
    # The key of PIN indexes (core.vault.derive("pin-index")); without it no PIN alone is known.
    pin_key: bytes = field(default=b"", repr=False)
    # The key of stored PIN digests (core.vault.derive("pin-digest")); without it no PIN matches.
    pin_digest_key: bytes = field(default=b"", repr=False)
    # Derived from zones, and a per-snapshot memo of day types; dataclasses.replace() recomputes both.
    lockdown_zones: frozenset[int] = field(init=False)
    passback_zones: frozenset[int] = field(init=False)
    tracked_zones: frozenset[int] = field(init=False)
    limited_zones: frozenset[int] = field(init=False)
    day_types: dict[tuple[int | None, int], int] = field(init=False, repr=False, compare=False)
    # PIN index -> cardholder id, made on the first PIN typed alone (most snapshots never need it).
    pins: dict[str, int] = field(init=False, repr=False, compare=False)
    # Access point id -> its tracked zones, a memo made as passages ask for it.
    tracked_of: dict[int, frozenset[int]] = field(init=False, repr=False, compare=False)
    # Indexes other modules derive from this snapshot, by name, made once (the class has slots and no
    # weak references, so a memo kept elsewhere could not follow the snapshot's life): accesscontrol/allowed.py.
    derived: dict[str, object] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "lockdown_zones", frozenset(z.id for z in self.zones.values() if z.lockdown))
        object.__setattr__(self, "passback_zones", frozenset(z.id for z in self.zones.values() if z.anti_passback))
        object.__setattr__(self, "tracked_zones", frozenset(z.id for z in self.zones.values() if z.tracked))
        object.__setattr__(
            self, "limited_zones", frozenset(z.id for z in self.zones.values() if z.max_occupancy is not None)
        )
        object.__setattr__(self, "day_types", {})
        object.__setattr__(self, "pins", {})
        object.__setattr__(self, "tracked_of", {})
        object.__setattr__(self, "derived", {})

    def holder_by_pin(self, pin: str) -> "CardholderRule | None":
        if not self.pin_key:
            return None
        if not self.pins:
            found = {holder.pin_index: holder.id for holder in self.cardholders.values() if holder.pin_index}
            self.pins.update(found or {"": 0})
        holder_id = self.pins.get(pin_index(self.pin_key, pin))
        return self.cardholders.get(holder_id) if holder_id else None


@dataclass(frozen=True, slots=True)
class Decision:
    granted: bool
    reason: str
    cardholder_id: int | None
    key_uid: str
    open_time: int
    # Granted, but worth an alarm: "anti_passback" (soft anti-passback).
    warning: str = ""


# --- deciding -----------------------------------------------------------------


def decide(
    snapshot: Snapshot,
    uid: str,
    access_point_id: int,
    at: dt.datetime,
    *,
    pin: str | None = None,
    inside_zones: Mapping[int, float] | frozenset[int] = _EMPTY,
    privacy: bool = False,
    direction: str | None = None,
    occupancy: Mapping[int, int] = _NOBODY,
) -> Decision:
    """Whether the key ``uid`` opens ``access_point_id`` at ``at`` (aware), and why (see the module docstring).

    ``direction``: the reader's own way through (``entry``/``exit``), when it is not its access point's.
    ``inside_zones``: the zones the cardholder is inside, each with the POSIX time they entered (a set when
    the times do not matter); ``occupancy``: how many are counted inside each zone with a limit."""
    key = snapshot.keys_by_uid.get(uid)
    if key is None:
        # Readers mostly send the canonical form already; normalise only on a miss.
        uid = normalize_uid(uid)
        key = snapshot.keys_by_uid.get(uid)
        if key is None:
            until = snapshot.blacklist.get(uid)
            if until is not None and at.timestamp() < until:
                return Decision(False, BLACKLISTED, None, uid, 0)
            return Decision(False, UNKNOWN_KEY, None, uid, 0)
    return _evaluate(snapshot, key, access_point_id, at, pin, inside_zones, privacy, True, direction, occupancy)


def decide_pin(
    snapshot: Snapshot,
    pin: str,
    access_point_id: int,
    at: dt.datetime,
    *,
    inside_zones: Mapping[int, float] | frozenset[int] = _EMPTY,
    privacy: bool = False,
    direction: str | None = None,
    occupancy: Mapping[int, int] = _NOBODY,
) -> Decision:
    """Whether a PIN typed alone at a keypad opens ``access_point_id`` at ``at``, and why."""
    point = snapshot.access_points.get(access_point_id)
    if point is None:
        return _refuse(UNKNOWN_ACCESS_POINT, None, "")
    if not point.pin_only:
        return _refuse(PIN_NOT_ACCEPTED, None, "")
    holder = snapshot.holder_by_pin(pin)
    if holder is None:
        return _refuse(UNKNOWN_PIN, None, "")
    # The PIN identified the cardholder: no second PIN is asked for.
    return _evaluate_holder(
        snapshot, holder, "", point, at, None, inside_zones, privacy, True, direction, occupancy, pin_checked=True
    )


def decide_holder(
    snapshot: Snapshot,
    holder_id: int,
    access_point_id: int,
    at: dt.datetime,
    *,
    pin: str | None = None,
    pin_checked: bool = False,
    inside_zones: Mapping[int, float] | frozenset[int] = _EMPTY,
    privacy: bool = False,
    direction: str | None = None,
    occupancy: Mapping[int, int] = _NOBODY,
) -> Decision:
    """Whether cardholder ``holder_id``, identified without a key (a face), opens ``access_point_id`` at ``at``.

    ``pin``: typed at the access point, checked when it requires one; ``pin_checked``: the caller found the
    cardholder by their PIN already (PIN + face), so none is asked for."""
    holder = snapshot.cardholders.get(holder_id)
    if holder is None:
        return _refuse(UNKNOWN_CARDHOLDER, None, "")
    point = snapshot.access_points.get(access_point_id)
    return _evaluate_holder(
        snapshot,
        holder,
        "",
        point,
        at,
        pin,
        inside_zones,
        privacy,
        True,
        direction,
        occupancy,
        pin_checked=pin_checked,
    )


def door_refusal(snapshot: Snapshot, access_point_id: int) -> str | None:
    """What refuses everyone at the access point who does not override lockdown: ``unknown_access_point``,
    ``lockdown`` or ``door_locked``; None when the door itself refuses no one.

    For a face searched among those allowed and matching none: the door's own state is the better answer."""
    point = snapshot.access_points.get(access_point_id)
    if point is None:
        return UNKNOWN_ACCESS_POINT
    if snapshot.lockdown or point.lockdown or not snapshot.lockdown_zones.isdisjoint(point.zone_ids):
        return LOCKDOWN
    if point.mode == _LOCKED:
        return DOOR_LOCKED
    return None


def who_may_open(snapshot: Snapshot, access_point_id: int, at: dt.datetime) -> list[int]:
    """Ids of the cardholders one of whose keys would be granted (ignoring PIN, anti-passback and privacy)."""
    point = snapshot.access_points.get(access_point_id)
    if point is None:
        return []
    # Only a cardholder named by some grant can pass; testing that first skips most of a big site cheaply.
    naming_levels = {
        level.id
        for level in snapshot.levels.values()
        if access_point_id in level.points or not point.zone_ids.isdisjoint(level.zones)
    }
    granted: set[int] = set()
    refused: set[int] = set()
    cardholders = snapshot.cardholders
    for key in snapshot.keys_by_uid.values():
        holder_id = key.cardholder_id
        if holder_id in granted:
            continue
        if holder_id not in refused:
            holder = cardholders.get(holder_id)
            if holder is None or not (
                access_point_id in holder.points
                or not point.zone_ids.isdisjoint(holder.zones)
                or not naming_levels.isdisjoint(holder.level_ids)
            ):
                refused.add(holder_id)
                continue
        if _evaluate(snapshot, key, access_point_id, at, None, _EMPTY, False, False, None, _NOBODY).granted:
            granted.add(holder_id)
    return sorted(granted)


def may_open(snapshot: Snapshot, holder: CardholderRule, access_point_id: int, at: dt.datetime) -> bool:
    """Whether the cardholder, however identified, passes checks 3 to 7 (not PIN, anti-passback, occupancy, privacy)."""
    point = snapshot.access_points.get(access_point_id)
    return _evaluate_holder(snapshot, holder, "", point, at, None, _EMPTY, False, False, None).granted


def passage(
    snapshot: Snapshot, decision: Decision, access_point_id: int, direction: str | None = None
) -> tuple[frozenset[int], frozenset[int]]:
    """The tracked zones (anti-passback, roll-call, occupancy) a granted passage enters and leaves."""
    point = snapshot.access_points.get(access_point_id)
    if not decision.granted or point is None or decision.cardholder_id is None:
        return _EMPTY, _EMPTY
    zones = tracked_zones_of(snapshot, point)
    if not zones:
        return _EMPTY, _EMPTY
    direction = direction or point.direction
    if direction == _ENTRY:
        return zones, _EMPTY
    if direction == _EXIT:
        return _EMPTY, zones
    return _EMPTY, _EMPTY


def tracked_zones_of(snapshot: Snapshot, point: AccessPointRule) -> frozenset[int]:
    """The access point's zones that track presence (memoised on the snapshot)."""
    zones = snapshot.tracked_of.get(point.id)
    if zones is None:
        zones = snapshot.tracked_of[point.id] = point.zone_ids & snapshot.tracked_zones
    return zones


def passback_after(
    snapshot: Snapshot,
    decision: Decision,
    access_point_id: int,
    inside_zones: frozenset[int],
    direction: str | None = None,
) -> frozenset[int]:
    """The anti-passback zones the cardholder is inside after ``decision`` at the access point."""
    entered, left = passage(snapshot, decision, access_point_id, direction)
    passback = snapshot.passback_zones
    return (frozenset(inside_zones) | (entered & passback)) - (left & passback)


def released_by_mode(snapshot: Snapshot, access_point_id: int, at: dt.datetime) -> bool:
    """Whether the access point's opening mode holds its door open at ``at`` (open; timed within its period)."""
    point = snapshot.access_points.get(access_point_id)
    if point is None:
        return False
    if point.mode == _OPEN:
        return True
    if point.mode == _TIMED and point.timed_period_id is not None:
        return period_active(snapshot, point.timed_period_id, point.calendar_id, at)
    return False


def period_active(snapshot: Snapshot, period_id: int, calendar_id: int | None, at: dt.datetime) -> bool:
    """Whether time period ``period_id`` is active at ``at``, with the dates' types from ``calendar_id``."""
    period = snapshot.periods.get(period_id)
    if period is None:
        return False
    local = at.astimezone(snapshot.tz)
    seconds = local.hour * 3600 + local.minute * 60 + local.second
    calendar_id = calendar_id if calendar_id is not None else snapshot.default_calendar_id
    ordinal = local.toordinal()
    today = day_type_bits(snapshot, calendar_id, ordinal)
    yesterday = day_type_bits(snapshot, calendar_id, ordinal - 1)
    return _period_active(period, seconds, today, yesterday)


def _refuse(reason: str, holder_id: int | None, uid: str) -> Decision:
    return Decision(False, reason, holder_id, uid, 0)


def _evaluate(
    snapshot: Snapshot,
    key: KeyRule,
    access_point_id: int,
    at: dt.datetime,
    pin: str | None,
    inside_zones: frozenset[int],
    privacy: bool,
    at_the_door: bool,
    direction: str | None,
    occupancy: Mapping[int, int],
) -> Decision:
    """Everything after the key lookup; ``at_the_door`` False skips the checks that depend on the moment's person."""
    now = at.timestamp()
    uid = key.uid
    if now < key.valid_from:
        return _refuse(NOT_YET_VALID, key.cardholder_id, uid)
    if now >= key.valid_until:
        return _refuse(EXPIRED, key.cardholder_id, uid)
    holder = snapshot.cardholders.get(key.cardholder_id)
    if holder is None:
        return _refuse(UNKNOWN_KEY, None, uid)
    point = snapshot.access_points.get(access_point_id)
    return _evaluate_holder(
        snapshot, holder, uid, point, at, pin, inside_zones, privacy, at_the_door, direction, occupancy
    )


def _evaluate_holder(
    snapshot: Snapshot,
    holder: CardholderRule,
    uid: str,
    point: AccessPointRule | None,
    at: dt.datetime,
    pin: str | None,
    inside_zones: frozenset[int],
    privacy: bool,
    at_the_door: bool,
    direction: str | None,
    occupancy: Mapping[int, int] = _NOBODY,
    *,
    pin_checked: bool = False,
) -> Decision:
    """Checks 3 to 9, for a cardholder found by a key (``uid``) or by a PIN alone (``pin_checked``)."""
    now = at.timestamp()
    if holder.banned:
        return _refuse(BANNED, holder.id, uid)
    if now < holder.valid_from:
        return _refuse(NOT_YET_VALID, holder.id, uid)
    if now >= holder.valid_until:
        return _refuse(EXPIRED, holder.id, uid)
    if point is None:
        return _refuse(UNKNOWN_ACCESS_POINT, holder.id, uid)
    if not holder.override_lockdown and (
        snapshot.lockdown or point.lockdown or not snapshot.lockdown_zones.isdisjoint(point.zone_ids)
    ):
        return _refuse(LOCKDOWN, holder.id, uid)
    if point.mode == _LOCKED and not holder.override_lockdown:
        return _refuse(DOOR_LOCKED, holder.id, uid)
    if privacy and not holder.override_privacy:
        return _refuse(PRIVACY, holder.id, uid)
    reason = _permission(snapshot, holder, point, at)
    if reason is not GRANTED:
        return _refuse(reason, holder.id, uid)
    warning = ""
    if at_the_door:
        entering = (direction or point.direction) == _ENTRY
        if entering and holder.use_anti_passback and inside_zones:
            passback_zones = snapshot.passback_zones
            for zone_id in point.zone_ids:
                if zone_id in inside_zones and zone_id in passback_zones:
                    zone = snapshot.zones[zone_id]
                    timed = zone.passback_seconds and isinstance(inside_zones, Mapping)
                    if timed and now - inside_zones[zone_id] >= zone.passback_seconds:
                        continue
                    if zone.passback_kind == _SOFT:
                        warning = ANTI_PASSBACK
                        continue
                    return _refuse(ANTI_PASSBACK, holder.id, uid)
        if entering and snapshot.limited_zones:
            zones = snapshot.zones
            for zone_id in point.zone_ids:
                if zone_id in snapshot.limited_zones and zone_id not in inside_zones:
                    zone = zones[zone_id]
                    if occupancy.get(zone_id, 0) + zone.occupancy_correction >= zone.max_occupancy:
                        return _refuse(ZONE_FULL, holder.id, uid)
        if point.pin_required and not pin_checked:
            if pin is None:
                return _refuse(PIN_REQUIRED, holder.id, uid)
            if not pin_matches(snapshot.pin_digest_key, holder.pin_hash, pin):
                return _refuse(WRONG_PIN, holder.id, uid)
    open_time = point.extended_open_time if holder.extended_open_time else point.open_time
    return Decision(True, GRANTED, holder.id, uid, open_time, warning)


def _permission(snapshot: Snapshot, holder: CardholderRule, point: AccessPointRule, at: dt.datetime) -> str:
    """granted, no_permission or outside_schedule, from the union of the cardholder's own and level grants."""
    # Inlined rather than one helper per grant source: this loop is most of the cost of a decision.
    point_id = point.id
    zone_ids = point.zone_ids
    scheduled = []  # the periods of the grants naming the point, checked once the local time is known
    if holder.points:
        periods = holder.points.get(point_id)
        if periods is not None:
            if not periods:
                return GRANTED
            scheduled.append(periods)
    if holder.zones and zone_ids:
        for zone_id in zone_ids:
            periods = holder.zones.get(zone_id)
            if periods is not None:
                if not periods:
                    return GRANTED
                scheduled.append(periods)
    levels = snapshot.levels
    for level_id in holder.level_ids:
        level = levels.get(level_id)
        if level is None:
            continue
        periods = level.points.get(point_id)
        if periods is not None:
            if not periods:
                return GRANTED
            scheduled.append(periods)
        if zone_ids and level.zones:
            for zone_id in zone_ids:
                periods = level.zones.get(zone_id)
                if periods is not None:
                    if not periods:
                        return GRANTED
                    scheduled.append(periods)
    if not scheduled:
        return NO_PERMISSION
    local = at.astimezone(snapshot.tz)
    seconds = local.hour * 3600 + local.minute * 60 + local.second
    calendar_id = point.calendar_id if point.calendar_id is not None else snapshot.default_calendar_id
    ordinal = local.toordinal()
    today = day_type_bits(snapshot, calendar_id, ordinal)
    yesterday = day_type_bits(snapshot, calendar_id, ordinal - 1)
    all_periods = snapshot.periods
    for periods in scheduled:
        for period_id in periods:
            period = all_periods.get(period_id)
            if period is not None and _period_active(period, seconds, today, yesterday):
                return GRANTED
    return OUTSIDE_SCHEDULE


def _period_active(period: TimePeriodRule, seconds: int, today: int, yesterday: int) -> bool:
    for start, end, days in period.intervals:
        if start < end:
            if days & today and start <= seconds < end:
                return True
        elif (days & today and seconds >= start) or (days & yesterday and seconds < end):
            return True
    return False


def day_type_bits(snapshot: Snapshot, calendar_id: int | None, ordinal: int) -> int:
    """The day mask bit of a date: its calendar day type if the calendar marks it, else its weekday."""
    memo_key = (calendar_id, ordinal)
    bits = snapshot.day_types.get(memo_key)
    if bits is None:
        date = dt.date.fromordinal(ordinal)
        calendar = snapshot.calendars.get(calendar_id) if calendar_id is not None else None
        bits = 0
        if calendar is not None:
            bits = calendar.dates.get(ordinal) or calendar.recurring.get((date.month, date.day), 0)
        bits = bits or 1 << date.weekday()
        snapshot.day_types[memo_key] = bits
    return bits
