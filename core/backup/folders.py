"""Folders of files backed up beside the database (cardholder photos): each one a tar member of the backup.

A folder is packed as ``<name>.tar`` (uncompressed: the backup's own gzip runs over it) holding its
regular files by relative path; names that start with a dot (a lock, a file being written) are left
out. Restoring extracts it into the folder, with tarfile's "data" filter: no absolute path, no ``..``,
no link or device file leaves the folder.
"""

import tarfile
from pathlib import Path

from core.backup.crypto import Damaged
from core.files import fsync_directory


def _files(folder: Path) -> list[tuple[Path, str]]:
    if not folder.is_dir():
        return []
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if not any(part.startswith(".") for part in relative.parts) and path.is_file():
            found.append((path, relative.as_posix()))
    return sorted(found, key=lambda item: item[1])


def pack_folder(folder: Path, target: Path) -> dict:
    """Write ``folder``'s files into the tar ``target``; how many files and bytes went in."""
    files = size = 0
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
        for path, name in _files(folder):
            try:
                info = tar.gettarinfo(path, arcname=name)
                with open(path, "rb") as handle:
                    tar.addfile(info, handle)
            except FileNotFoundError:
                continue  # removed while the backup ran: it was no longer named by anything
            files += 1
            size += info.size
    return {"files": files, "bytes": size}


def check_folder(member: Path, expected: dict) -> int:
    """Read the packed folder through; refuse it when it holds other than the files the manifest counts."""
    try:
        with tarfile.open(member, "r") as tar:
            files = [info for info in tar if info.isfile()]
    except tarfile.TarError as error:
        raise Damaged(f"The backup's folder {member.name} is damaged: {error}.") from None
    if len(files) != expected.get("files"):
        raise Damaged(f"The backup's folder {member.name} holds {len(files)} files, the manifest says {expected}.")
    return len(files)


def restore_folder(member: Path, folder: Path) -> int:
    """Put the packed folder's files into ``folder`` (made if missing; a file of the same name is replaced)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(member, "r") as tar:
            members = [info for info in tar.getmembers() if info.isfile()]
            tar.extractall(folder, members=members, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise Damaged(f"The backup's folder {member.name} could not be restored: {error}.") from None
    for directory in {folder, *((folder / info.name).parent for info in members)}:
        fsync_directory(directory)
    return len(members)
