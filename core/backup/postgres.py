"""PostgreSQL: ``pg_dump --format=custom`` of an exported snapshot, ``pg_restore`` into an empty database.

The row counts of the manifest are taken in a REPEATABLE READ transaction
whose snapshot pg_dump is then given (``--snapshot``): they describe exactly
the rows of the dump, however many events devices write meanwhile. The
password reaches pg_dump and pg_restore through ``PGPASSWORD`` in their
environment, never on a command line (which ``ps`` shows to everyone).

Verifying restores the dump into a scratch database made on the same server
(and dropped after): the only honest way to count a custom-format dump's rows.
"""

import contextlib
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from core.backup.crypto import BackupError

MEMBER = "database.pgdump"
SSL_OPTIONS = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
}
LIST_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"


def _connect(database: dict, name: str | None = None, **options) -> psycopg.Connection:
    parameters = {
        "dbname": name or database["NAME"],
        "user": database.get("USER") or None,
        "password": database.get("PASSWORD") or None,
        "host": database.get("HOST") or None,
        "port": database.get("PORT") or None,
    }
    extra = {k: v for k, v in (database.get("OPTIONS") or {}).items() if k in SSL_OPTIONS}
    try:
        return psycopg.connect(**{k: v for k, v in parameters.items() if v is not None}, **extra, **options)
    except psycopg.OperationalError as error:
        raise BackupError(f"Cannot connect to the PostgreSQL database {parameters['dbname']}: {error}") from None


def _environment(database: dict, name: str | None = None) -> dict:
    env = dict(os.environ)  # libpq's own variables (PGPASSFILE, PGSSLMODE, ...) still apply, as for Django's link
    for variable, value in (
        ("PGDATABASE", name or database["NAME"]),
        ("PGUSER", database.get("USER")),
        ("PGPASSWORD", database.get("PASSWORD")),
        ("PGHOST", database.get("HOST")),
        ("PGPORT", database.get("PORT")),
    ):
        if value:
            env[variable] = str(value)
    for option, variable in SSL_OPTIONS.items():
        if value := (database.get("OPTIONS") or {}).get(option):
            env[variable] = str(value)
    return env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not installed (the postgresql-client package; scripts/install.sh installs it).")
    return path


def _run(arguments: list[str], env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run(arguments, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(f"{Path(arguments[0]).name} failed: {' / '.join(message[-5:]) or done.returncode}")
    return done


def table_counts(connection: psycopg.Connection) -> dict[str, int]:
    tables = [name for (name,) in connection.execute(LIST_TABLES)]
    return {
        name: connection.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))).fetchone()[0]
        for name in tables
    }


def migrations(connection: psycopg.Connection) -> list[list[str]]:
    if connection.execute("SELECT to_regclass('django_migrations')").fetchone()[0] is None:
        return []
    return [list(row) for row in connection.execute("SELECT app, name FROM django_migrations ORDER BY id")]


def snapshot(database: dict, work_dir: Path) -> tuple[dict[str, Path], dict]:
    dump = work_dir / MEMBER
    pg_dump = _tool("pg_dump")
    with _connect(database, autocommit=True) as connection:
        connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot_id = connection.execute("SELECT pg_export_snapshot()").fetchone()[0]
        facts = {
            "vendor": "postgresql",
            "version": connection.execute("SHOW server_version").fetchone()[0],
            "tables": table_counts(connection),
            "migrations": migrations(connection),
        }
        # The transaction stays open (and its snapshot valid) until pg_dump has taken it.
        _run([pg_dump, "--format=custom", f"--snapshot={snapshot_id}", f"--file={dump}"], _environment(database))
        connection.execute("COMMIT")
    facts["tool"] = _run([pg_dump, "--version"], os.environ.copy()).stdout.strip()
    return {MEMBER: dump}, facts


def is_empty(database: dict) -> bool:
    with _connect(database) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchone()[0]
    return tables == 0


def _restore_into(files: dict[str, Path], database: dict, name: str | None = None) -> dict[str, int]:
    if MEMBER not in files:
        raise BackupError(f"The backup holds no {MEMBER}: it is not a PostgreSQL backup.")
    _run(
        [
            _tool("pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={name or database['NAME']}",
            str(files[MEMBER]),
        ],
        _environment(database, name),
    )
    with _connect(database, name) as connection:
        return table_counts(connection)


def restore(files: dict[str, Path], database: dict, work_dir: Path, expected: dict[str, int]) -> dict[str, int]:
    return _restore_into(files, database)


@contextlib.contextmanager
def scratch_database(database: dict):
    """A database of its own on the same server, dropped afterwards (whatever happened)."""
    name = f"space_verify_{secrets.token_hex(6)}"
    with _connect(database, autocommit=True) as connection:
        try:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.Error as error:
            raise BackupError(f"Cannot make a scratch database to count the dump's rows in: {error}") from None
    try:
        yield name
    finally:
        with _connect(database, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def verify(files: dict[str, Path], database: dict, work_dir: Path) -> dict[str, int]:
    """The row counts of the dump, restored into a scratch database that is dropped afterwards."""
    if MEMBER not in files:
        raise BackupError(f"The backup holds no {MEMBER}: it is not a PostgreSQL backup.")
    _run([_tool("pg_restore"), "--list", str(files[MEMBER])], os.environ.copy())
    with scratch_database(database) as name:
        return _restore_into(files, database, name)
