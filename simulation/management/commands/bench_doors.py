"""``manage.py bench_doors``: card at an OSDP reader to relay command at the reader; prints one JSON line.

See simulation/benchmarks/doors.py for what is measured. By default it runs in a
throwaway SQLite database in a child process (``--database-url``: an empty
database to use instead); ``--keep`` works in the configured database.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from simulation.benchmarks import doors
from simulation.benchmarks import web as benchmark
from simulation.benchrun import run_in_throwaway


class Command(BaseCommand):
    help = "Time card-to-relay on an OSDP bus with 1, 8 and 32 readers (secure channel on), and a burst at all."

    def add_arguments(self, parser):
        parser.add_argument("--readers", default="1,8,32", help="Bus sizes to measure, comma-separated (1,8,32).")
        parser.add_argument("--samples", type=int, default=200, help="Cards per bus size, one at a time (200).")
        parser.add_argument("--rounds", type=int, default=20, help="Bursts in which every reader presents (20).")
        parser.add_argument("--baud", type=int, default=115200, help="The line's speed (115200).")
        parser.add_argument("--database-url", help="An empty database to use instead of a throwaway SQLite file.")
        parser.add_argument("--keep", action="store_true", help="Use the configured database and keep the site.")

    def handle(self, *args, **options):
        try:
            sizes = [int(size) for size in options["readers"].split(",")]
        except ValueError:
            raise CommandError("--readers is a comma-separated list of bus sizes, e.g. 1,8,32.") from None
        if not all(1 <= size <= 32 for size in sizes):
            raise CommandError("Each bus size is 1 to 32 readers (libosdp's binding watches 32 per bus).")
        if min(options["samples"], options["rounds"], options["baud"]) < 1:
            raise CommandError("--samples, --rounds and --baud must be positive.")
        if options["keep"]:
            result = self.run_here(sizes, options)
        else:
            arguments = [
                f"--readers={options['readers']}",
                f"--samples={options['samples']}",
                f"--rounds={options['rounds']}",
                f"--baud={options['baud']}",
            ]
            result = run_in_throwaway("bench_doors", arguments, database_url=options["database_url"])
        self.stdout.write(json.dumps(result))

    def run_here(self, sizes: list[int], options) -> dict:
        buses = []
        offset = 0
        for size in sizes:
            buses.append(doors.measure(size, options["samples"], options["rounds"], options["baud"], offset))
            offset += size
        return {"baud": options["baud"], "secure_channel": True, "buses": buses, **benchmark.machine()}
