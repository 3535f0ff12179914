"""``manage.py bench_cards``: data-on-card figures on a generated site; prints one JSON line.

See simulation/benchmarks/cards.py for what is measured. By default the site is
generated in a throwaway SQLite database in a child process
(``--database-url``: an empty database to use instead); ``--keep`` works in the
configured database, which must hold no cardholders.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from simulation.benchmarks import cards as card_benchmark
from simulation.benchmarks import web as benchmark
from simulation.benchrun import run_in_throwaway


class Command(BaseCommand):
    help = "Time building card data and an offline lock's decision, and how fast the blacklist spreads."

    def add_arguments(self, parser):
        parser.add_argument("--access-points", type=int, default=500, help="Doors of the wide cardholder (500).")
        parser.add_argument("--locks", type=int, default=200, help="Offline locks (default 200).")
        parser.add_argument("--cardholders", type=int, default=2000, help="Cardholders with a card (2,000).")
        parser.add_argument("--runs", type=int, default=300, help="Timed builds and decisions (default 300).")
        parser.add_argument("--updater-share", type=float, default=0.1, help="Presentations at an updater (0.1).")
        parser.add_argument("--limit", type=int, default=500_000, help="Give up after this many presentations.")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--database-url", help="An empty database to use instead of a throwaway SQLite file.")
        parser.add_argument("--keep", action="store_true", help="Use the configured database and keep the site.")

    def handle(self, *args, **options):
        if min(options["access_points"], options["locks"], options["cardholders"], options["runs"]) < 1:
            raise CommandError("--access-points, --locks, --cardholders and --runs must be positive.")
        if options["locks"] > options["access_points"]:
            raise CommandError("--locks must not exceed --access-points (each lock is on one of the doors).")
        if not 0 < options["updater_share"] < 1:
            raise CommandError("--updater-share is a share between 0 and 1.")
        if options["keep"]:
            result = self.run_here(options)
        else:
            names = ("access_points", "locks", "cardholders", "runs", "updater_share", "limit", "seed")
            arguments = [f"--{name.replace('_', '-')}={options[name]}" for name in names]
            result = run_in_throwaway("bench_cards", arguments, database_url=options["database_url"])
        self.stdout.write(json.dumps(result))

    def run_here(self, options) -> dict:
        try:
            result = card_benchmark.generate(options["access_points"], options["locks"], options["cardholders"])
        except ValueError as error:
            raise CommandError(str(error)) from None
        result.update(card_benchmark.measure_build(options["runs"]))
        result.update(card_benchmark.measure_decide(options["runs"]))
        result.update(card_benchmark.measure_propagation(options["updater_share"], options["seed"], options["limit"]))
        result.update(benchmark.machine())
        return result
