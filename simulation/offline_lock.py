"""A software offline lock: decides from the card alone, as a battery lock without network does.

It holds its configuration (loaded by a PPD: its door, zones, time periods,
calendar, the site clock's time zone, the site code and card key), keeps a
bounded audit buffer and a bounded blacklist, and writes its status onto every
card it reads. Pure Python, no ORM: the tests, the PPD simulator and
``manage.py bench_cards`` drive it directly.

The decision itself is the engine's (accesscontrol/engine.py): the lock turns its
configuration into an engine snapshot once, and each card into a one-key,
one-cardholder rule set, so schedules, calendars, time zones and validity are
judged by the same code as at an online door. Before the engine, the lock learns
the blacklist entries the card carries and refuses a blacklisted key.

Opening modes (docs/ppd.md): the mode in force at an instant is the last of the
configuration's automatic changes (accesscontrol/modes.py, on the lock's own
calendar), else its configured mode. The lock's clock (``tick``) releases and
locks the door at the boundaries and writes ``door_released`` / ``door_locked``
into the audit buffer, once each: open holds it released, timed while the timed
period is active, office while a card with the office flag has toggled it open
(until the next mode change), toggle while a granted card has toggled it open.
Locked refuses every card without ``override_lockdown`` (the engine's
``door_locked``). A card presented while the door is held open is still decided
and recorded.

The blacklist a lock reports (``blacklist_number``) is a watermark: the lock holds
every entry of the site's list numbered up to it. A card extends it only when the
entries it carries join up with it (``CardData.blacklist_base``); entries from a
card that leaves a gap are still honoured, but the watermark waits for a card or
a PPD that fills the gap, so the server never takes the lock for more up to date
than it is.
"""

import dataclasses
import datetime as dt
from collections import deque
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from accesscontrol import engine, modes
from accesscontrol.choices import AuditKind, OpeningMode
from devices import carddata, mobiletoken
from devices.carddata import POINT, ZONE, CardData, CardError, LockStatus
from devices.lockconfig import LockConfig


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the lock decided for one presentation; ``open_ms`` is how long it stays unlocked (0: refused)."""

    granted: bool
    reason: str  # an accesscontrol.choices.Decision value
    key_id: int | None = None
    uid: str = ""
    cardholder_id: int | None = None
    open_ms: int = 0


@dataclass(frozen=True, slots=True)
class LockEvent:
    """One event of the audit buffer; ``id`` rises by one per event and is never reused."""

    id: int
    at: dt.datetime
    kind: str  # an accesscontrol.choices.AuditKind value
    key_id: int | None = None
    uid: str = ""
    reason: str = ""


_CALENDAR = 0  # the lock has one calendar: the engine snapshot's default
_HELD_BY_CARD = (OpeningMode.OFFICE.value, OpeningMode.TOGGLE.value)


def _merged(held: tuple[int, ...] | None, periods: tuple[int, ...]) -> tuple[int, ...]:
    """Two grants of one target: either one at any time (empty) makes it any time; else both sets of periods."""
    if held is None:
        return periods
    if not held or not periods:
        return engine.ANY_TIME
    return held + tuple(period for period in periods if period not in held)


class OfflineLock:
    """One battery lock: its configuration, blacklist, audit buffer, privacy latch and battery."""

    def __init__(
        self, config: LockConfig, *, battery: int = 100, audit_capacity: int = 1000, blacklist_capacity: int = 4000
    ):
        self.battery = battery
        self.privacy = False  # the room's do-not-disturb latch, set from inside
        self.audit_dropped = 0  # events lost because the buffer was full
        self.blacklist_dropped = 0  # live entries forgotten because the blacklist was full
        self._audit: deque[LockEvent] = deque()
        self._audit_capacity = audit_capacity
        self._next_event_id = 1
        self._blacklist: dict[int, int] = {}  # key_id -> until (POSIX seconds)
        self._blacklist_capacity = blacklist_capacity
        self._blacklist_number = 0
        self._challenges = mobiletoken.Challenges(config.lock_id)
        self._released = False  # the door held open by its mode (not a card's few seconds)
        self.load(config)

    # --- configuration (what a PPD does) ---------------------------------------------------------------------

    def load(self, config: LockConfig) -> None:
        """Take a new configuration and the full blacklist in it; the audit buffer is kept.

        A door a card held open (office, toggle) stays so until the next ``tick`` under the new configuration
        decides again; the hold itself is forgotten.
        """
        self.config = config
        self._challenges.lock_id = config.lock_id
        periods = (*config.periods, config.timed_period) if config.timed_period else config.periods
        self._point = engine.AccessPointRule(
            config.access_point_id,
            open_time=config.open_time,
            extended_open_time=config.extended_open_time,
            zone_ids=frozenset(config.zone_ids),
            mode=config.mode,
            timed_period_id=config.timed_period.id if config.timed_period else None,
        )
        self._snapshot = engine.Snapshot(
            tz=ZoneInfo(config.time_zone),
            default_calendar_id=_CALENDAR,
            access_points={config.access_point_id: self._point},
            periods={
                period.id: engine.TimePeriodRule(period.id, tuple(engine.Interval(*i) for i in period.intervals))
                for period in periods
            },
            calendars={_CALENDAR: engine.CalendarRule(_CALENDAR, config.calendar_dates, config.calendar_recurring)},
        )
        self._changes = [modes.Change(seconds, days, mode) for seconds, days, mode in config.mode_changes]
        self._epoch: tuple[str, dt.datetime | None] | None = None  # the mode in force and the change that set it
        self._held = False  # toggled open by a card (office, toggle) within the current epoch
        self._zone_ids = frozenset(config.zone_ids)
        self._blacklist = {}
        for number, key_id, until in config.blacklist:
            self._blacklist[key_id] = max(until, self._blacklist.get(key_id, 0))
            self._blacklist_number = max(self._blacklist_number, number)
        self._bound_blacklist(None)

    # --- presenting a card -----------------------------------------------------------------------------------

    def present(self, raw: bytes, at: dt.datetime, *, uid: str | None = None) -> tuple[Outcome, bytes | None]:
        """Decide on the card file ``raw`` at ``at`` (the site clock), record it, and write the lock's status.

        Returns the outcome and the card file with the status written, or None when the card could not be
        read (refused with its carddata reason). ``uid``, when the reader gives the card's UID, must be the one
        the card data was written for: card data copied onto another card is refused as tampered.
        """
        config = self.config
        self.tick(at)
        try:
            card = carddata.decode(raw, config.card_key, config.site)
        except CardError as error:
            # Unreadable card data: the audit trail keeps the UID the reader saw, when it gave one.
            outcome = Outcome(False, error.reason, uid=engine.normalize_uid(uid) if uid else "")
            return self._record(outcome, at, audited=True), None
        if uid is not None and engine.normalize_uid(uid) != card.uid:
            # Card data copied onto another card: the physical card's UID is the one to audit.
            copied = Outcome(False, carddata.TAMPERED, card.key_id, engine.normalize_uid(uid), card.cardholder_id)
            outcome = self._record(copied, at, audited=True)
        else:
            outcome = self.decide_card(card, at)
        return outcome, carddata.write_status(raw, config.card_key, config.site, self.status(at))

    def decide_card(self, card: CardData, at: dt.datetime) -> Outcome:
        """Decide on authenticated card data (a card's, or a mobile key's) and record it in the audit buffer."""
        mode = self.tick(at)
        if card.site != self.config.site:
            return self._refuse(carddata.WRONG_SITE, at, card)
        now = int(at.timestamp())
        self._learn_blacklist(card, now)
        until = self._blacklist.get(card.key_id)
        if until is not None and now < until:
            outcome = Outcome(False, engine.BLACKLISTED, card.key_id, card.uid, card.cardholder_id)
        else:
            decision = engine.decide(
                self._card_snapshot(card, mode), card.uid, self.config.access_point_id, at, privacy=self._latched()
            )
            outcome = Outcome(
                decision.granted,
                decision.reason,
                card.key_id,
                card.uid,
                card.cardholder_id,
                decision.open_time * 1000,
            )
        outcome = self._record(outcome, at, audited=card.audit_openings or not outcome.granted)
        if outcome.granted and (mode == OpeningMode.TOGGLE or (mode == OpeningMode.OFFICE and card.office)):
            self._held = not self._held
            self._set_released(self._released_by_mode(mode, at), at, outcome)
        return outcome

    def _latched(self) -> bool:
        return self.config.is_room and self.privacy

    def _card_snapshot(self, card: CardData, mode: str) -> engine.Snapshot:
        """The lock's snapshot with the card as its only key (the grants naming this door or its zones) and
        the door in ``mode``."""
        point_id = self.config.access_point_id
        points: dict[int, tuple[int, ...]] = {}
        zones: dict[int, tuple[int, ...]] = {}
        for grant in card.grants:
            if grant.kind == POINT and grant.id == point_id:
                points[point_id] = _merged(points.get(point_id), grant.periods)
            elif grant.kind == ZONE and grant.id in self._zone_ids:
                zones[grant.id] = _merged(zones.get(grant.id), grant.periods)
        holder = engine.CardholderRule(
            card.cardholder_id,
            override_lockdown=card.override_lockdown,
            override_privacy=card.override_privacy,
            extended_open_time=card.extended_open_time,
            points=points,
            zones=zones,
        )
        key = engine.KeyRule(
            card.key_id,
            card.uid,
            card.cardholder_id,
            valid_from=engine.NEVER if card.valid_from is None else card.valid_from,
            valid_until=engine.FOREVER if card.valid_until is None else card.valid_until,
        )
        base = self._snapshot
        return engine.Snapshot(
            tz=base.tz,
            default_calendar_id=_CALENDAR,
            cardholders={holder.id: holder},
            keys_by_uid={card.uid: key},
            access_points=base.access_points
            if mode == self._point.mode
            else {point_id: dataclasses.replace(self._point, mode=mode)},
            periods=base.periods,
            calendars=base.calendars,
        )

    # --- the opening mode and the lock's clock ---------------------------------------------------------------

    @property
    def released(self) -> bool:
        """Whether the door is held open by its opening mode (as of the last tick or card)."""
        return self._released

    def mode_at(self, at: dt.datetime) -> str:
        """The opening mode in force at ``at``: the last automatic change, else the configured mode."""
        return self._mode_in_force(at)[0]

    def tick(self, now: dt.datetime) -> str:
        """What the lock's clock does when it wakes: release or lock the door for the mode in force at ``now``
        (a hold a card made ends with a mode change), writing ``door_released`` / ``door_locked`` once each.

        A boundary passed between two ticks is acted on at the second one. Returns the mode in force.
        """
        epoch = self._mode_in_force(now)
        if epoch != self._epoch:
            self._epoch = epoch
            self._held = False
        mode = epoch[0]
        self._set_released(self._released_by_mode(mode, now), now)
        return mode

    def _mode_in_force(self, at: dt.datetime) -> tuple[str, dt.datetime | None]:
        found = modes.mode_at(self._changes, self._snapshot, _CALENDAR, at) if self._changes else None
        return found if found is not None else (self.config.mode, None)

    def _released_by_mode(self, mode: str, at: dt.datetime) -> bool:
        if mode == OpeningMode.OPEN:
            return True
        if mode == OpeningMode.TIMED:
            period = self.config.timed_period
            return period is not None and engine.period_active(self._snapshot, period.id, _CALENDAR, at)
        return mode in _HELD_BY_CARD and self._held

    def _set_released(self, released: bool, at: dt.datetime, by: Outcome | None = None) -> None:
        if released == self._released:
            return
        self._released = released
        kind = AuditKind.DOOR_RELEASED if released else AuditKind.DOOR_LOCKED
        key_id, uid = (by.key_id, by.uid) if by is not None else (None, "")
        self._append(LockEvent(self._take_event_id(), at, kind.value, key_id, uid))

    # --- the room's privacy latch ----------------------------------------------------------------------------

    def set_privacy(self, on: bool, at: dt.datetime) -> None:
        """The guest turns the do-not-disturb latch on or off from inside (rooms only)."""
        if not self.config.is_room or on == self.privacy:
            return
        self.privacy = on
        kind = AuditKind.PRIVACY_ON if on else AuditKind.PRIVACY_OFF
        self._append(LockEvent(self._take_event_id(), at, kind.value))

    # --- the blacklist ---------------------------------------------------------------------------------------

    @property
    def blacklist_number(self) -> int:
        """The watermark: the lock holds every live blacklist entry numbered up to this."""
        return self._blacklist_number

    def blacklisted(self, key_id: int, at: dt.datetime) -> bool:
        until = self._blacklist.get(key_id)
        return until is not None and at.timestamp() < until

    def blacklist_size(self) -> int:
        return len(self._blacklist)

    def _learn_blacklist(self, card: CardData, now: int) -> None:
        """Take the card's entries newer than the watermark; extend it if they join up with it."""
        watermark = self._blacklist_number
        newest = watermark
        learned = False
        for item in card.blacklist:
            if item.number > watermark:
                if item.until > now:
                    self._blacklist[item.key_id] = max(item.until, self._blacklist.get(item.key_id, 0))
                    learned = True
                newest = max(newest, item.number)
        if card.blacklist_base <= watermark:
            self._blacklist_number = newest
        if learned:
            self._bound_blacklist(now)

    def _bound_blacklist(self, now: int | None) -> None:
        """Forget expired entries; past the capacity, forget those that expire soonest (counted)."""
        if now is not None:
            for key_id in [key_id for key_id, until in self._blacklist.items() if until <= now]:
                del self._blacklist[key_id]
        excess = len(self._blacklist) - self._blacklist_capacity
        if excess > 0:
            for key_id in sorted(self._blacklist, key=self._blacklist.__getitem__)[:excess]:
                del self._blacklist[key_id]
            self.blacklist_dropped += excess

    # --- the audit buffer ------------------------------------------------------------------------------------

    def _refuse(self, reason: str, at: dt.datetime, card: CardData | None = None) -> Outcome:
        if card is None:
            return self._record(Outcome(False, reason), at, audited=True)
        return self._record(Outcome(False, reason, card.key_id, card.uid, card.cardholder_id), at, audited=True)

    def _record(self, outcome: Outcome, at: dt.datetime, *, audited: bool) -> Outcome:
        if audited:
            kind = AuditKind.ACCESS_GRANTED if outcome.granted else AuditKind.ACCESS_DENIED
            self._append(LockEvent(self._take_event_id(), at, kind.value, outcome.key_id, outcome.uid, outcome.reason))
        return outcome

    def _take_event_id(self) -> int:
        event_id = self._next_event_id
        self._next_event_id += 1
        return event_id

    def _append(self, event: LockEvent) -> None:
        if len(self._audit) >= self._audit_capacity:
            self._audit.popleft()
            self.audit_dropped += 1
        self._audit.append(event)

    def collect_audit(self) -> list[LockEvent]:
        """The buffered events, oldest first; they stay until acknowledged, so a failed upload loses nothing."""
        return list(self._audit)

    def acknowledge_audit(self, up_to_id: int) -> int:
        """Forget the events up to ``up_to_id`` (stored by the server); returns how many were forgotten."""
        forgotten = 0
        while self._audit and self._audit[0].id <= up_to_id:
            self._audit.popleft()
            forgotten += 1
        return forgotten

    # --- status ----------------------------------------------------------------------------------------------

    def status(self, at: dt.datetime) -> LockStatus:
        """What the lock writes onto the cards it reads."""
        return LockStatus(
            lock_id=self.config.lock_id,
            at=int(at.timestamp()),
            battery=self.battery,
            blacklist_number=self._blacklist_number,
            config_revision=self.config.revision,
            events_pending=min(len(self._audit), 0xFFFF),
        )

    # --- mobile keys (devices/mobiletoken.py) ----------------------------------------------------------------

    def challenge(self, at: dt.datetime) -> bytes:
        """A fresh random challenge for a phone at the door."""
        return self._challenges.issue(at)

    def present_mobile(self, token: bytes, proof: bytes, at: dt.datetime) -> Outcome:
        """Decide on a phone's answer to a challenge: its key token and its proof of the phone secret."""
        config = self.config
        self.tick(at)
        try:
            card, phone_secret = mobiletoken.open_token(token, config.card_key, config.site)
        except CardError as error:
            return self._refuse(error.reason, at)
        try:
            self._challenges.verify(phone_secret, proof, at)
        except CardError as error:
            return self._refuse(error.reason, at, card)
        return self.decide_card(card, at)
