"""The rules snapshot in memory: built from the database, kept fresh from RuleChange rows.

Each kind of rule has one loader taking the ids to load (None: all of them); the
full build and the incremental refresh both use them, so they cannot disagree.
A loader returns the rules of the ids it found; an id asked for but not returned
was deleted.

Writes that bypass model signals (``QuerySet.update``, ``bulk_create``) must call
:func:`accesscontrol.rulechanges.record_rule_changes` themselves.
"""

import dataclasses
import datetime as dt
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from accesscontrol import engine, pins
from accesscontrol.choices import DayType, KeyStatus
from accesscontrol.engine import (
    FOREVER,
    NEVER,
    AccessLevelRule,
    AccessPointRule,
    CalendarRule,
    CardholderRule,
    Interval,
    KeyRule,
    Snapshot,
    TimePeriodRule,
    ZoneRule,
)
from accesscontrol.models import (
    AccessLevel,
    AccessLevelEntry,
    AccessPoint,
    Calendar,
    CalendarDay,
    Cardholder,
    CardholderPermission,
    Key,
    RuleChange,
    SiteSettings,
    TimeInterval,
    TimePeriod,
    Zone,
)
from accesscontrol.rulechanges import EVERYTHING
from core import vault

Ids = Iterable[int] | None
_ts = engine.timestamp

_DAY_TYPE_BITS = {DayType.HOLIDAY: "holiday", DayType.SPECIAL1: "special1", DayType.SPECIAL2: "special2"}
_INTERVAL_DAYS = TimeInterval.ALL_DAY_FIELDS


def _only(queryset, field: str, ids: Ids):
    return queryset if ids is None else queryset.filter(**{f"{field}__in": list(ids)})


def compile_grants(rows) -> tuple[dict, dict]:
    """(access_point_id, zone_id, time_period_id) rows -> ({point: periods}, {zone: periods}).

    A target granted several times gets the union of the periods; a grant at any time wins (ANY_TIME).
    Also what a card carries (devices/cards.py).
    """
    points: dict[int, set] = defaultdict(set)
    zones: dict[int, set] = defaultdict(set)
    for point_id, zone_id, period_id in rows:
        (points[point_id] if point_id is not None else zones[zone_id]).add(period_id)

    def periods(ids: set) -> tuple[int, ...]:
        return engine.ANY_TIME if None in ids else tuple(sorted(ids))

    return {k: periods(v) for k, v in points.items()}, {k: periods(v) for k, v in zones.items()}


# --- loaders ------------------------------------------------------------------


def load_site() -> tuple[bool, int | None]:
    """(lockdown, default calendar id)."""
    row = SiteSettings.objects.filter(pk=1).values_list("lockdown", "default_calendar_id").first()
    return row or (False, None)


def load_calendars(ids: Ids = None) -> dict[int, CalendarRule]:
    days = defaultdict(list)
    for calendar_id, date, day_type, recurring in _only(CalendarDay.objects, "calendar_id", ids).values_list(
        "calendar_id", "date", "day_type", "recurring"
    ):
        days[calendar_id].append((date, engine.DAY_BITS[_DAY_TYPE_BITS[day_type]], recurring))
    rules = {}
    for calendar_id in _only(Calendar.objects, "id", ids).values_list("id", flat=True):
        dates = {date.toordinal(): bit for date, bit, recurring in days[calendar_id] if not recurring}
        yearly = {(date.month, date.day): bit for date, bit, recurring in days[calendar_id] if recurring}
        rules[calendar_id] = CalendarRule(calendar_id, dates, yearly)
    return rules


def _seconds(moment: dt.time) -> int:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def load_periods(ids: Ids = None) -> dict[int, TimePeriodRule]:
    intervals = defaultdict(list)
    for period_id, start, end, *days in (
        _only(TimeInterval.objects, "time_period_id", ids)
        .order_by("time_period_id", "start", "id")
        .values_list("time_period_id", "start", "end", *_INTERVAL_DAYS)
    ):
        mask = sum(engine.DAY_BITS[name] for name, marked in zip(_INTERVAL_DAYS, days, strict=True) if marked)
        intervals[period_id].append(Interval(_seconds(start), _seconds(end), mask))
    return {
        period_id: TimePeriodRule(period_id, tuple(intervals[period_id]))
        for period_id in _only(TimePeriod.objects, "id", ids).values_list("id", flat=True)
    }


def load_zones(ids: Ids = None) -> dict[int, ZoneRule]:
    rows = _only(Zone.objects, "id", ids).values_list(
        "id",
        "lockdown",
        "anti_passback",
        "passback_kind",
        "passback_minutes",
        "roll_call",
        "max_occupancy",
        "occupancy_correction",
    )
    return {row[0]: ZoneRule(row[0], row[1], row[2], row[3], row[4] * 60, row[5], row[6], row[7]) for row in rows}


def load_access_points(ids: Ids = None) -> dict[int, AccessPointRule]:
    zones = defaultdict(set)
    for point_id, zone_id in _only(AccessPoint.zones.through.objects, "accesspoint_id", ids).values_list(
        "accesspoint_id", "zone_id"
    ):
        zones[point_id].add(zone_id)
    rows = _only(AccessPoint.objects, "id", ids).values_list(
        "id",
        "open_time",
        "extended_open_time",
        "calendar_id",
        "direction",
        "pin_required",
        "lockdown",
        "pin_only",
        "opening_mode",
        "timed_period_id",
    )
    return {
        point_id: AccessPointRule(
            point_id,
            open_time,
            extended,
            frozenset(zones.get(point_id, ())),
            calendar_id,
            direction,
            pin,
            lockdown,
            pin_only,
            mode,
            period_id,
        )
        for point_id, open_time, extended, calendar_id, direction, pin, lockdown, pin_only, mode, period_id in rows
    }


def load_levels(ids: Ids = None) -> dict[int, AccessLevelRule]:
    entries = defaultdict(list)
    for level_id, *grant in _only(AccessLevelEntry.objects, "access_level_id", ids).values_list(
        "access_level_id", "access_point_id", "zone_id", "time_period_id"
    ):
        entries[level_id].append(grant)
    return {
        level_id: AccessLevelRule(level_id, *compile_grants(entries.get(level_id, ())))
        for level_id in _only(AccessLevel.objects, "id", ids).values_list("id", flat=True)
    }


def load_cardholders(ids: Ids = None) -> dict[int, CardholderRule]:
    if ids is not None:
        ids = list(ids)
    levels = defaultdict(list)
    for holder_id, level_id in _only(Cardholder.access_levels.through.objects, "cardholder_id", ids).values_list(
        "cardholder_id", "accesslevel_id"
    ):
        levels[holder_id].append(level_id)
    grants = defaultdict(list)
    for holder_id, *grant in _only(CardholderPermission.objects, "cardholder_id", ids).values_list(
        "cardholder_id", "access_point_id", "zone_id", "time_period_id"
    ):
        grants[holder_id].append(grant)
    rows = _only(Cardholder.objects, "id", ids).values_list(
        "id",
        "activation",
        "expiration",
        "banned",
        "override_lockdown",
        "override_privacy",
        "use_anti_passback",
        "extended_open_time",
        "office",
        "pin_hash",
        "pin_index",
    )
    no_grants = ({}, {})
    rules = {}
    for holder_id, activation, expiration, *flags, pin_hash, index in rows:
        points, zones = compile_grants(grants[holder_id]) if holder_id in grants else no_grants
        rules[holder_id] = CardholderRule(
            holder_id,
            _ts(activation, NEVER),
            _ts(expiration, FOREVER),
            *flags,
            pin_hash,
            index or "",
            tuple(sorted(levels.get(holder_id, ()))),
            points,
            zones,
        )
    return rules


@dataclasses.dataclass
class LoadedKeys:
    issued: dict[str, KeyRule]  # by normalized uid; keys whose status is expired too, issued ones winning
    blacklist: dict[str, float]
    uid_by_key_id: dict[int, str]  # every key loaded, by its stored uid: how a later change finds its old entry


def load_keys(uids: Iterable[str] | None = None) -> LoadedKeys:
    """Every key whose stored UID is in ``uids`` (None: every key), grouped by normalized UID."""
    rows = _only(Key.objects, "uid", uids).values_list(
        "id", "uid", "cardholder_id", "status", "valid_from", "valid_until"
    )
    loaded = LoadedKeys({}, {}, {})
    expired: dict[str, KeyRule] = {}
    for key_id, stored_uid, holder_id, status, valid_from, valid_until in rows.order_by("id"):
        uid = engine.normalize_uid(stored_uid)
        loaded.uid_by_key_id[key_id] = stored_uid
        if status == KeyStatus.ISSUED:
            loaded.issued[uid] = KeyRule(key_id, uid, holder_id, _ts(valid_from, NEVER), _ts(valid_until, FOREVER))
        elif status == KeyStatus.CANCELLED:
            until = _ts(valid_until, FOREVER)
            loaded.blacklist[uid] = max(until, loaded.blacklist.get(uid, NEVER))
        else:
            # An expired key says "expired" rather than "unknown key", whatever its window says.
            expired[uid] = KeyRule(key_id, uid, holder_id, NEVER, NEVER)
    for uid, rule in expired.items():
        loaded.issued.setdefault(uid, rule)
    return loaded


def site_time_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def build_snapshot() -> Snapshot:
    return _build()[0]


def _build() -> tuple[Snapshot, dict[int, str]]:
    lockdown, default_calendar_id = load_site()
    keys = load_keys()
    snapshot = Snapshot(
        tz=site_time_zone(),
        lockdown=lockdown,
        default_calendar_id=default_calendar_id,
        cardholders=load_cardholders(),
        keys_by_uid=keys.issued,
        blacklist=keys.blacklist,
        access_points=load_access_points(),
        zones=load_zones(),
        levels=load_levels(),
        periods=load_periods(),
        calendars=load_calendars(),
        pin_key=vault.derive(pins.INDEX_PURPOSE),
        pin_digest_key=vault.derive(pins.DIGEST_PURPOSE),
    )
    return snapshot, keys.uid_by_key_id


def _merged(current: dict, ids: set[int], loaded: dict) -> dict:
    """A copy of ``current`` with ``ids`` replaced by what was loaded (absent from it: deleted)."""
    merged = current.copy()
    for object_id in ids:
        merged.pop(object_id, None)
    merged.update(loaded)
    return merged


# --- the store ------------------------------------------------------------------


class SnapshotStore:
    """Holds the current snapshot; ``refresh()`` applies the RuleChange rows written since the last one.

    Readers take ``store.snapshot`` and use it without locks: a refresh builds a new
    Snapshot (copying only the dicts it changes) and swaps it in whole.
    """

    def __init__(self, *, max_changes: int = 2000, max_idle_seconds: float = 3600, gap_seconds: float = 300):
        # Rebuild fully when more changes than this are pending: reloading them one kind at a time is slower.
        self.max_changes = max_changes
        # Rows are purged after a day (purge_rule_changes); a store idle this long may have missed some.
        self.max_idle_seconds = max_idle_seconds
        # On PostgreSQL a change id can commit after a higher one was read; missing ids are re-read this long.
        self.gap_seconds = gap_seconds
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._last_change_id = 0
        self._gaps: dict[int, float] = {}
        self._uid_by_key_id: dict[int, str] = {}
        self._refreshed_at = 0.0
        self.full_builds = 0

    @property
    def snapshot(self) -> Snapshot:
        snapshot = self._snapshot
        return snapshot if snapshot is not None else self.refresh()

    def rebuild(self) -> Snapshot:
        with self._lock:
            return self._rebuild()

    def refresh(self) -> Snapshot:
        with self._lock:
            if self._snapshot is None or time.monotonic() - self._refreshed_at > self.max_idle_seconds:
                return self._rebuild()
            self._forget_old_gaps()
            changes = RuleChange.objects.filter(id__gt=self._last_change_id)
            if self._gaps:
                changes = RuleChange.objects.filter(Q(id__gt=self._last_change_id) | Q(id__in=list(self._gaps)))
            rows = list(changes.order_by("id").values_list("id", "model", "object_id")[: self.max_changes + 1])
            self._refreshed_at = time.monotonic()
            if not rows:
                return self._snapshot
            if len(rows) > self.max_changes or any(model == EVERYTHING for _, model, _ in rows):
                return self._rebuild()
            if not self._track_gaps([row_id for row_id, _, _ in rows]):
                return self._rebuild()
            pending = defaultdict(set)
            for _, model, object_id in rows:
                pending[model].add(object_id)
            self._snapshot = self._apply(self._snapshot, pending)
            return self._snapshot

    def _rebuild(self) -> Snapshot:
        # Read the high-water mark first: changes committed during the build are applied again later, harmlessly.
        recent = list(RuleChange.objects.order_by("-id").values_list("id", flat=True)[: self.max_changes])
        self._snapshot, self._uid_by_key_id = _build()
        self._last_change_id = recent[0] if recent else 0
        self._gaps.clear()
        # Ids missing among the recent ones may belong to transactions still open: watch them too.
        self._note_gaps(recent[-1] if recent else 0, set(recent))
        self._refreshed_at = time.monotonic()
        self.full_builds += 1
        return self._snapshot

    def _track_gaps(self, row_ids: list[int]) -> bool:
        """Advance past ``row_ids`` (ascending), remembering skipped ids; False when there are too many to track."""
        for row_id in row_ids:
            self._gaps.pop(row_id, None)
        newest = max(row_ids[-1], self._last_change_id)
        if newest - self._last_change_id > 2 * self.max_changes:
            return False  # a jump in the id sequence (say, after a restore); cheaper to rebuild than to track
        self._note_gaps(self._last_change_id, set(row_ids), newest)
        self._last_change_id = newest
        return len(self._gaps) <= 2 * self.max_changes

    def _forget_old_gaps(self) -> None:
        if self._gaps:
            now = time.monotonic()
            for row_id, noticed in list(self._gaps.items()):
                if now - noticed > self.gap_seconds:
                    del self._gaps[row_id]  # a rolled-back transaction's id, never to be committed

    def _note_gaps(self, after: int, seen: set[int], until: int | None = None) -> None:
        now = time.monotonic()
        until = self._last_change_id if until is None else until
        for row_id in range(max(after, until - 2 * self.max_changes) + 1, until + 1):
            if row_id not in seen:
                self._gaps[row_id] = now

    def _apply(self, snapshot: Snapshot, pending: dict[str, set[int]]) -> Snapshot:
        changed = {}
        if "sitesettings" in pending:
            changed["lockdown"], changed["default_calendar_id"] = load_site()
        kinds = (
            ("calendar", "calendars", load_calendars),
            ("timeperiod", "periods", load_periods),
            ("zone", "zones", load_zones),
            ("accesspoint", "access_points", load_access_points),
            ("accesslevel", "levels", load_levels),
            ("cardholder", "cardholders", load_cardholders),
        )
        for model, attribute, loader in kinds:
            ids = pending.get(model)
            if ids:
                changed[attribute] = _merged(getattr(snapshot, attribute), ids, loader(ids))
        key_ids = pending.get("key")
        if key_ids:
            changed["keys_by_uid"], changed["blacklist"] = self._reload_keys(snapshot, key_ids)
        return dataclasses.replace(snapshot, **changed)

    def _reload_keys(self, snapshot: Snapshot, key_ids: set[int]) -> tuple[dict, dict]:
        """Reload every key sharing a UID with a changed key, old UID or new: they decide that UID together."""
        stored_uids = {self._uid_by_key_id[key_id] for key_id in key_ids if key_id in self._uid_by_key_id}
        stored_uids.update(Key.objects.filter(id__in=key_ids).values_list("uid", flat=True))
        for key_id in key_ids:
            self._uid_by_key_id.pop(key_id, None)
        loaded = load_keys(stored_uids)
        self._uid_by_key_id.update(loaded.uid_by_key_id)
        uids = {engine.normalize_uid(uid) for uid in stored_uids}
        issued = snapshot.keys_by_uid.copy()
        blacklist = snapshot.blacklist.copy()
        for uid in uids:
            issued.pop(uid, None)
            blacklist.pop(uid, None)
        issued.update(loaded.issued)
        blacklist.update(loaded.blacklist)
        return issued, blacklist


_store: SnapshotStore | None = None
_store_lock = threading.Lock()


def get_store() -> SnapshotStore:
    """The process's store; the first caller builds it (call ``refresh()`` before deciding)."""
    global _store
    if _store is None:
        with _store_lock:
            if _store is None:
                _store = SnapshotStore()
    return _store


def purge_rule_changes(older_than: dt.timedelta = dt.timedelta(days=1), now: dt.datetime | None = None) -> int:
    """Delete RuleChange rows older than ``older_than``; returns how many. Stores idle longer rebuild anyway."""
    cutoff = (now or timezone.now()) - older_than
    deleted, _ = RuleChange.objects.filter(at__lt=cutoff).delete()
    return deleted
