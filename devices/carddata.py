"""Card data format v1: the rights a key carries to offline locks (docs/card-data-v1.md).

Pure: no ORM, no clock, no I/O. The server builds a :class:`CardData` from the
database (devices/cards.py) and :func:`encode` turns it into the bytes of the
card file; a lock (devices/offline_lock.py) or an updater :func:`decode` s them
back, which authenticates them with the site's card key first.

All times are POSIX seconds (UTC); schedules on the card are time period ids,
whose definitions the locks hold in their configuration.
"""

from dataclasses import dataclass, field

FORMAT_VERSION = 1
CARD_FILE_SIZE = 4096  # bytes: the card file's size on a 4 KiB card application
SITE_KEY_SIZE = 32  # bytes of the per-site card key
STATUS_SLOTS = 4  # lock status slots a card holds; locks overwrite the oldest


class CardError(Exception):
    """Card data that a lock or updater must refuse; ``reason`` is one of the REASONS below."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


# CardError reasons (also decision reasons in accesscontrol.choices.Decision).
TAMPERED = "tampered"  # the authentication tag does not verify: changed, forged, flipped bits
TRUNCATED = "truncated"  # shorter than its header says, or not card data at all
WRONG_SITE = "wrong_site"  # written by another site (its site code is not ours)
UNSUPPORTED_VERSION = "unsupported_version"  # a format version this code does not read
REASONS = (TAMPERED, TRUNCATED, WRONG_SITE, UNSUPPORTED_VERSION)


class CardTooBig(Exception):
    """The card data does not fit in the card file; the message names what to reduce and by how much."""

    def __init__(self, message: str, *, needed: int, available: int):
        super().__init__(message)
        self.needed = needed
        self.available = available


# Grant target kinds.
POINT = "point"
ZONE = "zone"


@dataclass(frozen=True, slots=True)
class CardGrant:
    """An access point or a zone (by id), at the times of these time periods (empty: at any time)."""

    kind: str  # POINT or ZONE
    id: int
    periods: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class BlacklistItem:
    """A cancelled key (by key id), refused until ``until``; ``number`` rises by one per entry site-wide."""

    number: int
    key_id: int
    until: int


@dataclass(frozen=True, slots=True)
class LockStatus:
    """What a lock wrote onto a card it saw: who it is, when, its battery and what it holds."""

    lock_id: int  # the lock's device_id
    at: int
    battery: int  # 0-100
    blacklist_number: int  # the highest blacklist entry number the lock holds
    config_revision: int  # the configuration revision the lock runs
    events_pending: int = 0  # audit events in its buffer not yet collected (capped at 65535)


@dataclass(frozen=True, slots=True)
class CardData:
    site: int  # the site code (32-bit), in clear so a card from another site is told apart
    key_id: int  # the Key's primary key
    uid: str  # the card's UID, upper-case hex
    cardholder_id: int
    revision: int  # the Key's revision when written
    issued_at: int  # when this card data was written
    valid_from: int | None = None  # None: from the start
    valid_until: int | None = None  # None: no end (revalidation may still give one)
    office: bool = False
    override_privacy: bool = False
    override_lockdown: bool = False
    audit_openings: bool = True
    anti_passback: bool = False
    extended_open_time: bool = False
    grants: tuple[CardGrant, ...] = ()
    blacklist: tuple[BlacklistItem, ...] = ()  # the newest entries, ascending by number
    statuses: tuple[LockStatus, ...] = field(default=(), compare=False)  # written by locks, newest last


def encode(card: CardData, key: bytes) -> bytes:
    """The card file's bytes (at most CARD_FILE_SIZE); raises CardTooBig when it does not fit."""
    raise NotImplementedError


def decode(raw: bytes, key: bytes, site: int) -> CardData:
    """Authenticate and parse; raises CardError with the reason when the card must be refused."""
    raise NotImplementedError


def write_status(raw: bytes, key: bytes, site: int, status: LockStatus) -> bytes:
    """``raw`` with ``status`` written into a status slot (replacing that lock's or the oldest); the rights
    part is untouched, and the slot is authenticated so a forged status is ignored by the server."""
    raise NotImplementedError
