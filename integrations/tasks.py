"""Celery tasks of the integrations app: webhook delivery runs and the sweep (production profile).

Both work only from the outbox rows (integrations.models.WebhookDelivery), so
a task lost with its worker or its message loses nothing: the next sweep
(beat, every few seconds) puts back what a dead run had claimed and sends a
delivery run when anything is due. In the embedded profile the webhook service
of ``runspace`` runs the same code.
"""

import logging

from celery import shared_task
from django.conf import settings

from integrations.webhooks import delivery, wakeup

logger = logging.getLogger(__name__)

# Retries due sooner than this get a run of their own; later ones are the sweep's (beat, every 10 s).
RETRY_HORIZON_SECONDS = 10.0


@shared_task(ignore_result=True)
def deliver_webhooks() -> str:
    """One delivery run; then another when rows are still due (a run lasts ``run_seconds`` at most) or soon will be."""
    wakeup.task_started()
    stats = delivery.deliver()
    if stats.claimed:
        wait = delivery.next_due_in()
        if wait == 0:
            wakeup.send_deliver_task()
        elif wait is not None and wait < RETRY_HORIZON_SECONDS:
            # A retry due before the sweep would look again: a run for it then.
            wakeup.send_deliver_task_later(wait)
    return (
        f"claimed {stats.claimed}, delivered {stats.delivered}, retried {stats.retried}, "
        f"failed {stats.failed}, released {stats.released}, paused {len(stats.paused)}"
    )


@shared_task(ignore_result=True)
def sweep_webhooks(stale_after_seconds: float | None = None) -> str:
    """Beat's check: put back rows of runs that died, drop old log rows, start a run when something is due."""
    stats = delivery.sweep(stale_after=stale_after_seconds)
    if stats.due:
        wakeup.send_deliver_task(force=True)
    return (
        f"recovered {stats.recovered}, failed {stats.failed}, orphans {stats.orphans}, "
        f"purged {stats.purged}, due {stats.due}"
    )


@shared_task(ignore_result=True)
def sync_ldap() -> str:
    """The directory sync (``manage.py sync_ldap``); beat runs it every SPACE_LDAP_SYNC_MINUTES when LDAP is on."""
    if settings.SPACE_LDAP is None:
        return "LDAP is not configured"
    import ldap

    from integrations.ldap.sync import DirectoryUnusable, sync_directory

    try:
        summary = sync_directory(settings.SPACE_LDAP).summary()
    except (ldap.LDAPError, DirectoryUnusable) as exc:
        # Nothing changed; the next run tries again.
        logger.error("LDAP sync failed, nothing changed: %s", exc)
        return f"LDAP sync failed: {exc}"
    logger.info(summary)
    return summary
