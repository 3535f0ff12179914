"""Long work an operator started (a CSV import, an export, a bulk change), run outside the request.

``start()`` writes a queued :class:`~accesscontrol.models.Job` row and, once the
request's transaction commits, hands its id to a runner: a Celery task on the
default queue where a real broker is configured, otherwise a background thread
of this (web) process, as the embedded profile runs everything in one process.
:func:`run` claims the row with a conditional UPDATE (so a redelivered task does
nothing), calls the job's kind, and keeps ``done``/``total`` current for the
progress bar. An exception marks the job failed with its reason; a job whose
process died is found by :func:`fail_stalled` when no progress came for a while.
"""

import datetime as dt
import logging
import threading

from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from accesscontrol.models import Job, JobStatus
from core.broker import uses_celery

logger = logging.getLogger("space.jobs")

# What each kind of job runs: a function (job, progress) -> result dict.
KINDS = {
    "cardholder_import": "accesscontrol.cardholder_jobs.import_cardholders",
    "cardholder_export": "accesscontrol.cardholder_jobs.export_cardholders",
    "cardholder_grant_level": "accesscontrol.cardholder_jobs.grant_access_level",
    "backup": "accesscontrol.backups.backup_job",
    "cardholder_sync": "accesscontrol.sync.sync_job",
}
LABELS = {
    "cardholder_import": "Cardholder import",
    "cardholder_export": "Cardholder export",
    "cardholder_grant_level": "Grant an access level",
    "backup": "Backup",
    "cardholder_sync": "Cardholder sync",
}
# A running job reports progress at least this often; one silent for longer lost its process.
STALLED_AFTER = dt.timedelta(minutes=5)
PROGRESS_EVERY_SECONDS = 0.5


class JobError(Exception):
    """A job cannot go on, for a reason the operator should read (a bad file, a deleted access level)."""


def start(kind: str, operator, parameters: dict, *, total: int = 0) -> Job:
    """A queued job of ``kind``; it starts running when the caller's transaction commits."""
    if kind not in KINDS:
        raise ValueError(f"Unknown job kind {kind!r}")
    job = Job.objects.create(kind=kind, operator=operator, parameters=parameters, total=total)
    transaction.on_commit(lambda: dispatch(job.pk))
    return job


def dispatch(job_id: int) -> None:
    """Hand the job to a Celery worker, or (embedded profile) to a thread of this process."""
    if uses_celery():
        from accesscontrol.tasks import run_job

        try:
            run_job.apply_async((job_id,), retry=False)
        except Exception as error:
            # The row is there but no worker will ever see it: say so rather than leave it queued.
            fail(job_id, f"The job could not be queued: {error}")
        return
    threading.Thread(target=_run_in_thread, args=(job_id,), name=f"job-{job_id}", daemon=True).start()


def _run_in_thread(job_id: int) -> None:
    try:
        run(job_id)
    finally:
        connection.close()  # this thread's own connection


def run(job_id: int) -> Job | None:
    """Run a queued job to its end; None when it was not queued (running or run already)."""
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=now, result={"heartbeat": now.isoformat()}
    )
    if not claimed:
        return None
    job = Job.objects.get(pk=job_id)
    progress = Progress(job)
    try:
        if job.kind not in KINDS:
            raise JobError(f"Unknown kind of job: {job.kind}.")
        result = import_string(KINDS[job.kind])(job, progress)
    except JobError as error:
        fail(job_id, str(error), progress=progress)
    except Exception as error:
        logger.exception("Job %s (%s) failed", job_id, job.kind)
        fail(job_id, f"Failed unexpectedly: {type(error).__name__}: {error}", progress=progress)
    else:
        Job.objects.filter(pk=job_id).update(
            status=JobStatus.SUCCEEDED,
            done=progress.done,
            total=max(progress.total, progress.done),
            message=str(result.pop("message", ""))[:500],
            result=result,
            result_file=job.result_file,
            finished_at=timezone.now(),
        )
    return Job.objects.get(pk=job_id)


def fail(job_id: int, reason: str, *, progress: "Progress | None" = None) -> None:
    """Mark the job failed with ``reason``, keeping what it had done (rows imported, errors found) for the page."""
    changes = {"status": JobStatus.FAILED, "message": reason[:500], "finished_at": timezone.now()}
    if progress is not None:
        changes.update(done=progress.done, total=progress.total, result=progress.partial_result)
    Job.objects.filter(pk=job_id).exclude(status=JobStatus.SUCCEEDED).update(**changes)


def fail_stalled(now: dt.datetime | None = None) -> int:
    """Mark failed the running jobs that reported nothing for STALLED_AFTER: the process running them died."""
    now = now or timezone.now()
    stalled = 0
    for job_id, result, started_at in Job.objects.filter(status=JobStatus.RUNNING).values_list(
        "pk", "result", "started_at"
    ):
        beat = (result or {}).get("heartbeat")
        last = dt.datetime.fromisoformat(beat) if beat else started_at
        if last is None or now - last > STALLED_AFTER:
            fail(job_id, "The process running this job stopped before it finished.")
            stalled += 1
    return stalled


class Progress:
    """What a running job has done so far, written to its row (at most twice a second) for the progress bar."""

    def __init__(self, job: Job):
        self.job_id = job.pk
        self.total = job.total
        self.done = 0
        self.message = ""
        self.partial_result: dict = {}  # kept when the job fails half-way (rows imported so far, errors)
        self._written = 0.0

    def set_total(self, total: int) -> None:
        self.total = total
        self._write()

    def advance(self, steps: int = 1, message: str | None = None) -> None:
        self.done += steps
        if message is not None:
            self.message = message
        clock = timezone.now().timestamp()
        if clock - self._written >= PROGRESS_EVERY_SECONDS or self.done >= self.total:
            self._write()

    def _write(self) -> None:
        now = timezone.now()
        self._written = now.timestamp()
        Job.objects.filter(pk=self.job_id, status=JobStatus.RUNNING).update(
            done=self.done,
            total=self.total,
            message=self.message[:500],
            result={**self.partial_result, "heartbeat": now.isoformat()},
        )
