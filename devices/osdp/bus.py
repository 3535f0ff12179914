"""One RS-485 bus of OSDP readers, driven by libosdp's control panel (docs/osdp.md, "The bus").

A ``Bus`` owns one serial line, named by a pyserial URL (``/dev/ttyUSB0``, a
pseudo-terminal ``/dev/pts/N``, ``socket://host:port`` for a serial-over-IP
converter, ``rfc2217://host:port``), and the readers on it. libosdp does the
protocol: framing, polling, the secure channel, install mode and KEYSET; this
module never builds a frame. libosdp's control panel is not thread-safe and
wants a ``refresh()`` every few milliseconds, so it lives on one thread of its
own, and every call on it from elsewhere holds ``Bus._lock``. What libosdp
reports becomes the frozen events below, handed to ``on_event`` on the event
loop that started the bus.

Nothing on the line raises out of the bus: a port that fails or vanishes is
closed and reopened with backoff (every reader reported offline meanwhile);
input that makes no sense is dropped and counted in ``Bus.counters``. Pure
transport: no Django, no decisions.
"""

import asyncio
import collections
import logging
import math
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import osdp
import osdp_sys
import serial

from core.net import Backoff

log = logging.getLogger(__name__)

# libosdp's Python binding reads its online and secure-channel masks into 32 bits; a 33rd reader would overrun them.
MAX_READERS = 32
# How long the bus thread waits for bytes before it refreshes libosdp anyway: bytes wake it at once, so this bounds
# only the delay of a command submitted from the event loop and the precision of libosdp's own timers.
TICK_SECONDS = 0.002
RX_CHUNK_BYTES = 4096
# Read but not yet taken by libosdp; past this the oldest go. An OSDP packet is at most 256 bytes, and libosdp takes
# at most 512 at once (its ring buffer overflows beyond, as it would under a burst of noise).
RX_BUFFER_BYTES = 256
WRITE_TIMEOUT_SECONDS = 1.0
# libosdp leaves a reader that went offline alone for five minutes; the bus asks again sooner, with backoff.
READER_RETRY_FIRST_SECONDS, READER_RETRY_MAX_SECONDS = 1.0, 30.0
LINE_RETRY_FIRST_SECONDS, LINE_RETRY_MAX_SECONDS = 0.5, 30.0
# Every reader offline this long: close and reopen the line (a converter that lost its state says nothing).
SILENT_LINE_SECONDS = 30.0
# OSDP counts times in tenths of a second; the binding passes timer counts as one byte.
MAX_TENTHS = 255
MAX_TEXT = 32
LIBOSDP_LOG_LEVEL = osdp.LogLevel.Error

COLORS = {
    "off": osdp.CommandLEDColor.Black,
    "black": osdp.CommandLEDColor.Black,
    "red": osdp.CommandLEDColor.Red,
    "green": osdp.CommandLEDColor.Green,
    "amber": osdp.CommandLEDColor.Amber,
    "blue": osdp.CommandLEDColor.Blue,
    "magenta": osdp.CommandLEDColor.Magenta,
    "cyan": osdp.CommandLEDColor.Cyan,
    "white": osdp.CommandLEDColor.White,
}
CARD_FORMATS = {
    osdp.CardFormat.Unspecified: "raw",
    osdp.CardFormat.Wiegand: "wiegand",
    osdp.CardFormat.ASCII: "ascii",
}
# Keypad bytes: digits in ASCII; OSDP readers send '*' as DEL (0x7F) and '#' as CR (0x0D), some send them as is.
KEYS = {ord(digit): digit for digit in "0123456789"} | {0x7F: "*", 0x0D: "#", ord("*"): "*", ord("#"): "#"}
CAPABILITIES = {
    "contact_status_monitoring": osdp.Capability.ContactStatusMonitoring,
    "output_control": osdp.Capability.OutputControl,
    "card_data_format": osdp.Capability.CardDataFormat,
    "led_control": osdp.Capability.LEDControl,
    "audible_control": osdp.Capability.AudibleControl,
    "text_output": osdp.Capability.TextOutput,
    "time_keeping": osdp.Capability.TimeKeeping,
    "check_character": osdp.Capability.CheckCharacter,
    "communication_security": osdp.Capability.CommunicationSecurity,
    "receive_buffer_size": osdp.Capability.ReceiveBufferSize,
    "combined_message_size": osdp.Capability.CombinedMessageSize,
    "smart_card": osdp.Capability.SmartCard,
    "readers": osdp.Capability.Readers,
    "biometrics": osdp.Capability.Biometrics,
}
# Control codes of OSDP's osdp_OUT, osdp_LED, osdp_BUZ and osdp_TEXT.
OUTPUT_PERMANENT_OFF, OUTPUT_PERMANENT_ON, OUTPUT_TIMED_ON, OUTPUT_TIMED_OFF = 1, 2, 5, 6
LED_PERMANENT_SET, LED_TEMPORARY_SET = 1, 2
BUZZER_OFF, BUZZER_TONE = 1, 2
TEXT_PERMANENT = 1


# --- what the bus reports ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CardRead:
    """A card at a reader: ``bits`` of ``data`` (left-aligned, as the reader sent them)."""

    address: int
    reader_no: int
    format: str  # "wiegand", "raw" (format unspecified) or "ascii"
    bits: int
    data: bytes
    # When libosdp handed it over (time.monotonic()): where Space's own share of a card-to-relay time starts.
    at: float = field(default_factory=time.monotonic, compare=False)


@dataclass(frozen=True, slots=True)
class Keypad:
    """Keys pressed on a reader's keypad: digits, '*' and '#'."""

    address: int
    keys: str


@dataclass(frozen=True, slots=True)
class Inputs:
    """The states of a reader's inputs (door contact, exit button...), as it reported them."""

    address: int
    states: tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class Outputs:
    """The states of a reader's outputs (relays), as it reported them."""

    address: int
    states: tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class Local:
    """The reader's own alarms: ``tamper`` when its case is open, ``power`` when it reports a power failure."""

    address: int
    tamper: bool
    power: bool


@dataclass(frozen=True, slots=True)
class Link:
    """The reader can (``online``) or cannot be used now; ``secure`` when that is over the secure channel."""

    address: int
    online: bool
    secure: bool


@dataclass(frozen=True, slots=True)
class Identity:
    """What the reader says it is, read each time it comes online."""

    address: int
    vendor_code: int
    model: int
    serial_number: int
    firmware: str
    capabilities: dict[str, tuple[int, int]]  # name -> (compliance level, number of items), those it has


@dataclass(frozen=True, slots=True)
class KeySet:
    """A reader in install mode took its SCBK, and a secure channel on that key came up."""

    address: int


@dataclass(frozen=True, slots=True)
class SecureFailed:
    """The secure channel could not be set up (a wrong key, a reader without one); also reported by ``Link``."""

    address: int


BusEvent = CardRead | Keypad | Inputs | Outputs | Local | Link | Identity | KeySet | SecureFailed


@dataclass(frozen=True, slots=True)
class ReaderSpec:
    """A reader on the bus: its OSDP address and the SCBK that Space keeps for it.

    A new reader in install mode is taken with this key too: libosdp falls back to
    the default key (SCBK-D) and sets this one with KEYSET. With ``enforce_secure``
    the reader is never used in clear: without a secure channel it stays offline.
    """

    address: int
    scbk: bytes = field(repr=False)
    enforce_secure: bool = True

    def __post_init__(self):
        if not isinstance(self.address, int) or not 0 <= self.address <= 126:
            raise ValueError(f"an OSDP address is 0..126, not {self.address!r}")
        if not isinstance(self.scbk, bytes) or len(self.scbk) != 16:
            raise ValueError(f"reader {self.address}: an SCBK is 16 bytes")


# --- the line as libosdp sees it ----------------------------------------------------------------


class LineChannel(osdp.Channel):
    """The bus's serial port, for libosdp: bytes in, bytes out, and never an exception.

    An exception in a callback would be left pending inside libosdp's C code, so
    every failure of the port is caught here and marks the line ``lost``; the bus
    thread sees that after the refresh and reopens the line. Bytes from the port
    are moved into a buffer by ``pump`` (so the port never stays readable with
    nobody reading it) and libosdp takes them from there.

    pyserial opens and configures the port. Where the port has a descriptor (a
    serial device, a pseudo-terminal, a ``socket://`` connection) the bytes move
    with ``poll`` and ``os.read``/``os.write``: pyserial's own reads wait with
    ``select``, which fails on a descriptor past 1023, as a busy server may hand
    out. Without one (``rfc2217://``, ``loop://``) they go through pyserial.
    """

    def __init__(self, counters: collections.Counter):
        super().__init__()
        # libosdp recognises readers sharing a line by the channel id, and 0 would defeat its turn-taking lock.
        self.id = 1
        self.port: serial.SerialBase | None = None
        self.lost = False
        self._fd: int | None = None
        self._poll: select.poll | None = None
        self._rx = bytearray()
        self._counters = counters

    def attach(self, port: serial.SerialBase) -> None:
        self.port, self.lost = port, False
        self._rx.clear()
        try:
            self._fd = port.fileno()
        except (AttributeError, OSError, ValueError):  # rfc2217 and loop have no descriptor to wait on
            self._fd, self._poll = None, None
        else:
            self._poll = select.poll()
            self._poll.register(self._fd, select.POLLIN)

    def detach(self) -> None:
        port, self.port, self._fd, self._poll = self.port, None, None, None
        self._rx.clear()
        if port is not None:
            try:
                port.close()
            except Exception:  # a port that is already gone may fail to close; it is closed all the same
                log.debug("closing %s failed", port.portstr, exc_info=True)

    def read(self, max_bytes: int) -> bytes:
        chunk = bytes(self._rx[:max_bytes])
        del self._rx[:max_bytes]
        return chunk

    def write(self, buf: bytes) -> int:
        if self.port is None or self.lost:
            return 0
        try:
            if self._fd is None:
                written = self.port.write(buf)
                return len(buf) if written is None else written
            return self._write_fd(buf)
        except Exception as exc:  # whatever the port raises, the line is lost
            self._lose("write", exc)
            return 0

    def _write_fd(self, buf: bytes) -> int:
        view, deadline = memoryview(buf), time.monotonic() + WRITE_TIMEOUT_SECONDS
        writable = select.poll()
        writable.register(self._fd, select.POLLOUT)
        while view:
            try:
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("the line takes no more bytes") from None
                writable.poll(remaining * 1000)
        return len(buf)

    def flush(self) -> None:
        """libosdp flushes before each command: bytes left from an earlier answer must not pass for this one's."""
        self._rx.clear()
        if self.port is None or self.lost:
            return
        try:
            if self._fd is None:
                self.port.reset_input_buffer()
                return
            while self._poll.poll(0):
                if not os.read(self._fd, RX_CHUNK_BYTES):
                    raise EOFError("the line closed")
        except BlockingIOError:
            return
        except Exception as exc:
            self._lose("flush", exc)

    def pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for bytes from the line and keep them for libosdp."""
        if self.port is None or self.lost:
            return
        try:
            data = self._receive(timeout)
        except Exception as exc:
            self._lose("read", exc)
            return
        self._rx += data
        excess = len(self._rx) - RX_BUFFER_BYTES
        if excess > 0:
            del self._rx[:excess]
            self._counters["rx_overflow_bytes"] += excess

    def _receive(self, timeout: float) -> bytes:
        if self._fd is None:
            time.sleep(timeout)
            return self.port.read(self.port.in_waiting)
        if not self._poll.poll(timeout * 1000):
            return b""
        try:
            data = os.read(self._fd, RX_CHUNK_BYTES)
        except BlockingIOError:
            return b""
        if not data:
            raise EOFError("the line closed")  # a converter closed the connection; a pseudo-terminal lost its other end
        return data

    def _lose(self, what: str, exc: Exception) -> None:
        if not self.lost:
            log.warning("OSDP line %s: %s failed: %r", getattr(self.port, "portstr", "?"), what, exc)
        self.lost = True


# --- the bus ------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Reader:
    """What the bus knows of one reader. The bus thread alone changes it; ``reported`` is read from anywhere."""

    spec: ReaderSpec
    index: int  # its place in libosdp's list of readers
    backoff: Backoff = field(default_factory=lambda: Backoff(READER_RETRY_FIRST_SECONDS, READER_RETRY_MAX_SECONDS))
    online: bool = False  # libosdp has it online, with or without a secure channel
    secure: bool = False  # the secure channel is up, on the reader's own SCBK
    default_key_session: bool = False  # up on SCBK-D: the reader was in install mode and KEYSET is under way
    reported: tuple[bool, bool] = (False, False)  # the last Link: (online, secure)
    identity_due: bool = False
    disable_due: bool = False
    retry_at: float | None = None  # when to disable and enable it again in libosdp, to try it afresh

    def forget(self) -> None:
        """The line was closed: whatever libosdp knew of the reader went with it."""
        self.online = self.secure = self.default_key_session = False
        self.identity_due = self.disable_due = False
        self.retry_at = None

    @property
    def usable(self) -> bool:
        return self.online and (self.secure or not self.spec.enforce_secure)


class Bus:
    """One RS-485 line and the OSDP readers on it, as an asyncio component (``start()``, ``stop()``).

    ``on_event`` gets every ``BusEvent`` on the event loop that called ``start()``.
    The commands (``output``, ``led``, ``buzzer``, ``text``) may be called from
    any thread; each returns False when the reader cannot take it now (not
    online, libosdp's queue of four commands per reader full).

    ``counters`` (a Counter) names what was dropped or failed: ``line_open_failed``,
    ``line_lost``, ``line_silent_reopened``, ``rx_overflow_bytes``,
    ``secure_channel_failed``, ``keyset_refused``, ``events_insecure_dropped`` (from a
    reader that must be secure and is not), ``events_ignored`` (kinds Space does not
    use), ``events_malformed``, ``keys_unknown``, ``commands_offline``,
    ``commands_rejected`` (libosdp refused them), ``commands_failed`` (the reader
    did not acknowledge), ``handler_errors``, ``events_undelivered``, ``loop_errors``.
    """

    def __init__(self, url: str, baud: int, readers: list[ReaderSpec], on_event: Callable[[BusEvent], None]):
        if not readers:
            raise ValueError("a bus needs at least one reader")
        if len(readers) > MAX_READERS:
            raise ValueError(f"at most {MAX_READERS} readers on one bus, not {len(readers)}")
        addresses = [spec.address for spec in readers]
        if len(set(addresses)) != len(addresses):
            raise ValueError(f"two readers share an address on {url}: {sorted(addresses)}")
        self.url, self.baud = url, baud
        self.counters: collections.Counter = collections.Counter()
        self._on_event = on_event
        self._readers = [_Reader(spec, index) for index, spec in enumerate(readers)]
        self._by_address = {reader.spec.address: reader for reader in self._readers}
        self._lock = threading.Lock()  # every call on libosdp's control panel holds it
        self._channel = LineChannel(self.counters)
        self._cp = None  # libosdp's control panel while the line is open
        self._line_backoff = Backoff(LINE_RETRY_FIRST_SECONDS, LINE_RETRY_MAX_SECONDS)
        self._last_alive = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # --- lifecycle

    async def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"the bus on {self.url} is already running")
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        osdp_sys.set_loglevel(LIBOSDP_LOG_LEVEL)
        self._thread = threading.Thread(target=self._run, name=f"osdp-bus {self.url}", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop the bus thread and close the line; every reader still online is reported offline first."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        await asyncio.to_thread(thread.join)

    # --- state, from any thread

    @property
    def running(self) -> bool:
        """The bus thread is alive (it ends only with ``stop()``)."""
        return self._thread is not None and self._thread.is_alive()

    def is_online(self, address: int) -> bool:
        return self._reader(address).reported[0]

    def is_secure(self, address: int) -> bool:
        return self._reader(address).reported[1]

    # --- commands, from any thread

    def output(self, address: int, number: int, on: bool, pulse_ms: int | None = None) -> bool:
        """Set output ``number`` (OSDP counts them from 0) on or off; with ``pulse_ms``, only for that long.

        A pulse is OSDP's timed state: the output is ``on`` for ``pulse_ms``
        (rounded up to tenths of a second, at most 25.5 s), then back to its
        permanent state. Without it the state is permanent and any pulse stops.
        """
        if not 0 <= number <= 255:
            raise ValueError(f"output number {number} is not 0..255")
        if pulse_ms is None:
            code, tenths = (OUTPUT_PERMANENT_ON if on else OUTPUT_PERMANENT_OFF), 0
        else:
            code, tenths = (OUTPUT_TIMED_ON if on else OUTPUT_TIMED_OFF), _tenths(pulse_ms, "pulse_ms")
        command = {"command": osdp.Command.Output, "output_no": number, "control_code": code, "timer_count": tenths}
        return self._submit(address, command)

    def led(
        self,
        address: int,
        color: str,
        *,
        on_ms: int | None = None,
        off_ms: int | None = None,
        seconds: float | None = None,
    ) -> bool:
        """Light the reader's LED in ``color``: steady, or flashing ``on_ms``/``off_ms`` (with "off" between).

        With ``seconds`` (at most 25.5) it is OSDP's temporary state, after which
        the reader shows its permanent state again; without, it is the permanent state.
        """
        if color not in COLORS:
            raise ValueError(f"unknown LED colour {color!r}; one of {', '.join(COLORS)}")
        if (on_ms is None) != (off_ms is None):
            raise ValueError("a flashing LED needs both on_ms and off_ms")
        on_color = COLORS[color]
        if on_ms is None:
            # Steady: the same colour in both halves of the cycle, whatever a reader makes of the times.
            off_color, on_count, off_count = on_color, 1, 0
        else:
            off_color, on_count, off_count = COLORS["off"], _tenths(on_ms, "on_ms"), _tenths(off_ms, "off_ms")
        command = {
            "command": osdp.Command.LED,
            "reader": 0,
            "led_number": 0,
            "on_color": on_color,
            "off_color": off_color,
            "on_count": on_count,
            "off_count": off_count,
        }
        if seconds is None:
            command |= {"temporary": False, "control_code": LED_PERMANENT_SET}
        else:
            timer = _tenths(seconds * 1000, "seconds")
            command |= {"temporary": True, "control_code": LED_TEMPORARY_SET, "timer_count": timer}
        return self._submit(address, command)

    def buzzer(self, address: int, on_ms: int, off_ms: int, count: int) -> bool:
        """Sound the buzzer ``count`` times (0: until told otherwise), ``on_ms`` on, ``off_ms`` off; 0 ms: silence."""
        if not 0 <= count <= 255:
            raise ValueError(f"buzzer count {count} is not 0..255")
        command = {
            "command": osdp.Command.Buzzer,
            "reader": 0,
            "control_code": BUZZER_TONE if on_ms else BUZZER_OFF,
            "on_count": _tenths(on_ms, "on_ms") if on_ms else 0,
            "off_count": _tenths(off_ms, "off_ms") if off_ms else 0,
            "rep_count": count,
        }
        return self._submit(address, command)

    def text(self, address: int, text: str) -> bool:
        """Show ``text`` (printable ASCII, at most 32 characters) on the reader's display, from its top left."""
        if len(text) > MAX_TEXT or not (text.isascii() and text.isprintable()):
            raise ValueError(f"reader text is at most {MAX_TEXT} printable ASCII characters")
        command = {
            "command": osdp.Command.Text,
            "reader": 0,
            "control_code": TEXT_PERMANENT,
            "temp_time": 0,
            "offset_row": 1,
            "offset_col": 1,
            "data": text,
        }
        return self._submit(address, command)

    def _submit(self, address: int, command: dict) -> bool:
        reader = self._reader(address)
        if not reader.reported[0]:
            self.counters["commands_offline"] += 1
            return False
        with self._lock:
            accepted = False
            if self._cp is not None:
                try:
                    accepted = bool(self._cp.submit_command(reader.index, command))
                except Exception:  # the binding refuses what libosdp cannot encode
                    log.exception("OSDP reader %s: libosdp refused %s", address, command)
        if not accepted:
            self.counters["commands_rejected"] += 1
        return accepted

    def _reader(self, address: int) -> _Reader:
        try:
            return self._by_address[address]
        except KeyError:
            raise ValueError(f"no reader {address} on the bus {self.url}") from None

    # --- the bus thread

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                if self._cp is None and not self._open_line():
                    self._stopping.wait(self._line_backoff.next())
                    continue
                try:
                    self._tick()
                except Exception:  # a bug here must not end the bus: start the line afresh
                    self.counters["loop_errors"] += 1
                    log.exception("OSDP bus %s: refresh failed; reopening the line", self.url)
                    self._close_line()
                if self._cp is None:
                    self._stopping.wait(self._line_backoff.next())
        finally:
            self._close_line()

    def _open_line(self) -> bool:
        try:
            port = serial.serial_for_url(self.url, baudrate=self.baud, timeout=0, write_timeout=WRITE_TIMEOUT_SECONDS)
        except Exception as exc:  # absent device, refused connection, bad URL: all are "not now"
            self.counters["line_open_failed"] += 1
            level = logging.WARNING if self.counters["line_open_failed"] == 1 else logging.DEBUG
            log.log(level, "OSDP bus %s: cannot open the line: %s", self.url, exc)
            return False
        self._channel.attach(port)
        try:
            cp = osdp_sys.ControlPanel([self._pd_info(reader) for reader in self._readers])
            cp.set_event_callback(self._libosdp_event)
        except Exception:
            self.counters["line_open_failed"] += 1
            log.exception("OSDP bus %s: libosdp refused the readers", self.url)
            self._channel.detach()
            return False
        for reader in self._readers:
            reader.forget()
        with self._lock:
            self._cp = cp
        self._last_alive = time.monotonic()
        log.info("OSDP bus %s open at %s baud with %s readers", self.url, self.baud, len(self._readers))
        return True

    def _pd_info(self, reader: _Reader) -> dict:
        # Not libosdp's EnforceSecure: with it the control panel never falls back to SCBK-D, so a reader in install
        # mode would never get its key. The bus enforces instead (``_Reader.usable``, ``disable_due``).
        flags = [osdp.LibFlag.EnableNotification]
        return osdp.PDInfo(reader.spec.address, self._channel, scbk=reader.spec.scbk, flags=flags).get()

    def _close_line(self) -> None:
        with self._lock:
            self._cp = None
        for reader in self._readers:
            reader.forget()
            self._report_link(reader)
        self._channel.detach()  # last: closing a socket:// port takes pyserial 0.3 s

    def _tick(self) -> None:
        with self._lock:
            self._cp.refresh()
        if self._channel.lost:
            self._line_lost()
            return
        self._after_refresh(time.monotonic())
        if self._cp is not None:
            self._channel.pump(TICK_SECONDS)
            if self._channel.lost:
                self._line_lost()

    def _line_lost(self) -> None:
        self.counters["line_lost"] += 1
        self._close_line()

    def _after_refresh(self, now: float) -> None:
        """What cannot be done inside libosdp's callbacks: reconcile, retry, disable, read identities."""
        with self._lock:
            cp = self._cp
            online_mask, secure_mask = cp.status(), cp.sc_status()
            for reader in self._readers:
                self._reconcile(reader, online_mask, secure_mask)
                self._carry_out(cp, reader, now)
        if any(reader.online for reader in self._readers):
            self._last_alive = now
        elif now - self._last_alive > SILENT_LINE_SECONDS:
            self.counters["line_silent_reopened"] += 1
            log.info("OSDP bus %s: no reader for %s s; reopening the line", self.url, SILENT_LINE_SECONDS)
            self._close_line()

    def _reconcile(self, reader: _Reader, online_mask: int, secure_mask: int) -> None:
        """libosdp restarts a reader after some errors without a notification; its masks still tell."""
        bit = 1 << reader.index
        if reader.secure and not secure_mask & bit:
            reader.secure = False
        if reader.online and not online_mask & bit:
            reader.online = reader.secure = False
        if reader.online and not reader.usable and reader.retry_at is None and not reader.disable_due:
            # The secure channel was lost while libosdp keeps the reader online in clear (it would try again only
            # after ten minutes): take it off the line and try it afresh.
            self._secure_failed(reader)
            reader.disable_due = True
        self._report_link(reader)

    def _carry_out(self, cp, reader: _Reader, now: float) -> None:
        index = reader.index
        if reader.disable_due:
            reader.disable_due = False
            cp.disable_pd(index)
            self._schedule_retry(reader, now)
        if reader.retry_at is not None and now >= reader.retry_at:
            # Disabled and enabled again, libosdp starts the reader from the beginning at its next turn.
            if cp.is_pd_enabled(index):
                cp.disable_pd(index)
            else:
                cp.enable_pd(index)
                reader.retry_at = None
        if reader.identity_due and reader.reported[0]:
            reader.identity_due = False
            self._emit(self._identity(cp, reader))

    def _schedule_retry(self, reader: _Reader, now: float) -> None:
        if reader.retry_at is None:
            reader.retry_at = now + reader.backoff.next()

    def _identity(self, cp, reader: _Reader) -> Identity:
        pd_id = cp.get_pd_id(reader.index)
        capabilities = {}
        for name, code in CAPABILITIES.items():
            level, items = cp.check_capability(reader.index, code)
            if level or items:
                capabilities[name] = (level, items)
        firmware = pd_id["firmware_version"] & 0xFFFFFF
        return Identity(
            address=reader.spec.address,
            vendor_code=pd_id["vendor_code"] & 0xFFFFFF,
            model=pd_id["model"],
            serial_number=pd_id["serial_number"] & 0xFFFFFFFF,
            firmware=f"{firmware >> 16}.{(firmware >> 8) & 0xFF}.{firmware & 0xFF}",
            capabilities=capabilities,
        )

    # --- what libosdp reports (called inside refresh(), on the bus thread)

    def _libosdp_event(self, index: int, event: dict) -> int:
        try:
            reader = self._readers[index]
            if event["event"] == osdp.Event.Notification:
                self._notification(reader, event["type"], event["arg0"], event["arg1"])
            elif not reader.usable:
                self.counters["events_insecure_dropped"] += 1
            else:
                translated = self._translate(reader.spec.address, event)
                if translated is not None:
                    self._emit(translated)
        except Exception:  # an exception must not reach libosdp's C code
            self.counters["events_malformed"] += 1
            log.warning("OSDP bus %s: cannot read libosdp's event %r", self.url, event, exc_info=True)
        return 0

    def _notification(self, reader: _Reader, kind: int, arg0: int, arg1: int) -> None:
        if kind == osdp.EventNotification.SecureChannelStatus:
            self._secure_channel(reader, active=bool(arg0), default_key=bool(arg1))
        elif kind == osdp.EventNotification.PeripheralDeviceStatus:
            self._presence(reader, online=bool(arg0))
        elif kind == osdp.EventNotification.Command and not arg1:
            self.counters["commands_failed"] += 1

    def _secure_channel(self, reader: _Reader, active: bool, default_key: bool) -> None:
        address = reader.spec.address
        if active and default_key:
            # Install mode: up on SCBK-D. libosdp sends the reader's SCBK next, then sets the channel up on it.
            reader.default_key_session, reader.secure = True, False
        elif active:
            reader.secure = True
            if reader.default_key_session:
                reader.default_key_session = False
                log.info("OSDP reader %s on %s took its SCBK", address, self.url)
                self._emit(KeySet(address))
        else:
            reader.secure = False
            if reader.default_key_session and default_key:
                reader.default_key_session = False
                self.counters["keyset_refused"] += 1
                self._secure_failed(reader)
        self._report_link(reader)

    def _presence(self, reader: _Reader, online: bool) -> None:
        if online:
            reader.online = True
            if not reader.secure:
                self._secure_failed(reader)
                if reader.spec.enforce_secure:
                    reader.disable_due = True
            if reader.usable:
                reader.backoff.reset()
                self._line_backoff.reset()
        else:
            reader.online = reader.secure = reader.default_key_session = False
            self._schedule_retry(reader, time.monotonic())
        self._report_link(reader)

    def _secure_failed(self, reader: _Reader) -> None:
        self.counters["secure_channel_failed"] += 1
        log.warning("OSDP reader %s on %s: no secure channel", reader.spec.address, self.url)
        self._emit(SecureFailed(reader.spec.address))

    def _report_link(self, reader: _Reader) -> None:
        usable = reader.usable
        state = (usable, usable and reader.secure)
        if state != reader.reported:
            reader.reported = state
            reader.identity_due = usable
            self._emit(Link(reader.spec.address, *state))

    def _translate(self, address: int, event: dict) -> BusEvent | None:
        kind = event["event"]
        if kind == osdp.Event.CardRead:
            return self._card(address, event)
        if kind == osdp.Event.KeyPress:
            return self._keys(address, event["data"])
        if kind == osdp.Event.Status:
            return self._status(address, event["type"], event["report"])
        self.counters["events_ignored"] += 1
        return None

    def _card(self, address: int, event: dict) -> CardRead | None:
        card_format = CARD_FORMATS.get(event["format"])
        if card_format is None:
            self.counters["events_malformed"] += 1
            return None
        data = event["data"]
        bits = event["length"] if "length" in event else 8 * len(data)
        return CardRead(address, event["reader_no"], card_format, bits, data)

    def _keys(self, address: int, data: bytes) -> Keypad | None:
        keys = "".join(KEYS.get(byte, "") for byte in data)
        if len(keys) != len(data):
            self.counters["keys_unknown"] += len(data) - len(keys)
        return Keypad(address, keys) if keys else None

    def _status(self, address: int, kind: int, report: bytes) -> BusEvent | None:
        if kind == osdp.StatusReportType.Input:
            return Inputs(address, tuple(bool(state) for state in report))
        if kind == osdp.StatusReportType.Output:
            return Outputs(address, tuple(bool(state) for state in report))
        if kind == osdp.StatusReportType.Local and len(report) == 2:
            return Local(address, tamper=bool(report[0]), power=bool(report[1]))
        self.counters["events_ignored"] += 1
        return None

    # --- to the event loop

    def _emit(self, event: BusEvent) -> None:
        try:
            self._loop.call_soon_threadsafe(self._deliver, event)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.counters["events_undelivered"] += 1

    def _deliver(self, event: BusEvent) -> None:
        try:
            self._on_event(event)
        except Exception:
            self.counters["handler_errors"] += 1
            log.exception("OSDP bus %s: the handler failed on %r", self.url, event)


def _tenths(milliseconds: float, name: str) -> int:
    """Milliseconds as OSDP's tenths of a second, rounded up; the binding carries one byte, so 25.5 s at most."""
    tenths = math.ceil(milliseconds / 100)
    if not 1 <= tenths <= MAX_TENTHS:
        raise ValueError(f"{name} must be 1..{MAX_TENTHS * 100} ms, not {milliseconds}")
    return tenths
