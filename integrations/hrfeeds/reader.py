"""An HR feed as the sync core reads it: the next file, its rows as people, and the file archived once the run ends.

A feed's file is everyone HR has (a complete snapshot): whoever is synced and missing from it has left. A
processed file is moved (watched folder) or written (HTTPS, SFTP) to ``<archive>/<YYYY-MM-DD>/<HHMMSS>-<name>``
when the run is applied, or under ``<failed>/`` when it failed, so a dropped file is never read twice and never
lost. A file that is not a usable table goes to ``<failed>/`` at once: the run fails with its reason.
"""

import datetime as dt
import hashlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from accesscontrol import sync
from core.files import fsync_directory
from integrations.hrfeeds import locations
from integrations.hrfeeds.config import validate_settings
from integrations.hrfeeds.people import read_people
from integrations.hrfeeds.table import TableError, read_table


def read_feed(
    source, *, full: bool, progress: sync.Progress, clock: Callable[[], float] = time.time
) -> sync.Snapshot | None:
    """The feed's next file as a complete Snapshot, or None when there is no new file."""
    settings = feed_settings(source)
    fetched = fetch(source, settings, full, clock())
    if fetched is None:
        return None
    ready(archive_folder(source, settings))
    try:
        table = read_table(fetched.data, settings)
        progress.set_total(len(table.rows))
        people, errors = read_people(table, settings, timezone.get_current_timezone(), progress.advance)
    except TableError as error:
        archived = dispose(source, settings, fetched, applied=False, now=clock())
        raise sync.SourceError(f"{fetched.name} ({fetched.where}): {error} The file is kept in {archived}.") from None
    return sync.Snapshot(
        people=people,
        complete=True,
        cursor=fetched.cursor,
        errors=errors,
        description=f"{fetched.name} from {fetched.where}: {len(table.rows):,} rows",
        finish=lambda applied: dispose(source, settings, fetched, applied=applied, now=clock()),
        # Only the mapped columns are HR's: a field the feed does not carry is left as typed in Space.
        fields=frozenset(settings["columns"]),
    )


def feed_settings(source) -> dict:
    try:
        return validate_settings(source.settings)
    except ValidationError as error:
        reasons = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in error.message_dict.items())
        raise sync.SourceError(f"The feed's settings are not valid: {reasons}") from None


def fetch(source, settings: dict, full: bool, now: float) -> locations.Fetched | None:
    location = settings["location"]
    if location == "folder":
        return locations.fetch_folder(settings, now)
    secret = source.secret or ""
    cursor = source.cursor or {}
    if location == "https":
        return locations.fetch_https(settings, secret, cursor, full)
    return locations.fetch_sftp(settings, secret, cursor, full)


def archive_folder(source, settings: dict) -> Path:
    if settings["archive"]:
        return Path(settings["archive"])
    if settings["location"] == "folder":
        return Path(settings["path"]) / "archive"
    return Path(django_settings.VAR_DIR) / "hr-feeds" / str(source.pk) / "archive"


def ready(folder: Path) -> None:
    """Make the archive folder, so a file applied can be archived (else it would be read and applied again)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise sync.SourceError(f"The archive folder {folder} cannot be made: {error.strerror or error}.") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise sync.SourceError(f"The archive folder {folder} is not writable by Space.")


def failed_folder(source, settings: dict) -> Path:
    return Path(settings["failed"]) if settings["failed"] else archive_folder(source, settings) / "failed"


def dispose(source, settings: dict, fetched: locations.Fetched, *, applied: bool, now: float) -> Path:
    """Move (or write) the processed file to the archive, or to the failed folder; the path it now has."""
    moment = dt.datetime.fromtimestamp(now, tz=dt.UTC).astimezone(timezone.get_current_timezone())
    base = archive_folder(source, settings) if applied else failed_folder(source, settings)
    folder = base / f"{moment:%Y-%m-%d}"
    if not applied and fetched.path is None:
        # A download that fails again next run is the same file: kept once, not once a run.
        tag = hashlib.sha256(fetched.data).hexdigest()[:12]
        earlier = sorted(folder.glob(f"*-{tag}-{fetched.name}")) if folder.is_dir() else []
        if earlier:
            return earlier[0]
        name = f"{moment:%H%M%S}-{tag}-{fetched.name}"
    else:
        name = f"{moment:%H%M%S}-{fetched.name}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = unused(folder / name)
        if fetched.path is not None:
            shutil.move(fetched.path, target)
            fsync_directory(fetched.path.parent)
        else:
            partial = target.with_name(f".{target.name}.part")
            with open(partial, "wb") as out:
                out.write(fetched.data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)
        fsync_directory(folder)
    except OSError as error:
        raise sync.SourceError(f"{fetched.name} cannot be moved to {folder}: {error.strerror or error}.") from None
    return target


def unused(path: Path) -> Path:
    """``path``, or ``path`` with -2, -3… before its suffix when taken (two files of one name in one second)."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate


def describe(source) -> str:
    """Where the feed's file comes from, for the sources' list."""
    settings = source.settings or {}
    location = settings.get("location")
    if location == "folder":
        return f"folder {settings.get('path', '?')} ({settings.get('pattern', '*')})"
    if location == "https":
        return str(settings.get("url", "?"))
    if location == "sftp":
        return f"sftp://{settings.get('username', '?')}@{settings.get('host', '?')}:{settings.get('port', 22)}" + str(
            settings.get("path", "")
        )
    return "not set up"


def watches(source) -> bool:
    """A watched folder is looked at every tick (a dropped file is read within the minute); an HTTPS or SFTP
    address every ``sync_minutes``."""
    return (source.settings or {}).get("location") == "folder"
