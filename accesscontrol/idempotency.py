"""Idempotency keys for the REST API: a call retried with the same ``Idempotency-Key`` is answered from
the record of the first, so a PMS that lost the answer to a check-in does not issue a second key.

A key belongs to its operator and lasts :data:`LIFETIME` (24 h). The first call claims the key in a
committed row of its own (``status`` 0 while it runs), so a retry arriving meanwhile waits for it
instead of running again. Only a successful answer is kept: a call that failed (no card on the
encoder, a busy encoder, bad input) issued nothing, its row is removed and a retry runs afresh.
The same key with another request (method, path or body) is refused: :class:`KeyReused`. An
operator's expired records are removed when they claim a new key.
"""

import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from accesscontrol.models import IdempotencyRecord

LIFETIME = dt.timedelta(hours=24)
# A call still "running" after this died with its process (a restart): a retry may take its key over.
STALE = dt.timedelta(minutes=5)
MAX_KEY_LENGTH = 255
POLL_SECONDS = 0.1


class KeyReused(Exception):
    """The key was used before for another request."""


class StillRunning(Exception):
    """The first call with the key has not finished within the wait."""


@dataclass(frozen=True)
class Stored:
    status: int
    body: dict


def fingerprint(method: str, path: str, body) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and key.isprintable()


def claim(operator, key: str, print_: str, *, wait_seconds: float) -> Stored | None:
    """Claim ``key`` for a call with fingerprint ``print_``: None when this call is to run (then
    :func:`finish` it), or the stored answer of the first call. Waits up to ``wait_seconds`` for a
    first call still running (StillRunning after that); KeyReused for another request."""
    deadline = time.monotonic() + wait_seconds
    # The operator's expired records go as they make new ones: the table holds a day of calls, no purge job.
    purge_expired(operator=operator)
    while True:
        try:
            with transaction.atomic():
                IdempotencyRecord.objects.create(operator=operator, key=key, fingerprint=print_)
            return None
        except IntegrityError:
            pass
        record = IdempotencyRecord.objects.filter(operator=operator, key=key).first()
        if record is None:
            continue  # the first call failed and let its key go: run again
        too_old = LIFETIME if record.status else STALE
        if record.created_at <= timezone.now() - too_old:
            IdempotencyRecord.objects.filter(pk=record.pk, created_at=record.created_at).delete()
            continue
        if record.fingerprint != print_:
            raise KeyReused(key)
        if record.status:
            return Stored(record.status, record.body)
        if time.monotonic() >= deadline:
            raise StillRunning(key)
        time.sleep(POLL_SECONDS)


def finish(operator, key: str, status: int, body) -> None:
    """The claimed call answered ``status`` with ``body``: kept for retries when it succeeded, else let go."""
    records = IdempotencyRecord.objects.filter(operator=operator, key=key, status=0)
    if 200 <= status < 300:
        records.update(status=status, body=body)
    else:
        records.delete()


def purge_expired(now: dt.datetime | None = None, *, operator=None) -> int:
    """Remove the records (of ``operator``, or everyone's) older than LIFETIME; returns how many."""
    records = IdempotencyRecord.objects.filter(created_at__lte=(now or timezone.now()) - LIFETIME)
    if operator is not None:
        records = records.filter(operator=operator)
    return records.delete()[0]
