"""Outbound HTTP: every request Space makes to another system goes through :func:`post` or :func:`get`.

Webhooks (integrations/webhooks/transport.py), the SHIP-host client
(integrations/ship/host.py) and HR feeds fetched over HTTPS (integrations/hrfeeds/)
use it, so timeouts, TLS and size limits are the same everywhere, and a test that
must trust a test certificate patches one place (:data:`TLS_CONTEXT`).

- **Timeouts**: connecting, each read of the answer, and the whole request
  (a deadline), so a peer that answers slowly, or a byte at a time, costs one
  thread for a bounded time.
- **TLS**: https verifies the certificate and the host name (SNI), TLS 1.2 at
  least, against the system's trust store (``SSL_CERT_FILE`` for a site CA).
- **Addresses**: an :class:`Endpoint` may carry addresses already checked
  (webhooks connect only to those, never to a fresh DNS answer); without them
  the host name is resolved when connecting.
- **Site CA**: :func:`tls_context` trusts one CA file instead of the system's store, for a peer whose
  certificate a site's own CA signed (an HR feed's ``ca_file``).
- **Size**: at most ``limit`` bytes of the answer's body are read;
  :attr:`Response.truncated` says when there was more.
- **Errors**: nothing raises for what the network or the peer does. A
  :class:`Response` with no ``status`` says why in ``error``;
  :attr:`Response.transient` splits what a later try may cure (no answer, a
  timeout, 408, 425, 429, 5xx) from what it will not (TLS refused, other 4xx,
  redirects, which are never followed).
"""

import http.client
import math
import socket
import ssl
import time
import urllib.parse
from dataclasses import dataclass, field

ERROR_LENGTH = 500
DEFAULT_LIMIT = 64 * 1024
TRANSIENT_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 5.0  # for each read of the answer
    total: float = 15.0  # for the whole request

    @classmethod
    def within(cls, seconds: float) -> "Timeouts":
        """Every step and the whole request within ``seconds``."""
        return cls(connect=seconds, read=seconds, total=seconds)


@dataclass(frozen=True)
class Endpoint:
    """Where a request goes. ``addresses``: checked IP addresses to try in order; empty, the host name is
    resolved when connecting. Webhooks' ``targets.Target`` has the same fields and is used as one."""

    scheme: str  # "http" or "https"
    host: str
    port: int
    path: str  # with the query string
    addresses: tuple[str, ...] = ()

    @classmethod
    def from_url(cls, url: str) -> "Endpoint":
        """``http(s)://host[:port]/path?query``; ValueError for anything else."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Not an http:// or https:// URL: {url!r}.")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.scheme, parts.hostname, port, path)


@dataclass(frozen=True)
class Response:
    status: int | None  # the HTTP status; None when no answer came (timeout, refused, closed, TLS)
    error: str = ""  # why there is no answer; empty when there is one
    body: bytes = b""  # at most the request's limit
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case
    truncated: bool = False  # the body was longer than the limit
    tls_refused: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def transient(self) -> bool:
        """A failure a later try may cure."""
        if self.status is None:
            return not self.tls_refused
        return self.status in TRANSIENT_STATUSES or self.status >= 500

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


class _Deadline:
    """Each read waits at most the read timeout, and never past the request's deadline."""

    deadline = math.inf
    read_timeout = None

    def _arm(self):
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the whole request took too long")
        self.settimeout(min(self.read_timeout, remaining) if self.read_timeout else remaining)

    def recv_into(self, *args, **kwargs):
        self._arm()
        return super().recv_into(*args, **kwargs)

    def recv(self, *args, **kwargs):
        self._arm()
        return super().recv(*args, **kwargs)


class _DeadlineSocket(_Deadline, socket.socket):
    pass


class _DeadlineSSLSocket(_Deadline, ssl.SSLSocket):
    pass


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """A client context that verifies the certificate and the host name, against ``ca_file`` (PEM) when given
    (then only that CA is trusted), else the system's trust store. OSError/ssl.SSLError for an unreadable file."""
    context = ssl.create_default_context(cafile=ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.sslsocket_class = _DeadlineSSLSocket
    return context


TLS_CONTEXT = tls_context()


def _addresses(endpoint) -> list[str]:
    if endpoint.addresses:
        return list(endpoint.addresses)
    found = socket.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in found))


def _connect(address: str, port: int, timeouts: Timeouts, deadline: float) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = _DeadlineSocket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(min(timeouts.connect, max(0.001, deadline - time.monotonic())))
        sock.connect((address, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    sock.deadline, sock.read_timeout = deadline, timeouts.read
    return sock


def _open(endpoint, timeouts: Timeouts, deadline: float, context: ssl.SSLContext | None) -> socket.socket:
    """A socket to the first of the endpoint's addresses that accepts (TLS-wrapped for https)."""
    error = None
    for address in _addresses(endpoint):
        try:
            sock = _connect(address, endpoint.port, timeouts, deadline)
        except OSError as problem:
            error = problem
            continue
        if endpoint.scheme != "https":
            return sock
        try:
            tls = (context or TLS_CONTEXT).wrap_socket(sock, server_hostname=endpoint.host)
        except BaseException:
            sock.close()
            raise
        tls.deadline, tls.read_timeout = deadline, timeouts.read
        return tls
    raise error or OSError("no address to connect to")


class _Connection(http.client.HTTPConnection):
    def __init__(self, endpoint, sock: socket.socket, timeout: float):
        super().__init__(endpoint.host, endpoint.port, timeout=timeout)
        self.sock = sock

    def connect(self):  # the socket is given, connected to a chosen address
        raise http.client.NotConnected("connection already closed")


def post(
    endpoint, body: bytes, headers: dict, timeouts: Timeouts | None = None, *, limit: int = DEFAULT_LIMIT
) -> Response:
    """POST ``body`` to ``endpoint`` (an :class:`Endpoint`, or anything with its fields); never raises for the
    network's or the peer's doing. Redirects are not followed."""
    return _request("POST", endpoint, body, headers, timeouts, limit, None)


def get(
    endpoint,
    headers: dict,
    timeouts: Timeouts | None = None,
    *,
    limit: int = DEFAULT_LIMIT,
    context: ssl.SSLContext | None = None,
) -> Response:
    """GET ``endpoint``, as :func:`post` (``context``: a :func:`tls_context` of its own, else :data:`TLS_CONTEXT`)."""
    return _request("GET", endpoint, None, headers, timeouts, limit, context)


def _request(method, endpoint, body, headers, timeouts, limit, context) -> Response:
    timeouts = timeouts or Timeouts()
    deadline = time.monotonic() + timeouts.total
    connection = None
    try:
        connection = _Connection(endpoint, _open(endpoint, timeouts, deadline, context), timeouts.read)
        connection.request(method, endpoint.path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read(limit + 1)
    except ssl.SSLCertVerificationError as error:
        return Response(None, short(f"TLS certificate not accepted: {error.verify_message or error}"), tls_refused=True)
    except ssl.SSLError as error:
        return Response(None, short(f"TLS failed: {error}"), tls_refused=True)
    except TimeoutError:
        return Response(None, "timed out")
    except ConnectionRefusedError:
        return Response(None, "connection refused")
    except http.client.RemoteDisconnected:
        return Response(None, "the receiver closed the connection without answering")
    except (ConnectionResetError, BrokenPipeError):
        return Response(None, "the receiver reset the connection")
    except http.client.HTTPException as error:
        return Response(None, short(f"not an HTTP answer: {type(error).__name__} {error}"))
    except OSError as error:
        return Response(None, short(f"cannot connect: {error.strerror or error}"))
    finally:
        if connection is not None:
            connection.close()
    return Response(
        response.status,
        body=text[:limit],
        headers={name.lower(): value for name, value in response.getheaders()},
        truncated=len(text) > limit,
    )


def short(text: str) -> str:
    """``text`` cut to what an error field keeps."""
    return text if len(text) <= ERROR_LENGTH else text[: ERROR_LENGTH - 1] + "…"
