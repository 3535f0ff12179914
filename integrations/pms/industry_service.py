"""The Industry Standard connector: Space as the lock system a PMS talks to, on a TCP port and/or a serial line.

Every PMS connection (each TCP client, and the serial line) is a :class:`PmsLink`:
ENQ is answered ACK when the link is idle (NAK while one of its commands is
under way); a frame with a good (or unchecked, 0x0D) LRC is ACKed and queued;
one with a bad LRC is NAKed so the PMS sends it again. Commands are carried out
one at a time per link, on a thread pool (database and encoder waits off the
event loop), so a slow encoder holds up only the PMS that asked. The answer
frame is sent again (up to :data:`ANSWER_RESENDS` times) while the PMS answers
NAK or nothing within the ACK timeout. Protocol reading: docs/industry-standard.md.
"""

import asyncio
import functools
import logging
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import serial
from django.conf import settings
from django.utils import timezone

from accesscontrol.models import GuestArea
from core.services import close_connection, run_orm
from hotel import actions as hotel
from integrations import metrics
from integrations.pms import industry
from integrations.pms.industry import ACK, ENQ, NAK, Answer, CardRequest, IndustryError

logger = logging.getLogger(__name__)

VIA = "industry"
ANSWER_RESENDS = 3  # an answer the PMS NAKs or does not acknowledge is sent again this many times
ACK_TIMEOUT_SECONDS = 3.0
WORKERS = 8  # commands carried out at once, across every link
MAX_CONNECTIONS = 16  # PMS connections at a time; one more is closed at once (counted)
MAX_QUEUED = 8  # commands a link holds while one is under way; one more is NAKed (the PMS resends it)
REOPEN_SECONDS = 5.0  # a serial line that cannot be opened, or hung up, is tried again after this long

# Every hotel.HotelError code, as the error answer it earns.
HOTEL_ERRORS = {
    hotel.UNKNOWN_ROOM: industry.UNKNOWN_ROOM,
    hotel.UNKNOWN_ENCODER: industry.NOT_FOUND,
    hotel.ENCODER_BUSY: industry.OVERLOAD,
    hotel.ENCODER_OFFLINE: industry.NO_COMMUNICATION,
    hotel.NO_CARD: industry.CARD_ERROR,
    hotel.WRONG_CARD: industry.FORMAT_ERROR,
    hotel.ENCODE_FAILED: industry.ENCODE_ERROR,
    hotel.TIMEOUT: industry.TIMEOUT,
    hotel.GUEST_NOT_FOUND: industry.NO_GUEST,
    hotel.ROOM_OCCUPIED: industry.OCCUPIED,
    hotel.BAD_REQUEST: industry.SYNTAX_ERROR,
}


@dataclass
class Counters:
    frames_in: int = 0  # frames ACKed (a good or unchecked LRC)
    frames_out: int = 0  # answer frames written (each resend counts)
    lrc_errors: int = 0
    malformed: int = 0  # good LRC, but not fields
    oversized: int = 0
    garbage_bytes: int = 0
    answers_undelivered: int = 0  # the PMS never acknowledged them
    refused: int = 0  # frames NAKed because the link's queue was full
    connections: int = 0
    connections_refused: int = 0
    errors_by_code: Counter = field(default_factory=Counter)


# --- commands -> hotel operations (on a worker thread) ---------------------------------------------------------


def _common_areas(request: CardRequest) -> tuple[str, ...] | None:
    """The guest areas (accesscontrol GuestArea names): those granted, or the site's defaults, less those denied."""
    if not request.granted and not request.denied:
        return None  # the site's default guest areas
    granted = request.granted or tuple(GuestArea.objects.filter(default=True).values_list("name", flat=True))
    return tuple(name for name in granted if name not in request.denied)


def _issue(request: CardRequest) -> tuple[str, ...]:
    issued = hotel.check_in(
        room=request.rooms[0],
        extra_rooms=request.rooms[1:],
        departure=request.end,
        arrival=request.start,
        encoder=None if request.mobile else request.station,
        phone_number=request.station if request.mobile else "",
        kind=hotel.COPY if request.command in (industry.COPY_CARD, industry.COPY_MOBILE) else hotel.NEW,
        guest_name=request.print_lines[0],
        common_areas=_common_areas(request),
        via=VIA,
    )
    return (issued.uid,) if request.return_serial else ()


def carry_out(request: industry.Request, tz) -> tuple[str, ...]:
    """Do what ``request`` asks; the answer's data. Raises HotelError or IndustryError."""
    if isinstance(request, CardRequest):
        return _issue(request)
    if isinstance(request, industry.CheckOutRequest):
        return (str(hotel.check_out(room=request.room, via=VIA)),)
    if isinstance(request, industry.ModifyRequest):
        hotel.modify(room=request.room, new_room=request.new_room, departure=request.end, via=VIA)
        return ()
    if isinstance(request, industry.ReadRequest):
        key = hotel.read_key(encoder=request.encoder, via=VIA)
        read = industry.CardRead(
            serial=key.uid, rooms=key.rooms, end=key.departure, guest_name=key.guest_name, valid=key.valid
        )
        return read.data(tz)
    raise TypeError(request)


class IndustryStandardService:
    """The connector: a :class:`core.services.Service`.

    ``port`` None: the setting SPACE_INDUSTRY_PORT (0 there: no TCP); a number (0: any free port) listens.
    ``serial_path`` None: the setting SPACE_INDUSTRY_SERIAL (empty: no serial line).
    """

    name = "industry standard"

    def __init__(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        serial_path: str | None = None,
        baud: int | None = None,
        ack_timeout: float = ACK_TIMEOUT_SECONDS,
        max_frame: int = industry.MAX_FRAME,
        reopen_seconds: float = REOPEN_SECONDS,
    ):
        self.host = host or settings.SPACE_INDUSTRY_HOST
        self.port = (settings.SPACE_INDUSTRY_PORT or None) if port is None else port
        self.serial_path = settings.SPACE_INDUSTRY_SERIAL if serial_path is None else serial_path
        self.baud = baud or settings.SPACE_INDUSTRY_BAUD
        self.ack_timeout = ack_timeout
        self.max_frame = max_frame
        self.reopen_seconds = reopen_seconds
        self.counters = Counters()
        self.tz = timezone.get_default_timezone()
        self.links: set[PmsLink] = set()
        self.serial_line: SerialLine | None = None
        self._server: asyncio.Server | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._handlers: set[asyncio.Task] = set()  # one per TCP connection

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(WORKERS, thread_name_prefix="industry")
        if self.port is not None:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
            self.port = self._server.sockets[0].getsockname()[1]
            logger.info("Industry Standard: listening on %s:%s", self.host, self.port)
        if self.serial_path:
            self.serial_line = SerialLine(self, self.serial_path, self.baud)
            self.serial_line.start()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self.serial_line is not None:
            await self.serial_line.stop()
        for link in list(self.links):
            await link.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._executor is not None:
            executor, self._executor = self._executor, None
            executor.submit(close_connection)
            await asyncio.to_thread(executor.shutdown, True)

    async def answer(self, fields: tuple[str, ...]) -> Answer:
        """The answer to one command frame; never raises."""
        command = fields[0]
        try:
            request = industry.parse_request(fields, self.tz)
            call = functools.partial(carry_out, request, self.tz)
            data = await asyncio.get_running_loop().run_in_executor(self._executor, run_orm, call)
        except IndustryError as error:
            logger.info("Industry Standard: %s refused (%s): %s", command, error.code, error)
            return self._error(command, error.code)
        except hotel.HotelError as error:
            logger.info("Industry Standard: %s failed (%s): %s", command, error.code, error)
            return self._error(command, HOTEL_ERRORS.get(error.code, industry.GENERAL_ERROR))
        except Exception:
            logger.exception("Industry Standard: %s failed", command)
            return self._error(command, industry.GENERAL_ERROR)
        operator = getattr(request, "operator", "")  # the PMS user: logged, as the protocol gives no more of it
        logger.info("Industry Standard: %s done%s", command, f" for {operator}" if operator else "")
        return Answer(command, data=data)

    def _error(self, command: str, code: str) -> Answer:
        self.counters.errors_by_code[code] += 1
        return Answer(command, error=code)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if len(self.links) >= MAX_CONNECTIONS:
            self.counters.connections_refused += 1
            logger.warning("Industry Standard: %s refused, %s PMS connections already", peer, MAX_CONNECTIONS)
            writer.close()
            return
        link = PmsLink(self, f"tcp {peer}", writer.write, writer.close)
        self._handlers.add(asyncio.current_task())
        try:
            while data := await reader.read(4096):
                link.received(data)
        except OSError as error:
            logger.info("Industry Standard: %s: %s", link.name, error)
        finally:
            await link.close()
            self._handlers.discard(asyncio.current_task())


class PmsLink:
    """One PMS connection: link bytes, frames in, one command at a time, answers acknowledged."""

    def __init__(self, service: IndustryStandardService, name: str, write: Callable[[bytes], None], hang_up=None):
        self.service = service
        self.name = name
        self._write = write
        self._hang_up = hang_up
        self.decoder = industry.Decoder(max_frame=service.max_frame)
        self.busy = False
        self._commands: asyncio.Queue[tuple[str, ...]] = asyncio.Queue(MAX_QUEUED)
        self._replies: asyncio.Queue[int] = asyncio.Queue()
        self._closed = False
        self._worker = asyncio.create_task(self._work())
        service.links.add(self)
        service.counters.connections += 1
        metrics.INDUSTRY_STANDARD_LINKS.inc()
        logger.info("Industry Standard: %s connected", name)

    def write(self, data: bytes) -> None:
        if not self._closed:
            self._write(data)

    def received(self, data: bytes) -> None:
        counters = self.service.counters
        for event in self.decoder.feed(data):
            if isinstance(event, industry.Frame):
                self._accept(event.fields)
            elif isinstance(event, industry.LinkByte):
                if event.byte == ENQ:
                    self.write(bytes((NAK if self.busy or not self._commands.empty() else ACK,)))
                else:
                    self._replies.put_nowait(event.byte)
            elif isinstance(event, industry.BadLrc):
                counters.lrc_errors += 1
                logger.info("Industry Standard: %s: wrong LRC, NAK", self.name)
                self.write(bytes((NAK,)))
            elif isinstance(event, industry.Malformed):
                counters.malformed += 1
                logger.info("Industry Standard: %s: %s", self.name, event.reason)
                self._accept(("",))  # no command: answered ES with an empty one
            elif isinstance(event, industry.Garbage):
                counters.garbage_bytes += event.count
            elif isinstance(event, industry.Oversized):
                counters.oversized += 1
                logger.info("Industry Standard: %s: a frame over %s bytes dropped", self.name, self.decoder.max_frame)

    def _accept(self, fields: tuple[str, ...]) -> None:
        if self._commands.full():
            self.service.counters.refused += 1
            self.write(bytes((NAK,)))
            return
        self.service.counters.frames_in += 1
        self.write(bytes((ACK,)))
        self._commands.put_nowait(fields)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        metrics.INDUSTRY_STANDARD_LINKS.dec()
        self.service.links.discard(self)
        self.service.counters.garbage_bytes += self.decoder.abandon()  # a frame the PMS dropped half-way
        self._worker.cancel()
        await asyncio.gather(self._worker, return_exceptions=True)
        if self._hang_up is not None:
            self._hang_up()
        logger.info("Industry Standard: %s closed", self.name)

    async def _work(self) -> None:
        while True:
            fields = await self._commands.get()
            self.busy = True
            try:
                answer = await self.service.answer(fields)
                await self._deliver(industry.encode_frame(answer.fields()))
            finally:
                self.busy = False

    async def _deliver(self, frame: bytes) -> None:
        while not self._replies.empty():  # stray ACKs and NAKs from before are not about this answer
            self._replies.get_nowait()
        for _ in range(1 + ANSWER_RESENDS):
            self.write(frame)
            self.service.counters.frames_out += 1
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation (the link closing)
                # that comes as the reply does.
                async with asyncio.timeout(self.service.ack_timeout):
                    reply = await self._replies.get()
            except TimeoutError:
                continue
            if reply == ACK:
                return
        self.service.counters.answers_undelivered += 1
        logger.warning("Industry Standard: %s never acknowledged an answer", self.name)


class SerialLine:
    """The RS-232 line: opened with pyserial, read with ``loop.add_reader`` on its descriptor; reopened when it
    cannot be opened or hangs up."""

    def __init__(self, service: IndustryStandardService, path: str, baud: int):
        self.service = service
        self.path = path
        self.baud = baud
        self.link: PmsLink | None = None
        self._task: asyncio.Task | None = None
        self._pending = bytearray()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                port = serial.Serial(self.path, self.baud, timeout=0, write_timeout=0)
            except (serial.SerialException, OSError) as error:
                logger.warning("Industry Standard: serial line %s: %s", self.path, error)
            else:
                try:
                    await self._serve(port)
                finally:
                    port.close()
            await asyncio.sleep(self.service.reopen_seconds)

    async def _serve(self, port: serial.Serial) -> None:
        loop = asyncio.get_running_loop()
        fd = port.fileno()
        os.set_blocking(fd, False)
        hung_up = loop.create_future()
        self._pending.clear()
        self.link = PmsLink(self.service, f"serial {self.path}", functools.partial(self._write, fd))

        def readable() -> None:
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                return
            except OSError as error:
                data, reason = b"", error
            else:
                reason = "end of file"
            if data:
                self.link.received(data)
            elif not hung_up.done():
                hung_up.set_result(reason)

        loop.add_reader(fd, readable)
        try:
            logger.info("Industry Standard: serial line %s hung up: %s", self.path, await hung_up)
        finally:
            loop.remove_reader(fd)
            loop.remove_writer(fd)
            await self.link.close()

    def _write(self, fd: int, data: bytes) -> None:
        """Write without blocking the loop: what the line does not take now goes when it is writable."""
        if not self._pending:
            try:
                data = data[os.write(fd, data) :]
            except BlockingIOError:
                pass
            except OSError as error:
                logger.info("Industry Standard: serial line %s: %s", self.path, error)
                return
            if not data:
                return
            asyncio.get_running_loop().add_writer(fd, self._flush, fd)
        self._pending += data

    def _flush(self, fd: int) -> None:
        try:
            del self._pending[: os.write(fd, self._pending)]
        except BlockingIOError:
            return
        except OSError as error:
            logger.info("Industry Standard: serial line %s: %s", self.path, error)
            self._pending.clear()
        if not self._pending:
            asyncio.get_running_loop().remove_writer(fd)
