"""One webhook request: POST a body to a checked target and say how it went. All webhook HTTP goes through here.

The connection goes to an address ``targets`` has checked (never a fresh DNS
answer), with the URL's host name in ``Host`` and in TLS (SNI and certificate
verification). Every step has a timeout and the whole request a deadline, so
a receiver that answers slowly, or a byte at a time, costs one thread for a
bounded time. Redirects are not followed.
"""

import http.client
import math
import socket
import ssl
import time
from dataclasses import dataclass

from integrations.webhooks.targets import Target

ANSWER_READ_LIMIT = 2048
ERROR_LENGTH = 500


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 5.0  # for each read of the answer
    total: float = 15.0  # for the whole request


@dataclass(frozen=True)
class Answer:
    status: int | None  # the HTTP status; None when no answer came (timeout, refused, closed, TLS)
    error: str = ""

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


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


def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()  # verifies the certificate and the host name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.sslsocket_class = _DeadlineSSLSocket
    return context


TLS_CONTEXT = _tls_context()


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


class _Connection(http.client.HTTPConnection):
    def __init__(self, target: Target, sock: socket.socket, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self.sock = sock

    def connect(self):  # the socket is given, connected to a checked address
        raise http.client.NotConnected("connection already closed")


def _open(target: Target, timeouts: Timeouts, deadline: float) -> socket.socket:
    """A socket to the first of the target's checked addresses that accepts (TLS-wrapped for https)."""
    error = None
    for address in target.addresses:
        try:
            sock = _connect(address, target.port, timeouts, deadline)
        except OSError as problem:
            error = problem
            continue
        if target.scheme != "https":
            return sock
        try:
            tls = TLS_CONTEXT.wrap_socket(sock, server_hostname=target.host)
        except BaseException:
            sock.close()
            raise
        tls.deadline, tls.read_timeout = deadline, timeouts.read
        return tls
    raise error or OSError("no address to connect to")


def post(target: Target, body: bytes, headers: dict, timeouts: Timeouts | None = None) -> Answer:
    timeouts = timeouts or Timeouts()
    deadline = time.monotonic() + timeouts.total
    connection = None
    try:
        connection = _Connection(target, _open(target, timeouts, deadline), timeouts.read)
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read(ANSWER_READ_LIMIT)
    except ssl.SSLCertVerificationError as error:
        return Answer(None, _short(f"TLS certificate not accepted: {error.verify_message or error}"))
    except ssl.SSLError as error:
        return Answer(None, _short(f"TLS failed: {error}"))
    except TimeoutError:
        return Answer(None, "timed out")
    except ConnectionRefusedError:
        return Answer(None, "connection refused")
    except http.client.RemoteDisconnected:
        return Answer(None, "the receiver closed the connection without answering")
    except (ConnectionResetError, BrokenPipeError):
        return Answer(None, "the receiver reset the connection")
    except http.client.HTTPException as error:
        return Answer(None, _short(f"not an HTTP answer: {type(error).__name__} {error}"))
    except OSError as error:
        return Answer(None, _short(f"cannot connect: {error.strerror or error}"))
    finally:
        if connection is not None:
            connection.close()
    if 200 <= response.status < 300:
        return Answer(response.status)
    detail = " ".join(text.decode("utf-8", "replace").split())
    if 300 <= response.status < 400:
        detail = f"redirects are not followed (Location: {response.getheader('Location', '')})"
    return Answer(response.status, _short(f"HTTP {response.status}" + (f": {detail}" if detail else "")))


def _short(text: str) -> str:
    return text if len(text) <= ERROR_LENGTH else text[: ERROR_LENGTH - 1] + "…"
