"""The table of long-lived services: which ones a site runs, and where."""

from django.conf import settings

from core.services import Service


def embedded_services() -> list[Service]:
    """The services of the embedded profile, in start order (stopped in reverse)."""
    services = []
    if settings.SPACE_BRIDGE_IN_RUNSPACE:
        # Imported here, not at the top: the bridge imports models, which need the app registry ready.
        from devices.sdp.bridge import Bridge

        services.append(Bridge())
    from devices.usb_encoders import EncoderSweep

    # Local bridges of USB encoders connect to the web server: the sweep of their jobs runs beside it.
    services.append(EncoderSweep())
    from integrations.webhooks import wakeup

    if not wakeup.uses_celery():
        # No Celery worker serves the outbox (the broker is memory://): deliver webhooks here.
        from integrations.webhooks.service import WebhookService

        services.append(WebhookService())
        # Nor does a Celery beat run: its periodic housekeeping runs here.
        services.append(blacklist_purge())
    from integrations.eventstream import tasks as stream_tasks

    if stream_tasks.runs_in_runspace():
        from integrations.eventstream.service import EventStreamService

        services.append(EventStreamService())
    from integrations import connectors

    # The PMS and SHIP connectors that are configured (none until a site sets one up).
    services.extend(connectors.embedded())
    return services


def blacklist_purge() -> Service:
    """The hourly purge of blacklist entries whose keys would have expired (beat's purge_blacklist)."""
    from accesscontrol.blacklist import purge_expired
    from core.periodic import PeriodicService
    from space.celery import PURGE_BLACKLIST_EVERY_SECONDS

    return PeriodicService("blacklist-purge", purge_expired, PURGE_BLACKLIST_EVERY_SECONDS)
