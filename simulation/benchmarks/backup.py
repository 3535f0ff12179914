"""Backups of a large site: the measurement behind ``manage.py bench_backup``.

:func:`generate` fills the (throwaway) database with the shared large site
(simulation/benchmarks/web.py: 100,000 cardholders, 1,000,000 audit events by
default); then each part of :data:`PARTS` runs in order on it, handing what it
made to the next through a :class:`Context`:

- ``backup``: ``accesscontrol.backups.back_up``, the product's own path (the
  online copy, the manifest, packing, encryption, the record, retention);
  seconds, file size, and the database's size for comparison;
- ``verify``: ``core.backup.verify`` of that file (decrypt, checksums, counts;
  PostgreSQL: a restore into a scratch database, dropped after);
- ``restore``: ``core.backup.restore`` into a new empty database (a SQLite
  file beside the site's, or a database made on the same PostgreSQL server and
  dropped after), counts checked;
- ``purge``: the audit purge (archive, then delete) of everything older than
  30 days while the device bridge stores about 500 events/s from simulated
  devices, and the decisions' p99 meanwhile
  (``simulation.benchmarks.retention.measure_purge``); last, since it deletes.

Goals: backup at most :data:`GOAL_BACKUP_SECONDS`, restore at most
:data:`GOAL_RESTORE_SECONDS`, purge at least :data:`GOAL_PURGE_PER_SECOND`
events/s with decisions' p99 at most :data:`GOAL_DECISION_P99_MS` ms.
"""

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection

from accesscontrol import backups
from accesscontrol.models import BackupOutcome, BackupTrigger
from core import backup as engine
from core.backup import postgres
from simulation.benchmarks import retention

GOAL_BACKUP_SECONDS = 60
GOAL_RESTORE_SECONDS = 120
GOAL_PURGE_PER_SECOND = 20_000
GOAL_DECISION_P99_MS = 20


@dataclass
class Context:
    """What the parts share: the backup file the ``backup`` part made, and anything a later part needs."""

    backup_path: Path | None = None
    facts: dict = field(default_factory=dict)
    purge_options: dict = field(default_factory=dict)  # measure_purge's keywords (a test's small load)

    def backup_file(self) -> Path:
        if self.backup_path is None:  # a part run without the backup part: make one first, untimed
            measure_backup(self)
        return self.backup_path


def database_bytes() -> int:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            return int(cursor.fetchone()[0])
    path = Path(connection.settings_dict["NAME"])
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def measure_backup(context: Context) -> dict:
    size = database_bytes()
    started = time.perf_counter()
    row = backups.back_up(BackupTrigger.MANUAL, verify=False)  # verify is a part of its own
    seconds = time.perf_counter() - started
    if row.outcome != BackupOutcome.OK:
        raise RuntimeError(f"The backup failed: {row.error}")
    context.backup_path = backups.folder() / row.file_name
    return {
        "seconds": round(seconds, 2),
        "bytes": row.size,
        "database_bytes": size,
        "rows": row.rows,
        "file": row.file_name,
        "goal_seconds": GOAL_BACKUP_SECONDS,
    }


def measure_verify(context: Context) -> dict:
    path = context.backup_file()
    started = time.perf_counter()
    engine.verify(path, settings.SPACE_BACKUP_KEY, database=backups.database(), work_dir=backups.work_dir())
    return {"seconds": round(time.perf_counter() - started, 2)}


@contextlib.contextmanager
def empty_database():
    """A new empty database of the site's kind: a SQLite file, or a database on the same PostgreSQL server."""
    site = backups.database()
    if connection.vendor == "sqlite":
        path = Path(settings.VAR_DIR) / "restored" / "space.sqlite3"
        yield {**site, "NAME": str(path)}
        for leftover in path.parent.glob("space.sqlite3*"):
            leftover.unlink()
        return
    with postgres.scratch_database(site) as name:
        yield {**site, "NAME": name}


def measure_restore(context: Context) -> dict:
    path = context.backup_file()
    with empty_database() as target:
        started = time.perf_counter()
        manifest = engine.restore(path, settings.SPACE_BACKUP_KEY, database=target, work_dir=backups.work_dir())
        seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 2),
        "rows": sum(manifest["tables"].values()),
        "goal_seconds": GOAL_RESTORE_SECONDS,
    }


def measure_purge(context: Context) -> dict:
    figures = retention.measure_purge(**context.purge_options)
    return figures | {"goal_per_second": GOAL_PURGE_PER_SECOND, "goal_decision_p99_ms": GOAL_DECISION_P99_MS}


# The parts, in the order they run; each takes the context and returns its figures.
PARTS: dict[str, Callable[[Context], dict]] = {
    "backup": measure_backup,
    "verify": measure_verify,
    "restore": measure_restore,
    "purge": measure_purge,
}
