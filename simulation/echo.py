"""The baseline for the bridge benchmark: a bare asyncio UDP echo with the same AES-GCM sealing.

The server opens each SEALED frame and seals its plaintext back, nothing else:
no sessions, no replay window, no decisions, no database. The client keeps
``window`` requests in flight per socket, as the devices do. What it measures is
what this runtime (Python, asyncio, cryptography) can do on this machine, so the
bridge's figure can be read as a share of it.
"""

import asyncio
import os
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from devices.sdp import codec as sdp1

KEY = bytes(range(16))
DEVICE_ID = 1
SESSION_ID = 1
REQUEST = sdp1.encode({"t": "access", "req": 1, "reader": 1, "cred": {"kind": "card", "uid": "04A1B2C3D4E5F6"}})
REPLY = sdp1.encode({"t": "decision", "req": 1, "grant": True, "reason": "granted", "open_ms": 4000})


class EchoServer(asyncio.DatagramProtocol):
    def __init__(self):
        self.aead = AESGCM(KEY)
        self.seq = 0
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        try:
            frame = sdp1.parse(data, sdp1.FROM_DEVICE)
            sdp1.decode(sdp1.unseal(self.aead, frame))
        except (sdp1.Malformed, InvalidTag):
            return
        self.seq += 1
        self.transport.sendto(sdp1.seal(self.aead, DEVICE_ID, SESSION_ID, self.seq, REPLY), addr)


async def serve(host: str, port: int, ready=None, stop=None) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(EchoServer, local_addr=(host, port))
    if ready is not None:
        ready.set()
    try:
        while stop is None or not stop.is_set():
            await asyncio.sleep(0.1)
    finally:
        transport.close()


class _Client(asyncio.DatagramProtocol):
    def __init__(self, window: int):
        self.aead = AESGCM(KEY)
        self.window = window
        self.seq = 0
        self.replies = 0
        self.transport = None
        self.sent_at: dict[int, float] = {}
        self.latencies: list[float] = []

    def connection_made(self, transport):
        self.transport = transport
        for _ in range(self.window):
            self.send()

    def send(self):
        self.seq += 1
        self.transport.sendto(sdp1.seal(self.aead, DEVICE_ID, SESSION_ID, self.seq, REQUEST))

    def datagram_received(self, data, addr):
        try:
            frame = sdp1.parse(data, sdp1.FROM_SERVER)
            sdp1.decode(sdp1.unseal(self.aead, frame))
        except (sdp1.Malformed, InvalidTag):
            return
        self.replies += 1
        self.send()


async def load(host: str, port: int, sockets: int, window: int, seconds: float) -> dict:
    """Closed-loop load; returns replies per second (lost datagrams are re-primed every 100 ms)."""
    loop = asyncio.get_running_loop()
    clients = []
    for _ in range(sockets):
        _, client = await loop.create_datagram_endpoint(lambda: _Client(window), remote_addr=(host, port))
        clients.append(client)
    start = time.perf_counter()
    seen = 0
    while time.perf_counter() - start < seconds:
        await asyncio.sleep(0.1)
        total = sum(c.replies for c in clients)
        if total == seen:
            # Everything in flight was lost (a full socket buffer): prime again.
            for client in clients:
                client.send()
        seen = total
    elapsed = time.perf_counter() - start
    replies = sum(c.replies for c in clients)
    for client in clients:
        client.transport.close()
    return {"replies": replies, "seconds": round(elapsed, 3), "per_second": round(replies / elapsed)}


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_server(host: str, port: int, stop_file: str) -> None:
    """Entry point for a server process: serve until ``stop_file`` exists."""

    class FileStop:
        def is_set(self):
            return os.path.exists(stop_file)

    asyncio.run(serve(host, port, stop=FileStop()))
