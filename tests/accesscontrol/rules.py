"""Plain engine data for tests: small functions that build rules and snapshots without a database."""

import datetime as dt
from collections import defaultdict
from zoneinfo import ZoneInfo

from accesscontrol.engine import (
    ANY_TIME,
    AccessLevelRule,
    AccessPointRule,
    CalendarRule,
    CardholderRule,
    Interval,
    KeyRule,
    Snapshot,
    TimePeriodRule,
    ZoneRule,
    day_mask,
)

MADRID = ZoneInfo("Europe/Madrid")
UTC = dt.UTC


def local(text: str, tz=MADRID, fold=0) -> dt.datetime:
    """An aware instant from a local wall-clock time ("2024-03-04 10:00")."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=tz, fold=fold)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def seconds(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 3600 + int(minutes) * 60


def interval(start: str, end: str, *days: str) -> Interval:
    return Interval(seconds(start), seconds(end), day_mask(*days))


def period(period_id: int, *intervals: Interval) -> TimePeriodRule:
    return TimePeriodRule(period_id, tuple(intervals))


def calendar(calendar_id: int, *days) -> CalendarRule:
    """``days``: (date "YYYY-MM-DD", day type) or (date, day type, recurring)."""
    dates, recurring = {}, {}
    for text, day_type, *rest in days:
        date = dt.date.fromisoformat(text)
        if rest and rest[0]:
            recurring[(date.month, date.day)] = day_mask(day_type)
        else:
            dates[date.toordinal()] = day_mask(day_type)
    return CalendarRule(calendar_id, dates, recurring)


def grants(*entries) -> dict:
    """``entries``: ("point" | "zone", id, period id or None) -> {"points": ..., "zones": ...} for a rule."""
    collected = {"points": defaultdict(set), "zones": defaultdict(set)}
    for kind, target_id, period_id in entries:
        collected[f"{kind}s"][target_id].add(period_id)
    return {
        name: {target: ANY_TIME if None in ids else tuple(sorted(ids)) for target, ids in targets.items()}
        for name, targets in collected.items()
    }


def level(level_id: int, *entries) -> AccessLevelRule:
    return AccessLevelRule(level_id, **grants(*entries))


def cardholder(holder_id: int, *entries, **fields) -> CardholderRule:
    return CardholderRule(holder_id, **grants(*entries), **fields)


def point(point_id: int, *zone_ids: int, **fields) -> AccessPointRule:
    return AccessPointRule(point_id, zone_ids=frozenset(zone_ids), **fields)


def key(uid: str, holder_id: int, key_id: int | None = None, **fields) -> KeyRule:
    return KeyRule(key_id or holder_id, uid, holder_id, **fields)


PIN_DIGEST_KEY = b"d" * 32  # the snapshot's key of PIN digests: hash_pin(PIN_DIGEST_KEY, pin) matches


def snapshot(
    *,
    cardholders=(),
    keys=(),
    points=(),
    zones=(),
    levels=(),
    periods=(),
    calendars=(),
    blacklist=None,
    tz=MADRID,
    **site,
) -> Snapshot:
    site.setdefault("pin_digest_key", PIN_DIGEST_KEY)
    return Snapshot(
        tz=tz,
        cardholders={rule.id: rule for rule in cardholders},
        keys_by_uid={rule.uid: rule for rule in keys},
        blacklist=dict(blacklist or {}),
        access_points={rule.id: rule for rule in points},
        zones={rule.id: rule for rule in zones},
        levels={rule.id: rule for rule in levels},
        periods={rule.id: rule for rule in periods},
        calendars={rule.id: rule for rule in calendars},
        **site,
    )


__all__ = ["ZoneRule", "calendar", "cardholder", "interval", "key", "level", "local", "period", "point", "snapshot"]
