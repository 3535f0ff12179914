"""The event stream service against real receivers on 127.0.0.1: a TCP server (asyncio.start_server) and UDP sockets.

The service runs on an event loop of its own thread, as under ``runspace`` or
in a Celery worker; its database thread shares the test's database (a SQLite
file, or PostgreSQL), which the test writes with ``eventstream.enqueue`` as the
device bridge does.
"""

import asyncio
import contextlib
import json
import socket
import time

import pytest
from django.db import transaction
from django.utils import timezone

from accesscontrol.events import event_payload, record
from accesscontrol.models import AuditEvent
from integrations.eventstream import service as eventstream
from integrations.eventstream.models import EventStream, StreamItem
from integrations.eventstream.service import EventStreamService
from tests.factories import make_partition, unique
from tests.integrations.running import LoopThread
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

# Short delays, so that reconnections and configuration changes happen within a test.
FAST = {"reload_seconds": 0.1, "poll_seconds": 0.05, "backoff_first": 0.05, "backoff_max": 0.4, "drain_timeout": 2.0}


def event(kind="access_granted", partition=None, detail=None) -> dict:
    """The payload of a new audit event, as accesscontrol.events builds it (not stored: only its outbox row is)."""
    audit = AuditEvent(
        at=timezone.now(),
        kind=kind,
        access_point_name=unique("Door"),
        cardholder_name="Zoë Ødegård",
        detail=detail or {},
    )
    return event_payload(audit, partition)


def events(count: int, **fields) -> list[dict]:
    return [event(**fields) for _ in range(count)]


def store(payloads: list[dict], batch: int = 500) -> None:
    """Outbox rows as the device bridge writes them: a transaction per batch of new events."""
    for start in range(0, len(payloads), batch):
        with transaction.atomic():
            eventstream.enqueue(payloads[start : start + batch])


def make_stream(port: int, protocol="tcp", **fields) -> EventStream:
    partitions = fields.pop("partitions", ())
    stream = EventStream.objects.create(name=unique("Stream"), protocol=protocol, host="127.0.0.1", port=port, **fields)
    stream.partitions.set(partitions)
    return stream


def keys(payloads: list[dict]) -> list[str]:
    return [payload["key"] for payload in payloads]


class Loop(LoopThread):
    """An event loop on a thread of its own: the service and the receivers run on it."""

    def soon(self, callback, *args):
        self.loop.call_soon_threadsafe(callback, *args)


class TcpReceiver:
    """A third-party machine's TCP server: records every complete line; can hang up early or stop reading."""

    def __init__(self, loop: Loop, port: int = 0, *, hang_up_after: int | None = None, reading: bool = True, **kw):
        self.loop = loop
        self.hang_up_after = hang_up_after  # on the first connection only
        self.lines: list[bytes] = []
        self.partial_lines = 0
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._reading = asyncio.Event()
        if reading:
            self._reading.set()
        self.port = loop.call(self._start(port, kw.get("receive_buffer")))

    async def _start(self, port: int, receive_buffer: int | None) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if receive_buffer:
            # Accepted connections inherit it: a small window, so that a receiver that stops reading is felt soon.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.bind(("127.0.0.1", port))
        self.server = await asyncio.start_server(self._serve, sock=sock)
        return sock.getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        first = self.connections == 1
        self._writers.add(writer)
        read = 0
        try:
            while True:
                await self._reading.wait()
                line = await reader.readline()
                if not line.endswith(b"\n"):
                    # A connection broken mid-line leaves a partial last line: a receiver drops it.
                    self.partial_lines += bool(line)
                    return
                self.lines.append(line)
                read += 1
                if first and self.hang_up_after and read >= self.hang_up_after:
                    return
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def start_reading(self) -> None:
        self.loop.soon(self._reading.set)

    def payloads(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]

    def keys(self) -> list[str]:
        return keys(self.payloads())

    def close(self) -> None:
        async def close():
            self.server.close()
            for writer in list(self._writers):
                writer.close()
            await self.server.wait_closed()

        self.loop.call(close())


class UdpReceiver:
    """A third-party machine's UDP socket, read in this thread."""

    def __init__(self, port: int = 0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.datagrams: list[bytes] = []

    def receive_until(self, condition, timeout: float = 30.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while not condition(self) and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                self.datagrams.append(self.sock.recv(65535))
        return self.datagrams

    def keys(self) -> set[str]:
        return {json.loads(datagram)["key"] for datagram in self.datagrams}

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def loop(transactional_db):
    running = Loop()
    yield running
    running.close()


@pytest.fixture
def receivers(loop):
    made = []

    def make(**options) -> TcpReceiver:
        receiver = TcpReceiver(loop, **options)
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def run_service(loop):
    services = []

    def start(**options) -> EventStreamService:
        service = EventStreamService(**{**FAST, **options})
        loop.call(service.start())
        services.append(service)
        return service

    yield start
    for service in services:
        loop.call(service.stop())


def sent_everything(stream: EventStream) -> bool:
    return not StreamItem.objects.filter(stream=stream, sent_at__isnull=True).exists()


# --- TCP ---------------------------------------------------------------------------------------


def test_events_arrive_in_order_as_one_compact_json_object_per_line(receivers, run_service):
    receiver = receivers()
    stream = make_stream(receiver.port)
    sent = events(1200)  # more than two of the service's batches

    store(sent[:700])
    run_service()
    store(sent[700:])

    assert wait_until(lambda: len(receiver.lines) >= len(sent))
    assert receiver.payloads() == sent
    for line in receiver.lines:
        assert line.count(b"\n") == 1 and line.endswith(b"\n")
        assert line == json.dumps(json.loads(line), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    assert "Zoë Ødegård".encode() in receiver.lines[0]
    assert wait_until(lambda: sent_everything(stream))
    assert len(receiver.lines) == len(sent)  # nothing went wrong: nothing was sent twice


def test_a_receiver_that_hangs_up_mid_stream_still_gets_every_event(receivers, run_service):
    receiver = receivers(hang_up_after=100)
    stream = make_stream(receiver.port)
    sent = events(2000)
    store(sent)

    service = run_service()

    assert wait_until(lambda: set(receiver.keys()) >= set(keys(sent)))
    assert len(set(receiver.keys())) == len(sent)
    assert receiver.connections >= 2
    assert service.streams[stream.pk].failures >= 1
    assert wait_until(lambda: sent_everything(stream))
    # What the first connection wrote after the hang-up went out again, before anything newer.
    first_again = receiver.keys().index(sent[100]["key"], 100)
    assert receiver.keys()[first_again : first_again + 10] == keys(sent[100:110])


def test_a_receiver_down_at_first_gets_the_events_once_it_is_up(receivers, run_service):
    port = free_port()
    stream = make_stream(port)
    sent = events(50)
    store(sent)

    service = run_service()
    assert wait_until(lambda: stream.pk in service.streams and service.streams[stream.pk].failures >= 3)
    stream.refresh_from_db()
    assert "ConnectionRefusedError" in stream.last_error
    assert stream.last_connected_at is None

    receiver = receivers(port=port)

    assert wait_until(lambda: set(receiver.keys()) == set(keys(sent)))
    assert receiver.keys() == keys(sent)
    stream.refresh_from_db()
    assert stream.last_error == ""
    assert stream.last_connected_at is not None


def test_a_slow_receiver_holds_up_neither_another_stream_nor_the_event_loop(loop, receivers, run_service):
    stuck = receivers(reading=False, receive_buffer=16 * 1024)
    quick = receivers()
    stuck_stream, quick_stream = make_stream(stuck.port), make_stream(quick.port)
    sent = events(3000, detail={"note": "x" * 1000})  # about 3.5 MB: more than every buffer on the way
    store(sent)
    lags = []

    async def watch_the_loop():
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - before - 0.01)

    watcher = asyncio.run_coroutine_threadsafe(watch_the_loop(), loop.loop)
    service = run_service(drain_timeout=1.0)

    assert wait_until(lambda: len(quick.lines) >= len(sent), timeout=20)
    assert quick.keys() == keys(sent)
    # The stuck receiver is dropped when it takes nothing for the drain timeout, and tried again.
    assert wait_until(lambda: service.streams[stuck_stream.pk].failures >= 1)
    assert "took nothing" in service.streams[stuck_stream.pk].last_error
    assert not sent_everything(stuck_stream)

    stuck.start_reading()

    assert wait_until(lambda: set(stuck.keys()) == set(keys(sent)))
    watcher.cancel()
    assert max(lags) < 0.5
    assert sent_everything(quick_stream)


def test_a_stream_receives_only_the_kinds_and_partitions_it_asks_for(receivers, run_service):
    east, west = make_partition("East"), make_partition("West")
    denials, in_east = receivers(), receivers()
    make_stream(denials.port, kinds=["access_denied"])
    make_stream(in_east.port, partitions=[east])
    granted_east = events(3, kind="access_granted", partition=east.pk)
    denied_west = events(2, kind="access_denied", partition=west.pk)
    denied_nowhere = events(1, kind="access_denied", partition=None)
    store(granted_east + denied_west + denied_nowhere)

    run_service()

    assert wait_until(lambda: len(denials.lines) == 3 and len(in_east.lines) == 3)
    time.sleep(0.3)  # and nothing more comes
    assert denials.keys() == keys(denied_west + denied_nowhere)
    assert in_east.keys() == keys(granted_east)


def test_a_recorded_audit_event_reaches_the_stream(receivers, run_service):
    receiver = receivers()
    make_stream(receiver.port)
    run_service()

    stored = record(at=timezone.now(), kind="remote_open", access_point_name="Main entrance")

    assert wait_until(lambda: receiver.lines)
    [payload] = receiver.payloads()
    assert payload["id"] == stored.pk
    assert payload["kind"] == "remote_open"


def test_a_changed_port_moves_the_stream_to_the_new_receiver(receivers, run_service):
    old, new = receivers(), receivers()
    stream = make_stream(old.port)
    before = events(5)
    store(before)
    run_service()
    assert wait_until(lambda: len(old.lines) == 5)

    stream.port = new.port
    stream.save()
    after = events(5)
    store(after)

    # The new connection first sends again what went out in the last seconds (at least once), then the rest.
    assert wait_until(lambda: set(new.keys()) >= set(keys(after)))
    assert new.keys()[-5:] == keys(after)
    assert old.keys()[:5] == keys(before)


def test_a_deactivated_stream_is_hung_up_and_gets_no_new_rows(receivers, run_service):
    receiver = receivers()
    stream = make_stream(receiver.port)
    service = run_service()
    assert wait_until(lambda: stream.pk in service.streams and service.streams[stream.pk].connected)

    stream.active = False
    stream.save()
    store(events(3))

    assert wait_until(lambda: stream.pk not in service.streams)
    assert not StreamItem.objects.filter(stream=stream).exists()
    assert receiver.lines == []


def test_a_restarted_service_sends_what_was_not_sent_and_again_the_last_seconds(loop, receivers, run_service):
    receiver = receivers()
    stream = make_stream(receiver.port)
    first = events(20)
    store(first)
    service = run_service()
    assert wait_until(lambda: len(receiver.lines) == 20 and sent_everything(stream))
    assert service.streams[stream.pk].resent == 0

    loop.call(service.stop())  # as a worker shutting down would
    later = events(10)
    store(later)
    restarted = run_service()

    assert wait_until(lambda: set(receiver.keys()) == set(keys(first + later)))
    # The rows sent just before the restart went out again, in order, then the new ones: at least once.
    assert restarted.streams[stream.pk].resent == 20
    assert receiver.keys() == keys(first + first + later)


# --- UDP ---------------------------------------------------------------------------------------


def test_udp_sends_one_datagram_per_event(run_service):
    receiver = UdpReceiver()
    try:
        stream = make_stream(receiver.port, protocol="udp")
        sent = events(300)
        store(sent)

        run_service()
        datagrams = receiver.receive_until(lambda r: len(r.datagrams) >= len(sent))
    finally:
        receiver.close()

    assert [json.loads(datagram) for datagram in datagrams] == sent
    assert all(datagram.endswith(b"\n") and datagram.count(b"\n") == 1 for datagram in datagrams)
    assert wait_until(lambda: sent_everything(stream))


def test_udp_to_a_closed_port_counts_as_broken_and_sends_again_once_it_is_open(run_service):
    port = free_port("udp")
    stream = make_stream(port, protocol="udp")
    sent = events(20)
    store(sent)

    service = run_service()
    # The host answers "port unreachable" (ICMP): the rows just sent are marked unsent again.
    assert wait_until(lambda: stream.pk in service.streams and service.streams[stream.pk].failures >= 2)
    # The error is written after the count goes up, and each new try clears it first: wait for it to be seen.
    assert wait_until(lambda: "ConnectionRefusedError" in EventStream.objects.get(pk=stream.pk).last_error)

    receiver = UdpReceiver(port)
    try:
        receiver.receive_until(lambda r: r.keys() == set(keys(sent)))
    finally:
        receiver.close()
    assert receiver.keys() == set(keys(sent))
