"""Running a benchmark command in a child process against a throwaway database.

A benchmark generates a large site; it must never do that in the configured
database by accident. :func:`run_in_throwaway` starts ``manage.py <command>
--keep …`` in a child whose environment points at a fresh SQLite file in a
temporary directory (or at ``database_url``, an empty database the caller
names), with fresh secrets, migrates it first, and returns the child's JSON line.
"""

import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError

MANAGE = str(Path(settings.BASE_DIR) / "manage.py")


@contextlib.contextmanager
def postgres_database(server: str, prefix: str):
    """The URL of a database made on the PostgreSQL ``server`` (``postgres://user@host:port``), dropped after."""
    import psycopg

    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    base = server.rstrip("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_in_throwaway(command: str, arguments: list[str], *, database_url: str | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"space-{command.replace('_', '-')}-") as directory:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPACE_", "DATABASE_URL", "REDIS_URL"))}
        env.update(
            SPACE_VAR_DIR=directory,
            SPACE_SECRET_KEY=secrets.token_urlsafe(40),
            SPACE_MASTER_KEY=secrets.token_urlsafe(40),
            SPACE_LOG_LEVEL="WARNING",
            DATABASE_URL=database_url or f"sqlite:///{Path(directory) / 'bench.sqlite3'}",
        )
        _child(env, "migrate", "--no-input", "--verbosity=0")
        lines = _child(env, command, "--keep", *arguments).strip().splitlines()
    result = json.loads(lines[-1])
    result["throwaway"] = not database_url
    return result


def _child(env: dict, *arguments) -> str:
    done = subprocess.run(  # noqa: S603 (our own manage.py)
        [sys.executable, MANAGE, *arguments], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise CommandError(f"manage.py {' '.join(arguments[:2])} failed:\n{done.stderr.strip()[-3000:]}")
    return done.stdout
