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
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from accesscontrol import engine
from accesscontrol.actions import record_operator_action
from accesscontrol.choices import AuditKind, PresenceSource
from accesscontrol.models import AccessPoint, AuditEvent, Cardholder, Presence, PresenceChange, Zone
from accesscontrol.rulechanges import record_rule_changes

_LONG_AGO = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EMPTY: frozenset[int] = frozenset()
_NEVER = float("-inf")


class Passage(NamedTuple):
    """A cardholder passing a door: the tracked zones entered and left, at ``at`` (a tuple: made per decision)."""

    cardholder_id: int
    at: dt.datetime
    entered: frozenset[int] = _EMPTY
    left: frozenset[int] = _EMPTY
    access_point_id: int | None = None
    source: str = PresenceSource.ONLINE


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
        holder_ids = {holder for holder, _ in pairs}
        zone_ids = {zone for _, zone in pairs}
        rows = _rows(holder_ids, zone_ids)
        missing = pairs - rows.keys()
        if missing:
            # Made here, or at the same moment by another process: either way there is one row after this.
            _insert(
                Presence,
                ("cardholder_id", "zone_id", "inside", "since", "last_at", "source"),
                [(holder, zone, False, _LONG_AGO, _LONG_AGO, PresenceSource.ONLINE) for holder, zone in missing],
                ignore_conflicts=True,
            )
            rows.update(_rows({holder for holder, _ in missing}, {zone for _, zone in missing}))
        changed: dict[tuple[int, int], _Row] = {}
        for passage in passages:
            for zones_passed, inside in ((passage.left, False), (passage.entered, True)):
                for zone in zones_passed:
                    row = rows.get((passage.cardholder_id, zone))
                    if row is None or passage.at <= row.last_at:
                        continue  # not tracked, or not newer than what the row reflects
                    if row.inside != inside or row.last_at == _LONG_AGO:
                        row.since = passage.at  # a change of side, or the first passage of a new row
                    row.inside = inside
                    row.last_at = passage.at
                    row.source = passage.source
                    row.access_point_id = passage.access_point_id
                    changed[(passage.cardholder_id, zone)] = row
        if changed:
            _update(changed.values())
            recorded = timezone.now()
            _insert(
                PresenceChange,
                ("cardholder_id", "zone_id", "inside", "at", "recorded_at"),
                [(holder, zone, row.inside, row.last_at, recorded) for (holder, zone), row in changed.items()],
            )
        return len(changed)


class _Row:
    __slots__ = ("access_point_id", "inside", "last_at", "pk", "since", "source")

    def __init__(self, pk, inside, since, last_at, source, access_point_id):
        self.pk, self.inside, self.since, self.last_at = pk, inside, since, last_at
        self.source, self.access_point_id = source, access_point_id


def _rows(holder_ids: set[int], zone_ids: set[int]) -> dict[tuple[int, int], _Row]:
    """The presence rows of these cardholders in these zones, locked until the transaction ends."""
    rows = Presence.objects.select_for_update().filter(cardholder_id__in=holder_ids, zone_id__in=zone_ids)
    columns = ("pk", "cardholder_id", "zone_id", "inside", "since", "last_at", "source", "access_point_id")
    return {(row[1], row[2]): _Row(row[0], *row[3:]) for row in rows.values_list(*columns)}


def _insert(model, columns: tuple[str, ...], rows: list[tuple], *, ignore_conflicts: bool = False) -> None:
    """One INSERT statement run for many rows: bulk_create's preparing of each value costs more than the database.

    Date-times are adapted here; ``ignore_conflicts`` skips rows a unique constraint already holds.
    """
    quote = connection.ops.quote_name
    adapt = connection.ops.adapt_datetimefield_value
    names = ", ".join(quote(model._meta.get_field(name).column) for name in columns)
    marks = ", ".join(["%s"] * len(columns))
    conflict = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({names}) VALUES ({marks}){conflict}"  # noqa: S608
    adapted = [tuple(adapt(v) if isinstance(v, dt.datetime) else v for v in row) for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, adapted)


def _update(rows: Iterable[_Row]) -> None:
    """One UPDATE statement run for many rows (bulk_update's CASE expressions are far slower at this size)."""
    table = connection.ops.quote_name(Presence._meta.db_table)
    point_column = connection.ops.quote_name(Presence._meta.get_field("access_point").column)
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET inside = %s, since = %s, last_at = %s, source = %s, {point_column} = %s "  # noqa: S608
            "WHERE id = %s",
            [
                (row.inside, adapt(row.since), adapt(row.last_at), row.source, row.access_point_id, row.pk)
                for row in rows
            ],
        )


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


def corrected(zone: Zone, counted: int) -> int:
    """How many people a zone counts inside: the presences ``counted`` plus an operator's correction, never below 0."""
    return max(0, counted + zone.occupancy_correction)


def occupancy(zone: Zone) -> int:
    return corrected(zone, counted_inside(zone))


def occupancies(zones: Iterable[Zone]) -> dict[int, int]:
    zones = list(zones)
    counted = dict(
        Presence.objects.filter(zone__in=zones, inside=True)
        .values("zone")
        .annotate(n=Count("id"))
        .values_list("zone", "n")
    )
    return {zone.pk: corrected(zone, counted.get(zone.pk, 0)) for zone in zones}


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
        self._last: dict[int, dict[int, float]] = {}  # cardholder -> zone -> the last passage's POSIX time
        # cardholder -> zone -> POSIX time entered, for the zones they are inside (read it, never write it)
        self.inside: dict[int, dict[int, float]] = {}
        self.counts: dict[int, int] = defaultdict(int)
        self._last_id = 0
        self._gaps: dict[int, float] = {}
        self._loaded = False
        self._refreshed_at = 0.0

    def inside_of(self, cardholder_id: int) -> Mapping[int, float]:
        """Zone id -> POSIX time entered, for the zones the cardholder is inside (nothing before the first refresh)."""
        return self.inside.get(cardholder_id) or {}

    def apply(self, passage: Passage) -> None:
        holder, at, entered, left = passage[0], passage[1].timestamp(), passage[2], passage[3]
        with self._lock:
            for zone in entered:
                self._set(holder, zone, True, at)
            for zone in left:
                self._set(holder, zone, False, at)

    def load(self) -> None:
        with self._lock:
            recent = list(PresenceChange.objects.order_by("-id").values_list("id", flat=True)[:2000])
            self._last.clear()
            self.inside.clear()
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
        last = self._last.get(holder)
        if last is None:
            last = self._last[holder] = {}
        elif at <= last.get(zone, _NEVER):
            return  # not newer than what the view holds (its own passage coming back, an old trail)
        last[zone] = at
        zones = self.inside.get(holder)
        was_inside = zones is not None and zone in zones
        if inside:
            if not was_inside:
                if zones is None:
                    zones = self.inside[holder] = {}
                zones[zone] = at if since is None else since
                self.counts[zone] += 1
        elif was_inside:
            del zones[zone]
            if not zones:
                del self.inside[holder]
            self.counts[zone] -= 1
