"""``manage.py bench_backup``: backup, verify and restore times on a large site; prints one JSON line.

By default everything happens in a child process against a throwaway SQLite
file in a temporary directory (``--postgres postgres://user@host:port``: a
database made on that server for the run and dropped after it). The child
generates the shared large site (100,000 cardholders, 1,000,000 audit events),
then runs the parts of ``simulation.benchmarks.backup.PARTS`` in order
(``--only`` to pick some): ``backup``, ``verify``, ``restore``, ``purge``.
Goals: backup at most 60 s, restore at most 120 s, purge at least 20,000
events/s while the bridge stores about 500 events/s, decisions' p99 at most 20 ms.

``--keep`` works in the configured database instead, which must be empty of
audit events when generating.
"""

import contextlib
import json

from django.core.management.base import BaseCommand, CommandError

from simulation.benchmarks import backup as benchmark
from simulation.benchmarks import web
from simulation.benchrun import postgres_database, run_in_throwaway


class Command(BaseCommand):
    help = "Generate a large site and time its backup, verification and restore; prints one JSON line."

    def add_arguments(self, parser):
        parser.add_argument("--cardholders", type=int, default=100_000, help="Cardholders (default 100,000).")
        parser.add_argument("--events", type=int, default=1_000_000, help="Audit events (default 1,000,000).")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--only", choices=list(benchmark.PARTS), action="append", help="Only this part (repeatable)."
        )
        parser.add_argument("--postgres", help="A PostgreSQL server's URL: measure in a database made there.")
        parser.add_argument(
            "--purge-rate", type=float, default=580.0, help="The purge part's load: actions/s (580: ~500 events/s)."
        )
        parser.add_argument("--purge-devices", type=int, default=20, help="The purge part's simulated devices.")
        parser.add_argument(
            "--purge-baseline-seconds", type=float, default=10.0, help="Decisions timed before the purge starts."
        )
        parser.add_argument("--keep", action="store_true", help="Use the configured database and keep the site.")

    def handle(self, *args, **options):
        if options["cardholders"] < 1 or options["events"] < 0:
            raise CommandError("--cardholders must be positive and --events not negative.")
        result = self.run_here(options) if options["keep"] else self.run_in_child(options)
        self.stdout.write(json.dumps(result))

    def run_here(self, options) -> dict:
        try:
            result = web.generate(options["cardholders"], options["events"], options["seed"])
        except ValueError as error:
            raise CommandError(str(error)) from None
        context = benchmark.Context(
            purge_options={
                "rate": options["purge_rate"],
                "devices": options["purge_devices"],
                "baseline_seconds": options["purge_baseline_seconds"],
            }
        )
        parts = options["only"] or list(benchmark.PARTS)
        for name, measure in benchmark.PARTS.items():  # in their order, whatever the order of --only
            if name in parts:
                try:
                    result[name] = measure(context)
                except Exception as error:
                    raise CommandError(f"The {name} part failed: {error}") from error
        return result | web.machine()

    def run_in_child(self, options) -> dict:
        passed = ("cardholders", "events", "seed", "purge_rate", "purge_devices", "purge_baseline_seconds")
        arguments = [f"--{name.replace('_', '-')}={options[name]}" for name in passed]
        arguments += [f"--only={part}" for part in options["only"] or ()]
        with _database(options["postgres"]) as url:
            return run_in_throwaway("bench_backup", arguments, database_url=url) | {"throwaway": True}


@contextlib.contextmanager
def _database(server: str | None):
    """None (a throwaway SQLite file), or the URL of a database made on the PostgreSQL server, dropped after."""
    if not server:
        yield None
        return
    with postgres_database(server, "space_bench_backup") as url:
        yield url
