"""The site's backups: the daily one, one asked for, their record, retention, and the two alarms.

:func:`back_up` makes a backup with the engine (core/backup), records it in a
:class:`~accesscontrol.models.Backup` row, prunes old files by the retention
settings, and on failure raises the ``backup_failed`` alarm: an audit event
through :func:`~accesscontrol.events.record`, so it reaches the monitor, the
webhooks and the event stream like a door forced open.

:func:`tick` runs every minute (runspace's ``backups`` service, or beat's
``accesscontrol.tasks.backup_tick``): it starts the daily backup once its time
(``SPACE_BACKUP_TIME``, the site's local time) has come, catching up after a
stop, and raises ``backup_overdue`` once per overdue episode when the newest
good backup is older than ``SPACE_BACKUP_MAX_AGE_HOURS``.
"""

import datetime as dt
import logging
import time
import zoneinfo
from pathlib import Path

from django.conf import settings
from django.db import connections, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Min, Sum
from django.utils import timezone

from accesscontrol import photofiles
from accesscontrol.choices import AuditKind
from accesscontrol.events import record
from accesscontrol.models import AuditEvent, Backup, BackupOutcome, BackupTrigger, SiteSettings
from core import backup as engine

logger = logging.getLogger("space.backups")

# A backup still "running" after this long lost its process (a restart, a kill): it failed.
INTERRUPTED_AFTER = dt.timedelta(hours=6)


def folder() -> Path:
    return Path(settings.SPACE_BACKUP_DIR)


def work_dir() -> Path:
    """Where the database is copied before it is packed: local disk, not the (maybe remote) backup folder."""
    return Path(settings.VAR_DIR) / "tmp"


def files() -> dict[str, Path]:
    """The folders backed up beside the database, by their names in the backup."""
    return {"photos": photofiles.root()}


def database() -> dict:
    return connections["default"].settings_dict


def site_zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def backup_key() -> str:
    """The configured backup key, refused when missing, short, or kept in the backup folder itself."""
    key = engine.check_key(settings.SPACE_BACKUP_KEY)
    key_file = settings.SPACE_BACKUP_KEY_PATH
    if key_file and folder().resolve() in Path(key_file).resolve().parents:
        raise engine.BackupError("The backup key is kept in the backup folder: keep it apart from the backups.")
    return key


def about() -> dict:
    site = SiteSettings.objects.filter(pk=1).values_list("name", flat=True).first() or "Space"
    return {"space_version": settings.SPACE_VERSION, "site": {"name": site, "time_zone": settings.TIME_ZONE}}


def describe(error: BaseException) -> str:
    """What went wrong, for the operator: the engine's words, or the OS's, or the error's type and text."""
    if isinstance(error, engine.BackupError):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return f"{type(error).__name__}: {error}"


# --- making one ----------------------------------------------------------------------------------------------


def back_up(trigger: str, *, operator=None, now: dt.datetime | None = None, verify: bool | None = None) -> Backup:
    """Make a backup now and (``SPACE_BACKUP_VERIFY``, or ``verify``) verify it as read back from the folder;
    its row, succeeded or failed (a failure is recorded and alarmed, not raised)."""
    now = now or timezone.now()
    verify = settings.SPACE_BACKUP_VERIFY if verify is None else verify
    row = Backup.objects.create(started_at=now, trigger=trigger, operator=operator, file_name=engine.file_name(now))
    started = time.monotonic()
    try:
        key = backup_key()
        # No photo file is removed from the database snapshot to the end of the folder's copy: every photo the
        # snapshot names is in the backup.
        with photofiles.deletions_held():
            made = engine.make(
                database(),
                folder(),
                key,
                work_dir=work_dir(),
                about=about(),
                now=now,
                name=row.file_name,
                folders=files(),
            )
    except Exception as error:
        logger.warning("Backup %s failed: %s", row.file_name, error, exc_info=not isinstance(error, engine.BackupError))
        return _failed(row, describe(error), seconds=time.monotonic() - started)
    if verify:
        try:
            engine.verify(made.path, key, database=database(), work_dir=work_dir())
        except Exception as error:
            logger.warning("Backup %s does not verify: %s", row.file_name, error)
            message = f"Made ({made.size} bytes) but it does not verify: {describe(error)}"
            return _failed(row, message, seconds=time.monotonic() - started, size=made.size)
    finished = timezone.now()
    Backup.objects.filter(pk=row.pk).update(
        outcome=BackupOutcome.OK,
        finished_at=finished,
        verified_at=finished if verify else None,
        size=made.size,
        seconds=round(time.monotonic() - started, 3),
        rows=sum(made.manifest["tables"].values()),
    )
    logger.info("Backup %s: %d bytes in %.1f s%s", row.file_name, made.size, made.seconds, ", verified" * verify)
    try:
        prune(now)
    except OSError as error:  # the backup stands; the next one prunes again
        logger.warning("Pruning old backups failed: %s", describe(error))
    row.refresh_from_db()
    return row


def _failed(row: Backup, message: str, *, seconds: float | None, size: int | None = None) -> Backup:
    finished = timezone.now()
    with transaction.atomic():
        Backup.objects.filter(pk=row.pk).update(
            outcome=BackupOutcome.FAILED,
            finished_at=finished,
            seconds=None if seconds is None else round(seconds, 3),
            size=size,
            error=message,
        )
        record(
            kind=AuditKind.BACKUP_FAILED,
            at=finished,
            detail={"backup": row.pk, "file": row.file_name, "trigger": row.trigger, "error": message[:500]},
        )
    row.refresh_from_db()
    return row


def backup_job(job, progress) -> dict:
    """The "Back up now" job of the backups page (accesscontrol.jobs)."""
    from accesscontrol.jobs import JobError

    row = back_up(BackupTrigger.OPERATOR, operator=job.operator)
    if row.outcome != BackupOutcome.OK:
        raise JobError(f"The backup failed: {row.error}")
    return {"message": f"{row.file_name}: {row.size} bytes in {row.seconds:.1f} s", "backup": row.pk}


# --- retention ----------------------------------------------------------------------------------------------


def prune(now: dt.datetime | None = None) -> list[str]:
    """Delete the backup files retention does not keep; their names."""
    now = now or timezone.now()
    files = engine.backup_files(folder())
    zone = site_zone()
    keep = engine.to_keep(
        {path: moment.astimezone(zone) for path, moment in files.items()},
        daily=settings.SPACE_BACKUP_KEEP_DAILY,
        weekly=settings.SPACE_BACKUP_KEEP_WEEKLY,
        monthly=settings.SPACE_BACKUP_KEEP_MONTHLY,
    )
    gone = sorted(path.name for path in set(files) - keep)
    for name in gone:
        (folder() / name).unlink(missing_ok=True)
    for partial in engine.stale_partials(folder(), now - INTERRUPTED_AFTER):
        partial.unlink(missing_ok=True)
    if gone:
        Backup.objects.filter(file_name__in=gone, pruned_at=None).update(pruned_at=now)
        logger.info("Retention deleted %d backups: %s", len(gone), ", ".join(gone))
    return gone


# --- schedule and alarms ------------------------------------------------------------------------------------


def site_since() -> dt.datetime:
    """When this site's database was made (its first migration): no backup is due, or overdue, before."""
    first = MigrationRecorder.Migration.objects.filter(app="accesscontrol").aggregate(first=Min("applied"))["first"]
    return first or timezone.now()


def due_instant(now: dt.datetime) -> dt.datetime:
    """The latest daily backup time (SPACE_BACKUP_TIME, local) at or before ``now``."""
    zone = site_zone()
    at = dt.time.fromisoformat(settings.SPACE_BACKUP_TIME)
    day = now.astimezone(zone).date()
    instant = dt.datetime.combine(day, at, tzinfo=zone)
    if instant > now:
        instant = dt.datetime.combine(day - dt.timedelta(days=1), at, tzinfo=zone)
    return instant


def next_instant(now: dt.datetime) -> dt.datetime:
    zone = site_zone()
    at = dt.time.fromisoformat(settings.SPACE_BACKUP_TIME)
    return dt.datetime.combine(due_instant(now).astimezone(zone).date() + dt.timedelta(days=1), at, tzinfo=zone)


def newest_good() -> Backup | None:
    return Backup.objects.filter(outcome=BackupOutcome.OK).order_by("-finished_at").first()


def fail_interrupted(now: dt.datetime) -> int:
    """Mark failed (and alarm) the backups still running long after they started: their process is gone."""
    stale = list(Backup.objects.filter(outcome=BackupOutcome.RUNNING, started_at__lt=now - INTERRUPTED_AFTER))
    for row in stale:
        _failed(row, "Interrupted: the process making it ended before it finished.", seconds=None)
    return len(stale)


def check_overdue(now: dt.datetime | None = None) -> AuditEvent | None:
    """Raise ``backup_overdue`` when the newest good backup is too old; once per episode (until a good one)."""
    now = now or timezone.now()
    newest = newest_good()
    since = newest.finished_at if newest else site_since()
    limit = dt.timedelta(hours=settings.SPACE_BACKUP_MAX_AGE_HOURS)
    if now - since <= limit:
        return None
    if AuditEvent.objects.filter(kind=AuditKind.BACKUP_OVERDUE, at__gte=since).exists():
        return None  # raised already in this episode
    return record(
        kind=AuditKind.BACKUP_OVERDUE,
        at=now,
        detail={
            "newest": newest.file_name if newest else None,
            "newest_at": since.isoformat() if newest else None,
            "age_hours": round((now - since).total_seconds() / 3600, 1),
            "max_age_hours": settings.SPACE_BACKUP_MAX_AGE_HOURS,
        },
    )


def tick(now: dt.datetime | None = None) -> str:
    """The minute's work: the daily backup when due, interrupted ones failed, the overdue alarm."""
    given = now
    now = now or timezone.now()
    done = []
    if fail_interrupted(now):
        done.append("interrupted backups failed")
    due = due_instant(now)
    if due > site_since() and not Backup.objects.filter(trigger=BackupTrigger.SCHEDULED, started_at__gte=due).exists():
        row = back_up(BackupTrigger.SCHEDULED, now=now)
        done.append(f"backup {row.file_name}: {row.outcome}")
    if check_overdue(given or timezone.now()) is not None:  # the clock moved on while a backup ran
        done.append("backup overdue")
    return "; ".join(done) or "nothing due"


def note_restored(path: Path, manifest: dict) -> None:
    """After a restore: the restored backup's own row (running when its snapshot was taken) is a good backup."""
    Backup.objects.filter(file_name=path.name, outcome=BackupOutcome.RUNNING).update(
        outcome=BackupOutcome.OK,
        finished_at=dt.datetime.fromisoformat(manifest["created_at"].replace("Z", "+00:00")),
        size=path.stat().st_size,
        rows=sum(manifest["tables"].values()),
    )


# --- for the page, /readyz and /metrics --------------------------------------------------------------------


def status(now: dt.datetime | None = None) -> dict:
    """The newest good backup's age, the last outcome, and whether the newest is overdue."""
    now = now or timezone.now()
    newest = newest_good()
    last = Backup.objects.exclude(outcome=BackupOutcome.RUNNING).order_by("-started_at").first()
    age = (now - newest.finished_at).total_seconds() if newest else None
    return {
        "newest": newest,
        "last": last,
        "age_seconds": age,
        "overdue": (now - (newest.finished_at if newest else site_since())).total_seconds()
        > settings.SPACE_BACKUP_MAX_AGE_HOURS * 3600,
        "kept_bytes": Backup.objects.filter(outcome=BackupOutcome.OK, pruned_at=None).aggregate(n=Sum("size"))["n"]
        or 0,
    }
