"""Mobile keys: a key token only the site's locks can open, and the phone's answer to a lock's challenge.

Both sides of the exchange, pure (no ORM, no I/O):

- **The server** :func:`mint` s a token for a mobile Key: its card data (the bytes
  of ``carddata.encode``) and a fresh random *phone secret*, sealed with AES-256-GCM
  under K_mobile (HKDF-SHA256 of the site card key, docs/card-data-v1.md). The API
  gives the phone the token and the phone secret over HTTPS. The phone and any
  cloud in between only carry the token: they can neither read nor change it.
- **At the door** the lock sends a fresh random challenge (:class:`Challenges`); the
  phone answers the token and :func:`prove` = HMAC-SHA256(phone secret, challenge ‖
  lock id). The lock opens the token (:func:`open_token`), which gives it the
  phone secret, and checks the proof against a challenge it issued. A recorded
  answer played again answers an old challenge: the lock remembers the challenges
  it issued and those already answered, and refuses it as ``replayed``. An answer
  for another lock, or from someone holding a copied token but not the phone
  secret, does not verify: ``tampered``.

The token expires with the card data inside it (its validity window), so the lock's
usual decision refuses an expired token.

Token layout: ``SPMK`` (4) ‖ version 1 (1) ‖ site code (uint32) ‖ nonce (12) ‖
AES-256-GCM(phone secret (32) ‖ card file) with the 9 header bytes as associated data.
"""

import datetime as dt
import hmac
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass
from hashlib import sha256

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from devices import carddata
from devices.carddata import TAMPERED, TRUNCATED, UNSUPPORTED_VERSION, WRONG_SITE, CardData, CardError

MOBILE_INFO = b"Space mobile key v1"
MAGIC = b"SPMK"
VERSION = 1
HEADER = struct.Struct(">4sBI")  # magic, version, site code
NONCE_SIZE = 12
TAG_SIZE = 16
PHONE_SECRET_SIZE = 32
CHALLENGE_SIZE = 16
PROOF_SIZE = 32
REPLAYED = "replayed"

CHALLENGE_LIFETIME = 30  # seconds a phone has to answer
PENDING_CHALLENGES = 8  # challenges a lock keeps waiting for an answer
USED_CHALLENGES = 256  # answered or expired challenges a lock remembers, to call a replay by its name


@dataclass(frozen=True, slots=True)
class MintedToken:
    """What the server gives the phone: the token, the phone secret, and when the token stops opening doors."""

    token: bytes
    phone_secret: bytes
    expires_at: int | None  # POSIX seconds: the card data's valid_until


def _aead(key: bytes) -> AESGCM:
    return AESGCM(carddata.derive_key(key, MOBILE_INFO))


def mint(card: CardData, key: bytes) -> MintedToken:
    """A token carrying ``card`` (raises carddata.CardTooBig like a card would) and its new phone secret."""
    phone_secret = os.urandom(PHONE_SECRET_SIZE)
    header = HEADER.pack(MAGIC, VERSION, card.site)
    nonce = os.urandom(NONCE_SIZE)
    sealed = _aead(key).encrypt(nonce, phone_secret + carddata.encode(card, key), header)
    return MintedToken(header + nonce + sealed, phone_secret, card.valid_until)


def prove(phone_secret: bytes, challenge: bytes, lock_id: int) -> bytes:
    """The phone's proof that it holds the phone secret, for this challenge of this lock."""
    return hmac.digest(phone_secret, challenge + lock_id.to_bytes(4, "big"), sha256)


def open_token(token: bytes, key: bytes, site: int) -> tuple[CardData, bytes]:
    """(card data, phone secret) of a token; raises CardError with the reason when it must be refused."""
    token = bytes(token)
    if len(token) < HEADER.size or token[: len(MAGIC)] != MAGIC:
        raise CardError(TRUNCATED, "not a mobile key token")
    _, version, token_site = HEADER.unpack_from(token)
    if version != VERSION:
        raise CardError(UNSUPPORTED_VERSION, f"mobile key token version {version}, this code reads {VERSION}")
    if token_site != site:
        raise CardError(WRONG_SITE, f"mobile key of site {token_site}, this is site {site}")
    if len(token) < HEADER.size + NONCE_SIZE + TAG_SIZE + PHONE_SECRET_SIZE:
        raise CardError(TRUNCATED, "mobile key token too short")
    nonce = token[HEADER.size : HEADER.size + NONCE_SIZE]
    try:
        plain = _aead(key).decrypt(nonce, token[HEADER.size + NONCE_SIZE :], token[: HEADER.size])
    except InvalidTag:
        raise CardError(TAMPERED, "mobile key token changed, forged, or of another card key") from None
    if len(plain) < PHONE_SECRET_SIZE:
        raise CardError(TRUNCATED, "mobile key token without a phone secret")
    return carddata.decode(plain[PHONE_SECRET_SIZE:], key, site), plain[:PHONE_SECRET_SIZE]


class Challenges:
    """A lock's challenges: those waiting for an answer, and those answered or expired (bounded, oldest forgotten)."""

    def __init__(self, lock_id: int):
        self.lock_id = lock_id
        self._pending: OrderedDict[bytes, float] = OrderedDict()  # challenge -> issued at (POSIX seconds)
        self._used: OrderedDict[bytes, None] = OrderedDict()

    def issue(self, at: dt.datetime) -> bytes:
        challenge = os.urandom(CHALLENGE_SIZE)
        self._pending[challenge] = at.timestamp()
        while len(self._pending) > PENDING_CHALLENGES:
            self._retire(next(iter(self._pending)))
        return challenge

    def verify(self, phone_secret: bytes, proof: bytes, at: dt.datetime) -> None:
        """Accept ``proof`` once, for a challenge issued less than CHALLENGE_LIFETIME ago; raise CardError else."""
        now = at.timestamp()
        for challenge, issued in list(self._pending.items()):
            if self._answers(phone_secret, proof, challenge):
                self._retire(challenge)
                if now - issued > CHALLENGE_LIFETIME:
                    raise CardError(REPLAYED, "the answer is for a challenge that has expired")
                return
        if any(self._answers(phone_secret, proof, challenge) for challenge in self._used):
            raise CardError(REPLAYED, "the answer is for a challenge already answered")
        raise CardError(TAMPERED, "the proof answers no challenge of this lock")

    def _answers(self, phone_secret: bytes, proof: bytes, challenge: bytes) -> bool:
        return hmac.compare_digest(proof, prove(phone_secret, challenge, self.lock_id))

    def _retire(self, challenge: bytes) -> None:
        del self._pending[challenge]
        self._used[challenge] = None
        while len(self._used) > USED_CHALLENGES:
            self._used.popitem(last=False)
