"""Decisions at a reader, the same for every driver: the engine on the rules snapshot, and the audit event.

A :class:`Decider` belongs to one process's device runtime. It decides from the
in-memory snapshot (``accesscontrol.snapshot``), which the runtime refreshes, and
keeps who is inside each anti-passback zone as decisions put them there. It
builds the access event; storing it is the caller's (one event per decision,
through ``accesscontrol.events.record_many`` in the runtime's writer).
"""

import time

from accesscontrol.choices import AuditKind
from accesscontrol.engine import Decision, decide, decide_pin, normalize_uid, passback_after
from accesscontrol.models import AuditEvent
from accesscontrol.snapshot import SnapshotStore
from devices.places import Place


class Decider:
    def __init__(self, store: SnapshotStore):
        self.store = store
        self.inside: dict[int, frozenset[int]] = {}

    def card(
        self, place: Place | None, uid: str, at, *, pin: str | None = None, direction: str | None = None
    ) -> Decision:
        """A key (card UID, mobile key token) presented at a reader of ``place`` (None: a reader mapped nowhere)."""
        snapshot = self.store.snapshot
        point_id = place.id if place else -1
        key = snapshot.keys_by_uid.get(uid) or snapshot.keys_by_uid.get(normalize_uid(uid))
        inside = self.inside.get(key.cardholder_id, frozenset()) if key else frozenset()
        decision = decide(snapshot, uid, point_id, at, pin=pin, inside_zones=inside, direction=direction)
        self._passed(decision, point_id, inside, direction)
        return decision

    def pin(self, place: Place | None, pin: str, at, *, direction: str | None = None) -> Decision:
        """A PIN typed alone at a keypad of ``place``."""
        snapshot = self.store.snapshot
        point_id = place.id if place else -1
        holder = snapshot.holder_by_pin(pin)
        inside = self.inside.get(holder.id, frozenset()) if holder else frozenset()
        decision = decide_pin(snapshot, pin, point_id, at, inside_zones=inside, direction=direction)
        self._passed(decision, point_id, inside, direction)
        return decision

    def _passed(self, decision: Decision, point_id: int, inside: frozenset[int], direction: str | None) -> None:
        snapshot = self.store.snapshot
        if decision.granted and decision.cardholder_id is not None and snapshot.passback_zones:
            after = passback_after(snapshot, decision, point_id, inside, direction)
            self.inside[decision.cardholder_id] = after


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
