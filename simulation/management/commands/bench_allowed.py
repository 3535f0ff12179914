"""Measure who may open a door now, for face matching, and print one JSON line (simulation/benchmarks/allowed.py).

No database: the rules snapshot is generated in memory (``--cardholders``,
``--access-points``, ``--levels``); the per-snapshot index's build time and the
answer's time p50/p99 over ``--calls`` random doors and instants of a week.
"""

import json
import os

from django.core.management.base import BaseCommand, CommandError

from simulation.benchmarks import allowed as allowed_benchmark
from simulation.benchmarks import web as benchmark


class Command(BaseCommand):
    help = "Time the cardholders allowed at a door now (accesscontrol/allowed.py) on a generated site (one JSON line)."

    def add_arguments(self, parser):
        parser.add_argument("--cardholders", type=int, default=100_000)
        parser.add_argument("--access-points", type=int, default=1_000)
        parser.add_argument("--levels", type=int, default=100)
        parser.add_argument("--calls", type=int, default=2_000, help="Timed questions (default 2,000).")
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args, **options):
        if min(options["cardholders"], options["access_points"], options["levels"], options["calls"]) < 1:
            raise CommandError("--cardholders, --access-points, --levels and --calls must be positive.")
        result = allowed_benchmark.measure(
            cardholders=options["cardholders"],
            access_points=options["access_points"],
            levels=options["levels"],
            calls=options["calls"],
            seed=options["seed"],
        )
        result["load_average"] = [round(value, 2) for value in os.getloadavg()]
        result.update(benchmark.machine())
        self.stdout.write(json.dumps(result))
