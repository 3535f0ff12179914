"""In-process wake-ups for encode jobs, so a key is written as soon as it is asked for.

Without them a job waits for the bridge's next poll of the job table
(``COMMAND_POLL_SECONDS``) and its caller for its next look at the job row
(``hotel.actions.POLL_SECONDS``): a few hundred milliseconds on a FIAS
KR→KA that takes well under a hundred otherwise. In the embedded profile the
bridge and the connectors share one process, so:

- :func:`job_queued` runs once a transaction that created a job commits
  (``transaction.on_commit``); it wakes every bridge of this process
  (:func:`add_waker`), which then reads the queued jobs at once.
- :func:`jobs_finished` runs after the bridge's writer committed a finished job;
  it wakes the threads waiting in :func:`wait_finished`.

A wake-up is a hint, never the only way: the bridge still polls, and waiters
still look at the row after a short timeout, so a job created or finished in
another process (``manage.py runservice device-bridge`` apart from the connectors) is found
all the same, only later.
"""

import threading
from collections.abc import Callable

_wakers: list[Callable[[], None]] = []
_finished = threading.Condition()
_generation = 0  # how many times jobs_finished() ran; a waiter waits for it to change


def add_waker(wake: Callable[[], None]) -> None:
    """``wake`` (thread-safe, never blocking) runs whenever a job was queued in this process."""
    _wakers.append(wake)


def remove_waker(wake: Callable[[], None]) -> None:
    if wake in _wakers:
        _wakers.remove(wake)


def job_queued() -> None:
    for wake in list(_wakers):
        wake()


def jobs_finished() -> None:
    global _generation
    with _finished:
        _generation += 1
        _finished.notify_all()


def generation() -> int:
    """Taken before looking at a job's row, then given to :func:`wait_finished`: no wake-up is missed."""
    return _generation


def wait_finished(seen: int, timeout: float) -> None:
    """Until a job finished since ``generation()`` returned ``seen``, or ``timeout`` seconds passed."""
    with _finished:
        _finished.wait_for(lambda: _generation != seen, timeout)
