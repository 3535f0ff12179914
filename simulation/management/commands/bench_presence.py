"""Measure presence and scheduled modes; print one JSON line.

Three figures, each measured in a throwaway database of its own (a child process
per part, so the configured database is never touched): SQLite, or with
``--postgres postgres://user@host:port/`` a database made on that server for the
part and dropped after it:

- ``decisions``: decisions per second at doors with anti-passback, a roll-call
  area and an occupancy limit on, against the same traffic with them off
  (simulation/benchmarks/passback.py; goal: within 20%);
- ``boundary``: from a schedule boundary to the last mode command queued for
  ``--doors`` doors (simulation/benchmarks/schedule.py; goal: at most 1 s);
- ``roll_call``: the roll-call page with ``--people`` people present, p50/p95
  (simulation/benchmarks/presence.py; goal: p95 at most 150 ms).
"""

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from simulation.benchrun import postgres_database

PARTS = ("decisions", "boundary", "roll_call")


class Command(BaseCommand):
    help = "Measure decisions with anti-passback and occupancy, scheduled mode changes and the roll-call page."

    def add_arguments(self, parser):
        parser.add_argument("--cardholders", type=int, default=20_000)
        parser.add_argument("--decisions", type=int, default=200_000)
        parser.add_argument("--doors", type=int, default=10_000)
        parser.add_argument("--people", type=int, default=100_000)
        parser.add_argument("--runs", type=int, default=60, help="Roll-call page renders timed.")
        parser.add_argument("--only", choices=PARTS, action="append", help="Measure only this part (repeatable).")
        parser.add_argument("--postgres", help="A PostgreSQL server's URL: measure in a database made there.")
        parser.add_argument("--inner", choices=PARTS, help=None)

    def handle(self, *args, **options):
        if options["inner"]:
            self.stdout.write(json.dumps(measure(options["inner"], options)))
            return
        result = {}
        for part in options["only"] or PARTS:
            result[part] = self._in_throwaway_database(part, options)
        self.stdout.write(json.dumps(result))

    def _in_throwaway_database(self, part: str, options) -> dict:
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        sizes = [f"--{name}={options[name]}" for name in ("cardholders", "decisions", "doors", "people", "runs")]
        with tempfile.TemporaryDirectory(prefix="space-bench-") as scratch, _database(options, scratch) as url:
            env = {**os.environ, "DATABASE_URL": url}
            for arguments in (["migrate", "--verbosity=0"], ["bench_presence", f"--inner={part}", *sizes]):
                done = subprocess.run([*manage, *arguments], env=env, capture_output=True, text=True, check=False)  # noqa: S603
                if done.returncode:
                    raise CommandError(f"{' '.join(arguments)} failed:\n{done.stderr}")
            return {"database": "postgresql" if options["postgres"] else "sqlite"} | json.loads(
                done.stdout.splitlines()[-1]
            )


@contextlib.contextmanager
def _database(options, scratch: str):
    """The URL of a throwaway database: a SQLite file in ``scratch``, or one made on the PostgreSQL server."""
    server = options["postgres"]
    if not server:
        yield f"sqlite:///{Path(scratch) / 'bench.sqlite3'}"
        return
    with postgres_database(server, "space_bench") as url:
        yield url


def measure(part: str, options) -> dict:
    if part == "decisions":
        from simulation.benchmarks import passback

        return passback.measure(options["cardholders"], options["decisions"])
    if part == "boundary":
        from simulation.benchmarks import schedule

        return schedule.measure_boundary(doors=options["doors"])
    from simulation.benchmarks import presence

    return presence.measure_roll_call(people=options["people"], runs=options["runs"])
