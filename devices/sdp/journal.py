"""The bridge's decision journal: an online decision's audit row, in a file before the device hears the decision.

The bridge answers an ``access`` at once, from the rules in memory, and stores
the decision's audit row with the writer's next batch, a few milliseconds
later. A bridge killed in between (SIGKILL, the out-of-memory killer, a worker
that dies) would lose the row of a decision a door already acted on; waiting
for the commit instead would tie every door to the database's speed and health.
So the row is first appended to a file of this bridge's own: one ``write()``,
which outlives the process (the kernel holds the data), though not a power cut.
The file is emptied each time every row in it is stored.

A bridge that starts takes over the files in the directory whose bridge died
(their lock is free) and stores the rows that were not stored yet
(``recorder.store_journaled_decisions``). Files live in ``VAR_DIR`` of the
machine: a bridge that comes back on another machine stores them when a bridge
next starts on this one.
"""

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import secrets
import socket
from pathlib import Path

from accesscontrol.models import AuditEvent

logger = logging.getLogger("space.bridge")

SUFFIX = ".decisions"
# A file holding this many rows is closed for new ones (and deleted once they are all stored): under a load
# that never lets the writer catch up completely, no file grows without end.
SEGMENT_ROWS = 10_000
FIELDS = ("kind", "reason", "access_point_id", "access_point_name", "cardholder_id", "key_uid", "device_id", "detail")


def row(event: AuditEvent) -> bytes:
    fields = {name: getattr(event, name) for name in FIELDS}
    fields["at"] = event.at.isoformat()
    return (json.dumps(fields, separators=(",", ":")) + "\n").encode()


def event(line: bytes) -> AuditEvent | None:
    """The audit event of one journal line; None for a line cut short (the process died writing it)."""
    try:
        fields = json.loads(line)
        fields["at"] = dt.datetime.fromisoformat(fields["at"])
        return AuditEvent(**{name: fields[name] for name in (*FIELDS, "at")})
    except (ValueError, KeyError, TypeError):
        return None


class _File:
    def __init__(self, directory: Path):
        self.path = directory / f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        # Held while this bridge lives; the kernel frees it when the process dies, however it dies.
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.rows = 0
        self.last = 0  # the journal's count of appended rows when this file took its last one

    def close(self, delete: bool) -> None:
        if delete:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self.fd)


class DecisionJournal:
    """Rows appended in the order the bridge queues them for its writer, which stores them in that order."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.files = [_File(self.directory)]
        self.appended = 0
        self.stored_count = 0

    @property
    def unstored(self) -> int:
        return self.appended - self.stored_count

    def append(self, audit: AuditEvent) -> bool:
        """Write the row; False when it could not be written (a full disk): the decision goes on without it."""
        try:
            current = self.files[-1]
            if current.rows >= SEGMENT_ROWS:
                current = _File(self.directory)
                self.files.append(current)
            os.write(current.fd, row(audit))
        except OSError as error:
            logger.warning("Device bridge: a decision could not be journaled (%s)", error)
            return False
        current.rows += 1
        self.appended += 1
        current.last = self.appended
        return True

    def stored(self, count: int) -> None:
        """The writer committed the next ``count`` rows appended."""
        if not count:
            return
        self.stored_count += count
        while len(self.files) > 1 and self.files[0].last <= self.stored_count:
            self.files.pop(0).close(delete=True)
        if self.unstored == 0 and self.files[-1].rows:
            current = self.files[-1]
            os.ftruncate(current.fd, 0)  # O_APPEND: the next row goes at the new end, the start
            current.rows = 0

    def close(self) -> None:
        """Close the files; they are deleted when every row is stored, else left for the next bridge."""
        everything = self.unstored == 0
        for file in self.files:
            file.close(delete=everything)
        self.files = []
        if not everything:
            logger.error(
                "Device bridge: %d decisions' audit rows left in %s for the next bridge", self.unstored, self.directory
            )


class Leftovers:
    """The files of bridges that died, locked by this process until ``done``: their rows, in order."""

    def __init__(self, directory: Path):
        self.taken: list[tuple[Path, int]] = []
        self.events: list[AuditEvent] = []
        directory = Path(directory)
        if not directory.is_dir():
            return
        try:
            self._take_over(directory)
        except BaseException:
            self.release()
            raise

    def _take_over(self, directory: Path) -> None:
        for path in sorted(directory.glob(f"*{SUFFIX}")):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # another bridge took it over meanwhile
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # its bridge is alive
                os.close(fd)
                continue
            self.taken.append((path, fd))
            with open(fd, "rb", closefd=False) as file:
                self.events.extend(e for e in map(event, file) if e is not None)

    def done(self) -> None:
        """The rows are stored: delete the files."""
        for path, fd in self.taken:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            os.close(fd)
        self.taken = []

    def release(self) -> None:
        """Storing them failed: leave the files for the next start."""
        for _, fd in self.taken:
            os.close(fd)
        self.taken = []
