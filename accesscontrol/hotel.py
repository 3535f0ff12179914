"""Hotel operations: what the front desk, the PMS interfaces (FIAS, Industry Standard, SHIP) and the REST
API all call, so a check-in is the same whoever asks for it.

CONTRACT (issue 7): the names and signatures below are what the connectors code
against; the implementation is being written. Every operation raises
:class:`HotelError` with a ``code`` the connectors map to their protocol's
negative answer; nothing else escapes for bad input.
"""

import datetime as dt
from dataclasses import dataclass, field

# HotelError codes.
UNKNOWN_ROOM = "unknown_room"
UNKNOWN_ENCODER = "unknown_encoder"
ENCODER_BUSY = "encoder_busy"
ENCODER_OFFLINE = "encoder_offline"
NO_CARD = "no_card"
WRONG_CARD = "wrong_card_type"
ENCODE_FAILED = "encode_failed"
TIMEOUT = "timeout"
GUEST_NOT_FOUND = "guest_not_found"  # no stay in the room (or not the reservation named)
ROOM_OCCUPIED = "room_occupied"  # a move into a room where another stay is
BAD_REQUEST = "bad_request"  # a departure in the past, too many rooms, ...
CODES = (
    UNKNOWN_ROOM,
    UNKNOWN_ENCODER,
    ENCODER_BUSY,
    ENCODER_OFFLINE,
    NO_CARD,
    WRONG_CARD,
    ENCODE_FAILED,
    TIMEOUT,
    GUEST_NOT_FOUND,
    ROOM_OCCUPIED,
    BAD_REQUEST,
)

# Key request kinds.
NEW = "new"  # a new guest key: cancels the stay's earlier keys
COPY = "copy"  # one more key for the same stay
ONE_SHOT = "one_shot"  # opens once (e.g. for a visitor), then is refused


class HotelError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class KeyIssued:
    """A guest key issued (and, with an encoder, written): what the PMS answers carry."""

    stay_id: int
    key_id: int
    uid: str
    rooms: tuple[str, ...]
    departure: dt.datetime
    card_data: bytes = b""  # the card file written (FIAS RT4 returns it in $3)
    job_id: int | None = None


@dataclass(frozen=True)
class KeyRead:
    """What a card placed on an encoder says (FIAS KZ, Industry Standard LT)."""

    uid: str
    rooms: tuple[str, ...] = ()
    guest_name: str = ""
    reservation: str = ""
    departure: dt.datetime | None = None
    valid: bool = False
    extra: dict = field(default_factory=dict)


def check_in(
    *,
    room: str,
    departure: dt.datetime,
    encoder: str | None,
    kind: str = NEW,
    guest_name: str = "",
    reservation: str = "",
    arrival: dt.datetime | None = None,
    extra_rooms: tuple[str, ...] = (),
    common_areas: tuple[str, ...] | None = None,  # None: the site's default guest areas
    phone_number: str = "",  # a mobile key instead of a card (Industry Standard CNM/CCM)
    operator=None,
    via: str,
    wait_seconds: float = 30.0,
) -> KeyIssued:
    """Issue a guest key for ``room`` (and ``extra_rooms``) valid until ``departure``; with ``encoder`` (its
    station code, as the PMS names it) write it and wait up to ``wait_seconds`` for the encoder."""
    raise NotImplementedError


def check_out(*, room: str, reservation: str = "", operator=None, via: str) -> int:
    """End the stay in ``room``: its keys are cancelled (blacklisted for offline room locks). Returns how many."""
    raise NotImplementedError


def modify(
    *,
    room: str,
    new_room: str = "",
    departure: dt.datetime | None = None,
    reservation: str = "",
    guest_name: str = "",
    operator=None,
    via: str,
) -> int:
    """Room move and/or new departure for the stay in ``room``; its keys follow (rewritten at the next
    updater or desk). Returns the stay id."""
    raise NotImplementedError


def read_key(*, encoder: str, via: str, wait_seconds: float = 30.0) -> KeyRead:
    """Read the card placed on ``encoder``."""
    raise NotImplementedError
