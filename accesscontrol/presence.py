"""Who is inside which zone: presence in the database, shared by every process, and each process's view of it.

Presence is kept for *tracked* zones: those with anti-passback, a roll-call
area or an occupancy limit. A granted passage through an entry reader enters
the tracked zones of its access point; through an exit reader it leaves them
(a reader both ways tells nothing). Passages come from online decisions (the
device runtime and the SDP/1 bridge, through their writers), from offline
locks' audit trails when a PPD or an updater brings them back, and from
operators (forgiving anti-passback, correcting a zone's count).

:func:`record_passages` merges passages in timestamp order and is idempotent:
a row remembers the passage it reflects (``last_at``), and only a later one
changes it, so an offline trail arriving after newer online events changes
nothing it should not, and a batch stored twice changes nothing the second time.

Every change also writes a :class:`PresenceChange` row in the same transaction.
Each process deciding at doors holds a :class:`PresenceView` in memory, applies
its own decisions to it at once, and follows the change rows of the others
(``refresh``), as the rules snapshot follows RuleChange rows: decisions never
wait on the database.
"""

import datetime as dt
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from accesscontrol import engine
from accesscontrol.actions import record_operator_action
from accesscontrol.choices import AuditKind, PresenceSource
from accesscontrol.models import AuditEvent, Cardholder, Presence, PresenceChange, Zone
from accesscontrol.rulechanges import record_rule_changes

_LONG_AGO = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EMPTY: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Passage:
    """A cardholder passing a door: the tracked zones entered and left, at ``at``."""

    cardholder_id: int
    at: dt.datetime
    entered: frozenset[int] = _EMPTY
    left: frozenset[int] = _EMPTY
    access_point_id: int | None = None
    source: str = PresenceSource.ONLINE


def passage_of(
    snapshot: engine.Snapshot,
    decision: engine.Decision,
    access_point_id: int,
    at: dt.datetime,
    direction: str | None = None,
    source: str = PresenceSource.ONLINE,
) -> Passage | None:
    """The passage a decision makes, or None when it changes no presence."""
    entered, left = engine.passage(snapshot, decision, access_point_id, direction)
    if not entered and not left:
        return None
    return Passage(decision.cardholder_id, at, entered, left, access_point_id, source)


# --- the database ------------------------------------------------------------------------------------------


def record_passages(passages: Iterable[Passage]) -> int:
    """Merge ``passages`` into presence (in timestamp order, idempotently); returns how many rows changed.

    Runs in the caller's transaction when there is one (the runtime's writer stores them with their events).
    """
    passages = sorted(passages, key=lambda passage: passage.at)
    if not passages:
        return 0
    with transaction.atomic():
        holder_ids = {passage.cardholder_id for passage in passages}
        holders = set(Cardholder.objects.filter(pk__in=holder_ids).values_list("pk", flat=True))
        zones = set(
            Zone.objects.filter(pk__in={z for p in passages for z in p.entered | p.left}).values_list("pk", flat=True)
        )
        pairs = {
            (p.cardholder_id, zone)
            for p in passages
            if p.cardholder_id in holders
            for zone in (p.entered | p.left)
            if zone in zones
        }
        if not pairs:
            return 0
        # Make sure each pair has its row (another process may be making it too), then lock them.
        Presence.objects.bulk_create(
            [
                Presence(cardholder_id=holder, zone_id=zone, inside=False, since=_LONG_AGO, last_at=_LONG_AGO)
                for holder, zone in pairs
            ],
            ignore_conflicts=True,
        )
        holder_ids = {holder for holder, _ in pairs}
        zone_ids = {zone for _, zone in pairs}
        rows = {
            (row.cardholder_id, row.zone_id): row
            for row in Presence.objects.select_for_update().filter(cardholder_id__in=holder_ids, zone_id__in=zone_ids)
        }
        changed: dict[tuple[int, int], Presence] = {}
        for passage in passages:
            for zones_passed, inside in ((passage.left, False), (passage.entered, True)):
                for zone in zones_passed:
                    row = rows.get((passage.cardholder_id, zone))
                    if row is None or passage.at <= row.last_at:
                        continue  # not tracked, or not newer than what the row reflects
                    if row.inside != inside:
                        row.since = passage.at
                    row.inside = inside
                    row.last_at = passage.at
                    row.source = passage.source
                    row.access_point_id = passage.access_point_id
                    changed[(passage.cardholder_id, zone)] = row
        if changed:
            Presence.objects.bulk_update(
                list(changed.values()), ["inside", "since", "last_at", "source", "access_point"], batch_size=500
            )
            PresenceChange.objects.bulk_create(
                [
                    PresenceChange(cardholder_id=holder, zone_id=zone, inside=row.inside, at=row.last_at)
                    for (holder, zone), row in changed.items()
                ],
                batch_size=500,
            )
        return len(changed)


def passages_from_events(events: Iterable[AuditEvent], directions: Mapping[int, str] | None = None) -> list[Passage]:
    """The passages of granted access events at access points through tracked zones (offline audit trails).

    ``directions``: access point id -> its direction, when the caller has them (else they are read).
    """
    granted = [
        event
        for event in events
        if event.kind == AuditKind.ACCESS_GRANTED and event.cardholder_id and event.access_point_id
    ]
    if not granted:
        return []
    from accesscontrol.models import AccessPoint

    point_ids = {event.access_point_id for event in granted}
    tracked = defaultdict(set)
    rows = AccessPoint.zones.through.objects.filter(accesspoint_id__in=point_ids).filter(
        Q(zone__anti_passback=True) | Q(zone__roll_call=True) | Q(zone__max_occupancy__isnull=False)
    )
    for point_id, zone_id in rows.values_list("accesspoint_id", "zone_id"):
        tracked[point_id].add(zone_id)
    if directions is None:
        directions = dict(AccessPoint.objects.filter(pk__in=point_ids).values_list("pk", "direction"))
    passages = []
    for event in granted:
        zones = frozenset(tracked.get(event.access_point_id, ()))
        direction = (event.detail or {}).get("direction") or directions.get(event.access_point_id)
        if not zones or direction not in ("entry", "exit"):
            continue
        entered, left = (zones, _EMPTY) if direction == "entry" else (_EMPTY, zones)
        passages.append(
            Passage(event.cardholder_id, event.at, entered, left, event.access_point_id, PresenceSource.OFFLINE)
        )
    return passages


def forgive(*, operator, via: str, cardholder: Cardholder | None = None, zone: Zone | None = None, address=None) -> int:
    """Mark a cardholder (in one zone or all), or everyone in a zone, as outside: anti-passback forgiven.

    Returns how many presences ended. Writes a system auditor row.
    """
    if cardholder is None and zone is None:
        raise ValueError("Forgive a cardholder, a zone or a cardholder in a zone.")
    now = timezone.now()
    with transaction.atomic():
        rows = Presence.objects.select_for_update().filter(inside=True)
        if cardholder is not None:
            rows = rows.filter(cardholder=cardholder)
        if zone is not None:
            rows = rows.filter(zone=zone)
        ended = list(rows.values_list("pk", "cardholder_id", "zone_id"))
        Presence.objects.filter(pk__in=[pk for pk, _, _ in ended]).update(
            inside=False, since=now, last_at=now, source=PresenceSource.OPERATOR
        )
        PresenceChange.objects.bulk_create(
            [PresenceChange(cardholder_id=h, zone_id=z, inside=False, at=now) for _, h, z in ended],
            batch_size=500,
        )
        record_operator_action(
            operator,
            "forgive_presence",
            cardholder if cardholder is not None else zone,
            via=via,
            detail={
                "cardholder": cardholder.pk if cardholder is not None else None,
                "zone": zone.pk if zone is not None else None,
                "ended": len(ended),
            },
            address=address,
        )
    return len(ended)


def counted_inside(zone: Zone) -> int:
    return Presence.objects.filter(zone=zone, inside=True).count()


def occupancy(zone: Zone) -> int:
    """How many people a zone counts inside: the presences plus an operator's correction, never below 0."""
    return max(0, counted_inside(zone) + zone.occupancy_correction)


def occupancies(zones: Iterable[Zone]) -> dict[int, int]:
    zones = list(zones)
    counted = dict(
        Presence.objects.filter(zone__in=zones, inside=True)
        .values("zone")
        .annotate(n=Count("id"))
        .values_list("zone", "n")
    )
    return {zone.pk: max(0, counted.get(zone.pk, 0) + zone.occupancy_correction) for zone in zones}


def correct_occupancy(zone: Zone, count: int, *, operator, via: str, address=None) -> int:
    """Set the count of people in ``zone`` to ``count`` (people who left or came in unseen); returns the correction."""
    if count < 0:
        from django.core.exceptions import ValidationError

        raise ValidationError({"count": "A count of people is not negative."})
    with transaction.atomic():
        zone = Zone.objects.select_for_update().get(pk=zone.pk)
        before = occupancy(zone)
        zone.occupancy_correction = count - counted_inside(zone)
        zone.save(update_fields=["occupancy_correction"])
        record_rule_changes("zone", [zone.pk])
        record_operator_action(
            operator,
            "correct_occupancy",
            zone,
            via=via,
            detail={"before": before, "count": count, "correction": zone.occupancy_correction},
            address=address,
        )
    return zone.occupancy_correction


def for_decision(snapshot: engine.Snapshot, cardholder_id: int | None, access_point_id: int) -> tuple[dict, dict]:
    """From the database: the zones of the access point the cardholder is inside (with the times they entered)
    and the counts of its zones with a limit, for a decision made outside a device runtime (the API's check)."""
    point = snapshot.access_points.get(access_point_id)
    if point is None or not (point.zone_ids & snapshot.tracked_zones):
        return {}, {}
    inside = {}
    if cardholder_id is not None:
        rows = Presence.objects.filter(cardholder_id=cardholder_id, zone_id__in=point.zone_ids, inside=True)
        inside = {zone: since.timestamp() for zone, since in rows.values_list("zone_id", "since")}
    limited = point.zone_ids & snapshot.limited_zones
    counts = dict(
        Presence.objects.filter(zone_id__in=limited, inside=True)
        .values("zone")
        .annotate(n=Count("id"))
        .values_list("zone", "n")
    )
    return inside, counts


def purge_changes(older_than: dt.timedelta = dt.timedelta(days=1), now: dt.datetime | None = None) -> int:
    cutoff = (now or timezone.now()) - older_than
    deleted, _ = PresenceChange.objects.filter(recorded_at__lt=cutoff).delete()
    return deleted


# --- a process's view ---------------------------------------------------------------------------------------


@dataclass
class _State:
    inside: bool
    at: float  # the passage's POSIX time
    since: float


class PresenceView:
    """Presence in memory, for decisions: who is inside which zone since when, and each zone's count.

    ``apply`` takes a passage this process decided, at once; ``refresh`` follows the PresenceChange rows
    every process writes (missing ids are re-read for ``gap_seconds``, as transactions may commit out of
    order). A state only ever moves to a later passage, so a process's own rows coming back change nothing.
    """

    def __init__(self, *, gap_seconds: float = 300, max_idle_seconds: float = 3600):
        self.gap_seconds = gap_seconds
        self.max_idle_seconds = max_idle_seconds
        self._lock = threading.Lock()
        self._states: dict[int, dict[int, _State]] = {}
        self._inside: dict[int, dict[int, float]] = {}
        self.counts: dict[int, int] = defaultdict(int)
        self._last_id = 0
        self._gaps: dict[int, float] = {}
        self._loaded = False
        self._refreshed_at = 0.0

    def inside_of(self, cardholder_id: int) -> Mapping[int, float]:
        """Zone id -> POSIX time entered, for the zones the cardholder is inside (nothing before the first refresh)."""
        return self._inside.get(cardholder_id) or {}

    def apply(self, passage: Passage) -> None:
        at = passage.at.timestamp()
        with self._lock:
            for zones, inside in ((passage.left, False), (passage.entered, True)):
                for zone in zones:
                    self._set(passage.cardholder_id, zone, inside, at)

    def load(self) -> None:
        with self._lock:
            recent = list(PresenceChange.objects.order_by("-id").values_list("id", flat=True)[:2000])
            self._states.clear()
            self._inside.clear()
            self.counts.clear()
            rows = Presence.objects.filter(last_at__gt=_LONG_AGO).values_list(
                "cardholder_id", "zone_id", "inside", "last_at", "since"
            )
            for holder, zone, inside, last_at, since in rows.iterator(chunk_size=5000):
                self._set(holder, zone, inside, last_at.timestamp(), since.timestamp())
            self._last_id = recent[0] if recent else 0
            self._gaps = {}
            now = time.monotonic()
            seen = set(recent)
            for row_id in range((recent[-1] if recent else 0) + 1, self._last_id):
                if row_id not in seen:
                    self._gaps[row_id] = now
            self._loaded = True
            self._refreshed_at = now

    def refresh(self) -> None:
        if not self._loaded or time.monotonic() - self._refreshed_at > self.max_idle_seconds:
            self.load()
            return
        now = time.monotonic()
        for row_id, noticed in list(self._gaps.items()):
            if now - noticed > self.gap_seconds:
                del self._gaps[row_id]
        query = Q(id__gt=self._last_id)
        if self._gaps:
            query |= Q(id__in=list(self._gaps))
        columns = ("id", "cardholder_id", "zone_id", "inside", "at")
        rows = list(PresenceChange.objects.filter(query).order_by("id").values_list(*columns))
        self._refreshed_at = now
        if not rows:
            return
        with self._lock:
            ids = set()
            for row_id, holder, zone, inside, at in rows:
                ids.add(row_id)
                self._gaps.pop(row_id, None)
                self._set(holder, zone, inside, at.timestamp())
            newest = max(self._last_id, rows[-1][0])
            for row_id in range(max(self._last_id, newest - 4000) + 1, newest):
                if row_id not in ids:
                    self._gaps.setdefault(row_id, now)
            self._last_id = newest

    def _set(self, holder: int, zone: int, inside: bool, at: float, since: float | None = None) -> None:
        states = self._states.setdefault(holder, {})
        state = states.get(zone)
        if state is not None and at <= state.at:
            return
        was_inside = state is not None and state.inside
        if state is None:
            state = states[zone] = _State(inside, at, at if since is None else since)
        else:
            if was_inside != inside:
                state.since = at if since is None else since
            state.inside, state.at = inside, at
        zones = self._inside.get(holder)
        if inside:
            if zones is None:
                zones = self._inside[holder] = {}
            zones[zone] = state.since
            if not was_inside:
                self.counts[zone] += 1
        elif was_inside:
            zones.pop(zone, None)
            if not zones:
                self._inside.pop(holder, None)
            self.counts[zone] -= 1
