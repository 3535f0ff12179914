"""A simulated PMS for the Industry Standard connector: for tests and ``manage.py bench_hotel``.

It talks to the connector the way a PMS does (docs/industry-standard.md): ENQ
for readiness, a command frame sent again on NAK or silence, then the answer,
which it ACKs. Over TCP (:meth:`SimulatedPms.connect`) or any file descriptor
(:meth:`SimulatedPms.open_fd`, e.g. the master end of a pseudo-terminal).
"""

import asyncio
import datetime as dt
import os
import time
from dataclasses import dataclass

from integrations.pms import industry
from integrations.pms.industry import ACK, ENQ, NAK, Answer, Decoder, Frame, LinkByte

SEND_ATTEMPTS = 4  # the first send and three more on NAK or silence, as the connector does with its answers


class NoAnswer(Exception):
    """The connector did not acknowledge a frame or answer it in time."""


@dataclass(frozen=True)
class Exchange:
    answer: Answer
    seconds: float  # from the first send of the command to its answer
    sends: int  # how many times the command went out


class SimulatedPms:
    def __init__(self, reader: asyncio.StreamReader, write, close, *, tz: dt.tzinfo = dt.UTC, timeout: float = 5.0):
        self.reader = reader
        self._write = write
        self._close = close
        self.tz = tz
        self.timeout = timeout
        self.decoder = Decoder()
        self.events: asyncio.Queue = asyncio.Queue()
        self._reading = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, host: str, port: int, **options) -> "SimulatedPms":
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer.write, writer.close, **options)

    @classmethod
    async def open_fd(cls, fd: int, **options) -> "SimulatedPms":
        """Over a file descriptor (a tty or pty end): read and written without blocking the loop."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        os.set_blocking(fd, False)

        def readable():
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if data:
                reader.feed_data(data)
            else:
                loop.remove_reader(fd)
                reader.feed_eof()

        loop.add_reader(fd, readable)

        def close():
            loop.remove_reader(fd)
            os.close(fd)

        return cls(reader, _fd_writer(fd), close, **options)

    async def close(self) -> None:
        self._reading.cancel()
        await asyncio.gather(self._reading, return_exceptions=True)
        self._close()

    def send_raw(self, data: bytes) -> None:
        self._write(data)

    async def next_event(self, timeout: float | None = None):
        try:
            async with asyncio.timeout(timeout or self.timeout):
                return await self.events.get()
        except TimeoutError as error:
            raise NoAnswer("nothing from the connector") from error

    async def enquire(self) -> int:
        """ENQ: the connector's ACK (ready) or NAK (busy)."""
        self.send_raw(bytes((ENQ,)))
        return await self._link_byte()

    async def send(self, frame: bytes) -> int:
        """Send ``frame`` until it is ACKed; how many sends it took."""
        for attempt in range(1, SEND_ATTEMPTS + 1):
            self.send_raw(frame)
            try:
                if await self._link_byte() == ACK:
                    return attempt
            except NoAnswer:
                continue
        raise NoAnswer("the connector never acknowledged the frame")

    async def answer(self, *, acknowledge: bool = True) -> Answer:
        """The next answer frame (ACKed unless told not to)."""
        while True:
            event = await self.next_event()
            if isinstance(event, Frame):
                if acknowledge:
                    self.send_raw(bytes((ACK,)))
                return Answer.parse(event.fields)

    async def exchange(self, request: industry.Request | tuple[str, ...], *, timeout: float = 40.0) -> Exchange:
        """Send a command (a request, or raw fields) and wait for its answer."""
        fields = request if isinstance(request, tuple) else industry.request_fields(request, self.tz)
        started = time.perf_counter()
        sends = await self.send(industry.encode_frame(fields))
        saved, self.timeout = self.timeout, timeout
        try:
            answer = await self.answer()
        finally:
            self.timeout = saved
        return Exchange(answer, time.perf_counter() - started, sends)

    async def _link_byte(self) -> int:
        while True:
            event = await self.next_event()
            if isinstance(event, LinkByte) and event.byte in (ACK, NAK):
                return event.byte

    async def _read(self) -> None:
        while data := await self.reader.read(4096):
            for event in self.decoder.feed(data):
                self.events.put_nowait(event)


def _fd_writer(fd: int):
    """A writer for a descriptor in non-blocking mode; the frames are small, so a full buffer is a fault."""

    def write(data: bytes) -> None:
        while data:
            data = data[os.write(fd, data) :]

    return write
