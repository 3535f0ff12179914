"""Audit retention: the daily purge that archives old audit records, then deletes them in small batches.

Three classes, each kept its own number of days (0: forever):

- ``access``: access and door events (``AuditEvent`` of every kind but the alarms),
  ``SPACE_AUDIT_KEEP_ACCESS_DAYS``;
- ``alarm``: the alarm events (``accesscontrol.choices.ALARM_KINDS``), ``SPACE_AUDIT_KEEP_ALARM_DAYS``;
- ``system``: the system auditor (``SystemAuditEntry``), ``SPACE_AUDIT_KEEP_SYSTEM_DAYS``, kept longest.

:func:`purge` walks each table in id order, a window of ``batch`` ids at a
time. The records older than their class's cut-off, of a few windows at once,
are written to the archive (accesscontrol/archive.py: one member per class and
month, fsynced and signed), and only then deleted, by id, a window at a time,
each in one short transaction of its own; after each the purge pauses so that
the device bridge's writer is never kept waiting for long (SQLite has one writer
at a time). It is the one path that deletes
audit records: the models refuse every other delete (``AppendOnlyModel``).

Crashes: a window archived and not deleted is found in the archive on the next
run (by id, checked against the row's time and kind) and deleted without being
written twice; a member written and not signed is cut off and written again.

Held back: an event still waiting in an outbox (a webhook delivery or an event
stream item not yet sent) stays until it has left. Its outbox row carries a copy
of the event and would be sent anyway; holding the event keeps the trail whole
for a receiver that looks the event up by id. The outbox lives in a higher layer
(integrations), which registers what it holds with :func:`register_hold`.

Runs one at a time: under an exclusive lock on ``<archive dir>/.purge.lock`` and,
on PostgreSQL, an advisory lock, so a second runner (the command while the
scheduler runs, another worker) finds it taken and does nothing.
"""

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from accesscontrol.actions import record_operator_action
from accesscontrol.archive import (
    ArchiveError,
    ArchiveFile,
    RawJSON,
    archive_key,
    encode,
    fingerprint,
    rfc3339,
    utc_text,
)
from accesscontrol.choices import ALARM_KINDS, AuditKind, Decision
from accesscontrol.models import AuditEvent, SystemAuditEntry

logger = logging.getLogger("space.retention")

ACCESS, ALARM, SYSTEM = "access", "alarm", "system"
CLASSES = (ACCESS, ALARM, SYSTEM)
BATCH = 5000  # ids per window: one DELETE transaction each
ARCHIVE_AT_ONCE = 4  # windows (with records to purge) archived together, one member per class and month
PAUSE_SECONDS = 0.01  # between windows at least: the live trail's writer takes its turn
# How long the purge rests after each window, as a share of the time it worked on it, by database. On
# PostgreSQL the database's share of a DELETE runs in other processes (the server backend, the WAL writer,
# autovacuum) beside the purge's own: unrested, the purge took more than one core of two and the decisions'
# p99 went from 6 to 51 ms (bench_backup's purge part); resting as long as it works halves that load. On SQLite the
# database's work is the purge thread's own, one core at most, and decisions kept a p99 of 11 ms unrested.
REST_SHARE = {"postgresql": 1.0}
# An event stored this recently is left for the next run: the outbox rows of a transaction still committing
# when the holds were read might not have been seen.
RECENT = dt.timedelta(minutes=5)
SQLITE_CACHE_KIB = 64 * 1024  # the purge connection's page cache while it runs (_large_page_cache)
# How many steps lower the purge's thread may run than its caller. 0 by default, as measured (bench_backup, purge):
# on SQLite a lower priority made decisions slower, not faster (the purge, preempted while it held the one
# write lock, kept the bridge's writer waiting), and the purge slower on a busy machine.
NICE = 0
PG_LOCK_KEY = 0x5AC3_A0D1  # pg_try_advisory_lock's key of the purge
AUDIT_ACTION = "audit_purged"


# --- the policy --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """Days each class is kept; 0 keeps it forever."""

    access_days: int
    alarm_days: int
    system_days: int

    @classmethod
    def from_settings(cls) -> "Policy":
        return cls(
            settings.SPACE_AUDIT_KEEP_ACCESS_DAYS,
            settings.SPACE_AUDIT_KEEP_ALARM_DAYS,
            settings.SPACE_AUDIT_KEEP_SYSTEM_DAYS,
        )

    def days(self, klass: str) -> int:
        return {ACCESS: self.access_days, ALARM: self.alarm_days, SYSTEM: self.system_days}[klass]

    def cutoff(self, klass: str, now: dt.datetime) -> dt.datetime | None:
        """Records of ``klass`` older than this go; None: the class is kept forever."""
        days = self.days(klass)
        return now - dt.timedelta(days=days) if days > 0 else None


def class_of(kind: str) -> str:
    return ALARM if kind in ALARM_KINDS else ACCESS


# --- what the outbox holds back ----------------------------------------------------------------------

_holds: dict[str, Callable[[], Iterable[int]]] = {}


def register_hold(name: str, event_ids: Callable[[], Iterable[int]]) -> None:
    """``event_ids()`` says which audit events must stay for now (their deliveries are still waiting)."""
    _holds[name] = event_ids


def unregister_hold(name: str) -> None:
    _holds.pop(name, None)


def held_event_ids() -> set[int]:
    held: set[int] = set()
    for event_ids in _holds.values():
        held.update(event_ids())
    return held


# --- the report --------------------------------------------------------------------------------------


@dataclass
class ClassReport:
    cutoff: str | None = None  # RFC 3339; None: kept forever
    archived: int = 0  # written to the archive by this run
    deleted: int = 0  # deleted from the database by this run (archived by it or by an interrupted one)
    held: int = 0  # old enough, kept: a delivery of theirs is still waiting
    conflicts: int = 0  # an archived event of the same id but another content: kept, see the log
    failed: int = 0  # kept: their archive file could not be appended to (see errors)
    files: set[str] = field(default_factory=set)

    def as_dict(self) -> dict:
        return {
            "cutoff": self.cutoff,
            "archived": self.archived,
            "deleted": self.deleted,
            "held": self.held,
            "conflicts": self.conflicts,
            "failed": self.failed,
            "files": sorted(self.files),
        }


@dataclass
class Report:
    dry_run: bool = False
    skipped: str = ""  # why nothing was done (another purge runs)
    classes: dict[str, ClassReport] = field(default_factory=lambda: {klass: ClassReport() for klass in CLASSES})
    archive_bytes: int = 0
    batches: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def deleted(self) -> int:
        return sum(report.deleted for report in self.classes.values())

    @property
    def archived(self) -> int:
        return sum(report.archived for report in self.classes.values())

    def as_dict(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "skipped": self.skipped,
            "classes": {klass: report.as_dict() for klass, report in self.classes.items()},
            "archive_bytes": self.archive_bytes,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
            "errors": self.errors,
        }

    def summary(self) -> str:
        if self.skipped:
            return f"skipped: {self.skipped}"
        verb = "would archive" if self.dry_run else "archived"
        parts = []
        for klass, report in self.classes.items():
            if report.cutoff is None:
                parts.append(f"{klass}: kept forever")
                continue
            text = (
                f"{klass}: {verb} {report.archived}, {'would delete' if self.dry_run else 'deleted'} {report.deleted}"
            )
            for name in ("held", "conflicts", "failed"):
                if getattr(report, name):
                    text += f", {getattr(report, name)} {name}"
            parts.append(text + f" (older than {report.cutoff})")
        return "; ".join(parts)


# --- the tables --------------------------------------------------------------------------------------


class _Names:
    """Names of the devices and operators a batch refers to, read once per run."""

    def __init__(self):
        self.devices: dict[int, str] = {}
        self.operators: dict[int, str] = {}

    def load(self, device_ids: set[int], operator_ids: set[int]) -> None:
        device_model = AuditEvent._meta.get_field("device").related_model
        if missing := device_ids - self.devices.keys():
            self.devices.update(dict.fromkeys(missing, ""))
            self.devices.update(device_model.objects.filter(pk__in=missing).values_list("pk", "name"))
        if missing := operator_ids - self.operators.keys():
            self.operators.update(dict.fromkeys(missing, ""))
            self.operators.update(get_user_model().objects.filter(pk__in=missing).values_list("pk", "username"))


EVENT_FIELDS = (
    "id",
    "at",
    "recorded_at",
    "kind",
    "reason",
    "access_point_id",
    "access_point_name",
    "cardholder_id",
    "cardholder_name",
    "key_uid",
    "device_id",
    "device_event_id",
    "operator_id",
    "detail",
)
SYSTEM_FIELDS = (
    "id",
    "at",
    "operator_id",
    "operator_name",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "via",
    "address",
    "detail",
)


@dataclass(frozen=True, slots=True)
class Archived:
    """One record as the archive gets it: its line, and what tells it from another of the same id."""

    id: int
    at: str  # archive.utc_text
    line: bytes
    fingerprint: tuple


_quote = json.encoder.encode_basestring  # a JSON string literal, non-ASCII kept (C, fast)
_KINDS = {kind: f'"kind":{_quote(kind)},"kind_label":{_quote(label)}' for kind, label in AuditKind.choices}
_REASONS = {reason: f'"reason":{_quote(reason)},"reason_label":{_quote(label)}' for reason, label in Decision.choices}
_EVENT_LINE = (
    '{{"id":{},"at":"{}","recorded_at":"{}",{},{},"access_point_id":{},"access_point_name":{},"cardholder_id":{},'
    '"cardholder_name":{},"key_uid":{},"device_id":{},"device_name":{},"device_event_id":{},"operator_id":{},'
    '"operator_name":{},"detail":{}}}\n'
)


def _number(value) -> str:
    return "null" if value is None else str(int(value))


def _json_text(text: str | None) -> str:
    """JSON as the database holds it, if it is one line; else (a row written by hand) re-encoded compact."""
    if text is None:
        return "{}"
    return text if "\n" not in text else json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))


def event_record(row: tuple, names: _Names) -> Archived:
    """An audit event as archived: every field, the names it refers to, and labels, so it reads alone.

    The line is put together by hand rather than by json.dumps of a dict: it is most of the purge's own work.
    """
    pk, at, recorded_at, kind, reason, point, point_name, holder, holder_name = row[:9]
    uid, device, device_event, operator, detail = row[9:]
    at, recorded_at = utc_text(at), utc_text(recorded_at)
    line = _EVENT_LINE.format(
        int(pk),
        at,
        recorded_at,
        _KINDS.get(kind) or f'"kind":{_quote(kind)},"kind_label":{_quote(kind)}',
        _REASONS.get(reason) or f'"reason":{_quote(reason)},"reason_label":{_quote(reason)}',
        _number(point),
        _quote(point_name),
        _number(holder),
        _quote(holder_name),
        _quote(uid),
        _number(device),
        _quote(names.devices.get(device, "") if device is not None else ""),
        _number(device_event),
        _number(operator),
        _quote(names.operators.get(operator, "") if operator is not None else ""),
        _json_text(detail),
    )
    return Archived(pk, at, line.encode(), (at, recorded_at, kind))


def system_record(row: tuple, names: _Names) -> Archived:
    record = dict(zip(SYSTEM_FIELDS, row, strict=True))
    record["at"] = utc_text(record["at"])
    record["detail"] = RawJSON(_json_text(record["detail"]))
    return Archived(record["id"], record["at"], encode(record), fingerprint(record))


@dataclass(frozen=True)
class _Table:
    model: type
    fields: tuple[str, ...]
    to_record: Callable[[tuple, _Names], Archived]
    times: tuple[str, ...] = ("at",)

    def select(self, cutoffs: dict[str, dt.datetime | None], recent_before: dt.datetime) -> tuple[str, list] | None:
        """The query of one window's records older than their class's cut-off (its two last parameters: the
        window's ids, from and below); None when every class here is kept forever.

        Written by hand to read raw rows: times as text and JSON as text, as the database holds them, without
        the ORM's conversions, which would cost more than the rest of the purge (archive.utc_text, RawJSON).
        """
        adapt = connection.ops.adapt_datetimefield_value
        if self.model is SystemAuditEntry:
            if not cutoffs[SYSTEM]:
                return None
            where, params = "at < %s", [adapt(cutoffs[SYSTEM])]
        else:
            alarms = sorted(ALARM_KINDS)
            marks = ", ".join(["%s"] * len(alarms))
            parts, params = [], []
            if cutoffs[ACCESS]:
                parts.append(f"(kind NOT IN ({marks}) AND at < %s)")
                params += [*alarms, adapt(cutoffs[ACCESS])]
            if cutoffs[ALARM]:
                parts.append(f"(kind IN ({marks}) AND at < %s)")
                params += [*alarms, adapt(cutoffs[ALARM])]
            if not parts:
                return None
            where = f"({' OR '.join(parts)}) AND recorded_at < %s"
            params.append(adapt(recent_before))
        columns = ", ".join(self.column(name) for name in self.fields)
        table = connection.ops.quote_name(self.model._meta.db_table)
        sql = f"SELECT {columns} FROM {table} WHERE {where} AND id >= %s AND id < %s ORDER BY id"  # noqa: S608
        return sql, params

    def column(self, name: str) -> str:
        quoted = connection.ops.quote_name(name)
        vendor = connection.vendor
        if name in self.times:
            if vendor == "sqlite":
                return f"CAST({quoted} AS TEXT)"  # no declared type: sqlite3 leaves it as Django wrote it
            if vendor == "postgresql":
                return f"""to_char({quoted} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
        if vendor == "postgresql" and name == "detail":
            return f"{quoted}::text"
        if vendor == "postgresql" and name == "address":
            return f"host({quoted})"
        return quoted

    def class_of(self, row: tuple) -> str:
        return SYSTEM if self.model is SystemAuditEntry else class_of(row[3])


TABLES = (
    _Table(AuditEvent, EVENT_FIELDS, event_record, ("at", "recorded_at")),
    _Table(SystemAuditEntry, SYSTEM_FIELDS, system_record),
)


# --- the purge ---------------------------------------------------------------------------------------


def purge(
    now: dt.datetime | None = None,
    *,
    policy: Policy | None = None,
    folder: Path | None = None,
    batch: int = BATCH,
    pause: float = PAUSE_SECONDS,
    dry_run: bool = False,
    via: str = "scheduler",
    nice: int = NICE,
    rest_share: float | None = None,
) -> Report:
    """Archive, then delete, the audit records older than the policy keeps them; one run at a time.

    ``dry_run`` reads and counts what would be archived and deleted, writes and deletes nothing.
    The run is recorded in the system auditor when it archived or deleted anything (or met a conflict).
    The work is done on a thread of its own (its own connection, closed after), ``nice`` steps lower in CPU
    priority (Linux); the call waits for it.
    """
    started = time.perf_counter()
    now = now or timezone.now()
    policy = policy or Policy.from_settings()
    folder = Path(folder or settings.SPACE_AUDIT_ARCHIVE_DIR)
    report = Report(dry_run=dry_run)
    cutoffs = {klass: policy.cutoff(klass, now) for klass in CLASSES}
    for klass, cutoff in cutoffs.items():
        report.classes[klass].cutoff = rfc3339(cutoff) if cutoff else None
    if all(cutoff is None for cutoff in cutoffs.values()):
        return report
    with _one_at_a_time(folder) as mine:
        if not mine:
            report.skipped = "another purge is running"
            return report
        rest = REST_SHARE.get(connection.vendor, 0.0) if rest_share is None else rest_share
        run = _Run(report, folder, archive_key(), cutoffs, now - RECENT, batch, pause, rest, dry_run)
        run.held = held_event_ids()
        _at_low_priority(run.all_tables, nice)
    report.seconds = time.perf_counter() - started
    if not dry_run and (report.deleted or report.errors or any(r.conflicts for r in report.classes.values())):
        _record(report, via)
    return report


class _Run:
    def __init__(self, report, folder, key, cutoffs, recent_before, batch, pause, rest_share, dry_run):
        self.report = report
        self.folder = folder
        self.key = key
        self.cutoffs = cutoffs
        self.recent_before = recent_before
        self.batch = max(1, batch)
        self.pause = pause
        self.rest_share = rest_share
        self.resumed = time.perf_counter()
        self.dry_run = dry_run
        self.held: set[int] = set()
        self.names = _Names()
        self.files: dict[tuple[str, int, int], ArchiveFile | None] = {}

    def all_tables(self) -> None:
        with _large_page_cache():
            for table in TABLES:
                self.table(table)

    def table(self, table: _Table) -> None:
        select = table.select(self.cutoffs, self.recent_before)
        if select is None:
            return
        bounds = table.model.objects.aggregate(low=Min("id"), high=Max("id"))
        if bounds["low"] is None:
            return
        sql, params = select
        # Windows of ids, not "the next N eligible rows": each query is a short range of the primary key
        # whatever the planner thinks of the filter, and the walk ends at the highest id seen at the start.
        # A few windows are archived at once (one member, two fsyncs per file for all of them), then deleted
        # window by window, each in a transaction of its own.
        windows: list[list[tuple]] = []
        for low in range(bounds["low"], bounds["high"] + 1, self.batch):
            with connection.cursor() as cursor:
                cursor.execute(sql, [*params, low, low + self.batch])
                rows = cursor.fetchall()
            if rows:
                windows.append(rows)
            if len(windows) == ARCHIVE_AT_ONCE:
                self.windows(table, windows)
                windows = []
        if windows:
            self.windows(table, windows)

    def windows(self, table: _Table, windows: list[list[tuple]]) -> None:
        is_event = table.model is AuditEvent
        groups: dict[tuple[str, int, int], list[Archived]] = {}
        for rows in windows:
            if is_event:
                self.names.load({r[10] for r in rows if r[10] is not None}, {r[12] for r in rows if r[12] is not None})
            for row in rows:
                klass = table.class_of(row)
                if is_event and row[0] in self.held:
                    self.report.classes[klass].held += 1
                    continue
                record = table.to_record(row, self.names)
                at = record.at  # YYYY-MM-DDT...Z
                groups.setdefault((klass, int(at[:4]), int(at[5:7])), []).append(record)
        doomed: set[int] = set()
        for (klass, year, month), records in groups.items():
            doomed.update(self.archive(klass, year, month, records))
        for rows in windows:
            ids = [row[0] for row in rows if row[0] in doomed]
            if ids and not self.dry_run:
                delete_archived(table.model, ids)
                self.rest()
            self.report.batches += 1

    def rest(self) -> None:
        """Pause after a window: at least ``pause``, or ``rest_share`` of the time worked since the last rest."""
        worked = time.perf_counter() - self.resumed
        if rest := max(self.pause, worked * self.rest_share):
            time.sleep(rest)
        self.resumed = time.perf_counter()

    def archive(self, klass: str, year: int, month: int, records: list[Archived]) -> list[int]:
        """Write what the file lacks; returns the ids now safely in the archive."""
        counts = self.report.classes[klass]
        archive = self.file(klass, year, month)
        if archive is None:
            counts.failed += len(records)
            return []
        new, done = [], []
        for record in records:
            known = archive.archived.get(record.id, False)
            if known is False:
                new.append(record)
            elif known is None or known == record.fingerprint:
                done.append(record.id)  # archived by an earlier, interrupted run
            else:
                counts.conflicts += 1
                logger.warning(
                    "Audit purge: %s %s has id %s, which %s holds for another record; it is kept",
                    klass,
                    record.at,
                    record.id,
                    archive.name,
                )
        ids = [record.id for record in new]
        if new:
            if not self.dry_run:
                self.report.archive_bytes += archive.append([record.line for record in new], ids)
            counts.archived += len(new)
            counts.files.add(archive.name)
        counts.deleted += len(new) + len(done)
        return ids + done

    def file(self, klass: str, year: int, month: int) -> ArchiveFile | None:
        name = (klass, year, month)
        if name not in self.files:
            try:
                self.files[name] = ArchiveFile(self.folder, klass, year, month, self.key).open(write=not self.dry_run)
            except (ArchiveError, OSError) as error:
                message = f"{klass} {year:04d}-{month:02d}: {error}"
                logger.error("Audit purge: events kept, their archive cannot be appended to: %s", message)
                self.report.errors.append(message)
                self.files[name] = None
        return self.files[name]


def delete_archived(model: type, ids: list[int]) -> None:
    """The one sanctioned delete of audit records: by id, in one short transaction, once they are archived.

    Raw SQL on purpose: the models' managers refuse deletes, so no other code path deletes by accident.
    """
    table = connection.ops.quote_name(model._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"DELETE FROM {table} WHERE id = ANY(%s)", [ids])  # noqa: S608 (a model's table name)
            return
        for start in range(0, len(ids), 10_000):
            chunk = ids[start : start + 10_000]
            cursor.execute(f"DELETE FROM {table} WHERE id IN ({', '.join(['%s'] * len(chunk))})", chunk)  # noqa: S608


def _at_low_priority(work: Callable[[], None], nice: int) -> None:
    """``work()`` on a new thread whose CPU priority is ``nice`` steps lower (Linux: the thread alone), with a
    database connection of its own, closed after; its exception is raised here."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            if nice > 0 and sys.platform == "linux":
                os.setpriority(
                    os.PRIO_PROCESS,
                    threading.get_native_id(),
                    os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) + nice,
                )
            work()
        except BaseException as error:
            failed.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run, name="audit-purge")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


@contextlib.contextmanager
def _large_page_cache() -> Iterator[None]:
    """SQLite: a page cache for this connection large enough to hold the indexes a DELETE walks.

    Each deleted row leaves every index of the audit table, two of them (cardholder, key UID) at random
    places; with SQLite's default 2 MiB cache each such page is read again from the operating system per
    batch, which costs the purge more than the deleting itself. Put back afterwards, freeing the memory.
    """
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        before = cursor.fetchone()[0]
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA cache_size = {int(before)}")


@contextlib.contextmanager
def _one_at_a_time(folder: Path) -> Iterator[bool]:
    """True while this process holds the purge's locks; False when another runner has them."""
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(folder / ".purge.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        with _database_lock() as mine:
            yield mine
    finally:
        os.close(descriptor)  # releases the flock


@contextlib.contextmanager
def _database_lock() -> Iterator[bool]:
    """On PostgreSQL, a session advisory lock: runners on other machines (with other archive folders) wait."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [PG_LOCK_KEY])
        mine = cursor.fetchone()[0]
    try:
        yield mine
    finally:
        if mine:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [PG_LOCK_KEY])


def _record(report: Report, via: str) -> None:
    record_operator_action(None, AUDIT_ACTION, via=via, detail=report.as_dict())
