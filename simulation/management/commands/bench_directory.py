"""``manage.py bench_directory``: cardholders synced from a directory of 100,000 entries; prints one JSON line.

By default everything happens in a child process against a throwaway SQLite
file in a temporary directory (``--database-url``: an empty database to use
instead, e.g. a scratch PostgreSQL one), migrated first. The child starts its
own slapd (simulation/ldap/directory.py) filled with ``--entries`` Active-
Directory-like users, and times, through ``accesscontrol.sync.run``, a first
sync of everyone (goal: 5 minutes) and, after 1% of the entries changed and
0.1% deleted, an incremental sync (goal: 10 seconds); it then checks that every
leaver's keys are on the blacklist (simulation/benchmarks/directory.py).

``--keep`` works in the configured database instead, which must hold no synced cardholders.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from simulation.benchmarks import directory as benchmark
from simulation.benchrun import run_in_throwaway


class Command(BaseCommand):
    help = "Sync cardholders from a 100,000-entry directory, then incrementally after changes; prints one JSON line."

    def add_arguments(self, parser):
        parser.add_argument("--entries", type=int, default=100_000, help="Directory entries (default 100,000).")
        parser.add_argument("--database-url", help="An empty database to use instead of a throwaway SQLite file.")
        parser.add_argument("--keep", action="store_true", help="Use the configured database and keep the site.")

    def handle(self, *args, **options):
        if options["entries"] < 1000:
            raise CommandError("--entries must be at least 1,000 (0.1% of them leave).")
        result = self.run_here(options) if options["keep"] else self.run_in_child(options)
        self.stdout.write(json.dumps(result))

    def run_here(self, options) -> dict:
        try:
            return benchmark.measure(options["entries"])
        except (ValueError, RuntimeError) as error:
            raise CommandError(str(error)) from None

    def run_in_child(self, options) -> dict:
        arguments = [f"--entries={options['entries']}"]
        return run_in_throwaway("bench_directory", arguments, database_url=options["database_url"])
