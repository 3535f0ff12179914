"""Telling a deliverer that new rows are waiting, without ever making the caller wait.

``kick()`` runs after each commit that wrote delivery rows, on the committing
thread: the device bridge's writer among others, which must not stall on a
slow or absent broker. In the embedded profile it wakes the webhook service
of this process. With a Celery broker, a background thread of this process
sends ``deliver_webhooks``, at most one queued at a time (a Redis flag the
task clears when it starts), so a stream of commits becomes a few tasks, not
one per commit. Losing a kick loses nothing: the sweep finds due rows too.
"""

import logging
import os
import threading
from collections.abc import Callable

from django.core.cache import cache

from core.broker import uses_celery

logger = logging.getLogger("space.webhooks")

QUEUED_FLAG = "space:webhooks:deliver-queued"
# Longer than a queued task normally waits; if it was lost, kicks resume after this.
QUEUED_FLAG_SECONDS = 10

# The embedded services running in this process (core.services): kick wakes them.
_wakers: list[Callable[[], None]] = []


def add_waker(wake: Callable[[], None]) -> None:
    _wakers.append(wake)


def remove_waker(wake: Callable[[], None]) -> None:
    if wake in _wakers:
        _wakers.remove(wake)


def kick() -> None:
    if _wakers:
        for wake in list(_wakers):
            wake()
    elif uses_celery():
        _Kicker.instance().poke()


def send_deliver_task(force: bool = False) -> bool:
    """Queue ``deliver_webhooks`` unless one is queued already (``force``: anyway). True when sent."""
    from integrations.tasks import deliver_webhooks

    if force:
        cache.set(QUEUED_FLAG, 1, timeout=QUEUED_FLAG_SECONDS)
    elif not cache.add(QUEUED_FLAG, 1, timeout=QUEUED_FLAG_SECONDS):
        return False
    try:
        deliver_webhooks.apply_async(retry=False)
    except Exception:
        cache.delete(QUEUED_FLAG)
        raise
    return True


def send_deliver_task_later(seconds: float) -> None:
    """A run when the next retry is due (without the flag: kicks for new rows must not wait for it)."""
    from integrations.tasks import deliver_webhooks

    deliver_webhooks.apply_async(countdown=seconds, retry=False)


def task_started() -> None:
    """Called by the task as it starts: rows committed from now on need another kick to be seen soon."""
    try:
        cache.delete(QUEUED_FLAG)
    except Exception:
        logger.warning("Could not clear the webhook kick flag", exc_info=True)


class _Kicker:
    """One thread per process that sends the kicks, so a committing thread only sets an event."""

    _instance: "_Kicker | None" = None
    _lock = threading.Lock()

    def __init__(self):
        self.pid = os.getpid()
        self.event = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="webhook-kicker", daemon=True)
        self.thread.start()

    @classmethod
    def instance(cls) -> "_Kicker":
        kicker = cls._instance
        if kicker is None or kicker.pid != os.getpid():  # a forked child has no thread of its own yet
            with cls._lock:
                if cls._instance is None or cls._instance.pid != os.getpid():
                    cls._instance = cls()
                kicker = cls._instance
        return kicker

    def poke(self) -> None:
        self.event.set()

    def _serve(self) -> None:
        while True:
            self.event.wait()
            self.event.clear()
            try:
                send_deliver_task()
            except Exception as error:
                # The broker or Redis is away: the rows are safe in the outbox and the sweep will find them.
                logger.warning("Could not queue a webhook delivery run: %s", error)
