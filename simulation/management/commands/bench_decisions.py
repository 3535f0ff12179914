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

from accesscontrol.engine import decide
from accesscontrol.models import (
    Cardholder,
)
from accesscontrol.snapshot import SnapshotStore, build_snapshot
from simulation import sitegen

MB = 1024 * 1024


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
    """The site: one partition, 20 time periods, a calendar, a zone per 20 doors, levels of 5 to 20 grants,
    cardholders holding one to three levels and a key each, a few banned, expired, cancelled or with a PIN."""
    spec = sitegen.SiteSpec(
        seed=options["seed"],
        time_periods=20,
        calendar=True,
        zones=max(1, options["access_points"] // 20),
        anti_passback_zone_share=0.1,
        access_points=options["access_points"],
        pin_share=0.05,
        one_way_share=0.5,
        zones_per_point=(1, 1, 2),
        levels=options["levels"],
        entries_per_level=(5, 20),
        entry_point_share=0.7,
        entry_period_share=0.8,
        cardholders=options["cardholders"],
        banned_share=0.02,
        expired_share=0.03,
        pin_share_cardholders=0.2,
        anti_passback_share=0.1,
        levels_per_cardholder=(1, 2, 3),
        permission_share=0.05,
        cancelled_share=0.02,
        now=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    )
    started = time.perf_counter()
    try:
        sitegen.generate(spec)
    except ValueError as error:
        raise CommandError(str(error)) from None
    return {"generate_seconds": round(time.perf_counter() - started, 3)}


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


def _pin_queries(snapshot, rng: random.Random, count: int) -> list:
    """Cards with a PIN typed, at keypad doors their levels name: the decisions that check a PIN digest
    (the site's PINs are all 1234; one in ten typed is wrong)."""
    points = snapshot.access_points
    doors = []
    for key in snapshot.keys_by_uid.values():
        holder = snapshot.cardholders.get(key.cardholder_id)
        if holder is None or not holder.pin_hash:
            continue
        for level_id in holder.level_ids:
            level = snapshot.levels.get(level_id)
            doors += [(key.uid, point_id) for point_id in level.points if points[point_id].pin_required]
    queries = []
    for _ in range(count if doors else 0):
        uid, point_id = rng.choice(doors)
        at = dt.datetime(2025, 1, 1, 10, tzinfo=dt.UTC) + dt.timedelta(days=rng.randrange(365))
        queries.append(
            (
                uid,
                point_id,
                at + dt.timedelta(seconds=rng.randrange(8 * 3600)),
                "1234" if rng.random() < 0.9 else "0000",
            )
        )
    return queries


def _decisions_per_second(snapshot, queries) -> tuple[float, Counter]:
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        for uid, point_id, at, *pin in queries:
            decide(snapshot, uid, point_id, at, pin=pin[0] if pin else None)
        best = max(best, len(queries) / (time.perf_counter() - started))
    reasons = Counter(
        decide(snapshot, uid, point_id, at, pin=pin[0] if pin else None).reason for uid, point_id, at, *pin in queries
    )
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
    pin_per_second, pin_reasons = _decisions_per_second(
        snapshot, _pin_queries(snapshot, rng, options["decisions"] // 10)
    )
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
        "pin_decisions_per_second": round(pin_per_second),
        "pin_reasons": dict(pin_reasons.most_common()),
        "refresh_ms_median": round(refresh_ms, 3),
        "idle_refresh_ms_median": round(idle_refresh_ms, 3),
        "maxrss_mb": round(maxrss_mb, 1),
        "snapshot_mb": round(snapshot_mb, 3),
        "python": sys.version.split()[0],
    }
