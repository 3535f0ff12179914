"""Celery tasks of the event stream: its service as a long-lived task (production profile).

Mirrors ``devices.tasks``: ``run_event_stream`` hosts ``EventStreamService`` under
a Redis lease on the ``connectors`` queue, so at most one copy sends at a time,
and beat's ``ensure_event_stream`` starts it again when its lease has expired
(its worker died). In the embedded profile the service runs inside ``runspace``
and both tasks do nothing.
"""

from celery import shared_task
from django.conf import settings

from core import hosting
from core.lease import DEFAULT_TTL_SECONDS, Lease

EVENT_STREAM_LEASE = "event-stream"
RUNS_IN_RUNSPACE = "runs in runspace"
RUNNING = "running"
SENT = "sent"
RUN_EXPIRES_SECONDS = 60  # as devices.tasks: a run no worker took in this time is dropped; the next check sends one


def runs_in_runspace() -> bool:
    return settings.SPACE_EVENT_STREAM_IN_RUNSPACE


def event_stream_lease(ttl: float = DEFAULT_TTL_SECONDS) -> Lease:
    return Lease(EVENT_STREAM_LEASE, ttl=ttl)


# Late acknowledgement and the lease, as for the device bridge (devices.tasks.run_bridge):
# a redelivered task restarts the service after its worker died, and returns at once
# while another copy still holds the lease.
@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_event_stream(lease_seconds: float = DEFAULT_TTL_SECONDS) -> str:
    """Send every active stream's events until the worker shuts down or the lease is lost; at most one at a time."""
    if runs_in_runspace():
        return RUNS_IN_RUNSPACE
    from integrations.eventstream.service import EventStreamService

    return hosting.run(EventStreamService(), event_stream_lease(lease_seconds))


@shared_task(ignore_result=True)
def ensure_event_stream() -> str:
    """Beat's check: start the service when no one holds its lease (it died, or was never started)."""
    if runs_in_runspace():
        return RUNS_IN_RUNSPACE
    if event_stream_lease().holder() is not None:
        return RUNNING
    run_event_stream.apply_async(expires=RUN_EXPIRES_SECONDS)
    return SENT
