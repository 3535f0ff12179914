"""The FIAS connector: Space as the TCP client of the PMS's FIAS interface (docs/fias-in-space.md).

One connection, kept up permanently: connected again with a jittered backoff
whenever it drops (a record cut off by the drop is discarded), or when the PMS
ends the link (LE). On the PMS's LS, Space describes itself (LD, one LR per
record type it takes, LA); it sends LA whenever it has sent nothing for
``keepalive_seconds`` so no firewall cuts the link (FIAS: 105 s of silence).

Requests (KR, KD, KM, KZ, GI, GO, GC) are done on the service's threads
(``integrations.pms.fias_requests``) in lanes: requests naming the same room or
the same encoder are done one after the other, in the order they came; others
go on side by side, so two desks' encoders write at once. The connection keeps
reading, answering ENQ and sending keep-alives while an encoder takes its time.
Link bytes: ENQ is answered ACK; NAK makes Space send its last record again,
at most ``NAK_RESENDS`` times. A refused record (wrong LRC, forbidden bytes, too
long, not a record) is answered NAK; unknown record types are ignored. Every drop
is counted in :attr:`FiasService.counters`.
"""

import asyncio
import contextlib
import datetime as dt
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from django.conf import settings
from django.utils import timezone

from core import net
from core.net import Backoff
from core.services import close_connection, run_orm
from hotel import actions as hotel
from integrations import metrics
from integrations.pms import fias, fias_requests

logger = logging.getLogger("space.fias")

VERSION = "1.0"
FAMILY = "DL"  # door locks: the key systems' interface family
KEEPALIVE_SECONDS = 60.0  # well within the 105 s a firewall may allow a silent connection
LRC_WAIT_SECONDS = 0.05  # until the peer's LRC habit is known: how long a record waits for the byte after its ETX
NAK_RESENDS = 3
CONNECT_TIMEOUT_SECONDS = 5.0
DRAIN_TIMEOUT_SECONDS = 10.0  # a PMS that takes nothing for this long is dropped and connected again
STABLE_SECONDS = 10.0  # a connection that lasted this long starts the backoff over
QUEUE_MAX = 1000  # requests waiting; past this a key request is answered BY (busy)
# Fields that put a request in a lane: requests sharing a room or an encoder are done in order, one at a time.
LANE_FIELDS = (("room", "RN"), ("room", "RO"), ("encoder", "KC"))
READ_BYTES = 65536
THREADS = 8  # requests of different lanes at once
COUNTERS = (
    "records_in",
    "records_out",
    "lrc_errors",
    "forbidden_bytes",
    "oversized",
    "malformed",
    "garbage_bytes",
    "unknown_records",
    "reconnects",
    "naks_sent",
    "naks_received",
    "refused",
    "busy",
    "partial_records",
)


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"a FIAS address is host:port, not {address!r}")
    return host.strip("[]"), int(port)


class FiasService:
    """The long-lived FIAS client; ``address`` defaults to the setting ``SPACE_FIAS_ADDRESS``."""

    name = "fias"

    def __init__(
        self,
        address: str | None = None,
        *,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
        backoff_first: float = 0.5,
        backoff_max: float = 30.0,
        check_out_time: dt.time | None = None,
    ):
        self.host, self.port = parse_address(address or settings.SPACE_FIAS_ADDRESS)
        self.keepalive_seconds = keepalive_seconds
        self.backoff = Backoff(backoff_first, backoff_max)
        self.check_out_time = check_out_time or hotel.check_out_time()
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.connected = asyncio.Event()
        self.linked = asyncio.Event()  # the link description was sent after an LS
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._connections = 0

    # --- start and stop -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(THREADS, thread_name_prefix="fias")
        self._task = asyncio.create_task(self._run(), name="fias")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._executor is not None:
            executor, self._executor = self._executor, None
            loop = asyncio.get_running_loop()
            # Close the threads' database connections, then let them go without waiting for a stuck encoder.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(loop.run_in_executor(executor, close_connection), 2)
            executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation that arrives as the
                # connection completes, and stop() then waited for a link that kept running (seen once in CI).
                async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                    reader, writer = await asyncio.open_connection(self.host, self.port)
            except (OSError, TimeoutError) as exc:
                logger.warning("FIAS: cannot connect to %s:%s: %s", self.host, self.port, exc)
            else:
                # Keepalive probes and a user timeout: a dead PMS host is noticed in seconds, not a quarter of an hour.
                net.tune(writer.get_extra_info("socket"))
                self._connections += 1
                if self._connections > 1:
                    self.counters["reconnects"] += 1
                logger.info("FIAS: connected to %s:%s", self.host, self.port)
                link = _Link(self, reader, writer)
                metrics.FIAS_LINKS.inc()
                try:
                    await link.run()
                except Exception:  # a fault of Space's own: the link is made again, the connector keeps running
                    logger.exception("FIAS: the link failed")
                finally:
                    metrics.FIAS_LINKS.dec()
                    self.connected.clear()
                    self.linked.clear()
                    await link.close()
                logger.info("FIAS: link to %s:%s ended", self.host, self.port)
            if time.monotonic() - started > STABLE_SECONDS:
                self.backoff.reset()
            await asyncio.sleep(self.backoff.next())

    # --- on the threads -----------------------------------------------------------------------------

    async def handle(self, record: fias.Record) -> tuple[fias.Record | None, str]:
        loop = asyncio.get_running_loop()
        call = partial(fias_requests.handle, record, self.check_out_time)
        return await loop.run_in_executor(self._executor, run_orm, call)


def link_description() -> list[fias.Record]:
    """LD, one LR per record type taken with the fields read, LA."""
    now = timezone.localtime()
    date, clock = fias.format_date(now), fias.format_time(now)
    records = [fias.Record.make("LD", ("DA", date), ("TI", clock), ("V#", VERSION), ("IF", FAMILY))]
    for record_type, field_ids in fias_requests.FIELDS_READ.items():
        records.append(fias.Record.make("LR", ("RI", record_type), ("FL", "".join(field_ids))))
    records.append(alive())
    return records


def alive() -> fias.Record:
    now = timezone.localtime()
    return fias.Record.make("LA", ("DA", fias.format_date(now)), ("TI", fias.format_time(now)))


class _Link:
    """One connection: reading, the request queue, the keep-alive."""

    def __init__(self, service: FiasService, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.service = service
        self.counters = service.counters
        self.reader, self.writer = reader, writer
        self.decoder = fias.StreamDecoder()
        self.pending = 0  # requests taken and not yet answered
        self.lanes: dict[str, asyncio.Future] = {}  # each lane's newest request: done when it is answered
        self.requests: set[asyncio.Task] = set()
        self.last_sent = time.monotonic()
        self.last_record = b""
        self.resends = 0
        self.ended = False

    async def run(self) -> None:
        self.service.connected.set()
        tasks = [
            asyncio.create_task(self._read(), name="fias-read"),
            asyncio.create_task(self._keep_alive(), name="fias-keepalive"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    exc = task.exception()
                    logger.warning("FIAS: link dropped: %r", exc)
        finally:
            for task in [*tasks, *self.requests]:
                task.cancel()
            await asyncio.gather(*tasks, *self.requests, return_exceptions=True)
            if self.decoder.partial:
                self.counters["partial_records"] += 1
                logger.warning("FIAS: the link dropped in the middle of a record; the part received is discarded")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                await self.writer.wait_closed()

    # --- sending ------------------------------------------------------------------------------------

    async def send(self, record: fias.Record) -> None:
        data = fias.encode(record)
        self.last_record, self.resends = data, 0
        await self._write(data)
        self.counters["records_out"] += 1

    async def _write(self, data: bytes) -> None:
        self.writer.write(data)
        self.last_sent = time.monotonic()
        await asyncio.wait_for(self.writer.drain(), DRAIN_TIMEOUT_SECONDS)

    async def describe(self) -> None:
        for record in link_description():
            await self.send(record)
        self.service.linked.set()

    # --- reading ------------------------------------------------------------------------------------

    async def _read(self) -> None:
        while not self.ended:
            if self.decoder.holding:
                try:
                    async with asyncio.timeout(LRC_WAIT_SECONDS):
                        chunk = await self.reader.read(READ_BYTES)
                except TimeoutError:
                    await self._take(self.decoder.flush())
                    continue
            else:
                chunk = await self.reader.read(READ_BYTES)
            if not chunk:
                return  # the PMS closed the connection
            await self._take(self.decoder.feed(chunk))
            self._copy_decoder_counters()

    def _copy_decoder_counters(self) -> None:
        # Refused records are counted as they come out of the decoder; skipped bytes only it sees.
        self.counters["garbage_bytes"] += self.decoder.counters["garbage_bytes"]
        self.decoder.counters["garbage_bytes"] = 0

    async def _take(self, items: list) -> None:
        for item in items:
            if isinstance(item, fias.Record):
                await self._record(item)
            elif isinstance(item, fias.LinkByte):
                await self._link_byte(item.value)
            else:
                self.counters[item.reason] += 1
                self.counters["naks_sent"] += 1
                logger.warning("FIAS: record refused (%s): answered NAK", item.reason)
                await self._write(bytes((fias.NAK,)))

    async def _link_byte(self, value: int) -> None:
        if value == fias.ENQ:
            await self._write(bytes((fias.ACK,)))
        elif value == fias.NAK:
            self.counters["naks_received"] += 1
            if self.last_record and self.resends < NAK_RESENDS:
                self.resends += 1
                await self._write(self.last_record)
            else:
                logger.warning("FIAS: NAK with nothing (more) to send again")
        # ACK: nothing to do (over TCP Space sends no record that waits for one).

    async def _record(self, record: fias.Record) -> None:
        self.counters["records_in"] += 1
        if record.type == "LS":
            await self.describe()
        elif record.type == "LE":
            logger.info("FIAS: the PMS ended the link (LE)")
            self.ended = True
        elif record.type in ("LA", "LD", "LR"):
            pass  # the PMS's answer to Space's LA, or its own description: nothing to do
        elif record.type in fias_requests.HANDLERS:
            if self.pending >= QUEUE_MAX:
                self.counters["busy"] += 1
                await self._answer_busy(record)
                return
            self.pending += 1
            names, before, done = self._join_lanes(record)
            task = asyncio.create_task(self._request(record, names, before, done), name=f"fias-{record.type}")
            self.requests.add(task)
            task.add_done_callback(self.requests.discard)
        else:
            self.counters["unknown_records"] += 1
            logger.info("FIAS: record type %s ignored", record.type)

    async def _answer_busy(self, record: fias.Record) -> None:
        answer = fias_requests.busy(record)
        if answer is not None:
            await self.send(answer)

    # --- requests and keep-alive --------------------------------------------------------------------

    def _join_lanes(self, record: fias.Record) -> tuple[set[str], list[asyncio.Future], asyncio.Future]:
        """Put the request at the end of each of its lanes, as it arrives: it waits for every earlier request
        of those lanes (all of them, so a later request never overtakes an earlier one it shares a lane with)."""
        names = {f"{lane}:{value}" for lane, field in LANE_FIELDS if (value := record.get(field))} or {"-"}
        before = [self.lanes[name] for name in names if name in self.lanes]
        done = asyncio.get_running_loop().create_future()
        for name in names:
            self.lanes[name] = done
        return names, before, done

    async def _request(
        self, record: fias.Record, names: set[str], before: list[asyncio.Future], done: asyncio.Future
    ) -> None:
        try:
            if before:
                await asyncio.wait(before)
            answer, status = await self.service.handle(record)
            if status != fias_requests.OK:
                self.counters["refused"] += 1
            if answer is not None:
                await self.send(answer)
        finally:
            self.pending -= 1
            done.set_result(None)
            for name in names:
                if self.lanes.get(name) is done:
                    del self.lanes[name]

    async def _keep_alive(self) -> None:
        interval = self.service.keepalive_seconds
        while True:
            wait = self.last_sent + interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            await self.send(alive())
