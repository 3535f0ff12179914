"""Services: beside the web server they start in order and stop in reverse, whatever fails;
on a loop of their own (core.hosting) they run until stopped (under a lease: tests/space/test_lease.py)."""

import asyncio
import socket
import threading

import pytest

from core import hosting
from core.hosting import Host
from core.periodic import PeriodicService
from core.services import start_all, stop_all
from devices.sdp.bridge import Bridge
from devices.usb_encoders import EncoderSweep
from integrations.eventstream.service import EventStreamService
from integrations.webhooks.service import WebhookService
from space.services import embedded_services


class Recorder:
    def __init__(self, name, log, fail_start=False, fail_stop=False):
        self.name, self.log, self.fail_start, self.fail_stop = name, log, fail_start, fail_stop

    async def start(self):
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.log.append(f"start {self.name}")

    async def stop(self):
        self.log.append(f"stop {self.name}")
        if self.fail_stop:
            raise RuntimeError(f"{self.name} cannot stop")


def test_services_start_in_order_and_stop_in_reverse():
    log = []
    services = [Recorder("bridge", log), Recorder("fias", log)]

    started = asyncio.run(start_all(services))
    asyncio.run(stop_all(started))

    assert log == ["start bridge", "start fias", "stop fias", "stop bridge"]


def test_a_failed_start_stops_the_services_already_started():
    log = []
    services = [Recorder("bridge", log), Recorder("fias", log, fail_start=True), Recorder("ship", log)]

    with pytest.raises(RuntimeError, match="fias cannot start"):
        asyncio.run(start_all(services))

    assert log == ["start bridge", "stop bridge"]


def test_a_service_that_fails_to_stop_does_not_keep_the_others_running():
    log = []
    services = [Recorder("bridge", log), Recorder("fias", log, fail_stop=True)]

    asyncio.run(stop_all(services))

    assert log == ["stop fias", "stop bridge"]


# --- where the services come from ------------------------------------------------


def test_the_embedded_profile_runs_the_bridge_webhooks_and_event_stream_inside_runspace(settings):
    settings.SPACE_BRIDGE_IN_RUNSPACE = True
    settings.SPACE_EVENT_STREAM_IN_RUNSPACE = True
    settings.CELERY_BROKER_URL = "memory://"

    services = embedded_services()

    assert [type(service) for service in services] == [
        Bridge,
        EncoderSweep,
        WebhookService,
        PeriodicService,
        EventStreamService,
    ]


def test_the_production_profile_leaves_them_to_the_celery_workers_and_keeps_the_usb_encoder_sweep(settings):
    settings.SPACE_BRIDGE_IN_RUNSPACE = False
    settings.SPACE_EVENT_STREAM_IN_RUNSPACE = False
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"

    # Local bridges of USB encoders connect to the web server itself: the sweep of their jobs stays beside it.
    assert [type(service) for service in embedded_services()] == [EncoderSweep]


# --- a service hosted on a loop of its own ---------------------------------------


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
