"""SQLite: an online copy with the backup API, and a restore that puts the copy in place of an empty database.

``sqlite3.Connection.backup`` in one step (``pages=-1``) reads the whole
database inside one read transaction: with WAL, writers (the device bridge)
go on committing meanwhile, and the copy is the database as of its start.
Copying in several steps would start again after each write by another
connection, and might never end on a busy site.
"""

import contextlib
import os
import shutil
import sqlite3
from pathlib import Path

from core.backup.crypto import BackupError
from core.backup.packing import check_counts
from core.files import fsync_directory

MEMBER = "database.sqlite3"
TIMEOUT_SECONDS = 60


def _path(database: dict) -> Path:
    return Path(database["NAME"])


def table_counts(connection: sqlite3.Connection) -> dict[str, int]:
    tables = [
        name
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    return {name: connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in tables}  # noqa: S608


def migrations(connection: sqlite3.Connection) -> list[list[str]]:
    try:
        rows = connection.execute("SELECT app, name FROM django_migrations ORDER BY id").fetchall()
    except sqlite3.OperationalError:
        return []
    return [list(row) for row in rows]


def snapshot(database: dict, work_dir: Path) -> tuple[dict[str, Path], dict]:
    """Copy the live database into ``work_dir``; (members, facts for the manifest)."""
    source_path = _path(database)
    if not source_path.is_file():
        raise BackupError(f"The database file {source_path} does not exist.")
    copy_path = work_dir / MEMBER
    source = sqlite3.connect(source_path, timeout=TIMEOUT_SECONDS)
    try:
        with contextlib.closing(sqlite3.connect(copy_path)) as copy:
            source.backup(copy)  # one step: one consistent read transaction
            facts = {
                "vendor": "sqlite",
                "version": sqlite3.sqlite_version,
                "tables": table_counts(copy),
                "migrations": migrations(copy),
            }
    finally:
        source.close()
    return {MEMBER: copy_path}, facts


def is_empty(database: dict) -> bool:
    path = _path(database)
    if not path.exists() or path.stat().st_size == 0:
        return True
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=TIMEOUT_SECONDS)) as db:
        return db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0] == 0


def counts_of_file(path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return table_counts(db)


def verify(files: dict[str, Path], database: dict, work_dir: Path) -> dict[str, int]:
    """The row counts of the unpacked copy (nothing is restored)."""
    return counts_of_file(_member(files))


def restore(files: dict[str, Path], database: dict, work_dir: Path, expected: dict[str, int]) -> dict[str, int]:
    """Put the unpacked copy in place of the (empty) configured database file; its row counts."""
    unpacked = _member(files)
    target = _path(database)
    found = counts_of_file(unpacked)
    check_counts(expected, found)  # before it takes the database's place
    target.parent.mkdir(parents=True, exist_ok=True)
    # Beside the target, so that the rename below is atomic (work_dir may be on another file system).
    staged = target.with_name(f".{target.name}.restoring")
    if unpacked.stat().st_dev == target.parent.stat().st_dev:
        os.replace(unpacked, staged)
    else:
        shutil.copyfile(unpacked, staged)
    with open(staged, "rb+") as handle:
        os.fsync(handle.fileno())
    for leftover in (target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
        leftover.unlink(missing_ok=True)  # of the empty database: they must not be replayed onto the restored one
    os.replace(staged, target)
    fsync_directory(target.parent)
    return found


def _member(files: dict[str, Path]) -> Path:
    if MEMBER not in files:
        raise BackupError(f"The backup holds no {MEMBER}.")
    return files[MEMBER]
