"""The Celery app: its configuration is the CELERY_* settings; tasks live in each app's ``tasks.py``."""

import os

from celery import Celery
from celery.schedules import crontab
from celery.signals import worker_init, worker_process_shutdown, worker_shutting_down

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "space.settings")

app = Celery("space")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Beat (production profile, one instance) restarts a long-lived service whose
# lease has expired: its worker died, or the task was lost with its message.
ENSURE_EVERY_SECONDS = 10.0
# Blacklist entries leave the list once their keys would have expired (accesscontrol/blacklist.py);
# runspace runs the same purge this often when there is no beat (space/services.py).
PURGE_BLACKLIST_EVERY_SECONDS = 3600.0
# The backups' minute: the daily backup once its time has come, the overdue alarm (accesscontrol/backups.py).
BACKUP_TICK_SECONDS = 60.0
# Cardholder sources (directories, HR feeds; accesscontrol/sync.py): due ones run, watched folders are looked at.
SOURCE_TICK_SECONDS = 60.0
# The audit retention purge (accesscontrol/retention.py): daily; runspace runs it this often without beat.
PURGE_AUDIT_EVERY_SECONDS = 86400.0
app.conf.beat_schedule = {
    # Every long-lived service of space/services.py that runs outside runspace (space/tasks.py).
    "ensure-services": {
        "task": "space.tasks.ensure_services",
        "schedule": ENSURE_EVERY_SECONDS,
        # A check that waited longer than the next one is worthless: drop it.
        "options": {"expires": ENSURE_EVERY_SECONDS},
    },
    # The webhook outbox's sweep: puts back rows of delivery runs that died, starts a run when rows are due.
    "sweep-webhooks": {
        "task": "integrations.tasks.sweep_webhooks",
        "schedule": 10.0,
        "options": {"expires": 10.0},
    },
    "purge-blacklist": {
        "task": "accesscontrol.tasks.purge_blacklist",
        "schedule": PURGE_BLACKLIST_EVERY_SECONDS,
        "options": {"expires": PURGE_BLACKLIST_EVERY_SECONDS},
    },
    "backup-tick": {
        "task": "accesscontrol.tasks.backup_tick",
        "schedule": BACKUP_TICK_SECONDS,
        "options": {"expires": BACKUP_TICK_SECONDS},
    },
    "source-tick": {
        "task": "accesscontrol.tasks.source_tick",
        "schedule": SOURCE_TICK_SECONDS,
        "options": {"expires": SOURCE_TICK_SECONDS},
    },
    # One copy at a time whatever beat does: the purge holds its own locks (a second one finds them taken).
    "purge-audit": {
        "task": "accesscontrol.tasks.purge_audit",
        "schedule": crontab(hour=3, minute=17),  # at night, in CELERY_TIMEZONE (the site's)
        "options": {"expires": 3600.0},
    },
}


def directory_sync_entry(settings) -> dict | None:
    """Beat's entry for the LDAP sync, when LDAP is configured and the sync has an interval."""
    if settings.SPACE_LDAP is None or settings.SPACE_LDAP_SYNC_MINUTES <= 0:
        return None
    interval = settings.SPACE_LDAP_SYNC_MINUTES * 60.0
    return {"task": "integrations.tasks.sync_ldap", "schedule": interval, "options": {"expires": interval}}


@app.on_after_configure.connect
def add_directory_sync(sender, **kwargs):
    # Here, not above: the settings are not loaded yet when this module is imported (by space.settings itself).
    from django.conf import settings

    if entry := directory_sync_entry(settings):
        sender.conf.beat_schedule["sync-ldap"] = entry


@worker_init.connect
def sweep_metrics(**kwargs):
    from core import metrics

    metrics.sweep()  # the metrics files of processes a kill left behind


@worker_process_shutdown.connect
def metrics_process_exited(pid=None, **kwargs):
    # A pool process ends with os._exit, past atexit: its live gauges leave /metrics here.
    from core import metrics

    metrics.process_exited(pid)


@worker_shutting_down.connect
def stop_hosted_services(**kwargs):
    # A warm shutdown waits for running tasks, and the long-lived ones only
    # end when told to: stop them so the worker can exit (and release their leases).
    from core import hosting

    hosting.shutdown()
