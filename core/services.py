"""Long-lived services: what one is, and starting and stopping several beside the web server.

A service is an asyncio component with ``start()`` and ``stop()`` and no
knowledge of its host: the same object runs on the web server's event loop
(``runspace``), or on a loop of its own (``core.hosting``) inside a Celery
worker or ``manage.py runservice``. Which services a site has is the table in
``space/services.py``.
"""

import asyncio
import gc
import logging
from typing import Protocol

from django.db import DatabaseError, InterfaceError, connection

logger = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 10


class Service(Protocol):
    name: str

    async def start(self) -> None:
        """Begin serving; return once running (long work goes into tasks it owns)."""

    async def stop(self) -> None:
        """Stop serving and release sockets and tasks; must be safe to call after a failed start."""


async def start_all(services: list[Service]) -> list[Service]:
    """Start ``services`` in order; on a failure, stop the ones already started and re-raise."""
    started = []
    for service in services:
        try:
            await service.start()
        except Exception:
            logger.exception("Service %s failed to start", service.name)
            await stop_all(started)
            raise
        logger.info("Service %s started", service.name)
        started.append(service)
    return started


async def stop_all(services: list[Service]) -> None:
    """Stop ``services`` in reverse order; one that fails or hangs does not keep the others running."""
    for service in reversed(services):
        try:
            await asyncio.wait_for(service.stop(), STOP_TIMEOUT_SECONDS)
        except Exception:
            logger.exception("Service %s did not stop cleanly", service.name)
        else:
            logger.info("Service %s stopped", service.name)


# --- database work on a service's own threads ---------------------------------------------------
# Services run ORM calls on a few long-lived threads (run_in_executor); each thread's connection
# stays open between calls. These are what the services hand their executors.


def run_orm(function, *args):
    """Call ``function`` on this thread; a connection that failed is closed, so the next call opens a new one."""
    try:
        return function(*args)
    except (DatabaseError, InterfaceError):
        connection.close()
        raise


def close_connection() -> None:
    """Close this thread's connection (``connection`` is looked up per thread); submitted once as a service stops."""
    connection.close()


# --- the cyclic garbage collector ---------------------------------------------------------------


def freeze_what_is_loaded() -> None:
    """Take everything alive now (Django, the rules snapshot, a face gallery's owners) out of the cyclic
    collector's sight; for a service to call once it has loaded what it keeps for the process's life.

    Those objects live as long as the process, yet every full collection walked them all with the GIL
    held (on the demo site about 110,000 objects, 46 ms of CPU; a large site's snapshot holds millions),
    and under bench_bridge's load full collections stopped decisions for up to 120 ms, far past the p99 a
    device is promised. Garbage made later is collected as before; :func:`thaw` hands them back.
    """
    gc.collect()
    gc.freeze()


def thaw() -> None:
    """Hand the objects :func:`freeze_what_is_loaded` took back to the collector (a service stopping)."""
    gc.unfreeze()
