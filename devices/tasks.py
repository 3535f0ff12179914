"""Celery tasks of the devices app: the device bridge as a long-lived task (production profile).

Both tasks go to the ``connectors`` queue (settings.CELERY_TASK_ROUTES),
served by a worker with the threads pool and a concurrency above the number
of long-lived services, e.g. ``celery -A space worker -Q connectors --pool threads -c 4``.
In the embedded profile the bridge runs inside ``runspace`` and both tasks do nothing.
"""

from celery import shared_task
from django.conf import settings

from core import hosting
from core.lease import DEFAULT_TTL_SECONDS, Lease

BRIDGE_LEASE = "device-bridge"
RUNS_IN_RUNSPACE = "runs in runspace"
RUNNING = "running"
SENT = "sent"
# A run_bridge sent by ensure_bridge that no worker took in this time is
# dropped: the next check sends a fresh one, so a queue with no worker does not fill up.
RUN_BRIDGE_EXPIRES_SECONDS = 60


def bridge_lease(ttl: float = DEFAULT_TTL_SECONDS) -> Lease:
    return Lease(BRIDGE_LEASE, ttl=ttl)


# Late acknowledgement: if the worker dies, the broker delivers the message
# again (at once when a prefork child is lost; after the visibility timeout
# on Redis) and the redelivered task restarts the bridge, if beat has not
# already. A redelivery while the bridge still runs (Redis also redelivers a
# message left unacknowledged past its visibility timeout) finds the lease
# held and returns at once. No time limit: the task runs until stopped.
@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_bridge(lease_seconds: float = DEFAULT_TTL_SECONDS) -> str:
    """Run the device bridge until the worker shuts down or the lease is lost; at most one at a time.

    Returns ``"already running"`` at once when another bridge holds the lease,
    else why it stopped (``"stopped"``, ``"lease lost"``, ``"shutting down"``).
    ``lease_seconds`` is how soon another worker may take over from a dead one.
    """
    if settings.SPACE_BRIDGE_IN_RUNSPACE:
        return RUNS_IN_RUNSPACE
    from devices.sdp.bridge import Bridge

    return hosting.run(Bridge(), bridge_lease(lease_seconds))


@shared_task(ignore_result=True)
def ensure_bridge() -> str:
    """Beat's check: start the bridge when no one holds its lease (it died, or was never started)."""
    if settings.SPACE_BRIDGE_IN_RUNSPACE:
        return RUNS_IN_RUNSPACE
    if bridge_lease().holder() is not None:
        return RUNNING
    run_bridge.apply_async(expires=RUN_BRIDGE_EXPIRES_SECONDS)
    return SENT
