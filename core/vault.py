"""Secrets encrypted at rest under the master key, which never enters the database.

The master key comes from ``SPACE_MASTER_KEY`` (or ``SPACE_MASTER_KEY_FILE``); the
embedded profile generates one into ``var/master_key``. A sealed secret is
``b"v1" ‖ nonce(12) ‖ AES-256-GCM(ciphertext ‖ tag)`` with its *purpose* (for
example ``device-key:4660``) as associated data, so a sealed value copied onto
another row does not open there. A database dump alone reveals no secret.
"""

import functools
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

VERSION = b"v1"
NONCE_SIZE = 12


class VaultError(Exception):
    """A sealed secret that does not open: another master key, another purpose, or damaged bytes."""


@functools.cache
def _aead(master_key: str) -> AESGCM:
    # The configured value is a passphrase-like string; HKDF turns it into an AES-256 key.
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"Space vault v1").derive(master_key.encode())
    return AESGCM(key)


def seal(secret: bytes, purpose: str) -> bytes:
    nonce = os.urandom(NONCE_SIZE)
    return VERSION + nonce + _aead(settings.SPACE_MASTER_KEY).encrypt(nonce, secret, purpose.encode())


def unseal(sealed: bytes, purpose: str) -> bytes:
    sealed = bytes(sealed)
    if not sealed.startswith(VERSION) or len(sealed) < len(VERSION) + NONCE_SIZE + 16:
        raise VaultError("not a sealed secret")
    nonce = sealed[len(VERSION) : len(VERSION) + NONCE_SIZE]
    try:
        return _aead(settings.SPACE_MASTER_KEY).decrypt(nonce, sealed[len(VERSION) + NONCE_SIZE :], purpose.encode())
    except InvalidTag:
        raise VaultError(f"the secret for {purpose} does not open with this master key") from None


def derive(purpose: str, length: int = 32) -> bytes:
    """A key of its own for ``purpose`` (e.g. ``"pin-index"``), derived from the master key; never stored."""
    return _derived(settings.SPACE_MASTER_KEY, purpose, length)


@functools.cache
def _derived(master_key: str, purpose: str, length: int) -> bytes:
    info = f"Space derived key v1: {purpose}".encode()
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(master_key.encode())
