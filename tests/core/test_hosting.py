"""A service on a loop of its own (core.hosting) runs until stopped (under a lease: tests/core/test_lease.py)."""

import asyncio
import socket
import threading

from core import hosting
from core.hosting import Host


class EchoProtocol(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


class UdpEcho:
    """A stand-in long-lived service: a UDP echo server on a free port."""

    name = "udp echo"

    def __init__(self, fail_start=False):
        self.fail_start = fail_start
        self.transport = None
        self.port = None
        self.log = []

    async def start(self):
        self.log.append("start")
        if self.fail_start:
            raise OSError("no such interface")
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(EchoProtocol, local_addr=("127.0.0.1", 0))
        self.port = self.transport.get_extra_info("sockname")[1]

    async def stop(self):
        self.log.append("stop")
        if self.transport is not None:
            self.transport.close()


class Hosted:
    """A Host running on its own event loop in a thread, as in a Celery worker thread."""

    def __init__(self, service, lease=None):
        self.service = service
        self.host = Host(service, lease)
        self.started = threading.Event()
        self.outcome = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.outcome.append(asyncio.run(self.host.run(on_started=lambda service: self.started.set())))
        except Exception as error:
            self.outcome.append(error)

    def result(self, timeout=10):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the hosted service did not end"
        return self.outcome[0]


def echo(port: int, payload: bytes = b"ping") -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(payload, ("127.0.0.1", port))
        return sock.recv(100)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_a_hosted_service_runs_until_it_is_stopped_from_another_thread():
    hosted = Hosted(UdpEcho())
    assert hosted.started.wait(10)

    answer = echo(hosted.service.port)
    hosted.host.stop()

    assert answer == b"ping"
    assert hosted.result() == hosting.STOPPED
    assert hosted.service.log == ["start", "stop"]
    assert port_is_free(hosted.service.port)


def test_a_host_stopped_before_it_runs_never_starts_its_service():
    service = UdpEcho()
    host = Host(service)
    host.stop()

    outcome = asyncio.run(host.run())

    assert outcome == hosting.STOPPED
    assert service.log == []
