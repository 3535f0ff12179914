"""SDP/1, the Space Device Protocol: frames, handshake proofs, session keys, sealing, replay window.

Pure and synchronous: bytes in, bytes out, no sockets and no clock, so the
bridge (server side) and the simulator (device side) share every byte of it.
The protocol is specified in docs/sdp1.md; the names here are the names used
there.
"""

import hashlib
import hmac
import json
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"SD"
VERSION = 0x01

HELLO = 0x01
CHALLENGE = 0x02
AUTH = 0x03
SEALED = 0x10

HEADER = struct.Struct(">2sBBIIQ")
HEADER_SIZE = HEADER.size  # 20
NONCE_SIZE = 16
PROOF_SIZE = 32
TAG_SIZE = 16
KEY_SIZE = 16
MAX_DATAGRAM = 1200
MAX_PLAINTEXT = MAX_DATAGRAM - HEADER_SIZE - TAG_SIZE  # 1164
HANDSHAKE_LENGTH = HEADER_SIZE + NONCE_SIZE + PROOF_SIZE  # 68: HELLO and CHALLENGE
AUTH_LENGTH = HEADER_SIZE + PROOF_SIZE  # 52
MIN_SEALED = HEADER_SIZE + 1 + TAG_SIZE  # 37
REPLAY_WINDOW = 64
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1

_HELLO_PADDING = bytes(PROOF_SIZE)
_SEQ_NONCE_PREFIX = bytes(4)
_SERVER_LABEL = b"SDP1 server"
_DEVICE_LABEL = b"SDP1 device"
_KEYS_LABEL = b"SDP1 keys"

# Which types each side may receive.
FROM_DEVICE = frozenset({HELLO, AUTH, SEALED})
FROM_SERVER = frozenset({CHALLENGE, SEALED})


class Malformed(ValueError):
    """A datagram that is not a valid frame for its receiver; ``reason`` names the counter to raise."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Frame:
    type: int
    device_id: int
    session_id: int
    seq: int
    header: bytes
    body: bytes


def header(frame_type: int, device_id: int, session_id: int, seq: int) -> bytes:
    return HEADER.pack(MAGIC, VERSION, frame_type, device_id, session_id, seq)


def parse(datagram: bytes, accepted_types: frozenset[int]) -> Frame:
    """Split a datagram into a :class:`Frame`, checking everything that needs no key; raises :class:`Malformed`."""
    length = len(datagram)
    if length < HEADER_SIZE:
        raise Malformed("short")
    magic, version, frame_type, device_id, session_id, seq = HEADER.unpack_from(datagram)
    if magic != MAGIC or version != VERSION:
        raise Malformed("bad_magic")
    if frame_type not in accepted_types:
        raise Malformed("bad_type")
    body = datagram[HEADER_SIZE:]
    if frame_type == SEALED:
        if not MIN_SEALED <= length <= MAX_DATAGRAM:
            raise Malformed("bad_length")
        if session_id == 0 or seq == 0:
            raise Malformed("bad_header")
    elif frame_type == AUTH:
        if length != AUTH_LENGTH:
            raise Malformed("bad_length")
        if session_id == 0 or seq != 0:
            raise Malformed("bad_header")
    else:
        if length != HANDSHAKE_LENGTH:
            raise Malformed("bad_length")
        if seq != 0 or (session_id != 0) != (frame_type == CHALLENGE):
            raise Malformed("bad_header")
        if frame_type == HELLO and body[NONCE_SIZE:] != _HELLO_PADDING:
            raise Malformed("bad_padding")
    return Frame(frame_type, device_id, session_id, seq, datagram[:HEADER_SIZE], body)


# --- handshake ------------------------------------------------------------------


def hello(device_id: int, nonce_d: bytes) -> bytes:
    return header(HELLO, device_id, 0, 0) + nonce_d + _HELLO_PADDING


def challenge(device_id: int, session_id: int, nonce_s: bytes, proof_s: bytes) -> bytes:
    return header(CHALLENGE, device_id, session_id, 0) + nonce_s + proof_s


def auth(device_id: int, session_id: int, proof_d: bytes) -> bytes:
    return header(AUTH, device_id, session_id, 0) + proof_d


def _ids(device_id: int, session_id: int) -> bytes:
    return struct.pack(">II", device_id, session_id)


def server_proof(key: bytes, device_id: int, session_id: int, nonce_d: bytes, nonce_s: bytes) -> bytes:
    message = _SERVER_LABEL + _ids(device_id, session_id) + nonce_d + nonce_s
    return hmac.new(key, message, hashlib.sha256).digest()


def device_proof(key: bytes, device_id: int, session_id: int, nonce_d: bytes, nonce_s: bytes) -> bytes:
    message = _DEVICE_LABEL + _ids(device_id, session_id) + nonce_s + nonce_d
    return hmac.new(key, message, hashlib.sha256).digest()


def proofs_equal(expected: bytes, received: bytes) -> bool:
    return hmac.compare_digest(expected, received)


def session_keys(key: bytes, device_id: int, session_id: int, nonce_d: bytes, nonce_s: bytes) -> tuple[bytes, bytes]:
    """``(k_d2s, k_s2d)``, the two directions' AES-128-GCM keys."""
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=2 * KEY_SIZE,
        salt=nonce_d + nonce_s,
        info=_KEYS_LABEL + _ids(device_id, session_id),
    ).derive(key)
    return okm[:KEY_SIZE], okm[KEY_SIZE:]


# --- sealed frames --------------------------------------------------------------


def _nonce(seq: int) -> bytes:
    return _SEQ_NONCE_PREFIX + seq.to_bytes(8, "big")


def seal(aead: AESGCM, device_id: int, session_id: int, seq: int, plaintext: bytes) -> bytes:
    """A SEALED datagram; ``aead`` holds the sending direction's key."""
    if not 1 <= len(plaintext) <= MAX_PLAINTEXT:
        raise ValueError(f"A sealed plaintext is 1 to {MAX_PLAINTEXT} bytes, not {len(plaintext)}.")
    head = header(SEALED, device_id, session_id, seq)
    return head + aead.encrypt(_nonce(seq), plaintext, head)


def unseal(aead: AESGCM, frame: Frame) -> bytes:
    """The plaintext of a SEALED frame; raises ``cryptography.exceptions.InvalidTag`` when it does not verify."""
    return aead.decrypt(_nonce(frame.seq), frame.body, frame.header)


def encode(message: dict) -> bytes:
    """A message as compact UTF-8 JSON, members in the order given."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def decode(plaintext: bytes) -> dict | None:
    """The message in a plaintext, or None when it is not a JSON object with a string member ``t``."""
    try:
        message = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if isinstance(message, dict) and isinstance(message.get("t"), str):
        return message
    return None


class ReplayWindow:
    """One direction's replay window: which seqs were accepted among the last 64.

    ``in_window(seq)`` is checked before the tag (cheap rejection), ``accept(seq)``
    after it: True for a new seq, False for one accepted before.
    """

    __slots__ = ("_mask", "highest")

    def __init__(self):
        self.highest = 0
        # Bit i set: seq ``highest - i`` was accepted.
        self._mask = 0

    def in_window(self, seq: int) -> bool:
        return seq > 0 and seq > self.highest - REPLAY_WINDOW

    def accept(self, seq: int) -> bool:
        if seq > self.highest:
            shift = seq - self.highest
            self._mask = ((self._mask << shift) | 1) & ((1 << REPLAY_WINDOW) - 1) if shift < REPLAY_WINDOW else 1
            self.highest = seq
            return True
        bit = 1 << (self.highest - seq)
        if self._mask & bit:
            return False
        self._mask |= bit
        return True
