"""Net helpers for long-lived TCP clients: a jittered backoff, and sockets tuned to notice a dead peer."""

import random
import socket

from core import net
from core.net import Backoff


def test_the_backoff_doubles_up_to_its_cap_with_jitter():
    random.seed(7)
    backoff = Backoff(first=0.5, cap=8.0)

    delays = [backoff.next() for _ in range(8)]
    backoff.reset()

    for delay, ceiling in zip(delays, [0.5, 1, 2, 4, 8, 8, 8, 8], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays)  # jittered: many clients do not retry in step
    assert backoff.next() <= 0.5


def test_a_tuned_socket_sends_keepalive_probes_and_gives_up_on_an_unacknowledging_peer():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        net.tune(sock, send_buffer_bytes=64 * 1024)

        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= 64 * 1024  # Linux doubles what it is given
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == net.TCP_USER_TIMEOUT_MS
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == net.KEEPALIVE_IDLE_SECONDS


def test_tuning_no_socket_does_nothing():
    net.tune(None)
