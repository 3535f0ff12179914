"""``manage.py bench_face``: face terminals over MQTT end to end; prints one JSON line.

See simulation/benchmarks/face.py for what is measured. By default it runs in a
throwaway SQLite database in a child process (``--database-url``: an empty
database to use instead); ``--keep`` works in the configured database. The
process that runs Space's face service has ``OPENBLAS_NUM_THREADS=1``: on a
small shared machine BLAS threads fighting the terminals and the broker for the
cores lengthen the tail (docs/face-matching.md).
"""

import json
import os
import subprocess
import sys

from django.core.management.base import BaseCommand, CommandError

from simulation.benchmarks import face
from simulation.benchmarks import web as benchmark
from simulation.benchrun import MANAGE, run_in_throwaway

BLAS_THREADS = "1"
NAMES = ("terminals", "people", "rate", "seconds", "face_only_share", "impostor_share", "groups", "searches", "seed")


class Command(BaseCommand):
    help = "Simulated face terminals over MQTT against Space: answer time, throughput, FAR/FRR, 1:N time."

    def add_arguments(self, parser):
        parser.add_argument("--terminals", type=int, default=1_000, help="Simulated terminals, one per door.")
        parser.add_argument("--people", type=int, default=100_000, help="Cardholders, each with a card and a face.")
        parser.add_argument("--rate", type=float, default=1.0, help="Requests a second per terminal.")
        parser.add_argument("--seconds", type=float, default=30.0, help="Seconds measured (after a warm-up).")
        parser.add_argument("--face-only-share", type=float, default=0.5, help="Face only; the rest card + face.")
        parser.add_argument("--impostor-share", type=float, default=0.1, help="Requests by someone not enrolled.")
        parser.add_argument("--groups", type=int, default=100, help="Groups of people; a door admits one group.")
        parser.add_argument("--searches", type=int, default=1_000, help="1:N searches timed alone, each way.")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--database-url", help="An empty database to use instead of a throwaway SQLite file.")
        parser.add_argument("--keep", action="store_true", help="Use the configured database and keep the site.")

    def handle(self, *args, **options):
        if min(options["terminals"], options["people"], options["groups"], options["searches"]) < 1:
            raise CommandError("--terminals, --people, --groups and --searches must be positive.")
        if not (options["rate"] > 0 and options["seconds"] > 0):
            raise CommandError("--rate and --seconds must be positive.")
        if not all(0 <= options[name] <= 1 for name in ("face_only_share", "impostor_share")):
            raise CommandError("--face-only-share and --impostor-share are shares between 0 and 1.")
        arguments = [f"--{name.replace('_', '-')}={options[name]}" for name in NAMES]
        if not options["keep"]:
            os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = BLAS_THREADS
            result = run_in_throwaway("bench_face", arguments, database_url=options["database_url"])
        elif os.environ.get("OPENBLAS_NUM_THREADS") != BLAS_THREADS:
            result = self._again_with_one_blas_thread(arguments)
        else:
            result = face.measure(**{name: options[name] for name in NAMES})
            result["blas_threads"] = int(BLAS_THREADS)
            result.update(benchmark.machine())
        self.stdout.write(json.dumps(result))

    def _again_with_one_blas_thread(self, arguments: list[str]) -> dict:
        """numpy has read OPENBLAS_NUM_THREADS when it was imported: run the command again in a child that has it."""
        env = {**os.environ, "OPENBLAS_NUM_THREADS": BLAS_THREADS, "OMP_NUM_THREADS": BLAS_THREADS}
        done = subprocess.run(  # noqa: S603 (our own manage.py)
            [sys.executable, MANAGE, "bench_face", "--keep", *arguments],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise CommandError(f"bench_face failed:\n{done.stderr.strip()[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
