"""Measure the face matcher in memory and print one JSON line (simulation/benchmarks/facematch.py).

No database: ``--people`` synthetic 512-d templates are enrolled in a gallery in
memory; 1:N search time p50/p99 (among everyone and among ``--allowed`` people),
batched throughput (``--batch`` probes at once), and the false accept and false
reject rates at ``--threshold`` (the site's SPACE_FACE_THRESHOLD by default).
"""

import json
import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from simulation.benchmarks import facematch as face_benchmark
from simulation.benchmarks import web as benchmark


class Command(BaseCommand):
    help = "Measure 1:N face search over synthetic templates in memory, batching, and FAR/FRR (one JSON line)."

    def add_arguments(self, parser):
        parser.add_argument("--people", type=int, default=100_000, help="Templates enrolled (one per person).")
        parser.add_argument("--dimension", type=int, default=512)
        parser.add_argument("--allowed", type=int, default=5_000, help="People allowed at the door searched.")
        parser.add_argument("--searches", type=int, default=1_000, help="1:N searches timed, each way.")
        parser.add_argument("--batch", type=int, default=32, help="Probes per batched search.")
        parser.add_argument("--batches", type=int, default=100)
        parser.add_argument("--trials", type=int, default=5_000, help="Genuine and impostor probes for FAR/FRR.")
        parser.add_argument("--threshold", type=float, default=None)
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args, **options):
        if min(options["people"], options["dimension"], options["allowed"], options["searches"]) < 1:
            raise CommandError("--people, --dimension, --allowed and --searches must be positive.")
        if min(options["batch"], options["batches"], options["trials"]) < 1:
            raise CommandError("--batch, --batches and --trials must be positive.")
        threshold = settings.SPACE_FACE_THRESHOLD if options["threshold"] is None else options["threshold"]
        if not 0 < threshold < 1:
            raise CommandError("--threshold is a cosine score between 0 and 1.")
        result = face_benchmark.measure(
            people=options["people"],
            dimension=options["dimension"],
            allowed=options["allowed"],
            searches=options["searches"],
            batch=options["batch"],
            batches=options["batches"],
            trials=options["trials"],
            threshold=threshold,
            seed=options["seed"],
        )
        result["load_average"] = [round(value, 2) for value in os.getloadavg()]
        result.update(benchmark.machine())
        self.stdout.write(json.dumps(result))
