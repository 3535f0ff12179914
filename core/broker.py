"""Whether Celery is in use: the one switch between the embedded profile and the production one.

With a real broker (``REDIS_URL`` set) Celery workers and beat do the
background work: webhook deliveries, operators' jobs, periodic housekeeping.
With the in-memory broker nothing would ever take a task off it, so the same
work runs inside this process instead (``runspace``'s services, job threads).
"""

from django.conf import settings


def uses_celery() -> bool:
    """Whether Celery workers take the tasks sent (a real broker), rather than this process doing the work."""
    return not str(settings.CELERY_BROKER_URL).startswith("memory://")
