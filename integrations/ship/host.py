"""SHIP-host client mode: Space asks an outside SHIP host for a user's data and permissions, and applies them.

Where another system is the master of users (a SALTO server, another Space, an
integrator's host), Space sends it ``SaltoDBUserList.Read`` for one ExtUserID
(``StartingFromExtUserID`` = the id, ``MaxCount`` 1, door, zone and group lists
asked for) over HTTPS (``SPACE_SHIP_HOST_URL=https://…``, the key in the
``Salto-SHIP-Key`` header; through integrations/http.py, as all outbound
HTTP) or TCP (``tcp://host:port``, STP frames, the key as
``<ApiKey>`` in the Params). The SaltoDBUser answered is applied to the
Cardholder with that ext_id exactly as a ``SaltoDBUser.Insert`` or ``.Update``
of it would be (integrations/ship/operations.py), as the operator named: same
validation, permissions, partitions and system auditor.

What the host's answer cannot say is left alone: a PIN it does not show
(``PINEnabled`` 1 with an empty ``PINCode``), and the partition (``ExtPartitionID``
names the host's partitions, not Space's). Doors, zones and groups the answer
names must exist in Space (by ExtDoorID, zone name, access level name), or the
sync fails as a whole, changing nothing.
"""

import socket
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from accesscontrol.models import Cardholder
from integrations import http
from integrations.ship import operations
from integrations.ship.xml import (
    CONTENT_TYPE,
    MAX_XML_BYTES,
    FrameDecoder,
    ShipError,
    build_request,
    frame,
    parse_response,
    text,
)

READ_BYTES = 64 * 1024
REQUEST = "SaltoDBUserList.Read"
XML_TYPES = (CONTENT_TYPE, "text/xml", "application/xml")


class HostError(Exception):
    """The host could not be asked, or its answer cannot be used."""


@dataclass(frozen=True)
class Synced:
    ext_id: str
    created: bool


def exchange_http(url: urllib.parse.SplitResult, document: bytes, key: str, timeout: float) -> bytes:
    """POST one request through Space's outbound HTTP client; the answer's body (a SHIP answer whatever the
    status, or HostError)."""
    response = http.post(
        http.Endpoint.from_url(url.geturl()),
        document,
        {"Content-Type": CONTENT_TYPE, "Salto-SHIP-Key": key, "Accept": CONTENT_TYPE},
        http.Timeouts.within(timeout),
        limit=MAX_XML_BYTES,
    )
    if response.status is None:
        raise HostError(f"The SHIP host did not answer: {response.error}")
    if response.content_type not in XML_TYPES:
        raise HostError(f"The SHIP host answered HTTP {response.status} without a SHIP document.")
    if response.truncated:
        raise HostError(f"The SHIP host's answer is larger than {MAX_XML_BYTES} bytes.")
    return response.body


def exchange_tcp(url: urllib.parse.SplitResult, document: bytes, timeout: float) -> bytes:
    """Send one framed request; the first framed answer."""
    decoder = FrameDecoder()
    try:
        with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
            sock.sendall(frame(document))
            while True:
                chunk = sock.recv(READ_BYTES)
                if not chunk:
                    raise HostError("The SHIP host closed the connection before answering.")
                answers = decoder.feed(chunk)
                if answers:
                    return answers[0]
    except ShipError as error:
        raise HostError(f"The SHIP host's answer is not STP frames: {error.message}") from None
    except OSError as error:
        raise HostError(f"The SHIP host did not answer: {error}") from None


def fetch_user(
    ext_id: str, *, url: str | None = None, key: str | None = None, timeout: float | None = None
) -> ET.Element:
    """The host's SaltoDBUser element for ``ext_id``; HostError when it has none or cannot say."""
    url = url if url is not None else settings.SPACE_SHIP_HOST_URL
    key = key if key is not None else settings.SPACE_SHIP_HOST_KEY
    timeout = timeout if timeout is not None else settings.SPACE_SHIP_HOST_TIMEOUT_SECONDS
    where = urllib.parse.urlsplit(url or "")
    params = [
        ("MaxCount", "1"),
        ("StartingFromExtUserID", ext_id),
        ("ReturnAccessPermissions_User_Door", "1"),
        ("ReturnAccessPermissions_User_Zone", "1"),
        ("ReturnMembership_User_Group", "1"),
    ]
    if where.scheme in ("http", "https") and where.hostname:
        answer = exchange_http(where, build_request(REQUEST, params), key, timeout)
    elif where.scheme == "tcp" and where.hostname and where.port:
        answer = exchange_tcp(where, build_request(REQUEST, [("ApiKey", key), *params]), timeout)
    else:
        raise HostError(f"SPACE_SHIP_HOST_URL is https://host/path or tcp://host:port, not {url!r}.")
    try:
        response = parse_response(answer)
    except ShipError as error:
        raise HostError(f"The SHIP host's answer cannot be read: {error.message}") from None
    if response.error is not None:
        raise HostError(f"The SHIP host refused ({response.error.code}): {response.error.message}")
    for user in response.params.findall("SaltoDBUserList/SaltoDBUser"):
        if text(user, "ExtUserID") == ext_id:
            return user
    raise HostError(f"The SHIP host has no user {ext_id!r}.")


def _applicable(user: ET.Element) -> ET.Element:
    """``user`` without what the host's answer cannot say for Space (see the module's notes)."""
    drop = ["ExtPartitionID"]
    if not text(user, "PINCode"):
        drop += ["PINEnabled", "PINCode"]
    for name in drop:
        for element in user.findall(name):
            user.remove(element)
    return user


def sync_user(ext_id: str, operator, **host) -> Synced:
    """Ask the host for ``ext_id`` and apply its answer to the Cardholder, as ``operator`` (``host``: fetch_user's)."""
    user = _applicable(fetch_user(ext_id, **host))
    params = ET.Element("Params")
    params.append(user)
    with transaction.atomic():
        exists = Cardholder.objects.filter(ext_id=ext_id).exists()
        apply = operations.update_user if exists else operations.insert_user
        try:
            apply(params, operator, None)
        except ShipError as error:
            raise HostError(f"The host's user {ext_id!r} cannot be applied: {error.message}") from None
    return Synced(ext_id, created=not exists)
