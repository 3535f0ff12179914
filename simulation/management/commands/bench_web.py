"""``manage.py bench_web``: the operator web app's pages on a large site; prints one JSON line.

By default everything happens in a child process against a throwaway SQLite
file in a temporary directory (``--database-url``: an empty database to use
instead, e.g. a scratch PostgreSQL one): it is migrated, filled by
``simulation.benchmarks.web.generate`` (100,000 cardholders, 1,000,000 audit
events over a year), analysed, and then each page is requested in-process with
``django.test.Client`` as an operator of all partitions: server time p50/p95,
and the SQL queries of one request at ``per_page=10`` and ``per_page=100``.
A page whose URL name no view defines yet is ``{"missing": true}``.

``--keep`` works in the configured database instead (it refuses one that
already holds cardholders when generating); ``--keep --phase measure`` measures
a database filled earlier, again and again while a page is being tuned.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from simulation.benchmarks import web as benchmark
from simulation.benchrun import run_in_throwaway


class Command(BaseCommand):
    help = "Generate a large site and time the web app's cardholder and audit trail pages; prints one JSON line."

    def add_arguments(self, parser):
        parser.add_argument("--cardholders", type=int, default=100_000, help="Cardholders (default 100,000).")
        parser.add_argument("--events", type=int, default=1_000_000, help="Audit events (default 1,000,000).")
        parser.add_argument("--requests", type=int, default=60, help="Timed requests per page (default 60).")
        parser.add_argument("--warmups", type=int, default=5, help="Untimed requests first (default 5).")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--no-analyze", action="store_true", help="Leave the planner without statistics.")
        parser.add_argument("--database-url", help="An empty database to use instead of a throwaway SQLite file.")
        parser.add_argument("--keep", action="store_true", help="Use the configured database and keep the site.")
        parser.add_argument("--phase", choices=("all", "generate", "measure"), default="all", help="With --keep.")

    def handle(self, *args, **options):
        if options["cardholders"] < 1 or options["events"] < 1 or options["requests"] < 1 or options["warmups"] < 0:
            raise CommandError("--cardholders, --events and --requests must be positive, --warmups not negative.")
        result = self.run_here(options) if options["keep"] else self.run_in_child(options)
        self.stdout.write(json.dumps(result))

    def run_here(self, options) -> dict:
        result = {}
        if options["phase"] in ("all", "generate"):
            try:
                result.update(benchmark.generate(options["cardholders"], options["events"], options["seed"]))
            except ValueError as error:
                raise CommandError(str(error)) from None
            if not options["no_analyze"]:
                result["analyze_seconds"] = benchmark.analyze()
        if options["phase"] in ("all", "measure"):
            try:
                result.update(benchmark.measure(options["requests"], options["warmups"]))
            except benchmark.PageFailed as error:
                raise CommandError(str(error)) from None
        result.update(benchmark.machine())
        return result

    def run_in_child(self, options) -> dict:
        arguments = [
            f"--{name.replace('_', '-')}={options[name]}"
            for name in ("cardholders", "events", "requests", "warmups", "seed")
        ]
        if options["no_analyze"]:
            arguments.append("--no-analyze")
        return run_in_throwaway("bench_web", arguments, database_url=options["database_url"])
