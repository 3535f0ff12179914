"""Who may open an access point now, for every cardholder at once, as numpy (docs/face-matching.md).

A face terminal identifies a face 1:N only among the cardholders who may open its
access point now (``allowed`` of :meth:`accesscontrol.facematch.Gallery.identify`).
That set is :func:`accesscontrol.engine.may_open` asked of every cardholder: no key
(a face needs none), no PIN, anti-passback, occupancy or privacy. Asking it one by
one is far too slow for 100,000 cardholders, so:

- an index is built once per snapshot (memoised in ``Snapshot.derived``): the
  cardholders as columns (ids, validity, banned, override lockdown), each access
  level's members and each individual grant's holders as positions in those columns;
- a call finds the grants naming the access point or one of its zones (memoised per
  access point), keeps those in force now (each distinct time period evaluated once,
  by the engine's :func:`~accesscontrol.engine.period_active`), marks their holders
  and masks out the banned, those outside their validity window and, when a lockdown
  or the ``locked`` mode closes the point, those who do not override lockdown.

A call also says until when its answer holds (``until``, POSIX time): the first
instant after ``at`` when the local wall clock reaches a start or an end of an
interval of the periods involved, or midnight (day types change), or the UTC offset
changes, or one of the holders' validity begins or ends. Nothing else in the answer
depends on the time, so :class:`AllowedCache` reuses it until then, or until the
snapshot is replaced.
"""

import bisect
import datetime as dt
import hashlib
import math
import threading
from collections import OrderedDict, defaultdict
from typing import NamedTuple

import numpy as np

from accesscontrol.engine import ANY_TIME, AccessPointRule, Snapshot, door_refusal, period_active

DAY = 86_400
CACHE_SIZE = 4_096
_MEMO = "allowed"
_POSITION = np.int32  # a cardholder's position in the index's columns
_build_lock = threading.Lock()


def _frozen(array: np.ndarray) -> np.ndarray:
    """``array`` made read-only: answers are shared by the cache's callers."""
    array.flags.writeable = False
    return array


_NOBODY = _frozen(np.empty(0, dtype=np.int64))


class Allowed(NamedTuple):
    ids: np.ndarray  # sorted, unique cardholder ids (int64, read-only)
    until: float  # POSIX time before which ``ids`` cannot change without a new snapshot


class PointGrants(NamedTuple):
    """The grants naming one access point (or one of its zones), grouped by their periods."""

    holders: dict[tuple[int, ...], list[np.ndarray]]  # periods (ANY_TIME: always) -> arrays of positions
    boundaries: tuple[int, ...]  # the periods' interval starts and ends in a day, sorted, midnight last


class Index:
    """A snapshot's cardholders as columns, and the holders each grant names as positions in them."""

    def __init__(self, snapshot: Snapshot):
        holders = sorted(snapshot.cardholders.values(), key=lambda holder: holder.id)
        count = len(holders)
        self.ids = np.fromiter((holder.id for holder in holders), dtype=np.int64, count=count)
        self.valid_from = np.fromiter((holder.valid_from for holder in holders), dtype=np.float64, count=count)
        self.valid_until = np.fromiter((holder.valid_until for holder in holders), dtype=np.float64, count=count)
        banned = np.fromiter((holder.banned for holder in holders), dtype=bool, count=count)
        overrides = np.fromiter((holder.override_lockdown for holder in holders), dtype=bool, count=count)
        self.open_to = ~banned  # who may pass an open point, permission and validity aside
        self.closed_to = ~banned & overrides  # ... a point closed by a lockdown or the locked mode
        members = defaultdict(list)
        own_points = defaultdict(lambda: defaultdict(list))
        own_zones = defaultdict(lambda: defaultdict(list))
        levels = snapshot.levels
        for position, holder in enumerate(holders):
            for level_id in holder.level_ids:
                if level_id in levels:
                    members[level_id].append(position)
            for point_id, periods in holder.points.items():
                own_points[point_id][periods].append(position)
            for zone_id, periods in holder.zones.items():
                own_zones[zone_id][periods].append(position)
        self.members = {level_id: _positions(found) for level_id, found in members.items()}
        self.own_points = _inverted(own_points)
        self.own_zones = _inverted(own_zones)
        self._grants: dict[int, PointGrants] = {}

    def grants(self, snapshot: Snapshot, point: AccessPointRule) -> PointGrants:
        """The grants naming ``point`` or one of its zones, from access levels and individual permissions."""
        found = self._grants.get(point.id)
        if found is None:
            holders = defaultdict(list)
            for level_id, positions in self.members.items():
                level = snapshot.levels[level_id]
                for periods in _naming(level.points, level.zones, point):
                    holders[periods].append(positions)
            for periods, positions in self.own_points.get(point.id, {}).items():
                holders[periods].append(positions)
            for zone_id in point.zone_ids:
                for periods, positions in self.own_zones.get(zone_id, {}).items():
                    holders[periods].append(positions)
            found = self._grants[point.id] = PointGrants(dict(holders), _boundaries(snapshot, holders))
        return found


def allowed(snapshot: Snapshot, access_point_id: int, at: dt.datetime) -> Allowed:
    """The cardholders who may open ``access_point_id`` at ``at`` (aware), and until when that holds."""
    point = snapshot.access_points.get(access_point_id)
    if point is None:
        return Allowed(_NOBODY, math.inf)
    index = index_of(snapshot)
    grants = index.grants(snapshot, point)
    now = at.timestamp()
    until = _next_boundary(snapshot, grants.boundaries, now)
    active: dict[int, bool] = {}
    named = np.zeros(len(index.ids), dtype=bool)
    for periods, arrays in grants.holders.items():
        if periods == ANY_TIME or any(_active(snapshot, point, period_id, at, active) for period_id in periods):
            for positions in arrays:
                named[positions] = True
    named &= index.closed_to if door_refusal(snapshot, point.id) else index.open_to
    valid_from = index.valid_from[named]
    valid_until = index.valid_until[named]
    ids = index.ids[named][(valid_from <= now) & (now < valid_until)]
    for bounds in (valid_from, valid_until):
        later = bounds[bounds > now]
        if len(later):
            until = min(until, float(later.min()))
    return Allowed(_frozen(ids), until)


def allowed_holders(snapshot: Snapshot, access_point_id: int, at: dt.datetime) -> np.ndarray:
    """The ids (sorted int64) of the cardholders who may open ``access_point_id`` at ``at``."""
    return allowed(snapshot, access_point_id, at).ids


def allowed_until(snapshot: Snapshot, access_point_id: int, at: dt.datetime) -> float:
    """The POSIX time before which :func:`allowed_holders` keeps its answer at ``at`` (it may be early, never late)."""
    return allowed(snapshot, access_point_id, at).until


def index_of(snapshot: Snapshot) -> Index:
    """The snapshot's index, built on first use (under a lock: two callers would build it twice)."""
    index = snapshot.derived.get(_MEMO)
    if index is None:
        with _build_lock:
            index = snapshot.derived.get(_MEMO)
            if index is None:
                index = snapshot.derived[_MEMO] = Index(snapshot)
    return index


class AllowedCache:
    """The answers of :func:`allowed` for the current snapshot, per access point, reused while they hold.

    An answer is reused for the same snapshot object and access point while ``at`` is
    within ``[computed at, until)``; a clock stepped back recomputes. A call with another
    snapshot (a new one, after a rule change) drops every answer, so at most one
    snapshot is kept alive by the cache. Thread-safe; at most ``size`` access points.

    Equal answers are one array: doors of the same access level share theirs, so a matcher
    can search them together and keep one copy of their rows (``Gallery._subset``).
    """

    def __init__(self, size: int = CACHE_SIZE):
        self.size = size
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._answers: OrderedDict[int, tuple[float, Allowed]] = OrderedDict()
        self._interned: dict[bytes, np.ndarray] = {}  # content -> the one array of those ids

    def get(self, snapshot: Snapshot, access_point_id: int, at: dt.datetime) -> np.ndarray:
        now = at.timestamp()
        with self._lock:
            if self._snapshot is snapshot:
                cached = self._answers.get(access_point_id)
                if cached is not None and cached[0] <= now < cached[1].until:
                    self._answers.move_to_end(access_point_id)
                    return cached[1].ids
        answer = allowed(snapshot, access_point_id, at)  # outside the lock: other points need not wait
        key = hashlib.blake2b(answer.ids.tobytes(), digest_size=16).digest()
        with self._lock:
            if self._snapshot is not snapshot:
                self._snapshot = snapshot
                self._answers.clear()
                self._interned.clear()
            if len(self._interned) >= self.size:
                self._interned.clear()
            answer = answer._replace(ids=self._interned.setdefault(key, answer.ids))
            self._answers[access_point_id] = (now, answer)
            self._answers.move_to_end(access_point_id)
            while len(self._answers) > self.size:
                self._answers.popitem(last=False)
        return answer.ids


def _positions(found: list[int]) -> np.ndarray:
    return np.array(found, dtype=_POSITION)


def _inverted(grants: dict) -> dict[int, dict[tuple[int, ...], np.ndarray]]:
    return {target: {periods: _positions(found) for periods, found in by.items()} for target, by in grants.items()}


def _naming(points: dict, zones: dict, point: AccessPointRule):
    """The periods of the grants among ``points`` and ``zones`` (one rule's) that name ``point`` or its zones."""
    periods = points.get(point.id)
    if periods is not None:
        yield periods
    if zones:
        for zone_id in point.zone_ids:
            periods = zones.get(zone_id)
            if periods is not None:
                yield periods


def _boundaries(snapshot: Snapshot, holders: dict) -> tuple[int, ...]:
    """The seconds after local midnight at which the grants' periods may start or stop, and midnight (DAY).

    Empty when no grant has a period: then the time of day changes nothing."""
    found = set()
    for periods in holders:
        for period_id in periods:
            found.add(DAY)
            period = snapshot.periods.get(period_id)
            if period is not None:
                for start, end, _days in period.intervals:
                    found.update(moment for moment in (start, end) if 0 < moment < DAY)
    return tuple(sorted(found))


def _active(snapshot: Snapshot, point: AccessPointRule, period_id: int, at: dt.datetime, memo: dict) -> bool:
    active = memo.get(period_id)
    if active is None:
        active = memo[period_id] = period_active(snapshot, period_id, point.calendar_id, at)
    return active


def _offset(snapshot: Snapshot, moment: float) -> float:
    return dt.datetime.fromtimestamp(moment, snapshot.tz).utcoffset().total_seconds()


def _next_boundary(snapshot: Snapshot, boundaries: tuple[int, ...], now: float) -> float:
    """The first instant after ``now`` when the local wall clock reaches one of ``boundaries`` or jumps.

    Until the UTC offset changes the wall clock runs with the instant, so the next boundary
    is found by arithmetic; a change of offset (summer time) before it is found by bisection
    over whole seconds, where zone transitions fall (at most one a day: none undoes another
    between ``now`` and the boundary)."""
    if not boundaries:
        return math.inf
    offset = _offset(snapshot, now)
    wall = now + offset
    midnight = math.floor(wall / DAY) * DAY
    following = boundaries[bisect.bisect_right(boundaries, wall - midnight)]
    candidate = midnight + following - offset
    if _offset(snapshot, candidate) == offset:
        return candidate
    before, after = math.floor(now), math.ceil(candidate)  # offset still ``offset`` at ``before``, not at ``after``
    while after - before > 1:
        middle = (before + after) // 2
        if _offset(snapshot, middle) == offset:
            before = middle
        else:
            after = middle
    return float(after)
