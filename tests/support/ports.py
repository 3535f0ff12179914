"""Ports on 127.0.0.1 that nobody holds, for servers a test starts."""

import socket

KINDS = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}


def free_port(kind: str = "tcp") -> int:
    """A port the system just handed out and released; nothing listens on it (also a closed port to connect to)."""
    with socket.socket(socket.AF_INET, KINDS[kind]) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def udp_port_in_use(port: int) -> bool:
    """True while something (a running bridge) is bound to 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False
