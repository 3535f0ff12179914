"""Card data format v1: the rights a key carries to offline locks (docs/card-data-v1.md).

Pure: no ORM, no clock, no I/O. The server builds a :class:`CardData` from the
database (devices/cards.py) and :func:`encode` turns it into the bytes of the
card file; a lock (simulation/offline_lock.py) or an updater :func:`decode` s them
back, which authenticates them with the site's card key first.

The file is a clear header (magic, version, site code, length), the *rights*
sealed with AES-256-GCM (encrypted and authenticated: a reader without the key
learns nothing but the site code, and any changed bit is refused), then
:data:`STATUS_SLOTS` fixed-size *status slots*, each with its own HMAC so a lock
can write its status without the key that seals the rights being used for
writing. Every key is derived from the 32-byte site card key with HKDF-SHA256
and a distinct ``info`` string per use, so the rights key, the lock status key
and the mobile token key are independent.

All times are POSIX seconds (UTC); schedules on the card are time period ids,
whose definitions the locks hold in their configuration.
"""

import functools
import hmac
import os
import struct
from dataclasses import dataclass, field
from hashlib import sha256

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

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
    # The card carries every entry of the site's blacklist numbered above this (0: the whole list); encode
    # raises it when it leaves the oldest items off. A lock extends its watermark only from a card whose
    # base it has reached, so a gap in what it holds is never reported as held.
    blacklist_base: int = 0
    statuses: tuple[LockStatus, ...] = field(default=(), compare=False)  # written by locks, newest last


# --- layout (docs/card-data-v1.md) --------------------------------------------------------------------------

MAGIC = b"SPCD"
HEADER = struct.Struct(">4sBIH")  # magic, version, site code, length of the sealed rights (nonce + ciphertext + tag)
NONCE_SIZE = 12
TAG_SIZE = 16
SLOT_BODY = struct.Struct(">IIBIIH")  # lock_id, at, battery, blacklist_number, config_revision, events_pending
SLOT_TAG_SIZE = 8
SLOT_SIZE = SLOT_BODY.size + SLOT_TAG_SIZE
SLOTS_SIZE = STATUS_SLOTS * SLOT_SIZE
# What the rights' plaintext may take so that the whole file fits.
RIGHTS_BUDGET = CARD_FILE_SIZE - HEADER.size - NONCE_SIZE - TAG_SIZE - SLOTS_SIZE
UINT32_MAX = 2**32 - 1
VARINT_MAX = 2**70 - 1  # ten bytes of seven bits: room for any database id (< 2**63) with a grant's kind bit
_FLAGS = ("office", "override_privacy", "override_lockdown", "audit_openings", "anti_passback", "extended_open_time")
_KINDS = (POINT, ZONE)  # the kind bit of a grant is its index here

# HKDF info strings: one derived key per use of the site card key.
RIGHTS_INFO = b"Space card v1 rights"
STATUS_INFO = b"Space card v1 lock status"


@functools.lru_cache(maxsize=32)
def derive_key(key: bytes, info: bytes) -> bytes:
    """A 32-byte key for one use (``info``) of the site card ``key`` (HKDF-SHA256, no salt)."""
    if len(key) != SITE_KEY_SIZE:
        raise ValueError(f"a site card key is {SITE_KEY_SIZE} bytes, not {len(key)}")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


@functools.lru_cache(maxsize=32)
def _rights_aead(key: bytes) -> AESGCM:
    return AESGCM(derive_key(key, RIGHTS_INFO))


# --- varints --------------------------------------------------------------------------------------------------


def _varint(value: int, out: bytearray) -> None:
    """Unsigned LEB128: 7 bits a byte, low bits first, the high bit set on all bytes but the last."""
    if not 0 <= value <= VARINT_MAX:
        raise ValueError(f"{value} is out of range for card data (0 to 2**70-1)")
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)


def _zigzag(value: int) -> int:
    return value * 2 if value >= 0 else -value * 2 - 1


class _Malformed(Exception):
    """The authenticated plaintext does not parse (a writer's bug): reported as TRUNCATED."""


class _Reader:
    """Reads the rights' plaintext; running out raises IndexError or _Malformed (both: unreadable)."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise _Malformed("ends early")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def byte(self) -> int:
        byte = self.data[self.pos]
        self.pos += 1
        return byte

    def uint32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def varints(self, count: int) -> list[int]:
        """``count`` varints in one tight loop (the access list is most of a card)."""
        data, pos = self.data, self.pos
        values = []
        append = values.append
        for _ in range(count):
            byte = data[pos]
            pos += 1
            if byte < 0x80:
                append(byte)
                continue
            value, shift = byte & 0x7F, 7
            while byte >= 0x80:
                if shift >= 70:
                    raise _Malformed("varint too long")
                byte = data[pos]
                pos += 1
                value |= (byte & 0x7F) << shift
                shift += 7
            append(value)
        self.pos = pos
        return values

    def varint(self) -> int:
        # Indexing rather than take(): most varints on a card are one byte, and a lock decides in under a ms.
        data, pos = self.data, self.pos
        byte = data[pos]
        if byte < 0x80:
            self.pos = pos + 1
            return byte
        value = byte & 0x7F
        for shift in range(7, 70, 7):
            pos += 1
            byte = data[pos]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.pos = pos + 1
                return value
        raise _Malformed("varint too long")


# --- the rights ------------------------------------------------------------------------------------------------


def _time(value: int | None, name: str) -> bytes:
    if value is None:
        return b"\0\0\0\0"
    if not 0 < value <= UINT32_MAX:
        raise ValueError(f"{name} {value} is not a POSIX time a card holds (1 to 2**32-1, or None)")
    return value.to_bytes(4, "big")


def _uid_bytes(uid: str) -> bytes:
    if len(uid) > 255:
        raise ValueError("a UID on a card is at most 255 hex digits")
    try:
        packed = bytes.fromhex(uid if len(uid) % 2 == 0 else "0" + uid)
    except ValueError:
        raise ValueError(f"UID {uid!r} is not hexadecimal") from None
    return bytes([len(uid)]) + packed


def _head(card: CardData) -> bytearray:
    """Flags, ids, UID and validity: everything of the rights before the access list."""
    out = bytearray([sum(1 << bit for bit, name in enumerate(_FLAGS) if getattr(card, name))])
    _varint(card.key_id, out)
    _varint(card.cardholder_id, out)
    _varint(card.revision, out)
    out += _uid_bytes(card.uid)
    out += _time(card.issued_at, "issued_at")
    out += _time(card.valid_from, "valid_from")
    out += _time(card.valid_until, "valid_until")
    return out


def _grants(grants: tuple[CardGrant, ...]) -> tuple[bytearray, list[int]]:
    """The access list, and the bytes each grant costs (its own plus its share of the period sets)."""
    sets: dict[tuple[int, ...], int] = {}
    for grant in grants:
        sets.setdefault(tuple(grant.periods), len(sets))
    out = bytearray()
    _varint(len(sets), out)
    set_sizes = []
    for periods in sets:
        start = len(out)
        _varint(len(periods), out)
        for period in periods:
            _varint(period, out)
        set_sizes.append(len(out) - start)
    users = [0] * len(sets)
    for grant in grants:
        users[sets[tuple(grant.periods)]] += 1
    _varint(len(grants), out)
    costs = []
    previous = 0
    for grant in grants:
        if grant.kind not in _KINDS:
            raise ValueError(f"grant kind {grant.kind!r} is neither {POINT!r} nor {ZONE!r}")
        start = len(out)
        index = sets[tuple(grant.periods)]
        _varint(_zigzag(grant.id - previous) << 1 | _KINDS.index(grant.kind), out)
        _varint(index, out)
        previous = grant.id
        costs.append(len(out) - start + set_sizes[index] / users[index])
    return out, costs


def _blacklist_items(items: list[BlacklistItem]) -> list[tuple[bytes, bytes]]:
    """Each item as (coded first, coded after its predecessor): the first carries its number, the others a delta."""
    coded = []
    previous = None
    for item in items:
        rest = bytearray()
        _varint(item.key_id, rest)
        rest += _time(item.until, "blacklist until")
        first = bytearray()
        _varint(item.number, first)
        delta = bytearray()
        _varint(item.number - previous if previous is not None else item.number, delta)
        coded.append((bytes(first + rest), bytes(delta + rest)))
        previous = item.number
    return coded


def _fit_blacklist(items: tuple[BlacklistItem, ...], base: int, room: int) -> bytearray:
    """The base and the newest blacklist items that fit in ``room`` bytes; the oldest are dropped, and the base
    rises to the newest one dropped (the card no longer carries every entry above the old base)."""
    ordered = sorted(items, key=lambda item: item.number)
    coded = _blacklist_items(ordered)
    # suffix[i]: the bytes of items i+1.. coded as deltas; keeping items[i:] costs first(i) + suffix[i].
    suffix = [0] * (len(coded) + 1)
    for i in range(len(coded) - 2, -1, -1):
        suffix[i] = suffix[i + 1] + len(coded[i + 1][1])
    bases = [max(base, ordered[i - 1].number) if i else base for i in range(len(coded) + 1)]
    start = len(coded)
    for i in range(len(coded)):
        if _varint_size(bases[i]) + _varint_size(len(coded) - i) + len(coded[i][0]) + suffix[i] <= room:
            start = i
            break
    out = bytearray()
    _varint(bases[start], out)
    _varint(len(coded) - start, out)
    for i in range(start, len(coded)):
        out += coded[i][0] if i == start else coded[i][1]
    return out


def _varint_size(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def _too_big(needed: int, costs: list[int]) -> CardTooBig:
    excess = needed - CARD_FILE_SIZE
    removed = freed = 0
    for cost in sorted(costs, reverse=True):
        if freed >= excess:
            break
        freed += cost
        removed += 1
    message = (
        f"The access list needs {needed:,} bytes but a card holds {CARD_FILE_SIZE:,}: remove at least "
        f"{max(removed, 1):,} access points or zones (use zones or fewer access levels)"
    )
    return CardTooBig(message, needed=needed, available=CARD_FILE_SIZE)


def _rights(card: CardData) -> bytes:
    head = _head(card)
    grants, costs = _grants(card.grants)
    # Even a card carrying no blacklist item has the blacklist's base and count.
    newest = max([card.blacklist_base, *(item.number for item in card.blacklist)])
    used = len(head) + len(grants)
    least = used + _varint_size(newest) + 1
    if least > RIGHTS_BUDGET:
        raise _too_big(CARD_FILE_SIZE - RIGHTS_BUDGET + least, costs)
    return bytes(head + grants + _fit_blacklist(card.blacklist, card.blacklist_base, RIGHTS_BUDGET - used))


def _parse_rights(plain: bytes, site: int, statuses: tuple[LockStatus, ...]) -> CardData:
    reader = _Reader(plain)
    flags = reader.byte()
    key_id, cardholder_id, revision = reader.varint(), reader.varint(), reader.varint()
    nibbles = reader.byte()
    uid = reader.take((nibbles + 1) // 2).hex().upper()[nibbles % 2 :]  # an odd count has a leading pad nibble
    issued_at, valid_from, valid_until = reader.uint32(), reader.uint32(), reader.uint32()
    sets = []
    for _ in range(reader.varint()):
        sets.append(tuple(reader.varints(reader.varint())))
    count = reader.varint()
    if count * 2 > len(plain):
        raise _Malformed("more grants than bytes")
    coded = reader.varints(count * 2)
    grants = []
    previous = 0
    for head, index in zip(coded[::2], coded[1::2], strict=True):
        previous += head >> 2 if not head & 2 else -(head >> 2) - 1  # zigzag, inlined: a lock decides in < 1 ms
        if previous < 0:
            raise _Malformed("negative grant id")
        grants.append(CardGrant(_KINDS[head & 1], previous, sets[index]))  # IndexError: no such period set
    blacklist_base = reader.varint()
    blacklist = []
    number = 0
    for _ in range(reader.varint()):
        number += reader.varint()
        blacklist.append(BlacklistItem(number, reader.varint(), reader.uint32()))
    if reader.pos != len(plain):
        raise _Malformed("bytes after the blacklist")
    return CardData(
        site=site,
        key_id=key_id,
        uid=uid,
        cardholder_id=cardholder_id,
        revision=revision,
        issued_at=issued_at,
        valid_from=valid_from or None,
        valid_until=valid_until or None,
        grants=tuple(grants),
        blacklist=tuple(blacklist),
        blacklist_base=blacklist_base,
        statuses=statuses,
        **{name: bool(flags >> bit & 1) for bit, name in enumerate(_FLAGS)},
    )


# --- status slots -----------------------------------------------------------------------------------------------


def _slot_tag(key: bytes, site: int, nonce: bytes, body: bytes) -> bytes:
    """The slot's HMAC binds it to this site and to this card file (its nonce): a slot copied elsewhere fails."""
    message = site.to_bytes(4, "big") + nonce + body
    return hmac.digest(derive_key(key, STATUS_INFO), message, sha256)[:SLOT_TAG_SIZE]


def _slot(key: bytes, site: int, nonce: bytes, status: LockStatus) -> bytes:
    for name in ("lock_id", "at", "blacklist_number", "config_revision"):
        if not 0 <= getattr(status, name) <= UINT32_MAX:
            raise ValueError(f"status {name} {getattr(status, name)} is out of range (0 to 2**32-1)")
    body = SLOT_BODY.pack(
        status.lock_id,
        status.at,
        min(max(status.battery, 0), 100),
        status.blacklist_number,
        status.config_revision,
        min(max(status.events_pending, 0), 0xFFFF),
    )
    return body + _slot_tag(key, site, nonce, body)


def _read_slots(slots: bytes, key: bytes, site: int, nonce: bytes) -> list[LockStatus | None]:
    """Each slot's status, or None for an empty, damaged or forged slot."""
    read: list[LockStatus | None] = []
    for offset in range(0, SLOTS_SIZE, SLOT_SIZE):
        body = slots[offset : offset + SLOT_BODY.size]
        tag = slots[offset + SLOT_BODY.size : offset + SLOT_SIZE]
        valid = hmac.compare_digest(tag, _slot_tag(key, site, nonce, body))
        read.append(LockStatus(*SLOT_BODY.unpack(body)) if valid else None)
    return read


def _newest_last(statuses) -> tuple[LockStatus, ...]:
    return tuple(sorted((status for status in statuses if status is not None), key=lambda status: status.at))


# --- the file ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where the parts of a card file are, once its header is checked."""

    header: bytes
    nonce: bytes
    sealed: bytes
    slots_at: int


def _layout(raw: bytes, site: int) -> _Layout:
    raw = bytes(raw)
    if len(raw) < len(MAGIC) + 1 or raw[: len(MAGIC)] != MAGIC:
        raise CardError(TRUNCATED, "not card data (no card data header)")
    if raw[len(MAGIC)] != FORMAT_VERSION:
        raise CardError(UNSUPPORTED_VERSION, f"card data version {raw[len(MAGIC)]}, this code reads {FORMAT_VERSION}")
    if len(raw) < HEADER.size:
        raise CardError(TRUNCATED, f"card data of {len(raw)} bytes is shorter than its header")
    _, _, card_site, length = HEADER.unpack_from(raw)
    if card_site != site:
        raise CardError(WRONG_SITE, f"card of site {card_site}, this is site {site}")
    if length < NONCE_SIZE + TAG_SIZE:
        raise CardError(TRUNCATED, f"card data header gives {length} bytes of rights, too few to be card data")
    end = HEADER.size + length
    if len(raw) < end + SLOTS_SIZE:
        raise CardError(TRUNCATED, f"card data of {len(raw)} bytes, its header says {end + SLOTS_SIZE}")
    return _Layout(
        raw[: HEADER.size], raw[HEADER.size : HEADER.size + NONCE_SIZE], raw[HEADER.size + NONCE_SIZE : end], end
    )


def encode(card: CardData, key: bytes, *, nonce: bytes | None = None) -> bytes:
    """The card file's bytes (at most CARD_FILE_SIZE); raises CardTooBig when it does not fit.

    When the rights fit but not all the blacklist items do, the oldest items are left off (a card carries the
    newest). ``card.statuses`` (newest last) fill the status slots, the newest STATUS_SLOTS of them.
    Raises ValueError for data no card can hold (a negative id, a time beyond 2106, a UID not in hex).
    ``nonce`` is for test vectors only: a nonce used twice with one key breaks AES-GCM.
    """
    if not 0 <= card.site <= UINT32_MAX:
        raise ValueError(f"site code {card.site} is out of range (0 to 2**32-1)")
    plain = _rights(card)
    header = HEADER.pack(MAGIC, FORMAT_VERSION, card.site, NONCE_SIZE + len(plain) + TAG_SIZE)
    nonce = os.urandom(NONCE_SIZE) if nonce is None else nonce
    sealed = _rights_aead(key).encrypt(nonce, plain, header)
    statuses = _newest_last(card.statuses)[-STATUS_SLOTS:]
    slots = b"".join(_slot(key, card.site, nonce, status) for status in statuses)
    return header + nonce + sealed + slots + bytes(SLOTS_SIZE - len(slots))


def decode(raw: bytes, key: bytes, site: int) -> CardData:
    """Authenticate and parse; raises CardError with the reason when the card must be refused.

    Bytes after the status slots (a card file read back whole, padded) are ignored. Status slots that do
    not verify are left out of ``statuses``; they never make the card refused.
    """
    layout = _layout(raw, site)
    try:
        plain = _rights_aead(key).decrypt(layout.nonce, layout.sealed, layout.header)
    except InvalidTag:
        raise CardError(TAMPERED, "card data changed, forged, or written with another card key") from None
    raw = bytes(raw)
    slots = _read_slots(raw[layout.slots_at : layout.slots_at + SLOTS_SIZE], key, site, layout.nonce)
    try:
        return _parse_rights(plain, site, _newest_last(slots))
    except (_Malformed, IndexError, ValueError) as error:
        raise CardError(TRUNCATED, f"card data unreadable: {error}") from None


def write_status(raw: bytes, key: bytes, site: int, status: LockStatus) -> bytes:
    """``raw`` with ``status`` written into a status slot (replacing that lock's or the oldest); the rights
    part is untouched, and the slot is authenticated so a forged status is ignored by the server.

    Only the header is checked (a lock has decoded the card just before); raises CardError when it is bad.
    The slot chosen: the one this lock wrote before, else an empty or unverifiable one, else the oldest.
    """
    layout = _layout(raw, site)
    raw = bytes(raw)
    slots = _read_slots(raw[layout.slots_at : layout.slots_at + SLOTS_SIZE], key, site, layout.nonce)
    index = next((i for i, held in enumerate(slots) if held is not None and held.lock_id == status.lock_id), None)
    if index is None:
        index = next((i for i, held in enumerate(slots) if held is None), None)
    if index is None:
        index = min(range(len(slots)), key=lambda i: slots[i].at)
    at = layout.slots_at + index * SLOT_SIZE
    return raw[:at] + _slot(key, site, layout.nonce, status) + raw[at + SLOT_SIZE :]
