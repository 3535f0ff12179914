"""Celery tasks of the access control app (production profile; the embedded one runs jobs in a thread)."""

from celery import shared_task

from accesscontrol import backups, housekeeping, jobs, retention, sync


@shared_task(ignore_result=True)
def run_job(job_id: int) -> str:
    """Run one operator job (accesscontrol.jobs); a redelivered message finds it claimed and does nothing."""
    job = jobs.run(job_id)
    return f"job {job_id}: {job.status if job else 'not queued'}"


@shared_task(ignore_result=True)
def purge_blacklist() -> str:
    """Beat's hourly purge: the blacklist, the change logs of rules and presence, orphaned photo files
    (accesscontrol/housekeeping.py; runspace: core.periodic)."""
    return f"purged {housekeeping.summary(housekeeping.purge())}"


@shared_task(ignore_result=True)
def backup_tick() -> str:
    """Beat's minute for backups: the daily one when due, the overdue alarm (accesscontrol/backups.py; runspace:
    the backups service)."""
    return backups.tick()


@shared_task(ignore_result=True)
def purge_audit() -> str:
    """Beat's nightly audit purge: archive, then delete, what the retention policy no longer keeps
    (accesscontrol/retention.py; runspace: core.periodic). A second copy finds the purge's locks taken."""
    return f"audit purge: {retention.purge(via='scheduler').summary()}"


@shared_task(ignore_result=True)
def source_tick() -> str:
    """Beat's minute for cardholder sources: each due directory or HR feed is synced (accesscontrol/sync.py;
    runspace: the sources service). A run of a source already under way makes a second one skip it."""
    return sync.tick()
