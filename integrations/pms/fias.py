"""FIAS (Oracle Hospitality's Fidelio Interface Application Specification 2.20) records: the codec.

Pure: bytes in, :class:`Record` values out (and back); no sockets, no clock.
The project's reading of the protocol is docs/fias-in-space.md.

A record on the wire is ``STX data ETX [LRC]``. The data is the record type
(two characters) then ``|``-separated fields, each a two-character id followed
by its value: ``KR|WS3|KC1|RN2781|``. The LRC, when a peer sends one, is the XOR
of every byte after STX up to and including ETX.

Whether a peer sends LRCs cannot be read from one record alone, so the stream
decoder learns it (:class:`StreamDecoder`): the byte after a record's ETX

1. is STX, ACK, NAK or ENQ and not the record's LRC: the record had no LRC;
   the byte is read as itself;
2. is STX and the record's LRC: the byte after it decides: STX or a link byte
   (no record starts with one) shows it was the LRC, anything else that it
   opened a record;
3. is ACK, NAK or ENQ and the record's LRC: taken as the LRC, and read as the
   link byte too (harmless, and a real link byte is never lost);
4. else equals the record's LRC: the LRC, right;
5. else: the LRC, wrong: the record is refused (``lrc_errors``).

The first record's case fixes the peer's mode for the rest of the connection. From then
on, in LRC mode the byte after ETX is always the LRC (an LRC that happens to
equal a control byte is read right), and in no-LRC mode a record is delivered
at its ETX. Until the mode is known, a record whose ETX ends what has arrived
is held: :meth:`StreamDecoder.flush` (called by the transport after a short
wait with nothing more) delivers it as a record without LRC, and fixes the
no-LRC mode. In any mode, an STX followed by a link byte started no record:
the link byte is read as itself. docs/fias-in-space.md gives the reasons.
"""

import datetime as dt
from dataclasses import dataclass

STX, ETX, ENQ, ACK, NAK = 0x02, 0x03, 0x05, 0x06, 0x15
LINK_BYTES = frozenset((ACK, NAK, ENQ))
SEPARATOR = "|"
MAX_RECORD_BYTES = 4096  # data between STX and ETX; a longer record is refused without buffering it
# What Space may send: room for a 4 KiB card file in hex (KA $3, RT4). Peers reading Space's answers
# (the simulated PMS) accept this much.
MAX_SENT_BYTES = 10240
ENCODING = "utf-8"  # what Space writes; it reads UTF-8, or Latin-1 where the bytes are not UTF-8


class FiasError(ValueError):
    """Bytes or values that are not a FIAS record."""


def is_forbidden(byte: int) -> bool:
    """Bytes 0x00-0x1F and 0x7F never appear in a record's data."""
    return byte < 0x20 or byte == 0x7F


def lrc(data: bytes) -> int:
    """The XOR of ``data`` followed by ETX (the bytes after STX up to and including ETX), seed 0."""
    value = ETX
    for byte in data:
        value ^= byte
    return value


@dataclass(frozen=True, slots=True)
class Record:
    """One record: its type and its fields in the order they came (an id may repeat; :meth:`get` reads the first)."""

    type: str
    fields: tuple[tuple[str, str], ...] = ()

    @classmethod
    def make(cls, type_: str, *pairs: tuple[str, str], **named: str) -> "Record":
        """Pairs for ids that are not Python names (``G#``, ``$3``), keywords for the rest; empty values left out."""
        items = [*pairs, *named.items()]
        return cls(type_, tuple((key, str(value)) for key, value in items if value not in (None, "")))

    def get(self, field_id: str, default: str = "") -> str:
        for key, value in self.fields:
            if key == field_id:
                return value
        return default

    def __contains__(self, field_id: str) -> bool:
        return any(key == field_id for key, _ in self.fields)


def _check_id(text: str, what: str) -> None:
    if len(text) != 2 or not text.isascii() or not text.isprintable() or SEPARATOR in text:
        raise FiasError(f"{what} must be two printable ASCII characters, not {text!r}")


def encode_data(record: Record, max_bytes: int = MAX_SENT_BYTES) -> bytes:
    """The bytes between STX and ETX."""
    _check_id(record.type, "a record type")
    parts = [record.type]
    for key, value in record.fields:
        _check_id(key, "a field id")
        if SEPARATOR in value:
            raise FiasError(f"field {key}: a value cannot hold {SEPARATOR!r}")
        parts.append(key + value)
    data = (SEPARATOR.join(parts) + SEPARATOR).encode(ENCODING)
    if any(is_forbidden(byte) for byte in data):
        raise FiasError("a record cannot hold control characters")
    if len(data) > max_bytes:
        raise FiasError(f"a record is at most {max_bytes} bytes")
    return data


def encode(record: Record, *, with_lrc: bool = True, max_bytes: int = MAX_SENT_BYTES) -> bytes:
    """``STX data ETX`` and, with ``with_lrc``, the LRC."""
    data = encode_data(record, max_bytes)
    return bytes((STX,)) + data + bytes((ETX,)) + (bytes((lrc(data),)) if with_lrc else b"")


def _text(data: bytes) -> str:
    try:
        return data.decode(ENCODING)
    except UnicodeDecodeError:
        return data.decode("latin-1")


def decode_data(data: bytes) -> Record:
    """The record between STX and ETX; :class:`FiasError` for anything that is not one."""
    if len(data) > MAX_RECORD_BYTES:
        raise FiasError("record too long")
    if any(is_forbidden(byte) for byte in data):
        raise FiasError("control characters in a record")
    parts = _text(data).split(SEPARATOR)
    type_ = parts[0]
    _check_id(type_, "a record type")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # the separator after the last field
    fields = []
    for part in parts[1:]:
        if part == "":
            continue  # an empty field (``||``): nothing in it
        if len(part) < 2:
            raise FiasError(f"a field is an id of two characters and a value, not {part!r}")
        fields.append((part[:2], part[2:]))
    return Record(type_, tuple(fields))


# --- dates and times ----------------------------------------------------------------------------------


def format_date(value: dt.date) -> str:
    return value.strftime("%y%m%d")


def format_time(value: dt.time | dt.datetime) -> str:
    return value.strftime("%H%M%S")


def parse_date(text: str) -> dt.date:
    """``YYMMDD``, in this century."""
    if len(text) != 6 or not text.isdigit():
        raise FiasError(f"a date is YYMMDD, not {text!r}")
    try:
        return dt.date(2000 + int(text[:2]), int(text[2:4]), int(text[4:]))
    except ValueError as exc:
        raise FiasError(f"no such date: {text!r}") from exc


def parse_time(text: str) -> dt.time:
    """``HHMMSS`` (``HHMM`` is read too: some PMS send it)."""
    if len(text) not in (4, 6) or not text.isdigit():
        raise FiasError(f"a time is HHMMSS, not {text!r}")
    try:
        return dt.time(int(text[:2]), int(text[2:4]), int(text[4:6] or 0))
    except ValueError as exc:
        raise FiasError(f"no such time: {text!r}") from exc


# --- the stream decoder -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkByte:
    """ACK, NAK or ENQ between records."""

    value: int


@dataclass(frozen=True, slots=True)
class Refused:
    """A record that was framed but cannot be taken: what went wrong (the transport answers NAK)."""

    reason: str  # one of the decoder's counters: lrc_errors, forbidden_bytes, oversized, malformed


UNKNOWN, WITH_LRC, WITHOUT_LRC = "unknown", "with_lrc", "without_lrc"

# What the decoder is reading.
_BETWEEN, _IN_RECORD, _AFTER_ETX, _SKIPPING = range(4)


class StreamDecoder:
    """Records out of a byte stream fed in chunks of any size; never raises, never holds more than a record.

    :meth:`feed` returns :class:`Record`, :class:`LinkByte` and :class:`Refused`
    items in stream order. Bytes between records that are neither STX nor a
    link byte are skipped (``garbage_bytes``). A record longer than
    ``max_record`` is dropped at that point and the rest of it, up to the
    next STX, skipped (``oversized``).
    """

    def __init__(self, *, mode: str = UNKNOWN, max_record: int = MAX_RECORD_BYTES):
        self.mode = mode
        self.max_record = max_record
        self.counters = dict.fromkeys(("garbage_bytes", "lrc_errors", "forbidden_bytes", "oversized", "malformed"), 0)
        self._state = _BETWEEN
        self._data = bytearray()
        self._forbidden = False
        # The record just opened was opened by a byte after ETX that was also that record's LRC (case 2).
        self._stx_was_lrc = False

    @property
    def holding(self) -> bool:
        """A record ended and the byte after it (an LRC or not) has not come: call :meth:`flush` after a wait."""
        return self._state == _AFTER_ETX

    @property
    def partial(self) -> bool:
        """Part of a record has come (a peer that drops now loses it)."""
        return self._state == _AFTER_ETX or (self._state == _IN_RECORD and not self._stx_was_lrc)

    def feed(self, chunk: bytes) -> list:
        out = []
        for byte in chunk:
            self._byte(byte, out)
        return out

    def flush(self) -> list:
        """Nothing came after a record's ETX: the peer sends no LRC; deliver the record.

        The peer's habit is then known: one that sends an LRC sends it with its ETX, and one that
        waits for an answer before its next record would otherwise make every record wait.
        """
        if self._state != _AFTER_ETX:
            return []
        self._state = _BETWEEN
        self.mode = WITHOUT_LRC
        return [self._finish()]

    def _byte(self, byte: int, out: list) -> None:
        state = self._state
        if state == _IN_RECORD and not self._data and (byte == STX or byte in LINK_BYTES):
            self._not_a_start(byte, out)
        elif state == _IN_RECORD:
            if self._stx_was_lrc:  # a record's first byte: that STX did open it, so the peer sends no LRC
                self._stx_was_lrc = False
                self.mode = WITHOUT_LRC
            if byte == ETX:
                if self.mode == WITHOUT_LRC:
                    self._state = _BETWEEN
                    out.append(self._finish())
                else:
                    self._state = _AFTER_ETX
            elif byte == STX:  # a new record before this one ended: this one was not a record
                self.counters["garbage_bytes"] += len(self._data) + 1
                self._start()
            elif len(self._data) >= self.max_record:
                self.counters["oversized"] += 1
                out.append(Refused("oversized"))
                self._data.clear()
                self._state = _SKIPPING
            else:
                self._forbidden = self._forbidden or is_forbidden(byte)
                self._data.append(byte)
        elif state == _AFTER_ETX:
            self._after_etx(byte, out)
        elif byte == STX:
            self._start()
        elif state == _SKIPPING:
            pass  # the rest of an oversized record
        elif byte in LINK_BYTES:
            out.append(LinkByte(byte))
        else:
            self.counters["garbage_bytes"] += 1

    def _not_a_start(self, byte: int, out: list) -> None:
        """An STX right after STX, or a link byte right after STX: the STX before it opened no record."""
        if self._stx_was_lrc:
            self._stx_was_lrc = False
            self.mode = WITH_LRC  # it was the previous record's LRC
        else:
            self.counters["garbage_bytes"] += 1
        if byte == STX:
            self._start()
        else:
            self._state = _BETWEEN
            out.append(LinkByte(byte))

    def _after_etx(self, byte: int, out: list) -> None:
        expected = lrc(self._data)
        self._state = _BETWEEN
        if self.mode == UNKNOWN and (byte == STX or byte in LINK_BYTES):
            if byte != expected:
                self.mode = WITHOUT_LRC
            elif byte in LINK_BYTES:
                # An LRC or a link byte, and nothing after it can tell: read it as both (an extra ACK,
                # NAK or ENQ is harmless; a lost one stalls the link), and take the likelier mode.
                self.mode = WITH_LRC
            out.append(self._finish())
            self._byte(byte, out)
            # An STX that is also the LRC opens a record on trial: the byte after it decides (_byte).
            self._stx_was_lrc = byte == STX and self.mode == UNKNOWN
            return
        self.mode = WITH_LRC
        if byte == expected:
            out.append(self._finish())
        else:
            self.counters["lrc_errors"] += 1
            out.append(Refused("lrc_errors"))

    def _start(self) -> None:
        self._state = _IN_RECORD
        self._data.clear()
        self._forbidden = False

    def _finish(self):
        if self._forbidden:
            self.counters["forbidden_bytes"] += 1
            return Refused("forbidden_bytes")
        try:
            return decode_data(bytes(self._data))
        except FiasError:
            self.counters["malformed"] += 1
            return Refused("malformed")
