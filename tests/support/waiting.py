"""Waiting on a condition instead of sleeping a fixed time: a test is as fast as the code, and never flaky for it.

``wait_until`` polls from a plain thread; ``until`` polls from a coroutine (the predicate runs on a worker
thread, so it may use the ORM). Both return the predicate's first true value, and fail with ``message``
when ``timeout`` seconds pass first.
"""

import asyncio
import time
from collections.abc import Callable
from typing import Any

Message = str | Callable[[], str] | None


def _failure(message: Message, timeout: float, predicate: Callable) -> AssertionError:
    text = message() if callable(message) else message
    name = getattr(predicate, "__qualname__", repr(predicate))
    return AssertionError(f"{text or 'the condition'} did not come true within {timeout} s ({name})")


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, message: Message = None, interval: float = 0.02):
    """The first true value of ``predicate()``, polled every ``interval`` seconds for ``timeout`` seconds.

    ``message`` (a string, or a function giving one, e.g. a process's log) says what was awaited when it fails.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _failure(message, timeout, predicate)
        time.sleep(interval)


async def until(predicate: Callable[[], Any], timeout: float = 30.0, message: Message = None, interval: float = 0.02):
    """``wait_until`` for a coroutine: the event loop keeps running while the predicate is false."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _failure(message, timeout, predicate)
        await asyncio.sleep(interval)
