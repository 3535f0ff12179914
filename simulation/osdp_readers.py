"""Simulated OSDP readers on a simulated RS-485 line (docs/osdp.md), for tests and demos.

Each ``SimulatedReader`` is libosdp's own peripheral device (the PD side of the
standard, written independently of any control panel), on a thread of its own,
with a reader's capabilities: outputs, inputs, an LED, a buzzer, a display and
a card reader. It answers every command a control panel sends and records it
with the time it arrived (``commands``, ``wait_for``); a test makes it read a
card, take keys, change inputs or raise its tamper and power alarms.

A ``Line`` is the wire they share. RS-485 is a bus: whatever the control panel
sends reaches every reader (each keeps only what is addressed to it), whatever
a reader sends reaches the control panel. ``PtyLine`` is a pseudo-terminal: the
control panel opens ``url`` (``/dev/pts/N``) as if it were a USB adapter.
``TcpLine`` is a serial-over-IP converter on 127.0.0.1: the control panel
connects to ``url`` (``socket://127.0.0.1:PORT``). ``inject`` puts noise on the
line between frames, ``garble`` inside them (a byte flipped);
``disconnect``/``reconnect`` cut and restore it; ``stop`` removes it.
Bytes cross instantly, unless the line is given a ``baud`` rate: then each chunk
takes its time on the wire (ten bits a byte). No collisions. Free of Django.
"""

import collections
import logging
import os
import queue
import random
import select
import socket
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass

import osdp
import osdp_sys

log = logging.getLogger(__name__)

TICK_SECONDS = 0.005  # bytes wake a reader at once; this is the precision of its output timers
RX_CHUNKS = 64  # kept for a reader that does not read (it is off): the newest
DEFAULT_OUTPUTS, DEFAULT_INPUTS = 2, 2  # a door: relay and spare; contact and exit button
VENDOR_CODE, MODEL, FIRMWARE = 0x5A0001, 1, 0x010200  # firmware 1.2.0
COMMAND_KINDS = {
    osdp.Command.Output: "output",
    osdp.Command.LED: "led",
    osdp.Command.Buzzer: "buzzer",
    osdp.Command.Text: "text",
    osdp.Command.Keyset: "keyset",
    osdp.Command.Comset: "comset",
    osdp.Command.Manufacturer: "manufacturer",
    osdp.Command.FileTransfer: "file_transfer",
    osdp.Command.Status: "status",
}
CARD_FORMATS = {"wiegand": osdp.CardFormat.Wiegand, "raw": osdp.CardFormat.Unspecified, "ascii": osdp.CardFormat.ASCII}
# What a reader's keypad sends: ASCII digits, '*' as DEL and '#' as CR.
KEY_BYTES = {digit: ord(digit) for digit in "0123456789"} | {"*": 0x7F, "#": 0x0D}
# osdp_OUT control codes: permanent off/on (1, 2: a timed state stops; 3, 4: it runs out first), timed on/off (5, 6).
PERMANENT_OFF, PERMANENT_ON, TIMED_ON, TIMED_OFF = {1, 3}, {2, 4}, 5, 6


@dataclass(frozen=True, slots=True)
class ReceivedCommand:
    """A command the reader took: its kind ("output", "led", "buzzer", "text", "keyset"...) and libosdp's fields."""

    at: float  # time.monotonic() when libosdp handed it over
    kind: str
    fields: dict


class ReaderChannel(osdp.Channel):
    """One reader's tap on a line: the line feeds it what the control panel sent; what it writes goes back.

    Bytes are kept in the chunks they crossed the line in, and libosdp gets one
    chunk per read: on a wire, frames are apart in time and a reader takes
    them one by one. (libosdp's PD, handed a frame for another reader and its
    own in one read, loses its own.) ``arrived`` is notified when bytes come; a
    line passes one condition to all its taps, so that one thread can drive
    every reader on it.
    """

    def __init__(self, send: Callable[[bytes], None], arrived: threading.Condition | None = None):
        super().__init__()
        self._send = send
        self._chunks: collections.deque[bytes] = collections.deque(maxlen=RX_CHUNKS)
        self.arrived = arrived or threading.Condition()

    def feed(self, data: bytes) -> None:
        with self.arrived:
            self._chunks.append(bytes(data))  # a reader that is off does not read: only the newest are kept
            self.arrived.notify_all()

    @property
    def readable(self) -> bool:
        return bool(self._chunks)

    def read(self, max_bytes: int) -> bytes:
        with self.arrived:
            if not self._chunks:
                return b""
            chunk = self._chunks.popleft()
            if len(chunk) > max_bytes:
                self._chunks.appendleft(chunk[max_bytes:])
                chunk = chunk[:max_bytes]
            return chunk

    def write(self, buf: bytes) -> int:
        self._send(bytes(buf))
        return len(buf)

    def flush(self) -> None:
        with self.arrived:
            self._chunks.clear()


class SimulatedReader:
    """An OSDP reader: libosdp's peripheral device at ``address`` on ``channel``.

    ``scbk`` is the key it holds (None: a new reader, in install mode, which
    takes the default key SCBK-D until a control panel sets one with KEYSET).
    A key set by KEYSET replaces ``scbk`` and ends install mode, and survives
    ``stop()`` and ``start()`` as it would a power cycle.
    """

    def __init__(
        self,
        address: int,
        scbk: bytes | None,
        install_mode: bool,
        channel: osdp.Channel,
        *,
        outputs: int = DEFAULT_OUTPUTS,
        inputs: int = DEFAULT_INPUTS,
        driven: bool = False,
    ):
        if scbk is None and not install_mode:
            raise ValueError("a reader without an SCBK is a reader in install mode")
        self.address = address
        self.scbk = scbk
        self.install_mode = install_mode
        self.channel = channel
        # Driven: its line calls ``step()`` (one thread for every reader on a line; a thread each would queue for
        # the GIL and answer late). Otherwise the reader runs on a thread of its own.
        self.driven = driven
        self.serial_number = 0x10000 + address
        self.commands: list[ReceivedCommand] = []
        self._recorded = threading.Condition()  # guards commands
        self._lock = threading.Lock()  # libosdp's PD, and the state below
        self._permanent = [False] * outputs
        self._timed: dict[int, tuple[float, bool]] = {}  # output -> (until, state)
        self._inputs = (False,) * inputs
        self._tamper = self._power_failure = False
        self._pending: list[dict] = []  # events raised inside libosdp's callback, submitted after its refresh
        self._pd = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # --- power

    def start(self) -> "SimulatedReader":
        """Power on: a fresh libosdp PD with the key the reader holds now."""
        if self._pd is not None:
            return self
        flags = [osdp.LibFlag.InstallMode] if self.install_mode else []
        identity = osdp.PdId(1, MODEL, VENDOR_CODE, self.serial_number, FIRMWARE)
        info = osdp.PDInfo(self.address, self.channel, scbk=self.scbk, flags=flags, id=identity)
        pd = osdp_sys.PeripheralDevice(info.get(), capabilities=self._capabilities().get())
        pd.set_command_callback(self._command)
        self.channel.flush()  # what the line carried while it was off is not for it
        with self._lock:
            self._pd = pd
        if not self.driven:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name=f"osdp-reader {self.address}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Power off: the reader falls silent (and forgets everything but its key)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            thread.join(5)
        with self._lock:
            self._pd = None
            self._timed.clear()
            self._pending.clear()

    @property
    def running(self) -> bool:
        return self._pd is not None

    def step(self, now: float) -> None:
        """One turn of libosdp's PD: take what arrived and answer, run out timed outputs, send what is pending."""
        with self._lock:
            if self._pd is None:
                return
            self._pd.refresh()
            self._expire(now)
            pending, self._pending = self._pending, []
            for event in pending:
                self._pd.submit_event(event)

    def _capabilities(self) -> osdp.PDCapabilities:
        entries = [
            (osdp.Capability.LEDControl, 1, 1),
            (osdp.Capability.AudibleControl, 1, 1),
            (osdp.Capability.TextOutput, 1, 1),
            (osdp.Capability.CardDataFormat, 1, 1),
        ]
        if self._permanent:
            entries.append((osdp.Capability.OutputControl, 1, len(self._permanent)))
        if self._inputs:
            entries.append((osdp.Capability.ContactStatusMonitoring, 1, len(self._inputs)))
        return osdp.PDCapabilities(entries)

    def _run(self) -> None:
        arrived = getattr(self.channel, "arrived", None)
        while not self._stopping.is_set():
            self.step(time.monotonic())
            if arrived is not None:
                with arrived:
                    arrived.wait_for(lambda: self.channel.readable, TICK_SECONDS)
            else:
                time.sleep(TICK_SECONDS)

    # --- the world at the reader

    def present_card(self, data: bytes, bits: int, format: str = "wiegand") -> bool:
        """A card read: ``bits`` bits of ``data``, left-aligned. libosdp's PD drops "ascii" (osdp_FMT is deprecated)."""
        if format not in CARD_FORMATS:
            raise ValueError(f"unknown card format {format!r}")
        if format != "ascii" and len(data) != (bits + 7) // 8:
            raise ValueError(f"{bits} bits take {(bits + 7) // 8} bytes, not {len(data)}")
        event = {"event": osdp.Event.CardRead, "reader_no": 0, "format": CARD_FORMATS[format], "direction": 0}
        event |= {"length": bits if format != "ascii" else len(data), "data": bytes(data)}
        return self._submit(event)

    def press(self, keys: str) -> bool:
        """Keys on the keypad: digits, '*' and '#'."""
        try:
            data = bytes(KEY_BYTES[key] for key in keys)
        except KeyError as exc:
            raise ValueError(f"no key {exc.args[0]!r} on the keypad") from None
        return self._submit({"event": osdp.Event.KeyPress, "reader_no": 0, "data": data})

    def set_inputs(self, states) -> bool:
        states = tuple(bool(state) for state in states)
        if len(states) != len(self._inputs):
            raise ValueError(f"the reader has {len(self._inputs)} inputs, not {len(states)}")
        self._inputs = states
        return self._submit({"event": osdp.Event.Status, "type": osdp.StatusReportType.Input, "report": bytes(states)})

    def set_tamper(self, tampered: bool) -> bool:
        self._tamper = bool(tampered)
        return self._submit(self._local_status())

    def set_power(self, failure: bool) -> bool:
        """``True``: the reader reports a power failure (OSDP's local status); ``False``: power is back."""
        self._power_failure = bool(failure)
        return self._submit(self._local_status())

    @property
    def outputs(self) -> tuple[bool, ...]:
        """The outputs' states now: a timed state while it lasts, else the permanent one."""
        with self._lock:
            return self._output_states()

    def _local_status(self) -> dict:
        report = bytes([self._tamper, self._power_failure])
        return {"event": osdp.Event.Status, "type": osdp.StatusReportType.Local, "report": report}

    def _submit(self, event: dict) -> bool:
        with self._lock:
            if self._pd is None:
                return False
            return bool(self._pd.submit_event(event))

    # --- commands from the control panel (inside libosdp's refresh, on the reader's thread)

    def _command(self, command: dict) -> tuple[int, None]:
        try:
            kind = COMMAND_KINDS.get(command.get("command"), "other")
            fields = {name: value for name, value in command.items() if name != "command"}
            if kind == "keyset":
                self.scbk, self.install_mode = bytes(fields["data"]), False
            elif kind == "output":
                self._apply_output(fields)
            with self._recorded:
                self.commands.append(ReceivedCommand(time.monotonic(), kind, fields))
                self._recorded.notify_all()
        except Exception:  # an exception must not reach libosdp's C code: refuse the command instead
            log.exception("simulated reader %s: cannot take %r", self.address, command)
            return -1, None
        return 0, None

    def _apply_output(self, fields: dict) -> None:
        number, code, tenths = fields["output_no"], fields["control_code"], fields["timer_count"]
        if not 0 <= number < len(self._permanent):
            return
        if code in PERMANENT_OFF or code in PERMANENT_ON:
            self._permanent[number] = code in PERMANENT_ON
            if code in (1, 2):
                self._timed.pop(number, None)
        elif code in (TIMED_ON, TIMED_OFF):
            self._timed[number] = (time.monotonic() + tenths / 10, code == TIMED_ON)
        self._pending.append(self._output_status())

    def _expire(self, now: float) -> None:
        ended = [number for number, (until, _) in self._timed.items() if until <= now]
        for number in ended:
            del self._timed[number]
        if ended:
            self._pending.append(self._output_status())

    def _output_states(self) -> tuple[bool, ...]:
        return tuple(
            self._timed[number][1] if number in self._timed else state for number, state in enumerate(self._permanent)
        )

    def _output_status(self) -> dict:
        report = bytes(self._output_states())
        return {"event": osdp.Event.Status, "type": osdp.StatusReportType.Output, "report": report}

    # --- what the reader received

    def received(self, kind: str) -> list[ReceivedCommand]:
        with self._recorded:
            return [command for command in self.commands if command.kind == kind]

    def wait_for(self, predicate: Callable[[ReceivedCommand], bool], timeout: float = 10.0) -> ReceivedCommand:
        """The first recorded command ``predicate`` accepts, waiting up to ``timeout`` s for it to arrive."""
        deadline = time.monotonic() + timeout
        with self._recorded:
            while True:
                for command in self.commands:
                    if predicate(command):
                        return command
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"reader {self.address} received no such command within {timeout} s")
                self._recorded.wait(remaining)


class Line:
    """A simulated RS-485 line and the readers on it; ``PtyLine`` and ``TcpLine`` connect it to a control panel."""

    url: str

    def __init__(self, baud: int | None = None):
        self.baud = baud
        self.readers: list[SimulatedReader] = []
        self.counters: collections.Counter = collections.Counter()
        self._taps: list[ReaderChannel] = []
        self._connected = True
        self._send_lock = threading.Lock()
        self._garble_lock = threading.Lock()
        self._garbled = 0
        self._noise = random.Random(0)
        self._stopping = threading.Event()
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None
        self._arrived = threading.Condition()  # shared by the taps: bytes for the readers
        self._driver = threading.Thread(target=self._drive, name="osdp-line-readers", daemon=True)
        self._driver.start()

    def channel(self) -> ReaderChannel:
        tap = ReaderChannel(self._from_reader, self._arrived)
        self._taps.append(tap)
        return tap

    def add_reader(self, address: int, scbk: bytes | None = None, install_mode: bool | None = None, **options):
        """A reader on the line, powered on. Without ``scbk`` it is a new reader, in install mode."""
        if install_mode is None:
            install_mode = scbk is None
        reader = SimulatedReader(address, scbk, install_mode, self.channel(), driven=True, **options)
        self.readers.append(reader)
        return reader.start()

    def _drive(self) -> None:
        """Every reader of the line takes its turn whenever bytes arrive, and at least every tick."""
        while not self._stopping.is_set():
            with self._arrived:
                self._arrived.wait_for(self._bytes_for_a_reader, TICK_SECONDS)
            now = time.monotonic()
            for reader in list(self.readers):
                reader.step(now)

    def _bytes_for_a_reader(self) -> bool:
        return any(reader.running and reader.channel.readable for reader in self.readers)

    def inject(self, data: bytes) -> None:
        """Noise: ``data`` reaches the control panel and every reader, as if it were on the wire."""
        self._send(data)
        self._to_readers(data)

    def garble(self, transfers: int, seed: int = 0) -> None:
        """Noise inside frames: the next ``transfers`` chunks crossing the line, either way, get one byte flipped."""
        with self._garble_lock:
            self._garbled += transfers
            self._noise = random.Random(seed)

    def disconnect(self) -> None:
        """Cut the line: nothing passes either way until ``reconnect()``."""
        self._connected = False

    def reconnect(self) -> None:
        self._connected = True

    def stop(self) -> None:
        """Remove the line: its readers are powered off and its port is gone for good. Stopping twice is harmless."""
        if self._stopping.is_set():
            return
        for reader in self.readers:
            reader.stop()
        self._stopping.set()
        os.write(self._wake_w, b"x")
        self._driver.join(5)
        if self._thread is not None:
            self._thread.join(5)
        self._close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _start(self, name: str) -> None:
        self._thread = threading.Thread(target=self._pump, name=name, daemon=True)
        self._thread.start()

    def _call(self, function: Callable[[], None]) -> None:
        """Run ``function`` on the line's thread (which alone touches its descriptors) and wait for it."""
        done = threading.Event()
        self._calls.put((function, done))
        os.write(self._wake_w, b"x")
        done.wait(5)

    def _run_calls(self) -> None:
        os.read(self._wake_r, 512)
        while True:
            try:
                function, done = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                function()
            finally:
                done.set()

    def _to_readers(self, data: bytes) -> None:
        if not self._connected:
            self.counters["bytes_cut"] += len(data)
            return
        self._on_the_wire(data)
        data = self._maybe_garble(data)
        for tap in self._taps:
            tap.feed(data)

    def _from_reader(self, data: bytes) -> None:
        if not self._connected:
            self.counters["bytes_cut"] += len(data)
            return
        self._on_the_wire(data)
        self._send(self._maybe_garble(data))

    def _on_the_wire(self, data: bytes) -> None:
        if self.baud:
            time.sleep(len(data) * 10 / self.baud)

    def _maybe_garble(self, data: bytes) -> bytes:
        with self._garble_lock:
            if self._garbled <= 0 or not data:
                return data
            self._garbled -= 1
            self.counters["chunks_garbled"] += 1
            position, flip = self._noise.randrange(len(data)), self._noise.randrange(1, 256)
        return data[:position] + bytes([data[position] ^ flip]) + data[position + 1 :]

    def _send(self, data: bytes) -> None:
        with self._send_lock:
            try:
                self._send_to_panel(data)
            except OSError:  # nobody at the other end, or a full buffer: bytes on a wire nobody listens to
                self.counters["bytes_lost"] += len(data)

    def _pump(self) -> None:
        raise NotImplementedError

    def _send_to_panel(self, data: bytes) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


class PtyLine(Line):
    """The line behind a pseudo-terminal: the control panel opens ``url``, a /dev/pts path, as its serial port."""

    def __init__(self, baud: int | None = None):
        super().__init__(baud)
        self._master, self._slave = os.openpty()
        # Raw: every byte passes as it is, with no echo and no line discipline, as on a USB adapter. Holding the
        # slave open keeps the master readable while the control panel has it closed.
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.url = self.path = os.ttyname(self._slave)
        self._start(f"osdp-pty-line {self.path}")

    def _pump(self) -> None:
        while not self._stopping.is_set():
            ready, _, _ = select.select([self._master, self._wake_r], [], [], 1.0)
            if self._wake_r in ready:
                self._run_calls()
            if self._master in ready:
                try:
                    data = os.read(self._master, 4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    time.sleep(0.05)  # the slave side is closed
                    continue
                self._to_readers(data)

    def _send_to_panel(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._master, view) :]

    def _close(self) -> None:
        os.close(self._master)
        os.close(self._slave)


class TcpLine(Line):
    """The line behind a serial-over-IP converter on 127.0.0.1: the control panel connects to ``url``.

    Like a converter it serves one connection at a time (a new one replaces the
    old). ``disconnect()`` is the converter going down: the connection closes and
    new ones are refused until ``reconnect()`` listens again on the same port.
    """

    def __init__(self, port: int = 0, baud: int | None = None):
        super().__init__(baud)
        self._server: socket.socket | None = None
        self._client: socket.socket | None = None
        self.port = port
        self._listen()
        self.url = f"socket://127.0.0.1:{self.port}"
        self._start(f"osdp-tcp-line {self.port}")

    def disconnect(self) -> None:
        self._call(self._go_down)

    def reconnect(self) -> None:
        self._call(self._listen)

    def _listen(self) -> None:
        if self._server is None:
            self._server = socket.create_server(("127.0.0.1", self.port))
            self.port = self._server.getsockname()[1]

    def _go_down(self) -> None:
        self._drop_client()
        if self._server is not None:
            self._server.close()
            self._server = None

    def _drop_client(self) -> None:
        with self._send_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _pump(self) -> None:
        while not self._stopping.is_set():
            waiting = [sock for sock in (self._wake_r, self._server, self._client) if sock is not None]
            ready, _, _ = select.select(waiting, [], [], 1.0)
            if self._wake_r in ready:
                self._run_calls()
                continue  # the sockets may have changed
            if self._server is not None and self._server in ready:
                self._accept()
            if self._client is not None and self._client in ready:
                self._receive()

    def _accept(self) -> None:
        client, _ = self._server.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._drop_client()
        with self._send_lock:
            self._client = client

    def _receive(self) -> None:
        try:
            data = self._client.recv(4096)
        except OSError:
            data = b""
        if data:
            self._to_readers(data)
        else:
            self._drop_client()

    def _send_to_panel(self, data: bytes) -> None:
        if self._client is None:
            raise ConnectionError("no control panel connected")
        self._client.sendall(data)

    def _close(self) -> None:
        self._go_down()
