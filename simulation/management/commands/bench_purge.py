"""``manage.py bench_purge``: the audit purge under load (simulation/benchmarks/retention.py); prints one JSON line.

A stand-in until ``bench_backup`` runs the same measure as its part ``purge``. In a
throwaway database (a SQLite file in a temporary directory, or with ``--postgres
URL`` a database made on that server and dropped after): migrate, generate a site
of ``--cardholders`` and ``--events`` audit events over the past year, then
purge what ``--keep-days`` no longer keeps while the device bridge stores events
from simulated devices.
"""

import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Measure the audit purge while the device bridge stores events; prints one JSON line."

    def add_arguments(self, parser):
        parser.add_argument("--cardholders", type=int, default=100_000)
        parser.add_argument("--events", type=int, default=1_000_000)
        parser.add_argument("--keep-days", type=int, default=30)
        parser.add_argument(
            "--rate", type=float, default=580.0, help="Load actions per second (default 580: about 500 events/s)."
        )
        parser.add_argument("--devices", type=int, default=20)
        parser.add_argument("--batch", type=int)
        parser.add_argument("--postgres", help="A PostgreSQL server's URL: measure in a database made there.")
        parser.add_argument("--inner", action="store_true", help=None)

    def handle(self, *args, **options):
        if options["inner"]:
            self.stdout.write(json.dumps(self.inner(options)))
            return
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        passed = [
            f"--{name.replace('_', '-')}={options[name]}"
            for name in ("cardholders", "events", "keep_days", "rate", "devices", "batch")
            if options[name] is not None
        ]
        with tempfile.TemporaryDirectory(prefix="space-bench-purge-") as scratch, _database(options, scratch) as url:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("SPACE_", "DATABASE_URL", "REDIS_URL"))}
            env.update(
                DATABASE_URL=url,
                SPACE_VAR_DIR=scratch,
                SPACE_MASTER_KEY=secrets.token_urlsafe(40),
                SPACE_SECRET_KEY=secrets.token_urlsafe(40),
                SPACE_LOG_LEVEL="WARNING",
            )
            for arguments in (["migrate", "--verbosity=0"], ["bench_purge", "--inner", *passed]):
                done = subprocess.run([*manage, *arguments], env=env, capture_output=True, text=True, check=False)  # noqa: S603
                if done.returncode:
                    raise CommandError(f"{' '.join(arguments)} failed:\n{done.stderr[-3000:]}")
        self.stdout.write(done.stdout.strip().splitlines()[-1])

    def inner(self, options) -> dict:
        from simulation.benchmarks import retention

        started = time.perf_counter()
        site = retention.build_site(options["cardholders"], options["events"])
        built = time.perf_counter() - started
        result = retention.measure_purge(
            keep_days=options["keep_days"], rate=options["rate"], devices=options["devices"], batch=options["batch"]
        )
        return {"cardholders": site["cardholders"], "site_seconds": round(built, 1), **result}


@contextlib.contextmanager
def _database(options, scratch: str):
    server = options["postgres"]
    if not server:
        yield f"sqlite:///{Path(scratch) / 'bench.sqlite3'}"
        return
    import psycopg

    name = f"space_bench_purge_{uuid.uuid4().hex[:8]}"
    base = server.rstrip("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
