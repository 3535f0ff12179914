"""Codec of the SALTO "PMS Industry Standard" protocol: frames, link bytes, commands and answers.

Pure: bytes in, typed values out (or :class:`IndustryError`), never a socket.
The specification is closed; this is the project's reading, written down in
docs/industry-standard.md (the field order of every command is the table
:data:`LAYOUTS` below, which parsing and encoding both use).

A frame is ``STX``, each field preceded by the separator ``0xB3``, one more
separator after the last field, ``ETX``, then an LRC: the XOR of every byte
after STX up to and including ETX. A received LRC of ``0x0D`` means "do not
check". Fields are Latin-1 text without control bytes.
"""

import datetime as dt
import re
from dataclasses import dataclass, field

STX, ETX = 0x02, 0x03
ENQ, ACK, NAK = 0x05, 0x06, 0x15
SEPARATOR = 0xB3
UNCHECKED_LRC = 0x0D
LINK_BYTES = frozenset((ENQ, ACK, NAK))
MAX_FRAME = 1024  # bytes from STX to the LRC; a CN with every field full is well under 600
MAX_ROOMS = 4
TIME_FORMAT = "%H%M%d%m%y"  # HHMMDDMMYY
E164 = re.compile(r"\+[1-9][0-9]{7,14}")

# Error answers (the project's reading of the codes; docs/industry-standard.md).
SYNTAX_ERROR = "ES"  # the frame or a field cannot be understood, or the request is refused as asked
NO_COMMUNICATION = "NC"  # the encoder does not answer (offline)
NOT_FOUND = "NF"  # no such encoder
OVERLOAD = "OV"  # the encoder is busy with another card
CARD_ERROR = "EP"  # no card on the encoder
FORMAT_ERROR = "EF"  # the card on the encoder is of a type that cannot hold a key
TIMEOUT = "TD"  # the encoder did not finish in time
ENCODE_ERROR = "ED"  # writing the card failed
UNKNOWN_ROOM = "EA"  # no such room
OCCUPIED = "OS"  # the room to move into is occupied
NO_GUEST = "EO"  # no stay (check-in) in the room
GENERAL_ERROR = "EG"  # anything else: a fault in Space
ERROR_CODES = (
    SYNTAX_ERROR,
    NO_COMMUNICATION,
    NOT_FOUND,
    OVERLOAD,
    CARD_ERROR,
    FORMAT_ERROR,
    TIMEOUT,
    ENCODE_ERROR,
    UNKNOWN_ROOM,
    OCCUPIED,
    NO_GUEST,
    GENERAL_ERROR,
)
OK = "OK"

# Commands.
NEW_CARD, COPY_CARD, NEW_MOBILE, COPY_MOBILE = "CN", "CC", "CNM", "CCM"
CHECK_OUT, MODIFY, READ_CARD = "CO", "MC", "LT"
CARD_COMMANDS = (NEW_CARD, COPY_CARD, NEW_MOBILE, COPY_MOBILE)
MOBILE_COMMANDS = (NEW_MOBILE, COPY_MOBILE)

# Field names after the command, in order. The mobile variants put the phone number where the encoder is.
_CARD_FIELDS = (
    "station",  # encoder (CN, CC) or phone number in E.164 (CNM, CCM)
    "eject",
    "room1",
    "room2",
    "room3",
    "room4",
    "granted",
    "denied",
    "start",
    "end",
    "operator",
    "print1",
    "print2",
    "return_serial",
)
LAYOUTS: dict[str, tuple[str, ...]] = {
    NEW_CARD: _CARD_FIELDS,
    COPY_CARD: _CARD_FIELDS,
    NEW_MOBILE: _CARD_FIELDS,
    COPY_MOBILE: _CARD_FIELDS,
    CHECK_OUT: ("room", "operator"),
    MODIFY: ("room", "new_room", "end", "operator"),
    READ_CARD: ("encoder",),
}
EJECT_MODES = ("", "E", "R")  # encoder default, eject the card, retain it
FLAGS = {"": False, "0": False, "1": True}


class IndustryError(Exception):
    """Bytes or fields that are not the protocol; ``code`` is the error answer they earn."""

    def __init__(self, message: str, code: str = SYNTAX_ERROR):
        super().__init__(message)
        self.code = code


# --- frames ------------------------------------------------------------------------------------------------


def lrc(data: bytes) -> int:
    value = 0
    for byte in data:
        value ^= byte
    return value


def _field_bytes(text: str) -> bytes:
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError as error:
        raise IndustryError(f"{text!r} is not Latin-1") from error
    if any(byte < 0x20 or byte in (0x7F, SEPARATOR) for byte in raw):
        raise IndustryError(f"{text!r} holds a byte no field may hold")
    return raw


def encode_frame(fields: list[str] | tuple[str, ...]) -> bytes:
    if not fields:
        raise IndustryError("a frame has at least its command")
    separator = bytes((SEPARATOR,))
    body = separator + separator.join(_field_bytes(text) for text in fields) + separator + bytes((ETX,))
    return bytes((STX,)) + body + bytes((lrc(body),))


def parse_payload(payload: bytes) -> tuple[str, ...]:
    """The fields between STX and ETX (both excluded)."""
    if len(payload) < 2 or payload[0] != SEPARATOR or payload[-1] != SEPARATOR:
        raise IndustryError("a frame's data starts and ends with the separator")
    if any(byte < 0x20 or byte == 0x7F for byte in payload):
        raise IndustryError("a control byte inside a frame")
    return tuple(part.decode("latin-1") for part in payload[1:-1].split(bytes((SEPARATOR,))))


# --- the stream decoder --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkByte:
    byte: int  # ENQ, ACK or NAK


@dataclass(frozen=True, slots=True)
class Frame:
    fields: tuple[str, ...]
    checked: bool  # False when the LRC was 0x0D ("do not check")


@dataclass(frozen=True, slots=True)
class BadLrc:
    """A whole frame whose LRC is wrong: answered NAK, and the PMS sends it again."""

    raw: bytes


@dataclass(frozen=True, slots=True)
class Malformed:
    """A whole frame with a good LRC whose data is not fields: answered ACK, then ES."""

    raw: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class Garbage:
    count: int  # bytes outside any frame, or of a frame abandoned half-way


@dataclass(frozen=True, slots=True)
class Oversized:
    """A frame longer than the decoder's limit, dropped (its remaining bytes are skipped)."""


Event = LinkByte | Frame | BadLrc | Malformed | Garbage | Oversized

_OUTSIDE, _INSIDE, _LRC, _SKIPPING, _SKIPPING_LRC = range(5)


@dataclass
class Decoder:
    """Turns bytes received in arbitrary chunks into events; never holds more than ``max_frame`` bytes."""

    max_frame: int = MAX_FRAME
    _state: int = _OUTSIDE
    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        garbage = 0
        for byte in data:
            state = self._state
            if state == _LRC:
                events.append(self._finish(byte))
                self._state = _OUTSIDE
                continue
            if state == _SKIPPING_LRC:
                self._state = _OUTSIDE
                continue
            if byte == STX or byte in LINK_BYTES:
                # Neither is ever data: a frame under way was abandoned (the PMS started again).
                if state == _INSIDE:
                    garbage += len(self._buffer)
                    self._buffer.clear()
                self._state = _OUTSIDE
                if garbage:
                    events.append(Garbage(garbage))
                    garbage = 0
                if byte == STX:
                    self._buffer.append(byte)
                    self._state = _INSIDE
                else:
                    events.append(LinkByte(byte))
                continue
            if state == _OUTSIDE:
                garbage += 1
            elif state == _SKIPPING:
                if byte == ETX:
                    self._state = _SKIPPING_LRC
            else:  # _INSIDE
                self._buffer.append(byte)
                if byte == ETX:
                    self._state = _LRC
                elif len(self._buffer) >= self.max_frame - 1:  # no room left for ETX and the LRC
                    self._buffer.clear()
                    self._state = _SKIPPING
                    events.append(Oversized())
        if garbage:
            events.append(Garbage(garbage))
        return events

    def abandon(self) -> int:
        """Forget a frame under way (the link closed); how many of its bytes were held."""
        held = len(self._buffer)
        self._buffer.clear()
        self._state = _OUTSIDE
        return held

    def _finish(self, received: int) -> Event:
        raw = bytes(self._buffer) + bytes((received,))
        self._buffer.clear()
        checked = received != UNCHECKED_LRC
        if checked and lrc(raw[1:-1]) != received:
            return BadLrc(raw)
        try:
            return Frame(parse_payload(raw[1:-2]), checked)
        except IndustryError as error:
            return Malformed(raw, str(error))


# --- commands ------------------------------------------------------------------------------------------------


def parse_time(text: str, tz: dt.tzinfo) -> dt.datetime:
    if len(text) != 10 or not text.isdigit():
        raise IndustryError(f"{text!r} is not a time HHMMDDMMYY")
    hour, minute, day, month, year = (int(text[start : start + 2]) for start in range(0, 10, 2))
    try:
        return dt.datetime(2000 + year, month, day, hour, minute, tzinfo=tz)  # YY is always 20YY
    except ValueError as error:
        raise IndustryError(f"{text!r} is not a time HHMMDDMMYY") from error


def format_time(moment: dt.datetime, tz: dt.tzinfo) -> str:
    moment = moment.astimezone(tz)
    if not 2000 <= moment.year <= 2099:
        raise IndustryError(f"{moment} cannot be written as HHMMDDMMYY")
    return moment.strftime(TIME_FORMAT)


def _names(text: str) -> tuple[str, ...]:
    """A list of authorisations: names separated by commas."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


@dataclass(frozen=True)
class CardRequest:
    """CN, CC (a card on an encoder) and CNM, CCM (a mobile key on a phone)."""

    command: str
    station: str  # the encoder's code, or the phone number (E.164) of the mobile variants
    rooms: tuple[str, ...]
    end: dt.datetime
    start: dt.datetime | None = None
    eject: str = ""
    granted: tuple[str, ...] = ()
    denied: tuple[str, ...] = ()
    operator: str = ""
    print_lines: tuple[str, str] = ("", "")
    return_serial: bool = False

    @property
    def mobile(self) -> bool:
        return self.command in MOBILE_COMMANDS

    def values(self, tz: dt.tzinfo) -> dict[str, str]:
        rooms = (*self.rooms, "", "", "", "")
        return {
            "station": self.station,
            "eject": self.eject,
            **{f"room{number}": rooms[number - 1] for number in range(1, MAX_ROOMS + 1)},
            "granted": ",".join(self.granted),
            "denied": ",".join(self.denied),
            "start": format_time(self.start, tz) if self.start else "",
            "end": format_time(self.end, tz),
            "operator": self.operator,
            "print1": self.print_lines[0],
            "print2": self.print_lines[1],
            "return_serial": "1" if self.return_serial else "0",
        }

    @classmethod
    def parse(cls, command: str, values: dict[str, str], tz: dt.tzinfo) -> "CardRequest":
        station = values["station"]
        if command in MOBILE_COMMANDS:
            if not E164.fullmatch(station):
                raise IndustryError(f"{station!r} is not a phone number in E.164")
        elif not station:
            raise IndustryError("no encoder")
        rooms = tuple(values[f"room{number}"] for number in range(1, MAX_ROOMS + 1))
        if not rooms[0]:
            raise IndustryError("no room")
        if values["eject"] not in EJECT_MODES:
            raise IndustryError(f"eject mode {values['eject']!r}")
        if values["return_serial"] not in FLAGS:
            raise IndustryError(f"serial number flag {values['return_serial']!r}")
        return cls(
            command=command,
            station=station,
            rooms=tuple(room for room in rooms if room),
            end=parse_time(values["end"], tz),
            start=parse_time(values["start"], tz) if values["start"] else None,
            eject=values["eject"],
            granted=_names(values["granted"]),
            denied=_names(values["denied"]),
            operator=values["operator"],
            print_lines=(values["print1"], values["print2"]),
            return_serial=FLAGS[values["return_serial"]],
        )


@dataclass(frozen=True)
class CheckOutRequest:
    room: str
    operator: str = ""
    command: str = CHECK_OUT

    def values(self, tz: dt.tzinfo) -> dict[str, str]:
        return {"room": self.room, "operator": self.operator}

    @classmethod
    def parse(cls, command: str, values: dict[str, str], tz: dt.tzinfo) -> "CheckOutRequest":
        if not values["room"]:
            raise IndustryError("no room")
        return cls(room=values["room"], operator=values["operator"])


@dataclass(frozen=True)
class ModifyRequest:
    """A room move (``new_room``) and/or a new end of stay (``end``)."""

    room: str
    new_room: str = ""
    end: dt.datetime | None = None
    operator: str = ""
    command: str = MODIFY

    def values(self, tz: dt.tzinfo) -> dict[str, str]:
        end = format_time(self.end, tz) if self.end else ""
        return {"room": self.room, "new_room": self.new_room, "end": end, "operator": self.operator}

    @classmethod
    def parse(cls, command: str, values: dict[str, str], tz: dt.tzinfo) -> "ModifyRequest":
        if not values["room"]:
            raise IndustryError("no room")
        if not values["new_room"] and not values["end"]:
            raise IndustryError("a modification changes the room or the end time")
        end = parse_time(values["end"], tz) if values["end"] else None
        return cls(room=values["room"], new_room=values["new_room"], end=end, operator=values["operator"])


@dataclass(frozen=True)
class ReadRequest:
    encoder: str
    command: str = READ_CARD

    def values(self, tz: dt.tzinfo) -> dict[str, str]:
        return {"encoder": self.encoder}

    @classmethod
    def parse(cls, command: str, values: dict[str, str], tz: dt.tzinfo) -> "ReadRequest":
        if not values["encoder"]:
            raise IndustryError("no encoder")
        return cls(encoder=values["encoder"])


Request = CardRequest | CheckOutRequest | ModifyRequest | ReadRequest
_REQUEST_CLASSES = {
    **dict.fromkeys(CARD_COMMANDS, CardRequest),
    CHECK_OUT: CheckOutRequest,
    MODIFY: ModifyRequest,
    READ_CARD: ReadRequest,
}


def parse_request(fields: tuple[str, ...], tz: dt.tzinfo) -> Request:
    """A command frame's fields as a request; trailing fields may be left out (empty)."""
    command = fields[0]
    layout = LAYOUTS.get(command)
    if layout is None:
        raise IndustryError(f"unknown command {command!r}")
    given = fields[1:]
    if len(given) > len(layout):
        raise IndustryError(f"{command} has {len(layout)} fields, not {len(given)}")
    values = dict(zip(layout, (*given, *("",) * (len(layout) - len(given))), strict=True))
    return _REQUEST_CLASSES[command].parse(command, values, tz)


def request_fields(request: Request, tz: dt.tzinfo) -> tuple[str, ...]:
    values = request.values(tz)
    return (request.command, *(values[name] for name in LAYOUTS[request.command]))


# --- answers -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """``command`` echoed with ``OK`` and its data, or an error answer: the error code, then the command."""

    command: str
    error: str = ""
    data: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.error

    def fields(self) -> tuple[str, ...]:
        if self.error:
            return (self.error, self.command)
        return (self.command, OK, *self.data)

    @classmethod
    def parse(cls, fields: tuple[str, ...]) -> "Answer":
        if len(fields) >= 2 and fields[1] == OK and fields[0] in LAYOUTS:
            return cls(fields[0], data=fields[2:])
        if len(fields) == 2 and fields[0] in ERROR_CODES:
            return cls(fields[1], error=fields[0])
        raise IndustryError(f"not an answer: {fields!r}")


@dataclass(frozen=True)
class CardRead:
    """The data of an LT answer: what the card on the encoder says."""

    serial: str
    rooms: tuple[str, ...] = ()
    end: dt.datetime | None = None
    guest_name: str = ""
    valid: bool = False

    def data(self, tz: dt.tzinfo) -> tuple[str, ...]:
        rooms = (*self.rooms[:MAX_ROOMS], "", "", "", "")[:MAX_ROOMS]
        end = format_time(self.end, tz) if self.end else ""
        return (self.serial, *rooms, end, self.guest_name, "1" if self.valid else "0")

    @classmethod
    def parse(cls, data: tuple[str, ...], tz: dt.tzinfo) -> "CardRead":
        if len(data) != MAX_ROOMS + 4 or data[-1] not in ("0", "1"):
            raise IndustryError(f"not a card read: {data!r}")
        end = parse_time(data[5], tz) if data[5] else None
        rooms = tuple(room for room in data[1:5] if room)
        return cls(serial=data[0], rooms=rooms, end=end, guest_name=data[6], valid=data[7] == "1")
