"""Periodic housekeeping inside ``runspace``, where no Celery beat runs.

In the production profile beat sends the Celery tasks of ``space/celery.py``;
in the embedded one (broker ``memory://``) a :class:`PeriodicService` calls the
same function every so often on a thread of its own, off the event loop, with
one database connection kept between runs. A run that fails is logged and the
next one comes at its time.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.db import close_old_connections

from core.services import close_connection, run_orm

logger = logging.getLogger("core.periodic")


class PeriodicService:
    """Calls ``function()`` at start and then every ``every`` seconds until stopped."""

    def __init__(self, name: str, function: Callable[[], object], every: float):
        self.name = name
        self.function = function
        self.every = every
        self.runs = 0
        self._stopped: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._stopped = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        self._task = asyncio.create_task(self._serve(), name=self.name)

    async def stop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()
        task, self._task = self._task, None
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)  # a run in progress finishes first
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.submit(close_connection)  # the connection of its thread
            await asyncio.to_thread(executor.shutdown, True)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopped.is_set():
            try:
                result = await loop.run_in_executor(self._executor, self._run)
            except Exception:
                logger.exception("Periodic %s failed", self.name)
            else:
                logger.debug("Periodic %s: %s", self.name, result)
            self.runs += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self.every)

    def _run(self):
        close_old_connections()  # one broken by a database restart is replaced
        return run_orm(self.function)
