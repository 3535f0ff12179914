"""The mode scheduler: automatic opening mode changes, applied at their instants.

A long-lived service (space/services.py, entry ``mode-scheduler``; one copy at a time under its lease). On
start, and so after a failover, it works out the mode every scheduled door should be in now and pushes it to
all of them, changed or not (a resync: a door may have missed a change while nobody ran the schedule). Then it
sleeps until the next change, at most :data:`MAX_SLEEP_SECONDS` so that new and edited schedules are seen, and
at each change stores the new mode on the access points and queues set_mode to their doors
(``devices.commands.push_modes``: a few statements for thousands of doors).

Who wins (docs/modes.md): a lockdown or an emergency over everything (the mode in force is still stored, but
its door is not told until the emergency ends, ``devices.commands.end_emergency`` sends it then); an
operator's mode until the next scheduled change; else the schedule.

Timed mode: at the boundaries of the access point's timed period set_mode is sent again with ``open``, so
devices that know no periods (SDP/1) open and lock on time.

Which schedule and calendar an access point follows: devices/modeplan.py.
"""

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.db import close_old_connections
from django.utils import timezone

from core.services import close_connection, run_orm
from devices import modeplan
from devices.commands import ModePush, Pushed, push_modes
from devices.modeplan import next_changes

logger = logging.getLogger("space.scheduler")

MAX_SLEEP_SECONDS = 30.0
RETRY_SECONDS = 5.0

__all__ = ["MAX_SLEEP_SECONDS", "ModeScheduler", "Step", "next_changes"]


@dataclass
class Step:
    at: dt.datetime
    pushed: Pushed
    next_at: dt.datetime | None  # the next instant something changes (within 8 days)


class ModeScheduler:
    name = "mode-scheduler"

    def __init__(self, *, clock: Callable[[], dt.datetime] = timezone.now, max_sleep: float = MAX_SLEEP_SECONDS):
        self.clock = clock
        self.max_sleep = max_sleep
        self.steps = 0
        self.last: Step | None = None
        # Timed doors: whether the last set_mode told them to stay open (a boundary re-sends it when it turns).
        self._open: dict[int, bool] = {}
        self._resync = True
        self._stopped: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    # --- the service -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._stopped = asyncio.Event()
        self._resync = True
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        self._task = asyncio.create_task(self._serve(), name=self.name)

    async def stop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()
        task, self._task = self._task, None
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)  # a step in progress finishes first
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.submit(close_connection)
            await asyncio.to_thread(executor.shutdown, True)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopped.is_set():
            try:
                step = await loop.run_in_executor(self._executor, self._run)
            except Exception:
                logger.exception("Mode scheduler: a step failed")
                delay = RETRY_SECONDS
            else:
                delay = self.max_sleep
                if step.next_at is not None:
                    delay = min(delay, max((step.next_at - self.clock()).total_seconds(), 0.0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), delay)

    def _run(self) -> Step:
        close_old_connections()
        return run_orm(self.step)

    # --- one step ------------------------------------------------------------------------------------

    def step(self, at: dt.datetime | None = None) -> Step:
        """Apply what is due at ``at`` (now): the changes not taken yet, timed doors' boundaries; a resync first."""
        at = at or self.clock()
        plan = modeplan.load_plan()
        resync = self._resync
        pushes = []
        for point in plan.points.values():
            want = modeplan.wanted(plan, point, at)
            store = modeplan.is_stale(point, want)
            is_open = modeplan.timed_open(plan, point, want.mode, at)
            turned = is_open is not None and self._open.get(point.id) != is_open
            send = (resync or store or turned) and not point.lockdown
            if not (store or send):
                continue
            if is_open is None:
                self._open.pop(point.id, None)
            elif send:
                self._open[point.id] = is_open
            since = want.since if store else None
            following = modeplan.next_change_of(plan, point, at) if store else None
            pushes.append(ModePush(point.id, point.name, want.mode, store, send, is_open, since, following))
        pushed = push_modes(pushes, now=at)
        self._resync = False
        self.steps += 1
        self.last = Step(at, pushed, modeplan.next_instant(plan, at))
        if pushes:
            logger.info(
                "Mode scheduler: %d modes stored, %d set_mode queued%s",
                len(pushed.stored),
                len(pushed.commands),
                " (resync)" if resync else "",
            )
        return self.last
