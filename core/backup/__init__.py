"""Backups that restore: an online copy of the database, packed with its manifest, sealed under the backup key.

:func:`make` copies the live database while Space runs (SQLite's backup API,
or ``pg_dump`` of a snapshot), packs it with a manifest (versions, migrations,
row counts per table, SHA-256 per member) and a restore note, and seals the
whole in AES-256-GCM chunks (:mod:`core.backup.crypto`) into
``space-<UTC time>.spacebackup``: written under a temporary name, synced and
renamed, so the folder never holds half a backup under a real name.

:func:`verify` opens a backup and checks it end to end (every chunk, every
checksum, the row counts of the database inside) and restores nothing.
:func:`restore` puts a backup into an empty database and checks its counts.

Folders of files that belong with the database (cardholder photos) go in
beside it, each as one member (:mod:`core.backup.folders`), named by the caller.

It knows no app: the database is a Django ``DATABASES`` entry, the rest is
given by the caller (docs/backups.md).
"""

import datetime as dt
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from core.backup import postgres, sqlite
from core.backup.crypto import BackupError, Damaged, WrongKey, check_key
from core.backup.folders import check_folder, pack_folder, restore_folder
from core.backup.packing import check_counts, pack, sha256_of, unpack
from core.backup.retention import to_keep
from core.files import fsync_directory

__all__ = [
    "BackupError",
    "Damaged",
    "Made",
    "NotEmpty",
    "WrongKey",
    "backup_files",
    "check_key",
    "file_name",
    "make",
    "moment_of",
    "restore",
    "to_keep",
    "verify",
]

MANIFEST_FORMAT = 1
SUFFIX = ".spacebackup"
NAME_PATTERN = re.compile(r"^space-(\d{8}T\d{6}Z)\.spacebackup$")
NOTE = "RESTORE.txt"
SECRETS_NOTE = (
    "Device keys, OSDP keys, the site card key, the PIN digests' key and biometric templates are sealed under "
    "the master key (SPACE_MASTER_KEY), which is not in this backup: restore it where Space has the same master "
    "key, or those secrets cannot be opened."
)


class NotEmpty(BackupError):
    pass


@dataclass(frozen=True)
class Made:
    path: Path
    size: int
    seconds: float
    manifest: dict


def vendor_of(database: dict) -> ModuleType:
    engine = database["ENGINE"]
    if engine.endswith("sqlite3"):
        return sqlite
    if engine.endswith("postgresql"):
        return postgres
    raise BackupError(f"Backups support SQLite and PostgreSQL, not {engine}.")


def file_name(moment: dt.datetime) -> str:
    return f"space-{moment.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}{SUFFIX}"


def moment_of(name: str) -> dt.datetime | None:
    """When the backup called ``name`` was made; None for a name that is not a backup's."""
    match = NAME_PATTERN.match(name)
    if match is None:
        return None
    return dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)


def backup_files(folder: Path) -> dict[Path, dt.datetime]:
    """The backups in ``folder`` (by their names), with when each was made."""
    if not folder.is_dir():
        return {}
    return {path: moment for path in folder.iterdir() if (moment := moment_of(path.name)) is not None}


def stale_partials(folder: Path, older_than: dt.datetime) -> list[Path]:
    """Partial files of backups that never finished (their process died), last changed before ``older_than``."""
    if not folder.is_dir():
        return []
    limit = older_than.timestamp()
    return [
        path
        for path in folder.glob(".space-*.spacebackup.partial")
        if moment_of(path.name[1 : -len(".partial")]) and path.stat().st_mtime < limit
    ]


def _note(manifest: dict) -> bytes:
    vendor = manifest["database"]["vendor"]
    how = (
        "Restore:   manage.py restore FILE   (into an empty database: no Space tables yet)\n"
        "Verify:    manage.py restore --verify FILE   (restores nothing)\n"
        "Then:      manage.py migrate   (when this Space is newer than the backup's)\n"
    )
    return (
        f"Space backup of {manifest['created_at']} (Space {manifest['space_version']}, {vendor} "
        f"{manifest['database']['version']}, time zone {manifest['site'].get('time_zone')}).\n\n"
        f"{how}\nThe backup key (SPACE_BACKUP_KEY) opens this file.\n{SECRETS_NOTE}\n"
        "docs/backups.md describes the format.\n"
    ).encode()


def make(
    database: dict,
    folder: Path,
    key: str,
    *,
    work_dir: Path,
    about: dict,
    now: dt.datetime,
    name: str | None = None,
    folders: dict[str, Path] | None = None,
) -> Made:
    """Back up ``database`` into ``folder``; ``about``: space_version, site (name, time_zone); ``folders``: name ->
    a folder of files packed beside the database, after its snapshot (so every file the snapshot names is there
    if the caller keeps files from going meanwhile)."""
    check_key(key)
    started = time.monotonic()
    vendor = vendor_of(database)
    name = name or file_name(now)
    folder.mkdir(parents=True, exist_ok=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    final, partial = folder / name, folder / f".{name}.partial"
    if final.exists():
        raise BackupError(f"{final} exists already: a backup is never written over another.")
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="backup-") as scratch:
        members, facts = vendor.snapshot(database, Path(scratch))
        manifest = {
            "format": MANIFEST_FORMAT,
            "space_version": about.get("space_version"),
            "created_at": now.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "site": about.get("site", {}),
            "database": {k: facts[k] for k in ("vendor", "version") if k in facts} | {"member": next(iter(members))},
            "migrations": facts["migrations"],
            "tables": facts["tables"],
            "secrets": SECRETS_NOTE,
        }
        if folders:
            manifest["folders"] = {}
            for label, source in folders.items():
                member = f"{label}.tar"
                members[member] = Path(scratch) / member
                manifest["folders"][label] = {"member": member, **pack_folder(source, members[member])}
        note = Path(scratch) / NOTE
        note.write_bytes(_note(manifest))
        members[NOTE] = note
        manifest["members"] = {
            member: {"size": path.stat().st_size, "sha256": sha256_of(path)} for member, path in members.items()
        }
        try:
            with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
                pack(out, key, manifest, members)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, final)
            fsync_directory(folder)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return Made(final, final.stat().st_size, time.monotonic() - started, manifest)


def _unpacked(path: Path, key: str, scratch: Path) -> tuple[dict, dict[str, Path]]:
    if not path.is_file():
        raise BackupError(f"There is no backup file {path}.")
    with open(path, "rb") as source:
        return unpack(source, key, scratch)


def verify(path: Path, key: str, *, database: dict, work_dir: Path) -> dict:
    """Open the backup and check it end to end; restores nothing. Its manifest, with what was checked."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="verify-") as scratch:
        manifest, files = _unpacked(path, key, Path(scratch))
        vendor = _vendor_for(manifest, database, "Verifying")
        check_counts(manifest["tables"], vendor.verify(files, database, Path(scratch)))
        for packed in manifest.get("folders", {}).values():
            check_folder(_member(files, packed), packed)
    return manifest


def restore(path: Path, key: str, *, database: dict, work_dir: Path, folders: dict[str, Path] | None = None) -> dict:
    """Restore the backup into ``database``, which must be empty, and its folders into ``folders`` (name -> where);
    its manifest."""
    vendor = vendor_of(database)
    if not vendor.is_empty(database):
        raise NotEmpty(_not_empty(database))
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="restore-") as scratch:
        manifest, files = _unpacked(path, key, Path(scratch))
        if _vendor_for(manifest, database, "Restoring") is not vendor:
            raise BackupError(
                f"This is a backup of a {manifest['database']['vendor']} database; the configured database is "
                f"{database['ENGINE'].rpartition('.')[2]}: restore it into one of its own kind."
            )
        if not vendor.is_empty(database):  # unpacking took a while: someone may have migrated meanwhile
            raise NotEmpty(_not_empty(database))
        for packed in manifest.get("folders", {}).values():
            check_folder(_member(files, packed), packed)
        check_counts(manifest["tables"], vendor.restore(files, database, Path(scratch), manifest["tables"]))
        for label, packed in manifest.get("folders", {}).items():
            if folders and label in folders:
                restore_folder(_member(files, packed), folders[label])
    return manifest


def _member(files: dict[str, Path], packed) -> Path:
    member = files.get(packed.get("member")) if isinstance(packed, dict) else None
    if member is None:
        raise Damaged("The backup's manifest names a folder it does not hold.")
    return member


def _not_empty(database: dict) -> str:
    return (
        f"The database {database['NAME']} is not empty: a backup is restored into an empty one only "
        "(a new SQLite file, or a PostgreSQL database just created), never over a site's data."
    )


def _vendor_for(manifest: dict, database: dict, doing: str) -> ModuleType:
    vendor = manifest.get("database", {}).get("vendor")
    if vendor == "sqlite":
        return sqlite
    if vendor != "postgresql":
        raise Damaged(f"The backup's manifest names an unknown database: {vendor!r}.")
    if vendor_of(database) is not postgres:
        raise BackupError(f"{doing} a PostgreSQL backup needs a PostgreSQL server: set DATABASE_URL to one.")
    return postgres
