"""Audit archive files: gzip'ed JSON lines, one file per class and month, signed under the master key.

``audit-<class>-<YYYY>-<MM>.jsonl.gz`` holds the archived events of one class
(access, alarm, system) whose time falls in one month (UTC). It is a series of
gzip members (RFC 1952), one per purge batch that archived events of it, so
``zcat`` reads it whole: UTF-8 JSON objects, one per line, each event with every
field and the names it refers to. Ids ascend within a member and are unique in
the file. Beside it, ``<file>.sig`` holds a line per append, the newest last:
how many bytes and events are signed, and their HMAC-SHA256 under
``vault.derive("audit-archive")`` (docs/audit-retention.md has the format to the byte).

Appending is crash-safe: the new member is written and fsynced past the signed
end, then its signature line is appended and fsynced. Bytes after the signed end
are a torn append from a crash: the next append cuts them off, and the events in
them, still in the database, are archived again; a signature line without its
newline is torn too, and cut off the same way.
"""

import datetime as dt
import gzip
import hashlib
import hmac
import json
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core import vault
from core.files import fsync_directory

FORMAT = "space-audit-archive/1"
PURPOSE = "audit-archive"
CLASSES = ("access", "alarm", "system")
NAME = re.compile(r"^audit-(access|alarm|system)-(\d{4})-(\d{2})\.jsonl\.gz$")
SIGNATURE_SUFFIX = ".sig"
# zlib level 6 costs several times level 1 for a few per cent less: the purge must outrun the live trail.
COMPRESS_LEVEL = 1


class ArchiveError(Exception):
    """An archive file that is not what its signature says: changed, cut short, another key, not an archive."""


def file_name(klass: str, year: int, month: int) -> str:
    return f"audit-{klass}-{year:04d}-{month:02d}.jsonl.gz"


def signature_path(path: Path) -> Path:
    return path.with_name(path.name + SIGNATURE_SUFFIX)


def archive_key() -> bytes:
    return vault.derive(PURPOSE)


def rfc3339(moment: dt.datetime) -> str:
    """Always UTC, always microseconds: ``2026-01-31T23:59:58.000000Z``."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_text(value) -> str:
    """A database's datetime as :func:`rfc3339` writes it, fast: SQLite gives Django's naive UTC text, others
    an aware datetime."""
    if isinstance(value, str):
        if len(value) == 27 and value[-1] == "Z":  # formatted by the database already (PostgreSQL)
            return value
        if len(value) == 19:  # "YYYY-MM-DD HH:MM:SS"
            return f"{value[:10]}T{value[11:]}.000000Z"
        if len(value) == 26 and value[19] == ".":
            return f"{value[:10]}T{value[11:]}Z"
        value = dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
    if value.utcoffset():
        value = value.astimezone(dt.UTC)
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


class RawJSON(str):
    """JSON text as the database holds it, written into an archived line as it is (no decoding, no encoding)."""


def signed_trailer(name: str, length: int, events: int) -> bytes:
    """What the HMAC covers after the file's bytes: the file's name, signed length and event count."""
    return f"{FORMAT} {name} {length} {events}\n".encode()


def _mac(key: bytes, data: bytes = b"") -> "hmac.HMAC":
    return hmac.new(key, data, hashlib.sha256)


@dataclass
class Signature:
    file: str
    bytes: int
    events: int
    hmac_sha256: str
    torn: int = 0  # bytes of a line a crash cut short after the newest signature

    @classmethod
    def read(cls, path: Path) -> "Signature":
        """The newest signature in ``path``, which holds one per line, each appended after the one before."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArchiveError(f"{path.name} is missing: the archive cannot be checked without its signature") from None
        complete = data[: data.rfind(b"\n") + 1]
        if not complete:
            raise ArchiveError(f"{path.name} holds no signature")
        try:
            line = json.loads(complete.splitlines()[-1])
            if line.get("format") != FORMAT:
                raise ValueError(f"format {line.get('format')!r}")
            signature = cls(str(line["file"]), int(line["bytes"]), int(line["events"]), str(line["hmac_sha256"]))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ArchiveError(f"{path.name} is not an archive signature ({error})") from None
        if signature.bytes < 0 or signature.events < 0:
            raise ArchiveError(f"{path.name} is not an archive signature (negative counts)")
        signature.torn = len(data) - len(complete)
        return signature

    def append_to(self, path: Path) -> None:
        """Add this signature as the file's newest line, durably; a line torn by a crash before is cut off first.

        Appending (one fsync) rather than replacing (write, fsync, rename, fsync the folder): a crash leaves
        the line before intact, and a torn line is never taken for a signature (it lacks its newline).
        """
        line = json.dumps(
            {
                "format": FORMAT,
                "file": self.file,
                "bytes": self.bytes,
                "events": self.events,
                "hmac_sha256": self.hmac_sha256,
            },
            separators=(",", ":"),
        )
        new = not path.exists()
        with path.open("ab") as out:
            if self.torn:
                out.truncate(out.tell() - self.torn)
            out.write(line.encode() + b"\n")
            out.flush()
            os.fsync(out.fileno())
        if new:
            fsync_directory(path.parent)


def members(data: bytes) -> Iterator[bytes]:
    """The decompressed members of a gzip file, in order; ArchiveError when one is damaged or cut short."""
    while data:
        inflater = zlib.decompressobj(wbits=31)
        try:
            chunk = inflater.decompress(data)
        except zlib.error as error:
            raise ArchiveError(f"a gzip member is damaged ({error})") from None
        if not inflater.eof:
            raise ArchiveError("the last gzip member is cut short")
        yield chunk
        data = inflater.unused_data


def fingerprint(record: dict) -> tuple:
    """What tells one archived event from another that later took the same id (a database restored from backup)."""
    return record.get("at"), record.get("recorded_at"), record.get("kind") or record.get("action")


def encode(record: dict) -> bytes:
    """One line: compact JSON, UTF-8. A :class:`RawJSON` ``detail`` goes in as it is, as the last field."""
    detail = record.get("detail")
    if not isinstance(detail, RawJSON) or "\n" in detail:
        if isinstance(detail, RawJSON):
            record = {**record, "detail": json.loads(detail)}
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    del record["detail"]  # the caller's dict, put back at once: cheaper than a copy without it
    try:
        head = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    finally:
        record["detail"] = detail
    return f'{head[:-1]},"detail":{detail}}}\n'.encode()


class ArchiveFile:
    """One class's file for one month, opened by the purge (which holds the purge lock: one writer at a time).

    ``archived`` maps each event id in the file to its :func:`fingerprint`, so
    that a purge run after a crash between archiving and deleting finds the
    events it archived already and deletes them without writing them twice.
    """

    def __init__(self, folder: Path, klass: str, year: int, month: int, key: bytes):
        self.name = file_name(klass, year, month)
        self.path = folder / self.name
        self.signature_path = signature_path(self.path)
        self.key = key
        self.length = 0
        self.events = 0
        self.archived: dict[int, tuple] = {}
        self._mac = _mac(key)
        self.torn_signature = 0

    def open(self, *, write: bool) -> "ArchiveFile":
        """Read and check what is signed; with ``write``, cut off a torn append and sign a new file as empty."""
        if not self.signature_path.exists():
            if self.path.exists():
                raise ArchiveError(f"{self.name} has no signature ({self.signature_path.name}): it is not appended to")
            if write:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._sign()  # first the signature of the empty file, so the file never exists unsigned
            return self
        signature = Signature.read(self.signature_path)
        self.torn_signature = signature.torn
        data = self.path.read_bytes() if self.path.exists() else b""
        self._check(signature, data)
        if write and len(data) > signature.bytes:
            with self.path.open("r+b") as out:
                out.truncate(signature.bytes)
                os.fsync(out.fileno())
        self.length, self.events = signature.bytes, signature.events
        self._mac.update(data[: signature.bytes])
        for record in records(data[: signature.bytes]):
            self.archived[record["id"]] = fingerprint(record)
        return self

    def _check(self, signature: Signature, data: bytes) -> None:
        if signature.file != self.name:
            raise ArchiveError(f"{self.signature_path.name} signs {signature.file!r}, not {self.name!r}")
        if len(data) < signature.bytes:
            raise ArchiveError(f"{self.name} is cut short: {len(data)} bytes of the {signature.bytes} signed")
        expected = _mac(
            self.key, data[: signature.bytes] + signed_trailer(self.name, signature.bytes, signature.events)
        )
        if not hmac.compare_digest(expected.hexdigest(), signature.hmac_sha256):
            raise ArchiveError(
                f"{self.name}: the signature does not match (the file was changed, or another master key)"
            )

    def append(self, lines: list[bytes], ids: list[int]) -> int:
        """Add one gzip member of ``lines`` (the events ``ids``, ascending), durably; returns its size in bytes."""
        member = gzip.compress(b"".join(lines), compresslevel=COMPRESS_LEVEL, mtime=0)
        with self.path.open("r+b" if self.path.exists() else "wb") as out:
            out.seek(self.length)
            out.write(member)
            out.truncate()
            out.flush()
            os.fsync(out.fileno())
        if self.length == 0:
            fsync_directory(self.path.parent)  # the new file's name is durable too
        self._mac.update(member)
        self.length += len(member)
        self.events += len(lines)
        self._sign()
        self.archived.update(dict.fromkeys(ids))
        return len(member)

    def _sign(self) -> None:
        mac = self._mac.copy()
        mac.update(signed_trailer(self.name, self.length, self.events))
        Signature(self.name, self.length, self.events, mac.hexdigest(), self.torn_signature).append_to(
            self.signature_path
        )
        self.torn_signature = 0


def records(data: bytes) -> Iterator[dict]:
    for chunk in members(data):
        for line in chunk.splitlines():
            yield json.loads(line)


# --- verifying -----------------------------------------------------------------------------------------


@dataclass
class Summary:
    name: str
    events: int = 0
    members: int = 0
    bytes: int = 0
    first_id: int | None = None
    last_id: int | None = None
    earliest: str | None = None
    latest: str | None = None
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if not self.events:
            return f"{self.name}: signed, no events"
        return (
            f"{self.name}: {self.events} events in {self.members} members ({self.bytes} bytes), "
            f"ids {self.first_id}..{self.last_id}, {self.earliest} to {self.latest}"
        )


def verify(path: Path, key: bytes | None = None) -> Summary:
    """Check an archive file against its signature and its format; raises ArchiveError on the first failure."""
    path = Path(path)
    match = NAME.match(path.name)
    if match is None:
        raise ArchiveError(f"{path.name} is not named like an archive (audit-<class>-<YYYY>-<MM>.jsonl.gz)")
    year, month = int(match[2]), int(match[3])
    if not 1 <= month <= 12:
        raise ArchiveError(f"{path.name}: there is no month {month}")
    signature = Signature.read(signature_path(path))
    if not path.exists():
        raise ArchiveError(f"{path.name} is missing (its signature is there)")
    data = path.read_bytes()
    archive = ArchiveFile(path.parent, match[1], year, month, key or archive_key())
    archive._check(signature, data)
    if signature.torn:
        raise ArchiveError(f"{signature_path(path).name} ends in a line cut short (a purge was interrupted)")
    if len(data) > signature.bytes:
        raise ArchiveError(
            f"{path.name} has {len(data) - signature.bytes} bytes past its signed end "
            "(a purge was interrupted; its next run removes them)"
        )
    start = dt.datetime(year, month, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=dt.UTC)
    summary = Summary(path.name, bytes=len(data))
    seen: set[int] = set()
    for number, chunk in enumerate(members(data), start=1):
        summary.members = number
        previous = None
        for line in chunk.splitlines():
            summary.events += 1
            where = f"{path.name}, event {summary.events} (member {number})"
            try:
                record = json.loads(line)
                event_id, at = record["id"], record["at"]
                moment = dt.datetime.fromisoformat(at)
            except (ValueError, KeyError, TypeError) as error:
                raise ArchiveError(f"{where}: not an archived event ({error})") from None
            if not isinstance(event_id, int) or isinstance(event_id, bool):
                raise ArchiveError(f"{where}: its id {event_id!r} is not a number")
            if event_id in seen:
                raise ArchiveError(f"{where}: id {event_id} is in the file twice")
            if previous is not None and event_id < previous:
                raise ArchiveError(f"{where}: id {event_id} comes after {previous} in one member")
            if not start <= moment < end:
                raise ArchiveError(f"{where}: its time {at} is not in {year:04d}-{month:02d}")
            seen.add(event_id)
            previous = event_id
            summary.first_id = event_id if summary.first_id is None else min(summary.first_id, event_id)
            summary.last_id = event_id if summary.last_id is None else max(summary.last_id, event_id)
            summary.earliest = at if summary.earliest is None else min(summary.earliest, at)
            summary.latest = at if summary.latest is None else max(summary.latest, at)
    if summary.events != signature.events:
        raise ArchiveError(f"{path.name} holds {summary.events} events; its signature says {signature.events}")
    return summary
