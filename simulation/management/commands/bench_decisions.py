"""Measure the decision engine on a generated site and print one JSON line.

By default the site is generated in a throwaway SQLite file: the work runs in
child processes whose DATABASE_URL points at a temporary directory, so the
configured database is never touched and the memory figures are those of a
process that only loads and serves the snapshot. ``--keep`` generates into (and
measures) the configured database instead, and refuses one that already holds
cardholders.
"""

import datetime as dt
import gc
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accesscontrol.engine import decide
from accesscontrol.models import (
    AccessLevel,
    AccessLevelEntry,
    AccessPoint,
    Calendar,
    CalendarDay,
    Cardholder,
    CardholderPermission,
    Key,
    SiteSettings,
    TimeInterval,
    TimePeriod,
    Zone,
    default_partition_id,
)
from accesscontrol.pins import hash_pin
from accesscontrol.snapshot import SnapshotStore, build_snapshot

BATCH = 5000
MB = 1024 * 1024
WEEKDAYS = {name: True for name in ("monday", "tuesday", "wednesday", "thursday", "friday")}
# (start, end, days): office hours, shifts (two crossing midnight), weekends, holidays, always-open.
PERIOD_SHAPES = [
    [(8, 18, WEEKDAYS)],
    [(7, 15, WEEKDAYS), (9, 13, {"saturday": True})],
    [(14, 22, WEEKDAYS)],
    [(22, 6, {**WEEKDAYS, "sunday": True})],
    [(20, 8, {"saturday": True, "sunday": True, "holiday": True})],
    [(0, 0, {"saturday": True, "sunday": True})],
    [(9, 14, {"holiday": True, "special1": True})],
    [(6, 23, {**WEEKDAYS, "saturday": True, "sunday": True})],
]


class Command(BaseCommand):
    help = "Generate a site and measure snapshot build, decisions per second, refresh time and memory (one JSON line)."

    def add_arguments(self, parser):
        parser.add_argument("--cardholders", type=int, default=100_000)
        parser.add_argument("--access-points", type=int, default=10_000)
        parser.add_argument("--levels", type=int, default=1_000)
        parser.add_argument("--decisions", type=int, default=300_000, help="Decisions timed.")
        parser.add_argument("--refreshes", type=int, default=15, help="Incremental refreshes timed.")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--keep", action="store_true", help="Use the configured database and keep the site.")
        parser.add_argument("--phase", choices=("all", "generate", "measure"), default="all", help="With --keep.")

    def handle(self, *args, **options):
        if not options["keep"]:
            self.stdout.write(json.dumps(self._in_throwaway_database(options)))
            return
        result = {}
        if options["phase"] in ("all", "generate"):
            result.update(generate(options))
        if options["phase"] in ("all", "measure"):
            result.update(measure(options))
        self.stdout.write(json.dumps(result))

    def _in_throwaway_database(self, options) -> dict:
        sizes = [
            f"--{name}={options[name.replace('-', '_')]}"
            for name in ("cardholders", "access-points", "levels", "decisions", "refreshes", "seed")
        ]
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        with tempfile.TemporaryDirectory(prefix="space-bench-") as scratch:
            env = {**os.environ, "DATABASE_URL": f"sqlite:///{Path(scratch) / 'bench.sqlite3'}"}

            def run(*arguments) -> str:
                done = subprocess.run([*manage, *arguments], env=env, capture_output=True, text=True, check=False)  # noqa: S603
                if done.returncode:
                    raise CommandError(f"{' '.join(arguments)} failed:\n{done.stderr}")
                return done.stdout

            run("migrate", "--verbosity=0")
            result = json.loads(run("bench_decisions", "--keep", "--phase=generate", *sizes).splitlines()[-1])
            result.update(json.loads(run("bench_decisions", "--keep", "--phase=measure", *sizes).splitlines()[-1]))
            result["database"] = "throwaway sqlite"
            return result


# --- generating -----------------------------------------------------------------


def generate(options) -> dict:
    if Cardholder.objects.exists():
        raise CommandError("The database already holds cardholders; generate into an empty one.")
    rng = random.Random(options["seed"])
    started = time.perf_counter()
    with transaction.atomic():
        _generate(rng, options["cardholders"], options["access_points"], options["levels"])
    return {"generate_seconds": round(time.perf_counter() - started, 3)}


def _bulk(model, objects):
    return model.objects.bulk_create(objects, batch_size=BATCH)


def _generate(rng: random.Random, n_cardholders: int, n_points: int, n_levels: int) -> None:
    partition = default_partition_id()
    periods = _bulk(TimePeriod, [TimePeriod(name=f"bench period {i}", partition_id=partition) for i in range(20)])
    intervals = []
    for i, period in enumerate(periods):
        for start, end, days in PERIOD_SHAPES[i % len(PERIOD_SHAPES)]:
            intervals.append(TimeInterval(time_period=period, start=dt.time(start), end=dt.time(end % 24), **days))
    _bulk(TimeInterval, intervals)

    calendar = Calendar.objects.create(name="bench calendar")
    days = [
        CalendarDay(calendar=calendar, date=dt.date(2020, m, d), day_type="holiday", recurring=True)
        for m, d in ((1, 1), (1, 6), (5, 1), (8, 15), (10, 12), (11, 1), (12, 8), (12, 25))
    ]
    days += [CalendarDay(calendar=calendar, date=dt.date(2025, 4, d), day_type="holiday") for d in (17, 18)]
    days += [CalendarDay(calendar=calendar, date=dt.date(2025, 7, d), day_type="special1") for d in range(1, 15)]
    _bulk(CalendarDay, days)
    site = SiteSettings.load()
    site.default_calendar = calendar
    site.save()

    zones = _bulk(
        Zone,
        [
            Zone(name=f"bench zone {i}", partition_id=partition, anti_passback=i % 10 == 0)
            for i in range(max(1, n_points // 20))
        ],
    )
    points = _bulk(
        AccessPoint,
        [
            AccessPoint(
                name=f"bench door {i}",
                partition_id=partition,
                pin_required=rng.random() < 0.05,
                direction=rng.choice(("both", "both", "entry", "exit")),
            )
            for i in range(n_points)
        ],
    )
    memberships = []
    for point in points:
        for zone in rng.sample(zones, min(len(zones), rng.choice((1, 1, 2)))):
            memberships.append(AccessPoint.zones.through(accesspoint_id=point.pk, zone_id=zone.pk))
    _bulk(AccessPoint.zones.through, memberships)

    def grant(**owner):
        period = rng.choice(periods) if rng.random() < 0.8 else None
        if rng.random() < 0.7:
            return {**owner, "access_point": rng.choice(points), "time_period": period}
        return {**owner, "zone": rng.choice(zones), "time_period": period}

    levels = _bulk(AccessLevel, [AccessLevel(name=f"bench level {i}", partition_id=partition) for i in range(n_levels)])
    _bulk(
        AccessLevelEntry,
        [AccessLevelEntry(**grant(access_level=level)) for level in levels for _ in range(rng.randint(5, 20))],
    )

    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    pin_hash = hash_pin("1234")
    holders = _bulk(
        Cardholder,
        [
            Cardholder(
                last_name=f"Holder {i}",
                partition_id=partition,
                banned=rng.random() < 0.02,
                expiration=now - dt.timedelta(days=1) if rng.random() < 0.03 else None,
                pin_hash=pin_hash if rng.random() < 0.2 else "",
                use_anti_passback=rng.random() < 0.1,
            )
            for i in range(n_cardholders)
        ],
    )
    through = Cardholder.access_levels.through
    _bulk(
        through,
        [
            through(cardholder_id=h.pk, accesslevel_id=level.pk)
            for h in holders
            for level in rng.sample(levels, min(len(levels), rng.randint(1, 3)))
        ],
    )
    _bulk(CardholderPermission, [CardholderPermission(**grant(cardholder=h)) for h in holders if rng.random() < 0.05])
    _bulk(Key, [Key(cardholder=h, uid=f"{h.pk:08X}") for h in holders])
    _bulk(Key, [Key(cardholder=h, uid=f"DEAD{h.pk:08X}", status="cancelled") for h in holders if rng.random() < 0.02])


# --- measuring ------------------------------------------------------------------


def _queries(snapshot, rng: random.Random, count: int) -> list:
    """A day's traffic: mostly people at doors their levels name, some strangers, lost and cancelled cards."""
    keys = list(snapshot.keys_by_uid.values())
    point_ids = list(snapshot.access_points)
    points_in_zone = {}
    for point in snapshot.access_points.values():
        for zone_id in point.zone_ids:
            points_in_zone.setdefault(zone_id, []).append(point.id)
    blacklisted = list(snapshot.blacklist) or ["FFFFFFFF"]
    queries = []
    for _ in range(count):
        day = dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=rng.randrange(365))
        at = day + dt.timedelta(
            seconds=rng.randrange(6 * 3600, 20 * 3600) if rng.random() < 0.8 else rng.randrange(86400)
        )
        roll = rng.random()
        key = rng.choice(keys)
        point_id = rng.choice(point_ids)
        if roll < 0.7:
            holder = snapshot.cardholders[key.cardholder_id]
            level = snapshot.levels.get(rng.choice(holder.level_ids)) if holder.level_ids else None
            if level is not None and level.points and (not level.zones or rng.random() < 0.7):
                point_id = rng.choice(list(level.points))
            elif level is not None and level.zones:
                point_id = rng.choice(points_in_zone.get(rng.choice(list(level.zones)), point_ids))
        uid = key.uid
        if 0.90 <= roll < 0.95:
            uid = f"{rng.getrandbits(32) | 1 << 40:X}"
        elif roll >= 0.95:
            uid = rng.choice(blacklisted)
        queries.append((uid, point_id, at))
    return queries


def _decisions_per_second(snapshot, queries) -> tuple[float, Counter]:
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        for uid, point_id, at in queries:
            decide(snapshot, uid, point_id, at)
        best = max(best, len(queries) / (time.perf_counter() - started))
    reasons = Counter(decide(snapshot, uid, point_id, at).reason for uid, point_id, at in queries)
    return best, reasons


def _refresh_ms(store: SnapshotStore, rng: random.Random, count: int) -> tuple[float, float]:
    holder_ids = list(Cardholder.objects.values_list("pk", flat=True)[:1000])
    changed, idle = [], []
    for _ in range(count):
        holder = Cardholder.objects.get(pk=rng.choice(holder_ids))
        holder.banned = not holder.banned
        holder.save()
        started = time.perf_counter()
        store.refresh()
        changed.append(time.perf_counter() - started)
        started = time.perf_counter()
        store.refresh()
        idle.append(time.perf_counter() - started)
    if store.full_builds != 1:
        raise CommandError("A refresh rebuilt the snapshot instead of applying the change.")
    return statistics.median(changed) * 1000, statistics.median(idle) * 1000


def measure(options) -> dict:
    rng = random.Random(options["seed"])
    started = time.perf_counter()
    store = SnapshotStore()
    snapshot = store.refresh()
    build_seconds = time.perf_counter() - started

    per_second, reasons = _decisions_per_second(snapshot, _queries(snapshot, rng, options["decisions"]))
    refresh_ms, idle_refresh_ms = _refresh_ms(store, rng, options["refreshes"])
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    del snapshot, store
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    again = build_snapshot()
    gc.collect()
    snapshot_mb = (tracemalloc.get_traced_memory()[0] - before) / MB
    tracemalloc.stop()

    total = sum(reasons.values())
    return {
        "cardholders": len(again.cardholders),
        "keys": len(again.keys_by_uid),
        "blacklisted": len(again.blacklist),
        "access_points": len(again.access_points),
        "levels": len(again.levels),
        "build_seconds": round(build_seconds, 3),
        "decisions_per_second": round(per_second),
        "granted_share": round(reasons["granted"] / total, 3),
        "reasons": dict(reasons.most_common()),
        "refresh_ms_median": round(refresh_ms, 3),
        "idle_refresh_ms_median": round(idle_refresh_ms, 3),
        "maxrss_mb": round(maxrss_mb, 1),
        "snapshot_mb": round(snapshot_mb, 3),
        "python": sys.version.split()[0],
    }
