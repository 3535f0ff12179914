"""Running one service on an event loop of its own, optionally under a lease.

``runspace`` runs services on the web server's loop. Outside it, the same
service objects run here: in a Celery worker thread (``space.tasks``) or in
a command of their own (``runservice``). ``run()`` blocks until ``Host.stop()``
is called (from any thread or a signal handler), the worker shuts down
(``shutdown()``), or the lease is lost, and always stops the service and
releases the lease before it returns.
"""

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from core.lease import Lease
from core.services import Service, stop_all

logger = logging.getLogger(__name__)

ALREADY_RUNNING = "already running"
STOPPED = "stopped"
LEASE_LOST = "lease lost"
SHUTTING_DOWN = "shutting down"

# The hosts running in this process; a plain set (no lock) so that a signal
# handler can walk it without waiting for a lock that the thread it interrupted holds.
_running: set["Host"] = set()
_shutting_down = False


class Host:
    def __init__(self, service: Service, lease: Lease | None = None):
        self.service = service
        self.lease = lease
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._stop_requested = False

    def stop(self) -> None:
        """Ask the service to stop; safe from any thread and from a signal handler."""
        self._stop_requested = True
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing left to stop
                loop.call_soon_threadsafe(stopping.set)

    async def run(self, on_started: Callable[[Service], None] | None = None) -> str:
        """Take the lease, start the service, keep both until told to stop or the lease is lost; say why it ended.

        Returns ``ALREADY_RUNNING`` at once, without starting the service, when
        another holder has the lease. A service that fails to start raises.
        The service is stopped and the lease released on every way out.
        """
        self._stopping = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self._stop_requested:
            return STOPPED
        if self.lease is not None and not await asyncio.to_thread(self.lease.acquire):
            logger.info("Service %s is already running elsewhere (lease %s)", self.service.name, self.lease.key)
            return ALREADY_RUNNING
        try:
            await self.service.start()
            try:
                if on_started:
                    on_started(self.service)
                return await self._serve()
            finally:
                await stop_all([self.service])
        finally:
            if self.lease is not None:
                await asyncio.to_thread(self.lease.release)

    async def _serve(self) -> str:
        if self.lease is None:
            await self._stopping.wait()
            return STOPPED
        interval = self.lease.ttl / 3
        while True:
            try:
                await asyncio.wait_for(self._stopping.wait(), interval)
            except TimeoutError:
                pass
            else:
                return STOPPED
            renewed = await asyncio.to_thread(self.lease.renew)
            # Not renewed, or Redis unreachable for so long that the lease may run out
            # before the next try: stop now, before another holder can start a second copy.
            if not renewed or self.lease.remaining() <= interval:
                logger.error("Service %s stops: its lease %s is lost", self.service.name, self.lease.key)
                return LEASE_LOST


def run(
    service: Service,
    lease: Lease | None = None,
    on_started: Callable[[Service], None] | None = None,
    stop_signals: tuple[signal.Signals, ...] = (),
) -> str:
    """Host ``service`` on a new event loop in this thread until it ends (see ``Host.run``); say why it ended.

    ``stop_signals`` (main thread only) stop it gracefully; so does ``shutdown()``.
    """
    host = Host(service, lease)
    _running.add(host)  # before the check below, so that shutdown() either sees it or is seen
    try:
        if _shutting_down:
            return SHUTTING_DOWN
        return asyncio.run(_run_with_signals(host, on_started, stop_signals))
    finally:
        _running.discard(host)


async def _run_with_signals(host: Host, on_started, stop_signals) -> str:
    loop = asyncio.get_running_loop()
    for signum in stop_signals:
        loop.add_signal_handler(signum, host.stop)
    try:
        return await host.run(on_started)
    finally:
        for signum in stop_signals:
            loop.remove_signal_handler(signum)


def shutdown() -> None:
    """Stop every service hosted in this process and refuse new ones: the process is going away.

    The Celery worker calls it when a warm shutdown begins; without it the
    worker would wait forever for its long-lived tasks to finish.
    """
    global _shutting_down
    _shutting_down = True
    for host in list(_running):
        host.stop()
