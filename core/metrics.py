"""Prometheus metrics that processes keep themselves, summed over all of them at ``/metrics``.

A decision, a stored event or an open websocket is counted in the process that
has it: runspace, runservice, or the Celery worker running the SDP/1 bridge or
a connector under its lease. prometheus_client's multiprocess mode lets them
meet: each process writes its values to memory-mapped files of its own (named
by kind and pid) in one directory, ``settings.SPACE_METRICS_DIR``, and
``/metrics`` sums the files (:func:`add_collector`). prometheus_client reads
that directory from ``PROMETHEUS_MULTIPROC_DIR`` when it is first imported, so
``space/settings.py`` sets it before anything imports the library.

Gauges of things that live with a process (websocket clients, connector links)
use ``multiprocess_mode="livesum"``: the files of a process that exits cleanly
are removed (:func:`process_exited`), and :func:`sweep` removes every file of
a process that is gone however it went. The metric objects are defined by the
app that owns them (``devices/metrics.py``, ``accesscontrol/metrics.py``,
``integrations/metrics.py``); this module is the plumbing.
"""

import logging
import os
import re
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

logger = logging.getLogger(__name__)

# counter_1234.db, histogram_1234.db, gauge_livesum_1234.db ...: the pid is the last part of the name.
_FILE = re.compile(r"^[a-z_]+_(\d+)\.db$")


def directory() -> Path | None:
    """The multiprocess directory prometheus_client writes to, or None when metrics stay in this process."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(path) if path else None


def add_collector(registry: CollectorRegistry) -> None:
    """Add the sum of every process's metrics to ``registry`` (nothing without a multiprocess directory)."""
    path = directory()
    if path is not None:
        MultiProcessCollector(registry, path=str(path))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def sweep() -> int:
    """Remove the files of processes that are gone (a kill leaves them); returns how many were removed.

    Safe while other processes run: only the files of pids that do not exist
    go. The directory must be this host's (pids of another host or container
    mean nothing here). Counters of a process that is gone vanish from the sum,
    which Prometheus reads as a counter reset.
    """
    path = directory()
    if path is None or not path.is_dir():
        return 0
    removed = 0
    for entry in path.iterdir():
        match = _FILE.match(entry.name)
        if match is None or _alive(int(match.group(1))):
            continue
        try:
            entry.unlink()
        except FileNotFoundError:  # another process swept it first
            continue
        except OSError as error:  # not ours to remove (a manage.py run by another user): left, and said
            logger.warning("Metrics: cannot remove %s (%s)", entry, error)
            continue
        removed += 1
    if removed:
        logger.info("Metrics: removed %d files of processes that are gone from %s", removed, path)
    return removed


def process_exited(pid: int | None = None) -> None:
    """This process (or ``pid``) ends: its live gauges leave the sum."""
    if directory() is not None:
        mark_process_dead(pid or os.getpid())
