"""What goes inside the encrypted container: a gzip-compressed POSIX tar archive, ``manifest.json`` first.

Packing streams files from disk into tar, gzip and the sealed chunks; unpacking
streams the other way into a work directory, checking each member's SHA-256
against the manifest. Nothing unpacked may be used before :func:`unpack`
returns: only then has the last chunk (and so the whole file) authenticated.
"""

import hashlib
import io
import json
import os
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from core.backup.crypto import BackupError, Damaged, EncryptingWriter, decrypted_chunks

MANIFEST = "manifest.json"
GZIP_LEVEL = 1  # most of the gain at a fraction of the time: a backup should take seconds, not minutes
COPY_BUFFER = 1 << 20
INFLATE_STEP = 4 << 20  # decompress at most this much at a time, whatever a chunk holds


class GzipWriter:
    def __init__(self, sink):
        self.sink = sink
        self.compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)

    def write(self, data) -> int:
        if out := self.compressor.compress(data):
            self.sink.write(out)
        return len(data)

    def close(self) -> None:
        self.sink.write(self.compressor.flush())


def sha256_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _tarinfo(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(mtime), 0o600
    return info


def pack(sink: BinaryIO, key: str, manifest: dict, members: dict[str, Path]) -> None:
    """Write the sealed archive of ``manifest`` and ``members`` (name in the archive -> file) to ``sink``."""
    encrypting = EncryptingWriter(sink, key)
    compressing = GzipWriter(encrypting)
    with tarfile.open(fileobj=compressing, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        body = json.dumps(manifest, indent=2, sort_keys=True).encode()
        tar.addfile(_tarinfo(MANIFEST, len(body), 0), io.BytesIO(body))
        for name, path in members.items():
            stat = path.stat()
            with open(path, "rb") as handle:
                tar.addfile(_tarinfo(name, stat.st_size, stat.st_mtime), handle)
    compressing.close()
    encrypting.close()


def _inflated(chunks: Iterable[bytes]) -> Iterator[bytes]:
    inflater = zlib.decompressobj(31)
    try:
        for chunk in chunks:
            data = chunk
            while data:
                if inflater.eof:
                    raise Damaged("The backup holds data after its end.")
                out = inflater.decompress(data, INFLATE_STEP)
                data = inflater.unconsumed_tail
                if out:
                    yield out
    except zlib.error as error:
        raise Damaged(f"The backup's compressed stream is damaged: {error}.") from None
    if not inflater.eof:
        raise Damaged("The backup's compressed stream ends early.")


class _StreamReader(io.RawIOBase):
    """A readable file over an iterator of bytes (tarfile reads it as a stream)."""

    def __init__(self, pieces: Iterator[bytes]):
        self.pieces = pieces
        self.pending = memoryview(b"")  # a view: tar reads 10 KiB at a time, and copying the rest each time is slow

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending:
            piece = next(self.pieces, None)
            if piece is None:
                return 0
            self.pending = memoryview(piece)
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size

    def drain(self) -> None:
        """Read what tar left (its padding): the last chunk must still be authenticated."""
        for _ in self.pieces:
            pass
        self.pending = memoryview(b"")


def unpack(source: BinaryIO, key: str, work_dir: Path, wanted: set[str] | None = None) -> tuple[dict, dict[str, Path]]:
    """(manifest, name -> unpacked file) of a sealed archive, every member checked against the manifest.

    ``wanted``: the members to write out (None: all); the others are read and checked, not kept.
    """
    reader = _StreamReader(_inflated(decrypted_chunks(source, key)))
    manifest, files, seen = None, {}, set()
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                if manifest is None:
                    if member.name != MANIFEST or not member.isfile():
                        raise Damaged("The backup's archive does not start with its manifest.")
                    manifest = json.loads(tar.extractfile(member).read())
                    continue
                expected = manifest.get("members", {}).get(member.name)
                if expected is None or not member.isfile() or "/" in member.name or member.name in seen:
                    raise Damaged(f"The backup holds a member its manifest does not list: {member.name!r}.")
                seen.add(member.name)
                keep = wanted is None or member.name in wanted
                target = work_dir / member.name
                digest = hashlib.sha256()
                stream = tar.extractfile(member)
                with open(target if keep else os.devnull, "wb") as out:
                    while block := stream.read(COPY_BUFFER):
                        digest.update(block)
                        out.write(block)
                if digest.hexdigest() != expected["sha256"]:
                    raise Damaged(f"The checksum of {member.name} does not match the manifest.")
                if keep:
                    files[member.name] = target
        reader.drain()
    except tarfile.TarError as error:
        raise Damaged(f"The backup's archive is damaged: {error}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, KeyError, TypeError):
        raise Damaged("The backup's manifest is damaged.") from None
    if manifest is None:
        raise Damaged("The backup's archive is empty.")
    missing = set(manifest.get("members", {})) - seen
    if missing:
        raise Damaged(f"The backup lacks members its manifest lists: {', '.join(sorted(missing))}.")
    return manifest, files


def check_counts(expected: dict[str, int], found: dict[str, int]) -> None:
    """Refuse when the tables' row counts differ from the manifest's."""
    differences = [
        f"{table}: {found.get(table, 'missing')} rows, the manifest says {rows}"
        for table, rows in sorted(expected.items())
        if found.get(table) != rows
    ]
    extra = sorted(set(found) - set(expected))
    differences += [f"{table}: a table the manifest does not list" for table in extra]
    if differences:
        raise BackupError("The row counts do not match the manifest: " + "; ".join(differences[:10]) + ".")
