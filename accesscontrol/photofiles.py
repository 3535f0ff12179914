"""Where cardholder photos are kept: private files under SPACE_PHOTO_DIR, named by their content.

A photo is ``<shard>/<cardholder>-<digest>.jpg`` with its thumbnail beside it
(``...-<digest>.thumb.jpg``): a new photo never overwrites the one a reader may
be sending, and the digest is the photo's version. Files are removed only after
the commit that stops naming them, and never while a backup copies the folder
(:func:`deletions_held`): a deletion that finds a backup at work leaves its files
to the hourly sweep (accesscontrol.photos.sweep_orphans), so a backup holds every
photo its database names.
"""

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.files import SettingStorage

logger = logging.getLogger("space.photos")

# Private files (never under a public URL): served by views that check the operator may see the cardholder.
photo_storage = SettingStorage("SPACE_PHOTO_DIR")
THUMBNAIL_SUFFIX = ".thumb.jpg"
LOCK_NAME = ".backup.lock"


def photo_name(cardholder_id: int, digest: str) -> str:
    """Where a cardholder's photo of this content digest is kept: 256 folders rather than 100,000 files in one."""
    return f"{cardholder_id % 256:02x}/{cardholder_id}-{digest}.jpg"


def thumbnail_name(name: str) -> str:
    return name.removesuffix(".jpg") + THUMBNAIL_SUFFIX


def photo_version(name: str) -> str:
    """The content digest in a photo's name: its version in URLs and its ETag ("" without a photo)."""
    return name.rsplit("-", 1)[-1].removesuffix(".jpg") if name else ""


def root() -> Path:
    return Path(photo_storage.location)


@contextmanager
def _lock(kind: int) -> Iterator[bool]:
    """The folder's lock (flock: across processes), taken as ``kind``; yields whether it was taken."""
    folder = root()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_NAME, "a+b") as handle:
        try:
            fcntl.flock(handle, kind)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def deletions_held() -> Iterator[None]:
    """While a backup snapshots the database and copies the folder: no photo file is removed meanwhile."""
    with _lock(fcntl.LOCK_SH):
        yield


@contextmanager
def deleting() -> Iterator[bool]:
    """Whether files may be removed now (no backup is copying the folder), held for the block."""
    with _lock(fcntl.LOCK_EX | fcntl.LOCK_NB) as taken:
        yield taken


def delete_photo_files(name: str) -> None:
    """Remove a photo's files (the photo and its thumbnail), called after the commit that stops naming them.

    One already gone, or not removable, is logged, not raised; while a backup copies the folder they stay,
    for the hourly sweep.
    """
    if not name:
        return
    with deleting() as may:
        if not may:
            logger.info("A backup is copying the photos: %s is left for the hourly sweep", name)
            return
        for each in (name, thumbnail_name(name)):
            try:
                photo_storage.delete(each)
            except OSError:
                logger.exception("Could not remove the photo file %s", each)
