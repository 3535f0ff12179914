"""Card formats: turning the raw bits a reader sends into a card number and a key UID (docs/card-formats.md).

Pure: no Django, no I/O. An OSDP reader reports a card as a bit string: libosdp hands over ``data`` (the bits
packed most significant first, the last byte padded at its low end) and ``length`` in bits. The site says which
format its cards use; :func:`decode` checks the frame's length and parity bits and returns a :class:`Card` whose
``uid`` is what the key table holds, or raises :class:`CardReadError` with one of :data:`REASONS`. The driver
counts those; a read error is never a grant.

Bits are numbered from 0, the first bit sent (the frame's most significant bit). Public format sheets usually
count from 1; docs/card-formats.md gives both where it helps.

:func:`encode` builds frames (for the simulator and tests) and :func:`uid_for` gives the UID of a printed card
(facility and number), so an operator can enrol a card without presenting it.
"""

import functools
from dataclasses import dataclass

# Format names, as a reader's configuration stores them.
H10301 = "h10301"  # HID 26-bit: facility 8 bits, number 16 bits
H10306 = "h10306"  # HID 34-bit: facility 16 bits, number 16 bits
C1K35 = "c1k35"  # HID Corporate 1000, 35-bit: company 12 bits, card 20 bits
C1K48 = "c1k48"  # HID Corporate 1000, 48-bit: company 22 bits, card 23 bits
H10302 = "h10302"  # HID 37-bit: card number 35 bits, no facility
H10304 = "h10304"  # HID 37-bit: facility 16 bits, number 19 bits
RAW = "raw"  # the card's serial number bytes as read; no layout, no parity
AUTO = "auto"  # a Wiegand format chosen by the frame's length (see decode_auto)

# CardReadError reasons.
BAD_LENGTH = "bad_length"  # not the format's length, too few bytes for the bits, or a length auto cannot resolve
BAD_PARITY = "bad_parity"  # a parity bit does not check: a misread or a forged frame
UNKNOWN_FORMAT = "unknown_format"  # the reader is configured with a format this module does not know
REASONS = (BAD_LENGTH, BAD_PARITY, UNKNOWN_FORMAT)

RAW_MAX_BYTES = 32  # a raw UID is at most 64 hex digits, the key table's limit


class CardReadError(Exception):
    """A card read that cannot become a UID; ``reason`` is one of :data:`REASONS`, the message says what was seen."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Card:
    """A decoded card: the format that read it, its facility (None where the format has none), its number, its UID."""

    format: str
    facility: int | None
    number: int
    uid: str


@dataclass(frozen=True)
class Field:
    """Consecutive bits of a frame holding an unsigned number, most significant bit first."""

    start: int
    width: int

    @property
    def max(self) -> int:
        return (1 << self.width) - 1

    @property
    def digits(self) -> int:
        """Decimal digits of the largest value: the field's width in a UID."""
        return len(str(self.max))

    def read(self, frame: int, bits: int) -> int:
        return (frame >> (bits - self.start - self.width)) & self.max

    def write(self, value: int, bits: int) -> int:
        return value << (bits - self.start - self.width)


@dataclass(frozen=True)
class Parity:
    """One parity bit: at ``position``, making the count of ones over itself and ``covers`` even or odd."""

    position: int
    odd: bool
    covers: tuple[int, ...]

    def mask(self, bits: int) -> int:
        """The parity bit and the bits it covers, as a mask over a frame of ``bits`` bits."""
        return parity_mask(self, bits)

    def holds(self, frame: int, bits: int) -> bool:
        return (frame & self.mask(bits)).bit_count() % 2 == (1 if self.odd else 0)


@functools.cache
def parity_mask(parity: Parity, bits: int) -> int:
    """Computed once per layout: reads check every parity bit."""
    return sum(1 << (bits - 1 - position) for position in (parity.position, *parity.covers))


@dataclass(frozen=True)
class WiegandFormat:
    """A fixed-length Wiegand layout: its fields and its parity bits, in the order they are computed."""

    name: str
    bits: int
    facility: Field | None
    number: Field
    parity: tuple[Parity, ...]


def span(first: int, last: int) -> tuple[int, ...]:
    """Bit positions ``first`` to ``last``, both included."""
    return tuple(range(first, last + 1))


def two_in_three(first: int, last: int, skip: int) -> tuple[int, ...]:
    """Positions ``first`` to ``last`` but those whose remainder by 3 is ``skip``: Corporate 1000's interleaved
    parity groups, two bits covered, one left out, all along the frame."""
    return tuple(position for position in span(first, last) if position % 3 != skip)


def even(position: int, covers: tuple[int, ...]) -> Parity:
    return Parity(position, odd=False, covers=covers)


def odd(position: int, covers: tuple[int, ...]) -> Parity:
    return Parity(position, odd=True, covers=covers)


# The layouts. A later parity bit may cover an earlier one (Corporate 1000's first bit covers the whole frame),
# so each tuple lists its parity bits in the order an encoder must set them.
LAYOUTS: dict[str, WiegandFormat] = {
    layout.name: layout
    for layout in (
        WiegandFormat(H10301, 26, Field(1, 8), Field(9, 16), (even(0, span(1, 12)), odd(25, span(13, 24)))),
        WiegandFormat(H10306, 34, Field(1, 16), Field(17, 16), (even(0, span(1, 16)), odd(33, span(17, 32)))),
        WiegandFormat(
            C1K35,
            35,
            Field(2, 12),
            Field(14, 20),
            (even(1, two_in_three(2, 33, skip=1)), odd(34, two_in_three(1, 32, skip=0)), odd(0, span(1, 34))),
        ),
        WiegandFormat(
            C1K48,
            48,
            Field(2, 22),
            Field(24, 23),
            (even(1, two_in_three(3, 46, skip=2)), odd(47, two_in_three(2, 45, skip=1)), odd(0, span(1, 47))),
        ),
        # H10302 and H10304 share their length and their parity bits (bit 18 is in both halves); only the
        # split of the 35 bits between them differs, so no frame tells one from the other.
        WiegandFormat(H10302, 37, None, Field(1, 35), (even(0, span(1, 18)), odd(36, span(18, 35)))),
        WiegandFormat(H10304, 37, Field(1, 16), Field(17, 19), (even(0, span(1, 18)), odd(36, span(18, 35)))),
    )
}

# Every name a reader may be configured with, and how the setting reads to an operator.
FORMATS: dict[str, str] = {
    H10301: "HID 26-bit H10301 (facility 0-255, card 0-65535)",
    H10306: "HID 34-bit H10306 (facility 0-65535, card 0-65535)",
    C1K35: "HID Corporate 1000 35-bit (company 0-4095, card 0-1048575)",
    C1K48: "HID Corporate 1000 48-bit (company 0-4194303, card 0-8388607)",
    H10302: "HID 37-bit H10302 (card 0-34359738367, no facility)",
    H10304: "HID 37-bit H10304 (facility 0-65535, card 0-524287)",
    RAW: "Card serial number (the bytes as read, in hex)",
    AUTO: "Wiegand format by length (26, 34, 35, 48 bits; 37 bits is refused)",
}


# --- decoding ------------------------------------------------------------------------------------------------


def decode(format_name: str, data: bytes, bits: int) -> Card:
    """The card in ``data`` (``bits`` bits, most significant first) read as ``format_name``.

    Raises CardReadError, and nothing else, whatever the arguments: bytes beyond the ``bits`` are ignored, as
    are the padding bits of the last byte."""
    if not isinstance(format_name, str) or format_name not in FORMATS:
        raise CardReadError(UNKNOWN_FORMAT, f"unknown card format {format_name!r}")
    if not isinstance(bits, int) or isinstance(bits, bool) or bits < 1:
        raise CardReadError(BAD_LENGTH, f"a card read of {bits!r} bits")
    data = as_bytes(data)
    if format_name == RAW:
        return decode_raw(data, bits)
    if format_name == AUTO:
        return decode_auto(data, bits)
    return decode_wiegand(LAYOUTS[format_name], data, bits)


def as_bytes(data: object) -> bytes:
    """The card data as bytes; anything that is not a bytes-like object is a read error, not a crash."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CardReadError(BAD_LENGTH, f"card data is {type(data).__name__}, not bytes")
    try:
        return bytes(data)
    except (ValueError, TypeError, BufferError) as error:  # a released or exotic memoryview
        raise CardReadError(BAD_LENGTH, f"unreadable card data: {error}") from None


def decode_wiegand(layout: WiegandFormat, data: bytes, bits: int) -> Card:
    if bits != layout.bits:
        raise CardReadError(BAD_LENGTH, f"{layout.name} is {layout.bits} bits, the reader sent {bits}")
    frame = frame_of(data, bits)
    for parity in layout.parity:
        if not parity.holds(frame, bits):
            raise CardReadError(BAD_PARITY, f"{layout.name}: the parity bit at {parity.position} does not check")
    facility = layout.facility.read(frame, bits) if layout.facility else None
    number = layout.number.read(frame, bits)
    return Card(layout.name, facility, number, uid_of(layout, facility, number))


def decode_auto(data: bytes, bits: int) -> Card:
    """The one Wiegand format of this length whose parity checks.

    Lengths no format has are bad_length. Where two formats share a length (37 bits: H10302 and H10304) the
    frame must fit exactly one of them; theirs share the same parity bits, so a 37-bit frame with good parity
    fits both and is refused as bad_length (the reader must be set to the site's own format), and one with bad
    parity is bad_parity."""
    candidates = [layout for layout in LAYOUTS.values() if layout.bits == bits]
    if not candidates:
        lengths = sorted({layout.bits for layout in LAYOUTS.values()})
        raise CardReadError(BAD_LENGTH, f"no card format is {bits} bits (known: {lengths})")
    cards, errors = [], []
    for layout in candidates:
        try:
            cards.append(decode_wiegand(layout, data, bits))
        except CardReadError as error:
            errors.append(error)
    if len(cards) == 1:
        return cards[0]
    if cards:
        names = " or ".join(card.format for card in cards)
        raise CardReadError(BAD_LENGTH, f"a {bits}-bit card could be {names}; set the reader's card format")
    raise errors[0]


def decode_raw(data: bytes, bits: int) -> Card:
    """The bytes holding ``bits`` bits, as read (padding bits of the last byte included), in hex."""
    size = (bits + 7) // 8
    if size > RAW_MAX_BYTES:
        raise CardReadError(BAD_LENGTH, f"a raw card of {bits} bits is longer than a UID ({RAW_MAX_BYTES} bytes)")
    if len(data) < size:
        raise CardReadError(BAD_LENGTH, f"{bits} bits need {size} bytes, the reader sent {len(data)}")
    serial = data[:size]
    return Card(RAW, None, int.from_bytes(serial, "big"), serial.hex().upper())


def frame_of(data: bytes, bits: int) -> int:
    """The first ``bits`` bits of ``data`` as an integer (bit 0 the most significant)."""
    size = (bits + 7) // 8
    if len(data) < size:
        raise CardReadError(BAD_LENGTH, f"{bits} bits need {size} bytes, the reader sent {len(data)}")
    return int.from_bytes(data[:size], "big") >> (size * 8 - bits)


# --- encoding and enrolling ----------------------------------------------------------------------------------


def encode(format_name: str, facility: int | None, number: int) -> tuple[bytes, int]:
    """The frame a reader would send for this card: (data, bits), packed as libosdp delivers it.

    Raises ValueError for a format without a layout (raw, auto, unknown) and for values out of range."""
    layout = layout_for(format_name)
    check_values(layout, facility, number)
    frame = layout.number.write(number, layout.bits)
    if layout.facility:
        frame |= layout.facility.write(facility, layout.bits)
    for parity in layout.parity:
        if not parity.holds(frame, layout.bits):
            frame |= 1 << (layout.bits - 1 - parity.position)
    size = (layout.bits + 7) // 8
    return (frame << (size * 8 - layout.bits)).to_bytes(size, "big"), layout.bits


def uid_for(format_name: str, facility: int | None, number: int) -> str:
    """The UID a card printed with this facility and number decodes to: what to enrol for it.

    Raises ValueError like encode."""
    layout = layout_for(format_name)
    check_values(layout, facility, number)
    return uid_of(layout, facility, number)


def uid_of(layout: WiegandFormat, facility: int | None, number: int) -> str:
    """Fixed-width decimal: the facility zero-padded to the digits of its largest value, then the number likewise.

    Fixed widths keep the mapping one-to-one within a format (FC 1 card 23 and FC 12 card 3 differ), and the
    digits are valid hex, so the key table takes them as they are."""
    facility_digits = f"{facility:0{layout.facility.digits}d}" if layout.facility else ""
    return f"{facility_digits}{number:0{layout.number.digits}d}"


def layout_for(format_name: str) -> WiegandFormat:
    if format_name in (RAW, AUTO):
        raise ValueError(f"{format_name} is not a card layout: name the format the card is printed in")
    layout = LAYOUTS.get(format_name) if isinstance(format_name, str) else None
    if layout is None:
        raise ValueError(f"unknown card format {format_name!r}")
    return layout


def check_values(layout: WiegandFormat, facility: int | None, number: int) -> None:
    if layout.facility is None:
        if facility is not None:
            raise ValueError(f"{layout.name} has no facility code")
    else:
        check_range(f"{layout.name} facility", facility, layout.facility.max)
    check_range(f"{layout.name} card number", number, layout.number.max)


def check_range(what: str, value: object, largest: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what} must be an integer, not {value!r}")
    if not 0 <= value <= largest:
        raise ValueError(f"{what} must be 0 to {largest}, not {value}")
