"""Measure the face matcher in memory and print one JSON line (simulation/benchmarks/facematch.py).

No database: ``--people`` synthetic 512-d templates are enrolled in a gallery in
memory; 1:N search time p50/p99 (among everyone and among ``--allowed`` people),
batched throughput (``--batch`` probes at once), and the false accept and false
reject rates at ``--threshold`` (the site's SPACE_FACE_THRESHOLD by default).

The measurement runs in a child process with ``OPENBLAS_NUM_THREADS`` set to
``--blas-threads`` (default 1: on a small shared machine BLAS threads fighting
other processes for the cores lengthen the tail; docs/face-matching.md).
"""

import json
import os
import subprocess
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from simulation.benchmarks import facematch as face_benchmark
from simulation.benchmarks import web as benchmark
from simulation.benchrun import MANAGE

CHILD = "SPACE_BENCH_FACEMATCH_CHILD"


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
        parser.add_argument("--blas-threads", type=int, default=1, help="OPENBLAS_NUM_THREADS of the measurement.")

    def handle(self, *args, **options):
        if min(options["people"], options["dimension"], options["allowed"], options["searches"]) < 1:
            raise CommandError("--people, --dimension, --allowed and --searches must be positive.")
        if min(options["batch"], options["batches"], options["trials"]) < 1:
            raise CommandError("--batch, --batches and --trials must be positive.")
        threshold = settings.SPACE_FACE_THRESHOLD if options["threshold"] is None else options["threshold"]
        if not 0 < threshold < 1:
            raise CommandError("--threshold is a cosine score between 0 and 1.")
        if options["blas_threads"] < 1:
            raise CommandError("--blas-threads must be positive.")
        if not os.environ.get(CHILD):
            self.stdout.write(self._in_child(options))
            return
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
        result["blas_threads"] = options["blas_threads"]
        result["load_average"] = [round(value, 2) for value in os.getloadavg()]
        result.update(benchmark.machine())
        self.stdout.write(json.dumps(result))

    def _in_child(self, options) -> str:
        names = ("people", "dimension", "allowed", "searches", "batch", "batches", "trials", "threshold", "seed")
        arguments = [f"--{name}={options[name]}" for name in names if options[name] is not None]
        arguments.append(f"--blas-threads={options['blas_threads']}")
        threads = str(options["blas_threads"])
        env = {**os.environ, CHILD: "1", "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
        done = subprocess.run(  # noqa: S603 (our own manage.py)
            [sys.executable, MANAGE, "bench_facematch", *arguments],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise CommandError(f"bench_facematch failed:\n{done.stderr.strip()[-3000:]}")
        return done.stdout.strip()
