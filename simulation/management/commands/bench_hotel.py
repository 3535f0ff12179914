"""``manage.py bench_hotel``: the hotel interfaces' figures, end to end; prints one JSON line.

See simulation/benchmarks/hotel.py for what is measured and how. By default the
hotel is generated in a throwaway SQLite database in a child process
(``--database-url``: an empty database to use instead); ``--keep`` works in the
configured database, which must hold no rooms and no encoders.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from simulation.benchmarks import hotel as hotel_benchmark
from simulation.benchmarks import web as benchmark
from simulation.benchrun import run_in_throwaway

NAMES = ("round_trips", "count", "parallel", "write_ms")


class Command(BaseCommand):
    help = "Time FIAS KR→KA and sustained check-ins through FIAS, Industry Standard, SHIP and REST."

    def add_arguments(self, parser):
        parser.add_argument("--round-trips", type=int, default=200, help="FIAS KRs timed one by one (200).")
        parser.add_argument("--count", type=int, default=300, help="Check-ins through each interface (300).")
        parser.add_argument("--parallel", type=int, default=4, help="Stations at once where it applies (4).")
        parser.add_argument("--write-ms", type=float, default=50.0, help="A simulated encoder's write (50 ms).")
        parser.add_argument("--database-url", help="An empty database to use instead of a throwaway SQLite file.")
        parser.add_argument("--keep", action="store_true", help="Use the configured database and keep the hotel.")

    def handle(self, *args, **options):
        if min(options["round_trips"], options["count"], options["parallel"]) < 1:
            raise CommandError("--round-trips, --count and --parallel must be positive.")
        if options["write_ms"] < 0:
            raise CommandError("--write-ms must not be negative.")
        if options["keep"]:
            result = self.run_here(options)
        else:
            arguments = [f"--{name.replace('_', '-')}={options[name]}" for name in NAMES]
            result = run_in_throwaway("bench_hotel", arguments, database_url=options["database_url"])
        self.stdout.write(json.dumps(result))

    def run_here(self, options) -> dict:
        # Each check-in has a room of its own: the round trips', then each interface's.
        rooms = options["round_trips"] + len(hotel_benchmark.INTERFACES) * options["count"]
        try:
            generated = hotel_benchmark.generate(rooms, options["parallel"])
        except ValueError as error:
            raise CommandError(str(error)) from None
        result = hotel_benchmark.measure(
            rooms=rooms,
            round_trips=options["round_trips"],
            count=options["count"],
            parallel=options["parallel"],
            write_s=options["write_ms"] / 1000,
            token=generated["token"],
        )
        result["generate_seconds"] = generated["generate_seconds"]
        result.update(benchmark.machine())
        return result
