"""Where a feed's file comes from: a watched folder, an HTTPS address, an SFTP server.

Each ``fetch_*`` returns a :class:`Fetched` file, or None when there is nothing new (no settled file in the
folder; the same file as last time at the HTTPS or SFTP address), or raises ``sync.SourceError`` saying why the
file cannot be had. The cursor of a fetched file (ETag, Last-Modified, size and time, digest) is saved by the core
only after a successful apply, so a file that failed is fetched again next time.
"""

import base64
import hashlib
import io
import os
import socket
import ssl
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from accesscontrol import sync
from integrations import http
from integrations.hrfeeds.config import matches

MAX_BYTES = 100 * 1024 * 1024
HTTPS_TIMEOUTS = http.Timeouts(connect=10.0, read=30.0, total=300.0)
SFTP_TIMEOUT = 30.0


@dataclass
class Fetched:
    name: str  # the file's name, for messages and the archive
    data: bytes
    where: str  # "folder /srv/hr/in", "https://hr.example/people.csv", "sftp://hr@host:22/out/people.xlsx"
    cursor: dict = field(default_factory=dict)
    path: Path | None = None  # the watched folder's file, moved to the archive when the run ends


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- watched folder ----------------------------------------------------------------------------------------------


def settled_files(settings: dict, now: float) -> list[Path]:
    """The folder's files the feed reads, oldest first, that nobody has written for ``settle_seconds``.

    A file still being copied in keeps its modification time moving; one left alone that long is taken as complete
    (and is read only if its size and time do not change while it is read, see :func:`fetch_folder`)."""
    folder = Path(settings["path"])
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        raise sync.SourceError(f"The watched folder {folder} does not exist.") from None
    except OSError as error:
        raise sync.SourceError(f"The watched folder {folder} cannot be read: {error.strerror}.") from None
    found = []
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # gone since listed
        settled = now - info.st_mtime >= settings["settle_seconds"]
        if stat.S_ISREG(info.st_mode) and matches(settings, entry.name) and settled:
            found.append((info.st_mtime_ns, entry.name, Path(entry.path)))
    return [path for _, _, path in sorted(found)]


def fetch_folder(settings: dict, now: float) -> Fetched | None:
    for path in settled_files(settings, now):
        try:
            before = path.stat()
            if before.st_size > MAX_BYTES:
                raise sync.SourceError(f"{path.name} is larger than {MAX_BYTES // 2**20} MB.")
            data = path.read_bytes()
            after = path.stat()
        except FileNotFoundError:
            continue  # taken away meanwhile
        except OSError as error:
            raise sync.SourceError(f"{path} cannot be read: {error.strerror}.") from None
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or len(data) != after.st_size:
            return None  # written to while read: not settled after all, read next time
        return Fetched(path.name, data, f"folder {settings['path']}", {"file": path.name, "sha256": digest(data)}, path)
    return None


# --- HTTPS -------------------------------------------------------------------------------------------------------


def fetch_https(settings: dict, secret: str, cursor: dict, full: bool) -> Fetched | None:
    """GET the file; conditional on the cursor's ETag / Last-Modified unless ``full``: 304 is nothing new."""
    url = settings["url"]
    endpoint = http.Endpoint.from_url(url)
    headers = {"Accept": "text/csv, application/vnd.openxmlformats-officedocument.spreadsheetml.sheet, */*"}
    if secret:
        headers["Authorization"] = f"Bearer {secret.strip()}"
    if not full:
        if cursor.get("etag"):
            headers["If-None-Match"] = cursor["etag"]
        if cursor.get("last_modified"):
            headers["If-Modified-Since"] = cursor["last_modified"]
    try:
        context = http.tls_context(settings["ca_file"]) if settings["ca_file"] else None
    except (OSError, ssl.SSLError) as error:
        raise sync.SourceError(f"The CA file {settings['ca_file']} cannot be used: {error}.") from None
    response = http.get(endpoint, headers, HTTPS_TIMEOUTS, limit=MAX_BYTES, context=context)
    if response.status is None:
        raise sync.SourceError(f"GET {url}: {response.error}.")
    if response.status == 304:
        return None
    if not response.ok:
        hint = " (the source's secret is the bearer token)" if response.status in (401, 403) else ""
        raise sync.SourceError(f"GET {url} answered {response.status}{hint}.")
    if response.truncated:
        raise sync.SourceError(f"GET {url}: the file is larger than {MAX_BYTES // 2**20} MB.")
    sha = digest(response.body)
    if not full and sha == cursor.get("sha256"):
        return None  # a server that does not answer conditional requests sent the same file again
    new_cursor = {"sha256": sha}
    if response.headers.get("etag"):
        new_cursor["etag"] = response.headers["etag"]
    if response.headers.get("last-modified"):
        new_cursor["last_modified"] = response.headers["last-modified"]
    name = PurePosixPath(endpoint.path.split("?")[0]).name or "feed"
    return Fetched(name, response.body, url, new_cursor)


# --- SFTP --------------------------------------------------------------------------------------------------------


def fingerprint(key) -> str:
    """A host key's fingerprint as OpenSSH prints it: SHA256: and the unpadded base64 of its digest."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def private_key(text: str):
    """The source's secret as a private key (OpenSSH or PEM; Ed25519, ECDSA or RSA), or None: it is a password."""
    import paramiko

    if "PRIVATE KEY-----" not in text:
        return None
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise sync.SourceError("The source's secret looks like a private key but none can be read from it.")


def fetch_sftp(settings: dict, secret: str, cursor: dict, full: bool) -> Fetched | None:
    """The file at ``path`` on the server, once its host key matched the pinned one; None when its size and time
    are those of the cursor (unless ``full``). The file is left on the server: HR's export overwrites it."""
    import paramiko

    host, port, path = settings["host"], settings["port"], settings["path"]
    where = f"sftp://{settings['username']}@{host}:{port}{path}"
    try:
        sock = socket.create_connection((host, port), timeout=SFTP_TIMEOUT)
    except OSError as error:
        raise sync.SourceError(f"{where}: cannot connect: {error.strerror or error}.") from None
    transport = paramiko.Transport(sock)
    transport.banner_timeout = transport.handshake_timeout = transport.auth_timeout = SFTP_TIMEOUT
    try:
        transport.start_client(timeout=SFTP_TIMEOUT)
        seen = fingerprint(transport.get_remote_server_key())
        if seen.rstrip("=") != settings["host_key"].rstrip("="):
            raise sync.SourceError(
                f"{where}: the server's host key {seen} is not the pinned one {settings['host_key']}: refused "
                "(if the server's key was changed on purpose, pin the new fingerprint in the feed's host_key)."
            )
        key = private_key(secret)
        if key is not None:
            transport.auth_publickey(settings["username"], key)
        else:
            transport.auth_password(settings["username"], secret)
        client = paramiko.SFTPClient.from_transport(transport)
        client.get_channel().settimeout(SFTP_TIMEOUT)
        attributes = client.stat(path)
        state = {"size": attributes.st_size, "mtime": attributes.st_mtime}
        if not full and all(cursor.get(name) == value for name, value in state.items()):
            return None
        if attributes.st_size and attributes.st_size > MAX_BYTES:
            raise sync.SourceError(f"{where}: the file is larger than {MAX_BYTES // 2**20} MB.")
        with client.open(path, "rb") as remote:
            remote.prefetch(attributes.st_size)
            data = remote.read(MAX_BYTES + 1)
    except paramiko.AuthenticationException:
        raise sync.SourceError(
            f"{where}: the server refused the user's password or key (the source's secret)."
        ) from None
    except FileNotFoundError:
        raise sync.SourceError(f"{where}: no such file on the server.") from None
    except PermissionError:
        raise sync.SourceError(f"{where}: the user may not read the file.") from None
    except (paramiko.SSHException, EOFError, OSError) as error:
        raise sync.SourceError(f"{where}: {error or type(error).__name__}.") from None
    finally:
        transport.close()
    if len(data) > MAX_BYTES:
        raise sync.SourceError(f"{where}: the file is larger than {MAX_BYTES // 2**20} MB.")
    return Fetched(PurePosixPath(path).name, data, where, {**state, "sha256": digest(data)})
