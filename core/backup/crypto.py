"""The encrypted container of a backup: AES-256-GCM over a stream of chunks.

A backup can be hundreds of megabytes, so it is never held in memory: the
plaintext is cut into chunks of ``chunk_size`` bytes, each sealed on its own.
Every chunk's associated data is the file's header, its index and whether it
is the last one, so a chunk moved, swapped with one of another backup, or a
file cut short (even at a chunk boundary) or lengthened, fails to open.
docs/backups.md describes the format to the byte.

    header   magic "SPACEBAK" (8) ‖ format 1 (1) ‖ salt (32) ‖ chunk size, u32 big-endian (4) ‖ key check (16)
    chunk    nonce (12) ‖ ciphertext (chunk size, or 0..chunk size for the last) ‖ tag (16)

The AES key and the key check are HKDF-SHA256 of the backup key (its UTF-8
bytes) with the header's salt: 48 bytes, the first 32 the key, the last 16 the
check. The check tells a wrong key from a damaged file.
"""

import hmac
import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"SPACEBAK"
FORMAT = 1
HEADER = struct.Struct(">8sB32sI16s")  # magic, format, salt, chunk size, key check
CHUNK_INDEX = struct.Struct(">QB")  # in the associated data: index, last (1) or not (0)
NONCE_SIZE = 12
TAG_SIZE = 16
CHUNK_SIZE = 1 << 20
MAX_CHUNK_SIZE = 64 << 20
KDF_INFO = b"Space backup v1"
MIN_KEY_CHARS = 32


class BackupError(Exception):
    """A backup that cannot be made, read or restored, with a reason an operator can act on."""


class WrongKey(BackupError):
    pass


class Damaged(BackupError):
    pass


def check_key(key: str | None) -> str:
    """The backup key, or a clear refusal when there is none or it is too short to be a key."""
    if not key:
        raise BackupError("No backup key: set SPACE_BACKUP_KEY or SPACE_BACKUP_KEY_FILE.")
    if len(key) < MIN_KEY_CHARS:
        raise BackupError(f"The backup key is too short: {len(key)} characters, at least {MIN_KEY_CHARS} are needed.")
    return key


def derive(key: str, salt: bytes) -> tuple[bytes, bytes]:
    """(AES-256 key, key check) for ``key`` and a file's ``salt``."""
    material = HKDF(algorithm=hashes.SHA256(), length=48, salt=salt, info=KDF_INFO).derive(key.encode())
    return material[:32], material[32:]


class EncryptingWriter:
    """A writable file: what is written goes out to ``sink`` in sealed chunks; ``close()`` seals the last one."""

    def __init__(self, sink: BinaryIO, key: str, chunk_size: int = CHUNK_SIZE):
        salt = os.urandom(32)
        aes_key, key_check = derive(check_key(key), salt)
        self.header = HEADER.pack(MAGIC, FORMAT, salt, chunk_size, key_check)
        self.aead = AESGCM(aes_key)
        self.sink = sink
        self.chunk_size = chunk_size
        self.buffer = bytearray()
        self.index = 0
        self.closed = False
        sink.write(self.header)

    def write(self, data) -> int:
        self.buffer += data
        # A full chunk goes out only once more follows: the last chunk must be sealed as the last.
        while len(self.buffer) > self.chunk_size:
            self._seal(bytes(self.buffer[: self.chunk_size]), last=False)
            del self.buffer[: self.chunk_size]
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._seal(bytes(self.buffer), last=True)
            self.buffer.clear()
            self.closed = True

    def _seal(self, plaintext: bytes, *, last: bool) -> None:
        nonce = os.urandom(NONCE_SIZE)
        associated = self.header + CHUNK_INDEX.pack(self.index, int(last))
        self.sink.write(nonce + self.aead.encrypt(nonce, plaintext, associated))
        self.index += 1


def read_header(source: BinaryIO, key: str) -> tuple[bytes, AESGCM, int]:
    """(header, cipher, chunk size) of a backup file; a refusal when it is not one, or not under this key."""
    header = source.read(HEADER.size)
    if len(header) < HEADER.size or not header.startswith(MAGIC):
        raise Damaged("This is not a Space backup file (no SPACEBAK header).")
    _, version, salt, chunk_size, key_check = HEADER.unpack(header)
    if version != FORMAT:
        raise BackupError(f"This backup is in format {version}; this Space reads format {FORMAT}.")
    if not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise Damaged("The backup's header is damaged (chunk size out of range).")
    aes_key, expected_check = derive(check_key(key), salt)
    if not hmac.compare_digest(expected_check, key_check):
        raise WrongKey("This backup was made under another backup key (SPACE_BACKUP_KEY): it cannot be opened.")
    return header, AESGCM(aes_key), chunk_size


def decrypted_chunks(source: BinaryIO, key: str) -> Iterator[bytes]:
    """The plaintext, chunk by chunk, each authenticated before it is given; raises Damaged on any change."""
    header, aead, chunk_size = read_header(source, key)
    frame_size = NONCE_SIZE + chunk_size + TAG_SIZE
    index = 0
    frame = source.read(frame_size)
    while True:
        if len(frame) < NONCE_SIZE + TAG_SIZE:
            raise Damaged(f"The backup is cut short (chunk {index} is missing or incomplete).")
        following = source.read(frame_size)
        last = not following
        associated = header + CHUNK_INDEX.pack(index, int(last))
        try:
            plaintext = aead.decrypt(frame[:NONCE_SIZE], frame[NONCE_SIZE:], associated)
        except InvalidTag:
            raise Damaged(
                f"The backup is damaged or was changed: chunk {index} does not authenticate"
                + (" (the file may be cut short)." if last else ".")
            ) from None
        yield plaintext
        if last:
            return
        if len(plaintext) != chunk_size:
            raise Damaged(f"The backup is damaged: chunk {index} is short.")
        frame = following
        index += 1
