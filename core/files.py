"""Durable files: what makes a written file's name survive a power cut."""

import os
from pathlib import Path


def fsync_directory(path: Path) -> None:
    """Flush ``path``'s directory entries, so a file just made or renamed in it is there after a crash."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
