"""Durable files: what makes a written file's name survive a power cut; private file storage."""

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.utils.deconstruct import deconstructible


def fsync_directory(path: Path) -> None:
    """Flush ``path``'s directory entries, so a file just made or renamed in it is there after a crash."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@deconstructible(path="core.files.SettingStorage")
class SettingStorage(FileSystemStorage):
    """Files under the folder a setting names, read at each use (a test's override applies), with no public URL.

    For private files (cardholder photos): they are served only by views that check who asks, so
    ``url()`` refuses rather than hand out an address under MEDIA_URL.
    """

    def __init__(self, setting: str):
        self.setting = setting
        super().__init__()

    @property
    def base_location(self):
        return str(getattr(settings, self.setting))

    @property
    def location(self):
        return os.path.abspath(self.base_location)

    def url(self, name):
        raise ValueError(f"Files under {self.setting} have no public URL.")


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all: a reader, or a crash, never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
