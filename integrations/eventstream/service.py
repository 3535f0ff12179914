"""The event stream: audit events to a receiver's TCP or UDP port, one JSON object per line.

Two halves, joined by the outbox table ``StreamItem`` (docs/event-stream.md):

- :func:`enqueue`, inside the transaction that stores new events, writes one
  row per event for each active stream that wants it, in one bulk insert. It
  reads the streams' filters from a cache of a few seconds, so with no stream
  configured it costs no query at all most of the time.
- :class:`EventStreamService`, a long-lived asyncio service (one per site, under
  a lease in the production profile), sends each stream's pending rows in order:
  as a TCP client, or as UDP datagrams. A row is marked sent once its bytes were
  written and drained into the socket. TCP cannot tell what the receiver
  processed, so after a broken connection (or a restart of the service) the rows
  sent in the last ``RESEND_SECONDS`` are sent again: delivery is at least once,
  and receivers de-duplicate by ``key``.

Each stream has a task of its own and all I/O is non-blocking, with a bounded
write buffer and a drain timeout: a slow or vanished receiver delays no other
stream and nothing else on the event loop. Database work runs on one thread.
"""

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.db import connection
from django.utils import timezone

from core import net
from core.net import Backoff
from core.services import close_connection, run_orm
from integrations.eventstream.models import EventStream, StreamItem, StreamProtocol, stream_listeners

logger = logging.getLogger("space.eventstream")

STREAMS_CACHE_SECONDS = 2.0  # how long enqueue() trusts its list of active streams
RELOAD_SECONDS = 3.0  # how often the service re-reads the configured streams
POLL_SECONDS = 0.2  # how often an idle stream looks for new rows
BATCH_ROWS = 500  # below every database's limit on query parameters (SQL Server: 2100)
CONNECT_TIMEOUT_SECONDS = 5.0
DRAIN_TIMEOUT_SECONDS = 10.0  # a receiver that takes nothing for this long is dropped and connected again
CLOSE_TIMEOUT_SECONDS = 1.0
WRITE_BUFFER_BYTES = 256 * 1024  # per stream, in Space; the socket's send buffer is as large
# net.tune's keepalive and user timeout notice a dead receiver host or network well within this.
RESEND_SECONDS = 30.0
STABLE_SECONDS = 10.0  # a connection that lasted this long starts the backoff over
PURGE_EVERY_SECONDS = 60.0
ORPHANS_EVERY_SECONDS = 3600.0
KEEP_SENT_SECONDS = 3600.0
PURGE_CHUNK = 1000
MAX_DATAGRAM_BYTES = 65_507  # the most a UDP datagram over IPv4 carries


# --- enqueue: the outbox side, in the transaction that stores events ------------------------------


@dataclass(frozen=True, slots=True)
class StreamFilter:
    """What one active stream wants: empty sets mean everything."""

    pk: int
    kinds: frozenset[str] = frozenset()
    partitions: frozenset[int] = frozenset()

    def wants(self, payload: dict) -> bool:
        if self.kinds and payload.get("kind") not in self.kinds:
            return False
        return not self.partitions or payload.get("partition") in self.partitions


# (valid until, streams); replaced whole, never changed, so threads can share it without a lock.
_streams: tuple[float, tuple[StreamFilter, ...]] | None = None
_generation = 0


def forget_streams() -> None:
    """Read the streams again on the next enqueue (called when one is saved or deleted)."""
    global _streams, _generation
    _generation += 1
    _streams = None


# Saving or deleting a stream tells this module's cache (integrations.eventstream.models).
stream_listeners.append(forget_streams)


def active_streams() -> tuple[StreamFilter, ...]:
    """The active streams' filters, from a cache of ``STREAMS_CACHE_SECONDS``; one query when none is active."""
    global _streams
    cached = _streams
    now = time.monotonic()
    if cached is not None and now < cached[0]:
        return cached[1]
    generation = _generation
    streams = _load_filters()
    if generation == _generation:  # not forgotten while loading: what was read may already be old
        _streams = (now + STREAMS_CACHE_SECONDS, streams)
    return streams


def _load_filters() -> tuple[StreamFilter, ...]:
    rows = list(EventStream.objects.filter(active=True).values_list("pk", "kinds"))
    if not rows:
        return ()
    partitions = defaultdict(set)
    links = EventStream.partitions.through.objects.filter(eventstream_id__in=[pk for pk, _ in rows])
    for stream_id, partition_id in links.values_list("eventstream_id", "partition_id"):
        partitions[stream_id].add(partition_id)
    return tuple(
        StreamFilter(
            pk, frozenset(map(str, kinds)) if isinstance(kinds, list) else frozenset(), frozenset(partitions[pk])
        )
        for pk, kinds in rows
    )


def enqueue(payloads: list[dict]) -> None:
    """Outbox rows for new events (``accesscontrol.events.event_payload``); call inside their transaction."""
    if not payloads:
        return
    streams = active_streams()
    if not streams:
        return
    rows = [(stream.pk, payload) for payload in payloads for stream in streams if stream.wants(payload)]
    if rows:
        _insert(rows, timezone.now())


# The rows go to the database as one JSON array, taken apart there: one statement and one
# parameter for a whole batch. The ORM's bulk_create, with its per-row work and its
# thousands of parameters, would cost the device bridge's writer two to four times more.
# The array's order is kept, so ids follow the order of the events.
INSERT_FROM_JSON = {
    "postgresql": (
        "INSERT INTO {table} ({columns}) "
        "SELECT (item->>0)::bigint, item->>1, item->2, %s "
        "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS rows(item, n) ORDER BY n "
        "ON CONFLICT DO NOTHING"
    ),
    "sqlite": (
        "INSERT INTO {table} ({columns}) "
        "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), %s "
        "FROM json_each(%s) WHERE true ORDER BY key "  # WHERE: SQLite's upsert needs it after a SELECT
        "ON CONFLICT DO NOTHING"
    ),
}


def _insert(rows: list[tuple[int, dict]], now: dt.datetime) -> None:
    """Insert (stream id, payload) rows in one statement; an event stored twice keeps its first row."""
    template = INSERT_FROM_JSON.get(connection.vendor)
    if template is None:
        items = [StreamItem(stream_id=stream_id, key=p["key"], payload=p, created_at=now) for stream_id, p in rows]
        StreamItem.objects.bulk_create(items, ignore_conflicts=connection.features.supports_ignore_conflicts)
        return
    ops = connection.ops
    table = ops.quote_name(StreamItem._meta.db_table)
    columns = ", ".join(ops.quote_name(column) for column in ("stream_id", "key", "payload", "created_at"))
    document = json.dumps([(stream_id, payload["key"], payload) for stream_id, payload in rows])
    with connection.cursor() as cursor:
        cursor.execute(template.format(table=table, columns=columns), [ops.adapt_datetimefield_value(now), document])


# --- the outbox, as the service reads and updates it (on its database thread) ---------------------


@dataclass(frozen=True, slots=True)
class Target:
    """Where one stream sends: a change of any of these starts its connection over."""

    pk: int
    name: str = field(compare=False)  # renaming a stream does not reconnect it
    protocol: str
    host: str
    port: int

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.protocol}://{host}:{self.port}"


def load_targets() -> dict[int, Target]:
    rows = EventStream.objects.filter(active=True).values_list("pk", "name", "protocol", "host", "port")
    return {row[0]: Target(*row) for row in rows}


def encode(payload: dict) -> bytes:
    """One event on the wire: compact JSON, UTF-8, ending with a newline (JSON escapes any newline inside)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def pending(stream_id: int, limit: int = BATCH_ROWS) -> list[tuple[int, bytes]]:
    """The stream's next unsent rows, oldest first, encoded for the wire."""
    rows = (
        StreamItem.objects.filter(stream_id=stream_id, sent_at__isnull=True)
        .order_by("pk")
        .values_list("pk", "payload")[:limit]
    )
    return [(pk, encode(payload)) for pk, payload in rows]


def mark_sent(pks: list[int], now: dt.datetime) -> None:
    StreamItem.objects.filter(pk__in=pks).update(sent_at=now)


def resend_since(stream_id: int, since: dt.datetime) -> int:
    """Mark the rows sent at or after ``since`` unsent again; they go out before newer ones."""
    return StreamItem.objects.filter(stream_id=stream_id, sent_at__gte=since).update(sent_at=None)


def record_connected(stream_id: int, now: dt.datetime) -> None:
    EventStream.objects.filter(pk=stream_id).update(last_connected_at=now, last_error="")


def record_error(stream_id: int, error: str) -> None:
    EventStream.objects.filter(pk=stream_id).update(last_error=error[:1000])


def purge_sent(before: dt.datetime) -> int:
    """Delete up to ``PURGE_CHUNK`` rows sent before ``before`` from one stream; 0 when none is left."""
    for stream_id in EventStream.objects.order_by("pk").values_list("pk", flat=True):
        pks = list(
            StreamItem.objects.filter(stream_id=stream_id, sent_at__lt=before).values_list("pk", flat=True)[
                :PURGE_CHUNK
            ]
        )
        if pks:
            return StreamItem.objects.filter(pk__in=pks).delete()[0]
    return 0


def purge_orphans() -> int:
    """Delete up to ``PURGE_CHUNK`` rows of deleted streams (written by an enqueue that had not heard yet)."""
    streams = EventStream.objects.values("pk")
    pks = list(StreamItem.objects.exclude(stream_id__in=streams).values_list("pk", flat=True)[:PURGE_CHUNK])
    return StreamItem.objects.filter(pk__in=pks).delete()[0] if pks else 0


# --- connections: bytes to the receiver, never a decision ----------------------------------------


class ReceiverGone(ConnectionError):
    """The receiver closed the connection, reset it, or took nothing for too long."""


class TcpConnection:
    """A TCP client connection that notices at once when the receiver closes it (it never has anything to say)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, drain_timeout: float):
        self.reader, self.writer, self.drain_timeout = reader, writer, drain_timeout
        self.error: Exception | None = None
        self.closed = asyncio.Event()
        self._watch = asyncio.create_task(self._watch_for_close())

    @classmethod
    async def open(cls, host: str, port: int, drain_timeout: float = DRAIN_TIMEOUT_SECONDS) -> "TcpConnection":
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation that arrives as the
        # connection completes, and the sender would go on with a connection it was told to drop.
        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
            reader, writer = await asyncio.open_connection(host, port)
        net.tune(writer.get_extra_info("socket"), WRITE_BUFFER_BYTES)
        writer.transport.set_write_buffer_limits(high=WRITE_BUFFER_BYTES)
        return cls(reader, writer, drain_timeout)

    async def _watch_for_close(self) -> None:
        try:
            while await self.reader.read(65536):
                pass  # the protocol is one way: what a receiver sends is ignored
            self.error = ReceiverGone("the receiver closed the connection")
        except Exception as error:
            self.error = error
        self.closed.set()

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    async def send(self, lines: list[bytes]) -> None:
        """Write and drain; raises when the receiver went away, before or while it took them."""
        self.check()
        self.writer.write(b"".join(lines))
        try:
            await asyncio.wait_for(self.writer.drain(), self.drain_timeout)
        except TimeoutError:
            raise ReceiverGone(f"the receiver took nothing for {self.drain_timeout:g}s") from None
        self.check()

    async def wait(self, seconds: float) -> None:
        """Idle for up to ``seconds``; raises as soon as the receiver goes away."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), seconds)
        self.check()

    async def close(self) -> None:
        self._watch.cancel()
        self.writer.close()
        try:
            # Closing sends what is still buffered first; a receiver that takes nothing is not waited for.
            await asyncio.wait_for(self.writer.wait_closed(), CLOSE_TIMEOUT_SECONDS)
        except (TimeoutError, OSError):
            self.writer.transport.abort()
        await asyncio.gather(self._watch, return_exceptions=True)


class UdpConnection(asyncio.DatagramProtocol):
    """A connected UDP socket: one datagram per event. An ICMP error (port closed) counts as a broken connection."""

    def __init__(self):
        self.transport: asyncio.DatagramTransport | None = None
        self.drain_timeout = DRAIN_TIMEOUT_SECONDS
        self.error: Exception | None = None
        self.closed = asyncio.Event()

    @classmethod
    async def open(cls, host: str, port: int, drain_timeout: float = DRAIN_TIMEOUT_SECONDS) -> "UdpConnection":
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
            _, protocol = await loop.create_datagram_endpoint(cls, remote_addr=(host, port))
        protocol.drain_timeout = drain_timeout
        return protocol

    def connection_made(self, transport) -> None:
        self.transport = transport

    def error_received(self, exc: Exception) -> None:
        self.error = exc
        self.closed.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.error = self.error or exc or ReceiverGone("the socket was closed")
        self.closed.set()

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    async def send(self, lines: list[bytes]) -> None:
        self.check()
        for line in lines:
            if len(line) > MAX_DATAGRAM_BYTES:
                logger.error("Event stream: an event of %d bytes does not fit in a datagram; skipped", len(line))
                continue
            self.transport.sendto(line)
        # The kernel took what it could; the rest waits in the transport, which is bounded like TCP's.
        deadline = time.monotonic() + self.drain_timeout
        while self.transport.get_write_buffer_size() > WRITE_BUFFER_BYTES:
            if time.monotonic() > deadline:
                raise ReceiverGone("datagrams could not be sent in time")
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)  # let an ICMP error already received be reported
        self.check()

    async def wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), seconds)
        self.check()

    async def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


CONNECTIONS = {StreamProtocol.TCP: TcpConnection, StreamProtocol.UDP: UdpConnection}


# --- the service -------------------------------------------------------------------------------------


@dataclass
class StreamState:
    """What the service knows of one stream now (``EventStreamService.streams``), for tests and diagnostics."""

    target: Target
    connected: bool = False
    connections: int = 0
    failures: int = 0
    sent: int = 0
    resent: int = 0
    last_error: str = ""
    task: asyncio.Task | None = field(default=None, repr=False)


class EventStreamService:
    """Every active stream's sender: a :class:`core.services.Service`."""

    name = "event stream"

    def __init__(
        self,
        *,
        reload_seconds: float = RELOAD_SECONDS,
        poll_seconds: float = POLL_SECONDS,
        drain_timeout: float = DRAIN_TIMEOUT_SECONDS,
        resend_seconds: float = RESEND_SECONDS,
        backoff_first: float = net.BACKOFF_FIRST_SECONDS,
        backoff_max: float = net.BACKOFF_MAX_SECONDS,
    ):
        self.reload_seconds = reload_seconds
        self.poll_seconds = poll_seconds
        self.drain_timeout = drain_timeout
        self.resend = dt.timedelta(seconds=resend_seconds)
        self.backoff_first, self.backoff_max = backoff_first, backoff_max
        self.streams: dict[int, StreamState] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._supervisor: asyncio.Task | None = None
        self._stopping: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="eventstream-db")
        self._supervisor = asyncio.create_task(self._supervise())
        logger.info("Event stream service started")

    async def stop(self) -> None:
        tasks = [state.task for state in self.streams.values() if state.task] + list(self._stopping)
        if self._supervisor is not None:
            tasks.append(self._supervisor)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.streams.clear()
        self._stopping.clear()
        self._supervisor = None
        if self._executor is not None:
            executor, self._executor = self._executor, None
            executor.submit(close_connection)
            await asyncio.to_thread(executor.shutdown, True)

    async def db(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, run_orm, function, *args)

    # --- configuration and housekeeping ------------------------------------------------------

    async def _supervise(self) -> None:
        purge_at = orphans_at = time.monotonic()
        while True:
            try:
                self._apply(await self.db(load_targets))
                if time.monotonic() >= purge_at:
                    purge_at = time.monotonic() + PURGE_EVERY_SECONDS
                    # A chunk at a time, so the senders' reads and writes go in between.
                    while await self.db(purge_sent, timezone.now() - dt.timedelta(seconds=KEEP_SENT_SECONDS)):
                        pass
                if time.monotonic() >= orphans_at:
                    orphans_at = time.monotonic() + ORPHANS_EVERY_SECONDS
                    while await self.db(purge_orphans):
                        pass
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Event stream: reading the configuration failed")
            await asyncio.sleep(self.reload_seconds)

    def _apply(self, targets: dict[int, Target]) -> None:
        for pk, state in list(self.streams.items()):
            if targets.get(pk) != state.target:
                logger.info("Event stream %s (%s) stopped or changed", state.target.name, state.target.address)
                del self.streams[pk]
                self._retire(state.task)
        for pk, target in targets.items():
            if pk in self.streams:
                self.streams[pk].target = target  # the same address; maybe a new name
            else:
                state = StreamState(target)
                state.task = asyncio.create_task(self._run(state), name=f"event stream {target.name}")
                self.streams[pk] = state

    def _retire(self, task: asyncio.Task) -> None:
        task.cancel()
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    # --- one stream ------------------------------------------------------------------------

    async def _run(self, state: StreamState) -> None:
        """Connect, send, and on any failure back off and connect again; never returns until cancelled."""
        target = state.target
        backoff = Backoff(self.backoff_first, self.backoff_max)
        # A previous run may have ended (or died) with rows written but not yet read by the receiver.
        resend_from = timezone.now() - self.resend
        while True:
            conn, connected_at, failure = None, None, None
            try:
                if resend_from is not None:
                    state.resent += await self.db(resend_since, target.pk, resend_from)
                    resend_from = None
                conn = await CONNECTIONS[target.protocol].open(target.host, target.port, self.drain_timeout)
                connected_at = time.monotonic()
                state.connected, state.connections, state.last_error = True, state.connections + 1, ""
                await self.db(record_connected, target.pk, timezone.now())
                logger.info("Event stream %s connected to %s", target.name, target.address)
                await self._send_pending(state, conn)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failure = error
            finally:
                state.connected = False
                if conn is not None:
                    await conn.close()
            if connected_at is not None:
                resend_from = timezone.now() - self.resend
                if time.monotonic() - connected_at >= STABLE_SECONDS:
                    backoff.reset()
            await self._failed(state, failure, backoff.next())

    async def _send_pending(self, state: StreamState, conn) -> None:
        """Send rows as they come, until the connection fails (it returns only by raising)."""
        while True:
            rows = await self.db(pending, state.target.pk, BATCH_ROWS)
            if rows:
                await conn.send([line for _, line in rows])
                await self.db(mark_sent, [pk for pk, _ in rows], timezone.now())
                state.sent += len(rows)
                if len(rows) == BATCH_ROWS:
                    continue
            await conn.wait(self.poll_seconds)

    async def _failed(self, state: StreamState, error: Exception, delay: float) -> None:
        message = f"{state.target.address}: {type(error).__name__}: {error}"
        if message != state.last_error:  # a receiver down for hours logs once, not every minute
            logger.warning("Event stream %s: %s; trying again in %.1fs", state.target.name, message, delay)
        # The error before the count: a reader on another thread that sees the count sees its error too.
        state.last_error = message
        state.failures += 1
        try:
            await self.db(record_error, state.target.pk, message)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Event stream %s: recording the error failed", state.target.name)
        await asyncio.sleep(delay)
