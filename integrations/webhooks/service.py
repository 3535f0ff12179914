"""Webhook delivery in the embedded profile: a service of ``runspace`` running the Celery tasks' code.

There is no Celery worker there (the broker is ``memory://``), so this service
does the work: a delivery run whenever a commit wrote delivery rows (``wakeup``
wakes it) and at least every ``interval`` seconds, and the sweep every
``sweep_every`` seconds. Runs happen on one thread of its own, which keeps one
database connection, off the event loop.
"""

import asyncio
import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from django.db import close_old_connections

from core.services import close_connection
from integrations.webhooks import delivery, wakeup

logger = logging.getLogger("space.webhooks")


class WebhookService:
    name = "webhooks"

    def __init__(self, policy: delivery.Policy = delivery.DEFAULT_POLICY, interval: float = 2.0, sweep_every=10.0):
        self.policy = policy
        self.interval = interval
        self.sweep_every = sweep_every
        self._stop = threading.Event()
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._woken: asyncio.Event | None = None

    async def start(self) -> None:
        self._stop.clear()
        self._loop = asyncio.get_running_loop()
        self._woken = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-runs")
        wakeup.add_waker(self.wake)
        self._task = asyncio.create_task(self._serve(), name="webhooks")

    def wake(self) -> None:
        """Safe from any thread."""
        loop, woken = self._loop, self._woken
        if loop is not None and woken is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(woken.set)

    async def stop(self) -> None:
        wakeup.remove_waker(self.wake)
        self._stop.set()
        self.wake()
        if self._task is not None:
            # A run in progress hands back what it has not sent and waits for its requests in flight.
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._executor is not None:
            with contextlib.suppress(RuntimeError):
                await asyncio.get_running_loop().run_in_executor(self._executor, close_connection)
            self._executor.shutdown(wait=False)
            self._executor = None

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        last_sweep = -float("inf")
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self.interval)
            self._woken.clear()
            if self._stop.is_set():
                break
            sweep = time.monotonic() - last_sweep >= self.sweep_every
            if sweep:
                last_sweep = time.monotonic()
            try:
                await loop.run_in_executor(self._executor, self._work, sweep)
            except Exception:
                logger.exception("Webhook delivery run failed")

    def _work(self, sweep: bool) -> None:
        close_old_connections()  # one broken by a database restart is replaced
        if sweep:
            delivery.sweep(self.policy)
        while not self._stop.is_set():
            stats = delivery.deliver(self.policy, stop=self._stop)
            if not stats.claimed or not delivery.due():
                break
