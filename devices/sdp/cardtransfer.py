"""Card data in SDP/1 frames: split into parts for sending, and reassembled, bounded, on receipt.

A sealed plaintext holds at most 1164 bytes (docs/sdp1.md), and a
card file is up to 4096, so ``encode`` and ``card`` messages carry the data in
parts of at most :data:`PART_SIZE` raw bytes, base64 in the JSON
(docs/sdp1-in-space.md, "Encoders and updaters"). Pure: no sockets, no ORM.
"""

import base64
import binascii
from dataclasses import dataclass, field

PART_SIZE = 600  # raw bytes per part: 800 base64 characters, far below the plaintext limit with the other members
MAX_PARTS = 8
MAX_CARD_BYTES = 4096
# The most raw bytes one received part may carry: what fits in a sealed plaintext at all.
MAX_PART_BYTES = 870


class BadPart(ValueError):
    """A part that does not follow the protocol: the frame is dropped and counted."""


def split(data: bytes) -> list[str]:
    """``data`` as base64 parts of PART_SIZE raw bytes; empty data is one empty part."""
    if len(data) > MAX_CARD_BYTES:
        raise ValueError(f"Card data is at most {MAX_CARD_BYTES} bytes, not {len(data)}.")
    chunks = [data[start : start + PART_SIZE] for start in range(0, len(data), PART_SIZE)] or [b""]
    return [base64.b64encode(chunk).decode("ascii") for chunk in chunks]


def decode_part(text) -> bytes:
    """The raw bytes of one part's ``data`` member; raises BadPart."""
    if not isinstance(text, str) or len(text) > (MAX_PART_BYTES + 2) // 3 * 4:
        raise BadPart("data is not a base64 string of a part's size")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise BadPart("data is not base64") from None


def is_part_number(part, parts) -> bool:
    return type(part) is int and type(parts) is int and 1 <= parts <= MAX_PARTS and 0 <= part < parts


@dataclass(slots=True)
class Reassembly:
    """The parts of one transfer as they arrive, in any order, each possibly more than once.

    ``ident`` holds the members every part must repeat (uid, reader, job); a part
    that disagrees with the first, or data past MAX_CARD_BYTES, raises BadPart.
    """

    parts: int
    ident: tuple
    started: float
    received: dict[int, bytes] = field(default_factory=dict)

    def add(self, part: int, parts: int, ident: tuple, data: bytes) -> None:
        if parts != self.parts or ident != self.ident or not 0 <= part < parts:
            raise BadPart("a part disagrees with the transfer's first part")
        known = self.received.get(part)
        if known is not None:
            if known != data:
                raise BadPart("a part came again with other data")
            return
        if sum(map(len, self.received.values())) + len(data) > MAX_CARD_BYTES:
            raise BadPart(f"the card data is over {MAX_CARD_BYTES} bytes")
        self.received[part] = data

    @property
    def complete(self) -> bool:
        return len(self.received) == self.parts

    def data(self) -> bytes:
        return b"".join(self.received[number] for number in range(self.parts))
