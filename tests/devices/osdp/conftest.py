"""Buses of the real devices.osdp.bus on loop threads of their own, against libosdp's PD behind simulated lines."""

import asyncio
import threading

import pytest

from devices.osdp.bus import Bus, Link
from simulation.osdp_readers import PtyLine, TcpLine
from tests.support.waiting import wait_until


class RunningBus:
    """A Bus on an event loop thread of its own, as a service runs under runspace; its events kept in order."""

    def __init__(self, url: str, readers, baud: int = 9600, on_event=None):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.events = []
        self.handler_threads = set()
        self._extra = on_event
        self.bus = Bus(url, baud, readers, self._on_event)
        self.call(self.bus.start())

    def _on_event(self, event):
        self.handler_threads.add(threading.get_ident())
        self.events.append(event)
        if self._extra is not None:
            self._extra(event)

    def call(self, coroutine, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self):
        if self.loop.is_closed():
            return
        self.call(self.bus.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def of(self, kind, address=None) -> list:
        return [e for e in list(self.events) if isinstance(e, kind) and address in (None, e.address)]

    def wait_event(self, predicate, timeout: float = 10):
        """The first event so far that ``predicate`` accepts, waiting for it."""
        return wait_until(
            lambda: next((e for e in list(self.events) if predicate(e)), None),
            timeout,
            message=lambda: f"no such event among {self.events}",
        )

    def wait_link(self, address: int, online: bool = True, secure: bool = True, timeout: float = 10):
        """Wait until the reader's last Link says ``online``/``secure``."""

        def last_link():
            links = self.of(Link, address)
            return links and links[-1] == Link(address, online, secure)

        return wait_until(last_link, timeout, message=lambda: f"links so far: {self.of(Link, address)}")


@pytest.fixture
def pty_line():
    line = PtyLine()
    yield line
    line.stop()


@pytest.fixture
def tcp_line():
    line = TcpLine()
    yield line
    line.stop()


@pytest.fixture(params=["pty", "tcp"])
def line(request):
    """The same test over a pseudo-terminal and over a serial-over-IP converter."""
    line = PtyLine() if request.param == "pty" else TcpLine()
    yield line
    line.stop()


@pytest.fixture
def run_bus():
    """``run_bus(url, readers)`` starts a Bus; every one started is stopped at the end of the test."""
    running = []

    def start(url, readers, **options):
        bus = RunningBus(url, readers, **options)
        running.append(bus)
        return bus

    yield start
    for bus in running:
        bus.stop()
