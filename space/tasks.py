"""The long-lived services of ``space.services`` as Celery tasks (production profile).

``run_service(NAME)`` hosts one service until the worker shuts down or the
lease is lost; beat's ``ensure_services`` sends it for every configured service
whose lease no one holds. Both go to the ``connectors`` queue
(settings.CELERY_TASK_ROUTES), served by a worker with the threads pool and a
concurrency above the number of long-lived services, e.g.
``celery -A space worker -Q connectors --pool threads -c 8``. A service that
runs inside ``runspace`` in this profile is left alone by both.
"""

from celery import shared_task
from django.conf import settings

from core import hosting
from core.lease import DEFAULT_TTL_SECONDS
from space.services import bus_entries, hosted, lookup

RUNS_IN_RUNSPACE = "runs in runspace"
NOT_CONFIGURED = "not configured"
RUNNING = "running"
SENT = "sent"
# A run_service sent by ensure_services that no worker took in this time is
# dropped: the next check sends a fresh one, so a queue with no worker does not fill up.
RUN_EXPIRES_SECONDS = 60


# Late acknowledgement: if the worker dies, the broker delivers the message
# again (at once when a prefork child is lost; after the visibility timeout
# on Redis) and the redelivered task restarts the service, if beat has not
# already. A redelivery while the service still runs (Redis also redelivers a
# message left unacknowledged past its visibility timeout) finds the lease
# held and returns at once. No time limit: the task runs until stopped.
@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_service(name: str, lease_seconds: float = DEFAULT_TTL_SECONDS) -> str:
    """Run the service ``name`` until the worker shuts down or the lease is lost; at most one copy at a time.

    Returns ``"already running"`` at once when another copy holds the lease,
    else why it stopped (``"stopped"``, ``"lease lost"``, ``"shutting down"``).
    ``lease_seconds`` is how soon another worker may take over from a dead one.
    A name not in the table, or of a service that runs inside runspace only, is configured nowhere.
    """
    entry = lookup(name)
    if entry is not None and entry.in_runspace():
        return RUNS_IN_RUNSPACE
    if entry is None or not entry.hosted or not entry.configured:
        return NOT_CONFIGURED
    return hosting.run(entry.make(), entry.lease_for(lease_seconds))


@shared_task(ignore_result=True)
def ensure_services() -> dict[str, str]:
    """Beat's check: start each configured service whose lease no one holds (it died, or never started).

    Says, for each configured service that can run outside runspace, whether it
    runs in runspace, is running, or was sent.
    """
    outcome = {}
    # Each OSDP bus is a service of its own only when runspace does not run them all (the "osdp" entry).
    buses = [] if settings.SPACE_OSDP_IN_RUNSPACE else bus_entries()
    for entry in hosted() + buses:
        if not entry.configured:
            continue
        if entry.in_runspace():
            outcome[entry.name] = RUNS_IN_RUNSPACE
        elif entry.lease_for().holder() is not None:
            outcome[entry.name] = RUNNING
        else:
            run_service.apply_async((entry.name,), expires=RUN_EXPIRES_SECONDS)
            outcome[entry.name] = SENT
    return outcome
