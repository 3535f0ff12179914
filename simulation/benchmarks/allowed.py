"""Who may open a door now, for face matching: the measurement behind ``manage.py bench_allowed``.

:func:`generate` builds a rules :class:`~accesscontrol.engine.Snapshot` in memory
(no database: the answer is what is timed): ``cardholders`` holding one to three
of ``levels`` access levels (each granting ten doors and one zone, mostly in a
time period: office hours, a night shift across midnight, weekends), a few with
their own grants, validity windows ending or starting during the week, banned or
overriding lockdown, over ``access_points`` doors in fifty zones, in Madrid with
holidays. :func:`measure` times:

- ``index_build_s``: the per-snapshot index of accesscontrol/allowed.py;
- ``first_call_ms``: a door's first question (its grants are gathered then);
- ``allowed_ms``: :func:`~accesscontrol.allowed.allowed_holders` at random doors
  and instants of a week, p50/p99, and how many are allowed (``allowed_mean``);
- ``cache_hit_ms``: :meth:`~accesscontrol.allowed.AllowedCache.get` reusing an answer;
- ``until_median_s``: how long an answer holds (median of ``until - at``);
- ``one_by_one_ms``: the same answer asked of the engine cardholder by cardholder, for scale.
"""

import datetime as dt
import random
import time
from zoneinfo import ZoneInfo

import numpy as np

from accesscontrol.allowed import AllowedCache, allowed, allowed_holders, index_of
from accesscontrol.engine import (
    ANY_TIME,
    AccessLevelRule,
    AccessPointRule,
    CalendarRule,
    CardholderRule,
    Interval,
    Snapshot,
    TimePeriodRule,
    day_mask,
    may_open,
)

ZONES = 50
MONDAY = dt.datetime(2024, 3, 25, tzinfo=ZoneInfo("Europe/Madrid"))  # the week of a change to summer time
WEEK = 7 * 86_400
WEEKDAYS = day_mask("monday", "tuesday", "wednesday", "thursday", "friday")
PERIODS = (
    TimePeriodRule(1, (Interval(8 * 3600, 18 * 3600, WEEKDAYS),)),  # office hours
    TimePeriodRule(2, (Interval(22 * 3600, 6 * 3600, WEEKDAYS),)),  # the night shift, across midnight
    TimePeriodRule(3, (Interval(0, 0, day_mask("saturday", "sunday", "holiday")),)),  # weekends and holidays
    TimePeriodRule(4, (Interval(7 * 3600, 14 * 3600, WEEKDAYS), Interval(16 * 3600, 20 * 3600, WEEKDAYS))),
)


def _percentiles(seconds: list[float]) -> dict:
    values = np.asarray(seconds) * 1000
    return {"p50": round(float(np.percentile(values, 50)), 3), "p99": round(float(np.percentile(values, 99)), 3)}


def _periods(rng: random.Random) -> tuple[int, ...]:
    return ANY_TIME if rng.random() < 0.3 else tuple(sorted(rng.sample([p.id for p in PERIODS], rng.randint(1, 2))))


def generate(cardholders: int = 100_000, access_points: int = 1_000, levels: int = 100, seed: int = 1) -> Snapshot:
    rng = random.Random(seed)
    points = {
        point_id: AccessPointRule(
            point_id,
            zone_ids=frozenset({point_id % ZONES} | ({rng.randrange(ZONES)} if rng.random() < 0.2 else set())),
            lockdown=rng.random() < 0.005,
            mode="locked" if rng.random() < 0.005 else "standard",
        )
        for point_id in range(1, access_points + 1)
    }
    level_rules = {
        level_id: AccessLevelRule(
            level_id,
            points={point_id: _periods(rng) for point_id in rng.sample(sorted(points), min(10, access_points))},
            zones={rng.randrange(ZONES): _periods(rng)},
        )
        for level_id in range(1, levels + 1)
    }
    start = MONDAY.timestamp()
    holders = {}
    for holder_id in range(1, cardholders + 1):
        chance = rng.random()
        holders[holder_id] = CardholderRule(
            holder_id,
            valid_from=start + rng.uniform(0, WEEK) if chance < 0.05 else float("-inf"),
            valid_until=start + rng.uniform(0, WEEK) if 0.05 <= chance < 0.15 else float("inf"),
            banned=rng.random() < 0.005,
            override_lockdown=rng.random() < 0.01,
            level_ids=tuple(rng.sample(range(1, levels + 1), rng.randint(1, min(3, levels)))),
            points={rng.randint(1, access_points): _periods(rng)} if rng.random() < 0.05 else {},
        )
    holidays = CalendarRule(1, dates={dt.date(2024, 3, 28).toordinal(): day_mask("holiday")})
    return Snapshot(
        tz=MONDAY.tzinfo,
        default_calendar_id=1,
        cardholders=holders,
        access_points=points,
        zones={},
        levels=level_rules,
        periods={period.id: period for period in PERIODS},
        calendars={1: holidays},
    )


def measure(
    *, cardholders: int = 100_000, access_points: int = 1_000, levels: int = 100, calls: int = 2_000, seed: int = 1
) -> dict:
    started = time.perf_counter()
    snapshot = generate(cardholders, access_points, levels, seed)
    generate_s = time.perf_counter() - started
    started = time.perf_counter()
    index_of(snapshot)
    index_build_s = time.perf_counter() - started
    rng = random.Random(seed + 1)
    asked = [(rng.randint(1, access_points), MONDAY + dt.timedelta(seconds=rng.uniform(0, WEEK))) for _ in range(calls)]
    first, seen = [], set()
    for point_id, at in asked:  # each door's first question gathers its grants
        if point_id not in seen:
            seen.add(point_id)
            began = time.perf_counter()
            allowed_holders(snapshot, point_id, at)
            first.append(time.perf_counter() - began)
    timings, sizes, holds = [], [], []
    for point_id, at in asked:
        began = time.perf_counter()
        answer = allowed(snapshot, point_id, at)
        timings.append(time.perf_counter() - began)
        sizes.append(len(answer.ids))
        holds.append(answer.until - at.timestamp())
    cache = AllowedCache()
    hits = []
    for point_id, at in asked[:200]:
        cache.get(snapshot, point_id, at)
        began = time.perf_counter()
        cache.get(snapshot, point_id, at)
        hits.append(time.perf_counter() - began)
    point_id, at = asked[0]
    began = time.perf_counter()
    [holder.id for holder in snapshot.cardholders.values() if may_open(snapshot, holder, point_id, at)]
    one_by_one_s = time.perf_counter() - began
    return {
        "cardholders": cardholders,
        "access_points": access_points,
        "levels": levels,
        "calls": calls,
        "generate_s": round(generate_s, 2),
        "index_build_s": round(index_build_s, 3),
        "first_call_ms": _percentiles(first),
        "allowed_ms": _percentiles(timings),
        "allowed_mean": round(float(np.mean(sizes)), 1),
        "cache_hit_ms": _percentiles(hits),
        "until_median_s": round(float(np.median(holds)), 1),
        "one_by_one_ms": round(one_by_one_s * 1000, 1),
    }
