"""Helpers for long-lived TCP clients: socket tuning and a reconnect backoff.

The event stream's sender and the FIAS client both keep one connection up for
days to a peer that may vanish without a word (a host powered off, a firewall
that drops state): keepalive probes and a user timeout make the kernel notice
within seconds instead of a quarter of an hour, and the jittered backoff keeps
many clients (or sites) from reconnecting in step.
"""

import contextlib
import random
import socket

SEND_BUFFER_BYTES = 256 * 1024
# Linux: a connection whose bytes stay unacknowledged this long is broken.
TCP_USER_TIMEOUT_MS = 20_000
KEEPALIVE_IDLE_SECONDS, KEEPALIVE_INTERVAL_SECONDS, KEEPALIVE_COUNT = 10, 5, 3
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 60.0


def tune(sock: socket.socket | None, send_buffer_bytes: int = SEND_BUFFER_BYTES) -> None:
    """Set a connected TCP socket's send buffer, keepalive probes and user timeout; None is left alone."""
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    options = [
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE_SECONDS),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL_SECONDS),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
        ("TCP_USER_TIMEOUT", TCP_USER_TIMEOUT_MS),
    ]
    for name, value in options:
        if hasattr(socket, name):  # Linux has them all; elsewhere keepalive's own defaults apply
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


class Backoff:
    """Exponential, capped, with jitter so that many clients do not retry in step."""

    def __init__(self, first: float = BACKOFF_FIRST_SECONDS, cap: float = BACKOFF_MAX_SECONDS):
        self.first, self.cap, self.failures = first, cap, 0

    def next(self) -> float:
        delay = min(self.cap, self.first * 2**self.failures)
        self.failures = min(self.failures + 1, 32)
        return delay * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.failures = 0
