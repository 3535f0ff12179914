"""The serial protocol of Space's USB encoder (docs/usb-encoder.md): frames, messages and a stream decoder.

Pure and synchronous, and free of Django: the local bridge (devices/localbridge.py,
on an operator's desk PC) and the simulated encoder (simulation/usb_encoder.py)
share every byte of it. A frame is

    STX 0x02 | LEN u16 | SEQ u8 | CMD u8 | PAYLOAD | CRC u16 | ETX 0x03

with LEN the length of SEQ + CMD + PAYLOAD and CRC the CRC-16/CCITT-FALSE of
LEN, SEQ, CMD and PAYLOAD, all big-endian. Binary, not hex text: a 4 KiB card
file crosses a 115200 baud line in 0.36 s instead of 0.72 s. The length, the ETX
at its end and the CRC together make a false start (an 0x02 inside a payload)
all but impossible to take for a frame; the decoder then drops one byte and
looks for the next STX.
"""

import binascii
import struct
from dataclasses import dataclass, field

STX = 0x02
ETX = 0x03
HEAD = struct.Struct(">BHBB")  # STX, LEN, SEQ, CMD
TAIL = struct.Struct(">HB")  # CRC, ETX
OVERHEAD = HEAD.size + TAIL.size  # 8
MAX_CARD_DATA = 4096
MAX_UID = 16
MAX_TEXT = 200
# The longest body: SEQ, CMD and a WRITE (timeout, uid length, uid, card file).
MAX_BODY = 2 + 3 + MAX_UID + MAX_CARD_DATA
MAX_TIMEOUT_S = 600

# Commands, host to encoder.
IDENTIFY = 0x01
WRITE = 0x02
READ = 0x03
CANCEL = 0x04
# Answers, encoder to host; each carries the SEQ of the command it answers.
IDENT = 0x81
PROGRESS = 0x82
OK = 0x83
ERROR = 0x84

STAGES = {1: "waiting_card", 2: "writing", 3: "reading"}
STAGE_CODES = {name: code for code, name in STAGES.items()}
ERRORS = {
    1: "no_card",
    2: "wrong_card_type",
    3: "write_failed",
    4: "checksum",
    5: "busy",
    6: "cancelled",
    7: "wrong_card",
    8: "bad_command",
}
ERROR_CODES = {name: code for code, name in ERRORS.items()}


class Malformed(ValueError):
    """A frame whose body is not a valid message; ``reason`` names the counter to raise."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identify:
    pass


@dataclass(frozen=True, slots=True)
class Write:
    """Wait up to ``timeout_s`` for a card (the one of ``uid`` when given) and write ``data`` on it."""

    data: bytes
    timeout_s: int
    uid: bytes = b""


@dataclass(frozen=True, slots=True)
class Read:
    timeout_s: int


@dataclass(frozen=True, slots=True)
class Cancel:
    pass


@dataclass(frozen=True, slots=True)
class Ident:
    text: str


@dataclass(frozen=True, slots=True)
class Progress:
    stage: str
    percent: int = 0


@dataclass(frozen=True, slots=True)
class Ok:
    uid: bytes
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class Error:
    error: str
    detail: str = ""


Message = Identify | Write | Read | Cancel | Ident | Progress | Ok | Error


def _text(value: str) -> bytes:
    # Cut to MAX_TEXT bytes on a character boundary, so the text still decodes.
    return value.encode()[:MAX_TEXT].decode(errors="ignore").encode()


def _payload(message: Message) -> tuple[int, bytes]:
    match message:
        case Identify():
            return IDENTIFY, b""
        case Write(data, timeout_s, uid):
            return WRITE, struct.pack(">HB", timeout_s, len(uid)) + uid + data
        case Read(timeout_s):
            return READ, struct.pack(">H", timeout_s)
        case Cancel():
            return CANCEL, b""
        case Ident(text):
            return IDENT, _text(text)
        case Progress(stage, percent):
            return PROGRESS, bytes((STAGE_CODES[stage], percent))
        case Ok(uid, data):
            return OK, bytes((len(uid),)) + uid + data
        case Error(error, detail):
            return ERROR, bytes((ERROR_CODES[error],)) + _text(detail)
    raise TypeError(f"not a USB encoder message: {message!r}")


def _check(message: Message) -> None:
    if isinstance(message, Write | Read) and not 1 <= message.timeout_s <= MAX_TIMEOUT_S:
        raise ValueError(f"timeout_s is 1 to {MAX_TIMEOUT_S}")
    uid = getattr(message, "uid", b"")
    if len(uid) > MAX_UID:
        raise ValueError(f"a UID is at most {MAX_UID} bytes")
    if len(getattr(message, "data", b"")) > MAX_CARD_DATA:
        raise ValueError(f"card data is at most {MAX_CARD_DATA} bytes")
    if isinstance(message, Progress) and not 0 <= message.percent <= 100:
        raise ValueError("percent is 0 to 100")


def encode(seq: int, message: Message) -> bytes:
    """The frame carrying ``message`` as number ``seq`` (0-255); ValueError for values out of range."""
    _check(message)
    cmd, payload = _payload(message)
    length = 2 + len(payload)
    body = struct.pack(">HBB", length, seq, cmd) + payload
    return bytes((STX,)) + body + TAIL.pack(crc16(body), ETX)


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF), as binascii computes it."""
    return binascii.crc_hqx(data, 0xFFFF)


def parse(cmd: int, payload: bytes) -> Message:
    """The message of a frame's CMD and PAYLOAD; Malformed when they are not one."""
    try:
        message = _PARSERS[cmd](payload)
    except KeyError:
        raise Malformed("unknown_command") from None
    except (IndexError, struct.error, UnicodeDecodeError):
        raise Malformed("bad_payload") from None
    try:
        _check(message)
    except ValueError:
        raise Malformed("bad_payload") from None
    return message


def _empty(kind):
    def parse_empty(payload: bytes) -> Message:
        if payload:
            raise IndexError
        return kind()

    return parse_empty


def _parse_write(payload: bytes) -> Write:
    timeout_s, uid_length = struct.unpack_from(">HB", payload)
    uid = payload[3 : 3 + uid_length]
    if len(uid) != uid_length:
        raise IndexError
    return Write(bytes(payload[3 + uid_length :]), timeout_s, bytes(uid))


def _parse_read(payload: bytes) -> Read:
    if len(payload) != 2:
        raise IndexError
    return Read(struct.unpack(">H", payload)[0])


def _parse_progress(payload: bytes) -> Progress:
    if len(payload) != 2:
        raise IndexError
    return Progress(STAGES[payload[0]], payload[1])


def _parse_ok(payload: bytes) -> Ok:
    uid = payload[1 : 1 + payload[0]]
    if len(uid) != payload[0]:
        raise IndexError
    return Ok(bytes(uid), bytes(payload[1 + payload[0] :]))


def _parse_error(payload: bytes) -> Error:
    return Error(ERRORS[payload[0]], bytes(payload[1:]).decode())


_PARSERS = {
    IDENTIFY: _empty(Identify),
    WRITE: _parse_write,
    READ: _parse_read,
    CANCEL: _empty(Cancel),
    IDENT: lambda payload: Ident(bytes(payload).decode()),
    PROGRESS: _parse_progress,
    OK: _parse_ok,
    ERROR: _parse_error,
}


# --- the stream decoder -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """A well-framed message (its CRC checked), or, with ``message`` None, a frame whose CRC failed."""

    seq: int
    message: Message | None
    dropped: str = ""


@dataclass
class Decoder:
    """Cuts a byte stream into frames; what is not a frame is dropped and counted in ``counters``.

    ``feed`` returns what the new bytes completed: valid frames, and frames
    that were well framed (length and ETX agree) but failed their CRC or did not
    parse, with ``message`` None and ``dropped`` naming why (the receiver may
    answer ``checksum`` to the SEQ it carries). Call ``idle`` when the line has
    been quiet a while: a partial frame then is a false start or a lost tail, and
    the decoder looks past it.
    """

    counters: dict[str, int] = field(default_factory=dict)
    buffer: bytearray = field(default_factory=bytearray)

    def count(self, reason: str) -> None:
        self.counters[reason] = self.counters.get(reason, 0) + 1

    def feed(self, data: bytes) -> list[Frame]:
        self.buffer += data
        frames = []
        while (frame := self._next()) is not None:
            frames.append(frame)
        return frames

    def idle(self) -> list[Frame]:
        """The line went quiet: give up on a partial frame (counted), and decode what follows its STX."""
        if not self.buffer:
            return []
        self.count("incomplete")
        del self.buffer[0]
        return self.feed(b"")

    def _skip_to_stx(self) -> None:
        start = self.buffer.find(STX)
        if start == -1:
            start = len(self.buffer)
        if start:
            self.count("noise")
            del self.buffer[:start]

    def _next(self) -> Frame | None:
        while True:
            self._skip_to_stx()
            if len(self.buffer) < 3:
                return None
            length = int.from_bytes(self.buffer[1:3], "big")
            if not 2 <= length <= MAX_BODY:
                self.count("bad_length")
                del self.buffer[0]
                continue
            end = HEAD.size - 2 + length  # index of the CRC
            if len(self.buffer) < end + TAIL.size:
                return None
            if self.buffer[end + 2] != ETX:
                self.count("bad_end")
                del self.buffer[0]
                continue
            return self._take(end)

    def _take(self, end: int) -> Frame:
        body = bytes(self.buffer[1:end])
        (crc,) = struct.unpack_from(">H", self.buffer, end)
        del self.buffer[: end + TAIL.size]
        seq, cmd = body[2], body[3]
        if crc != crc16(body):
            self.count("checksum")
            return Frame(seq, None, "checksum")
        try:
            return Frame(seq, parse(cmd, body[4:]))
        except Malformed as error:
            self.count(error.reason)
            return Frame(seq, None, error.reason)
