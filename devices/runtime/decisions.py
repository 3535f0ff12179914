"""Decisions at a reader, the same for every driver: the engine on the rules snapshot, and the audit event.

A :class:`Decider` belongs to one process's device runtime. It decides from the
in-memory snapshot (``accesscontrol.snapshot``) and the in-memory view of who is
inside which zone (``accesscontrol.presence.PresenceView``); ``refresh`` (on a
database thread) brings both up to date with what every process wrote. A granted
passage through a tracked zone's entry or exit is applied to the view at once and
handed to ``on_passage``, for the caller's writer to store with the access event
(``accesscontrol.presence.record_passages``), so anti-passback and occupancy hold
across restarts and processes. It builds the access event; storing it is the
caller's (one event per decision, through ``accesscontrol.events.record_many``).
"""

import threading
import time
from collections.abc import Callable

from accesscontrol.choices import AuditKind, PresenceSource
from accesscontrol.engine import Decision, decide, decide_holder, decide_pin, normalize_uid, passage
from accesscontrol.models import AuditEvent
from accesscontrol.presence import Passage, PresenceView
from accesscontrol.snapshot import SnapshotStore
from devices.places import Place

_NOBODY: dict = {}
_ONLINE = PresenceSource.ONLINE.value


class Decider:
    def __init__(
        self,
        store: SnapshotStore,
        presence: PresenceView | None = None,
        on_passage: Callable[[Passage], None] | None = None,
    ):
        self.store = store
        self.presence = presence if presence is not None else PresenceView()
        self.on_passage = on_passage
        # A decision and the passage it makes are one step: two entries at once never both take the last place.
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Bring the rules and presence up to date (database work: call it off the event loop)."""
        self.store.refresh()
        self.presence.refresh()

    def card(
        self, place: Place | None, uid: str, at, *, pin: str | None = None, direction: str | None = None
    ) -> Decision:
        """A key (card UID, mobile key token) presented at a reader of ``place`` (None: a reader mapped nowhere)."""
        snapshot = self.store.snapshot
        point_id = place.id if place else -1
        if not snapshot.tracked_zones:
            return decide(snapshot, uid, point_id, at, pin=pin, direction=direction)
        with self._lock:
            key = snapshot.keys_by_uid.get(uid) or snapshot.keys_by_uid.get(normalize_uid(uid))
            inside = self.presence.inside.get(key.cardholder_id, _NOBODY) if key else _NOBODY
            decision = decide(
                snapshot,
                uid,
                point_id,
                at,
                pin=pin,
                inside_zones=inside,
                direction=direction,
                occupancy=self.presence.counts,
            )
            self._passed(snapshot, decision, point_id, at, direction)
        return decision

    def pin(self, place: Place | None, pin: str, at, *, direction: str | None = None) -> Decision:
        """A PIN typed alone at a keypad of ``place``."""
        snapshot = self.store.snapshot
        point_id = place.id if place else -1
        if not snapshot.tracked_zones:
            return decide_pin(snapshot, pin, point_id, at, direction=direction)
        with self._lock:
            holder = snapshot.holder_by_pin(pin)
            inside = self.presence.inside.get(holder.id, _NOBODY) if holder else _NOBODY
            decision = decide_pin(
                snapshot, pin, point_id, at, inside_zones=inside, direction=direction, occupancy=self.presence.counts
            )
            self._passed(snapshot, decision, point_id, at, direction)
        return decision

    def holder(
        self,
        place: Place | None,
        holder_id: int,
        at,
        *,
        pin: str | None = None,
        pin_checked: bool = False,
        direction: str | None = None,
    ) -> Decision:
        """A cardholder identified at a reader of ``place`` without a key: by their face (face terminals)."""
        snapshot = self.store.snapshot
        point_id = place.id if place else -1
        if not snapshot.tracked_zones:
            return decide_holder(
                snapshot, holder_id, point_id, at, pin=pin, pin_checked=pin_checked, direction=direction
            )
        with self._lock:
            decision = decide_holder(
                snapshot,
                holder_id,
                point_id,
                at,
                pin=pin,
                pin_checked=pin_checked,
                inside_zones=self.presence.inside.get(holder_id, _NOBODY),
                direction=direction,
                occupancy=self.presence.counts,
            )
            self._passed(snapshot, decision, point_id, at, direction)
        return decision

    def _passed(self, snapshot, decision: Decision, point_id: int, at, direction: str | None) -> None:
        """The passage a grant makes through tracked zones: into the view now, to ``on_passage`` for storing."""
        entered, left = passage(snapshot, decision, point_id, direction)
        if not (entered or left):
            return  # refused, no tracked zone, or a door both ways (it tells nothing of where they are)
        passed = Passage(decision.cardholder_id, at, entered, left, point_id, _ONLINE)
        self.presence.apply(passed)
        if self.on_passage is not None:
            self.on_passage(passed)


def access_event(decision: Decision, place: Place | None, device_pk: int, at, detail: dict) -> AuditEvent:
    """The audit event of a decision at a reader."""
    return AuditEvent(
        at=at,
        kind=AuditKind.ACCESS_GRANTED if decision.granted else AuditKind.ACCESS_DENIED,
        reason=decision.reason,
        access_point_id=place.id if place else None,
        access_point_name=place.name if place else "",
        cardholder_id=decision.cardholder_id,
        key_uid=decision.key_uid[:64],
        device_id=device_pk,
        detail=detail,
    )


class EventIds:
    """Ids for the events Space makes for a device (``device_event_id``): rising, and unique across restarts.

    Microseconds since the epoch, bumped past the last one given, so a batch the writer stores twice after a
    failed commit is still stored once (the (device, device_event_id) constraint), and a restarted runtime
    never reuses an id.
    """

    def __init__(self):
        self._last = 0

    def next(self) -> int:
        value = max(time.time_ns() // 1000, self._last + 1)
        self._last = value
        return value
