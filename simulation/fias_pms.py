"""A simulated PMS FIAS interface (the IFC side: a TCP server), for tests and ``manage.py bench_hotel``.

It listens on a port, sends LS to the lock system that connects (a newer
connection replaces the older one, as an IFC does), answers its LA with LA,
and lets the caller send records or raw bytes and wait for what comes back::

    pms = SimulatedPms()
    await pms.start()                      # pms.port: where FiasService connects
    await pms.linked()                     # LS sent, LD/LR.../LA received
    answer, seconds = await pms.key_request(room="101", encoder="DESK1", departure=...)
    await pms.stop()
"""

import asyncio
import contextlib
import datetime as dt
import time

from integrations.pms import fias

ANSWER_TIMEOUT_SECONDS = 35.0


class SimulatedPms:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, with_lrc: bool = True, answer_alive: bool = True):
        self.host, self.port = host, port
        self.with_lrc = with_lrc
        self.answer_alive = answer_alive
        self.received: asyncio.Queue = asyncio.Queue()  # Records, LinkBytes and Refused items from the lock system
        self.link_records: list[fias.Record] = []  # LD, LR and LA of the last link start
        self.connections = 0
        self.alives = 0  # LA records received
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._readers: set[asyncio.Task] = set()
        self._linked = asyncio.Event()
        self._connected = asyncio.Event()
        self._awaited: dict[str, asyncio.Future] = {}  # room -> the KA a matched key request waits for

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self.drop()
        for task in list(self._readers):
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    # --- the connection -----------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.drop()  # a new connection replaces the old one
        self.connections += 1
        self._writer = writer
        self._linked.clear()
        self.link_records = []
        self._connected.set()
        task = asyncio.current_task()
        self._readers.add(task)
        decoder = fias.StreamDecoder(max_record=fias.MAX_SENT_BYTES)
        try:
            await self.send(fias.Record.make("LS", ("DA", "260101"), ("TI", "120000")))
            while chunk := await reader.read(65536):
                for item in decoder.feed(chunk):
                    await self._take(item)
        except (ConnectionError, OSError):
            pass
        finally:
            self._readers.discard(task)
            if self._writer is writer:
                self._writer = None
                self._connected.clear()
            writer.close()

    async def _take(self, item) -> None:
        if isinstance(item, fias.Record) and item.type in ("LD", "LR") and not self._linked.is_set():
            self.link_records.append(item)
            return
        if isinstance(item, fias.Record) and item.type == "LA":
            self.alives += 1
            if not self._linked.is_set():
                self.link_records.append(item)
                self._linked.set()
            elif self.answer_alive:
                await self.send(fias.Record.make("LA"))
            return
        if isinstance(item, fias.Record) and item.type == "KA":
            waiting = self._awaited.pop(item.get("RN"), None)
            if waiting is not None and not waiting.done():
                waiting.set_result(item)
                return
        await self.received.put(item)

    async def drop(self) -> None:
        """Close the current connection (the lock system will connect again)."""
        writer, self._writer = self._writer, None
        self._connected.clear()
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def connected(self, timeout: float = 10) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def linked(self, timeout: float = 10) -> list[fias.Record]:
        """Wait for the link start (LD, LR..., LA after the LS); its records."""
        await asyncio.wait_for(self._linked.wait(), timeout)
        return self.link_records

    # --- sending and receiving ----------------------------------------------------------------------

    async def send(self, record: fias.Record) -> None:
        await self.send_raw(fias.encode(record, with_lrc=self.with_lrc))

    async def send_raw(self, data: bytes) -> None:
        if self._writer is None:
            raise ConnectionError("no lock system connected")
        self._writer.write(data)
        await self._writer.drain()

    async def next(self, timeout: float = ANSWER_TIMEOUT_SECONDS):
        """The next Record, LinkByte or Refused the lock system sent (its first link description and LA aside)."""
        return await asyncio.wait_for(self.received.get(), timeout)

    async def next_record(self, timeout: float = ANSWER_TIMEOUT_SECONDS) -> fias.Record:
        while True:
            item = await self.next(timeout)
            if isinstance(item, fias.Record):
                return item

    async def request(self, record: fias.Record, timeout: float = ANSWER_TIMEOUT_SECONDS):
        """Send ``record``, wait for the next record back: (answer, seconds it took)."""
        started = time.perf_counter()
        await self.send(record)
        answer = await self.next_record(timeout)
        return answer, time.perf_counter() - started

    async def key_request(
        self,
        *,
        room: str,
        encoder: str,
        departure: dt.datetime,
        key_type: str = "N",
        workstation: str = "1",
        guest: str = "",
        reservation: str = "",
        suite: tuple[str, ...] = (),
        return_data: bool = False,
        timeout: float = ANSWER_TIMEOUT_SECONDS,
        matched: bool = False,
    ):
        """KR for ``room`` on ``encoder``; (the KA, seconds from KR sent to KA received).

        ``matched``: the KA is told apart by its room, so several key requests (for other rooms) may be
        under way at once; otherwise the next record back is taken as the answer."""
        now = dt.datetime.now()
        record = fias.Record.make(
            "KR",
            ("KC", encoder),
            ("KT", key_type),
            ("RN", room),
            ("WS", workstation),
            ("GN", guest),
            ("G#", reservation),
            ("GD", fias.format_date(departure)),
            ("DT", fias.format_time(departure)),
            ("SI", ";".join(suite)),
            ("RT", "4" if return_data else ""),
            ("DA", fias.format_date(now)),
            ("TI", fias.format_time(now)),
        )
        if not matched:
            return await self.request(record, timeout)
        answer = self._awaited[room] = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        try:
            await self.send(record)
            return await asyncio.wait_for(answer, timeout), time.perf_counter() - started
        finally:
            self._awaited.pop(room, None)
