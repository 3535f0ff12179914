"""Encode jobs: writing a key's card data onto a card, from the operator's request to the card written.

An :class:`~devices.models.EncodeJob` names a key and an encoder. Two paths carry it out:

- an Ethernet encoder (``DeviceKind.ENCODER``) over SDP/1: the device bridge
  picks up its queued jobs, sends them in parts and writes what the encoder
  reports back (devices/sdp/bridge.py; the messages are in docs/sdp1-in-space.md);
- a USB encoder on an operator's desk (``DeviceKind.USB_ENCODER``): the local
  bridge reads its encoder's jobs (:func:`local_bridge_jobs`) and reports
  through the same functions.

Both move a job with :func:`job_progress` (queued → sent → waiting_card →
writing → done or failed, never backwards) and, for a job written "on whatever
card is presented", bind the key to that card with :func:`bind_card` before
writing: the card data names the card's UID, so it is built only once the UID
is known. A key issued that way carries a placeholder UID until then
(:func:`placeholder_uid`). Updaters (wall readers) write through jobs too: the
card a person presents is revalidated by devices.cards.update_card and the new
data goes back as an encode job on that updater (:func:`update_presented_card`).

Card bytes come only from ``devices.cards.card_bytes_for_key`` and
``devices.cards.update_card``.
"""

import datetime as dt
import secrets
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accesscontrol import actions, events
from accesscontrol.choices import AuditKind, KeyKind, KeyStatus
from accesscontrol.engine import normalize_uid
from accesscontrol.models import Key
from accesscontrol.models.cardholders import UID_PATTERN
from devices import cards, jobwake
from devices.carddata import CardTooBig
from devices.choices import DeviceKind, EncodePurpose, EncodeStatus
from devices.models import Device, EncodeJob

ENCODER_KINDS = (DeviceKind.ENCODER, DeviceKind.USB_ENCODER)
ENCODED_KINDS = (KeyKind.CARD, KeyKind.FOB)
# How long a cardholder's page shows an encode job after it was made.
RECENT = dt.timedelta(minutes=15)
# How long an encoder waits for a card once it has the data (the encode message's timeout_s).
WAIT_CARD_SECONDS = 30

# A key issued to be written "on whatever card is presented" has this UID until the card is known:
# 32 bytes, longer than any card UID (ISO 14443 UIDs are 4, 7 or 10 bytes), random so each is unique.
PLACEHOLDER_PREFIX = "EC0DE000"
PLACEHOLDER_LENGTH = 64

# Why a job failed. The first four come from the encoder; the others from the server.
NO_CARD = "no_card"
WRONG_CARD_TYPE = "wrong_card_type"
WRITE_FAILED = "write_failed"
BAD_DATA = "bad_data"
ENCODER_OFFLINE = "encoder_offline"
TIMEOUT = "timeout"
UID_IN_USE = "uid_in_use"
WRONG_CARD = "wrong_card"
INTERRUPTED = "interrupted"
DEVICE_ERRORS = frozenset({NO_CARD, WRONG_CARD_TYPE, WRITE_FAILED, BAD_DATA})
ERROR_MESSAGES = {
    NO_CARD: "No card was presented to the encoder in time.",
    WRONG_CARD_TYPE: "The card on the encoder is of the wrong type: use one of the site's data cards.",
    WRITE_FAILED: "The encoder could not write the card: present it again.",
    BAD_DATA: "The encoder refused the card data.",
    ENCODER_OFFLINE: "The encoder is offline.",
    TIMEOUT: "The encoder did not finish in time.",
    UID_IN_USE: "Another issued key already has this card's UID.",
    WRONG_CARD: "The card written is not the key's card.",
    INTERRUPTED: "The server restarted while the card was being written.",
}

_RANK = {
    EncodeStatus.QUEUED: 0,
    EncodeStatus.SENT: 1,
    EncodeStatus.WAITING_CARD: 2,
    EncodeStatus.WRITING: 3,
    EncodeStatus.DONE: 4,
    EncodeStatus.FAILED: 4,
}
_PROGRESS = {EncodeStatus.SENT: 10, EncodeStatus.WAITING_CARD: 40, EncodeStatus.WRITING: 70, EncodeStatus.DONE: 100}


def error_message(error: str) -> str:
    """What an operator reads for a job's error code (the code itself when it is not one of ours)."""
    return ERROR_MESSAGES.get(error, error)


# --- making jobs ---------------------------------------------------------------------------------------


def placeholder_uid() -> str:
    return PLACEHOLDER_PREFIX + secrets.token_hex((PLACEHOLDER_LENGTH - len(PLACEHOLDER_PREFIX)) // 2).upper()


def is_placeholder(uid: str) -> bool:
    return len(uid) == PLACEHOLDER_LENGTH and uid.startswith(PLACEHOLDER_PREFIX)


def check_encoder(encoder: Device) -> None:
    """ValidationError (on ``encoder``) unless the device can write cards now or when it comes online."""
    if encoder.kind not in ENCODER_KINDS:
        raise ValidationError({"encoder": f"{encoder} is not an encoder."})
    if not encoder.enabled:
        raise ValidationError({"encoder": f"{encoder} is disabled."})
    if encoder.kind == DeviceKind.ENCODER and not encoder.has_key:
        raise ValidationError({"encoder": f"{encoder} has no device key: it cannot connect."})


def create_encode_job(
    key: Key, encoder: Device, operator, *, any_card: bool = False, via: str = "web", address: str | None = None
) -> EncodeJob:
    """A queued job writing ``key`` on ``encoder``. Raises ValidationError for an unfit encoder or key,
    or card data that does not fit (its message names what to reduce).

    ``any_card``: write on whatever card is presented, and the key takes that card's UID (always so
    for a key issued with a placeholder UID).
    """
    check_encoder(encoder)
    if key.kind not in ENCODED_KINDS:
        raise ValidationError({"key": f"A {key.get_kind_display().lower()} is not written on a card."})
    if key.status != KeyStatus.ISSUED:
        raise ValidationError({"key": "Only an issued key is written on a card."})
    any_card = any_card or is_placeholder(key.uid)
    if any_card and encoder.kind == DeviceKind.USB_ENCODER:
        # The USB path writes the data it is given; card data names its card, so the UID must be known first.
        raise ValidationError(
            {"encoder": "A USB encoder writes a key whose card UID is known: give the UID, or use an Ethernet encoder."}
        )
    # A job for any card gets its data once the card (and so its UID) is known: bind_card().
    data = b"" if any_card else _card_bytes(key)
    operator = operator if getattr(operator, "is_authenticated", False) else None
    with transaction.atomic():
        job = EncodeJob.objects.create(key=key, encoder=encoder, data=data, operator=operator)
        transaction.on_commit(jobwake.job_queued)
        actions.record_operator_action(
            operator,
            "encode_key",
            key,
            via=via,
            detail={"job": job.pk, "encoder": encoder.pk, "any_card": any_card},
            address=address,
        )
    return job


def issue_and_encode(
    cardholder, encoder: Device, *, operator, via: str, uid: str = "", address: str | None = None, **fields
) -> tuple[Key, EncodeJob]:
    """Issue a key and queue its encode job, both or neither. Without ``uid`` the key takes the UID of
    the card presented to the encoder."""
    check_encoder(encoder)
    with transaction.atomic():
        key = actions.issue_key(
            cardholder, uid or placeholder_uid(), operator=operator, via=via, address=address, **fields
        )
        job = create_encode_job(key, encoder, operator, via=via, address=address)
    return key, job


def _card_bytes(key: Key) -> bytes:
    try:
        return cards.card_bytes_for_key(key)
    except CardTooBig as error:
        raise ValidationError(str(error)) from None


def create_read_job(encoder: Device, operator=None, *, via: str = "web") -> EncodeJob:
    """A queued job reading the card presented to the Ethernet ``encoder``: once done, the job holds the
    card's UID (``card_uid``) and its data (``data``). Raises ValidationError for an unfit encoder."""
    check_encoder(encoder)
    if encoder.kind != DeviceKind.ENCODER:
        raise ValidationError({"encoder": "Cards are read on Ethernet encoders."})
    operator = operator if getattr(operator, "is_authenticated", False) else None
    job = EncodeJob.objects.create(encoder=encoder, purpose=EncodePurpose.READ, data=b"", operator=operator)
    transaction.on_commit(jobwake.job_queued)
    return job


def store_read(job_id: int, uid: str, data: bytes) -> EncodeJob | None:
    """A read job's card is in: its UID and data are kept and the job is done (None when it ended already)."""
    with transaction.atomic():
        job = EncodeJob.objects.select_for_update().filter(pk=job_id, purpose=EncodePurpose.READ).first()
        if job is None or job.status in EncodeStatus.finished():
            return None
        job.data, job.card_uid = bytes(data), normalize_uid(uid)[:64]
        job.status, job.progress, job.finished_at = EncodeStatus.DONE, 100, timezone.now()
        job.save(update_fields=["data", "card_uid", "status", "progress", "finished_at", "updated_at"])
    return job


# --- moving jobs (both paths) ------------------------------------------------------------------------


def job_progress(job_id: int, status: str, progress: int | None = None, error: str = "", card_uid: str = ""):
    """Move job ``job_id`` to ``status``; returns the job, or None when it is unknown or already past it.

    Never backwards, and never out of ``done`` or ``failed``. ``progress`` defaults to the
    status's own figure. On ``done``, ``card_uid`` is the card written: a key still on a
    placeholder takes it; a key with another UID fails the job (``wrong_card``). A job done on
    an encoder leaves a ``key_encoded`` audit event.
    """
    now = timezone.now()
    with transaction.atomic():
        # The job's row only: a read job has no key (an outer join PostgreSQL will not lock).
        job = (
            EncodeJob.objects.select_for_update(of=("self",)).filter(pk=job_id).select_related("key", "encoder").first()
        )
        if job is None or job.status in EncodeStatus.finished() or _RANK[status] < _RANK[job.status]:
            return None
        uid = normalize_uid(card_uid or "")
        if status == EncodeStatus.DONE and job.key_id is None:
            return None  # a read job ends with its card (store_read)
        if status == EncodeStatus.DONE:
            card = uid or job.card_uid
            problem = _take_uid(job.key, card, replace=False) if card or is_placeholder(job.key.uid) else ""
            if problem:
                status, error = EncodeStatus.FAILED, problem
        job.status = status
        if status == EncodeStatus.FAILED:
            job.error = (error or WRITE_FAILED)[:200]
        else:
            job.progress = min(100, max(job.progress, progress if progress is not None else _PROGRESS[status]))
        if UID_PATTERN.match(uid):
            job.card_uid = uid
        if status in EncodeStatus.finished():
            job.finished_at = now
        job.save(update_fields=["status", "progress", "error", "card_uid", "finished_at", "updated_at"])
        if status == EncodeStatus.DONE and job.encoder.kind != DeviceKind.UPDATER:
            _audit_encoded(job, now)
    return job


def bind_card(job_id: int, uid: str) -> tuple[bytes | None, str]:
    """For a job on any card: the card with ``uid`` is on the encoder. The key takes its UID and the job
    its card data. Returns ``(data, "")``, or ``(None, error)`` with the job failed."""
    uid = normalize_uid(uid)
    with transaction.atomic():
        job = EncodeJob.objects.select_for_update(of=("self",)).filter(pk=job_id).select_related("key").first()
        if job is None or job.status in EncodeStatus.finished():
            return None, INTERRUPTED
        problem = _take_uid(job.key, uid, replace=True)
        if not problem:
            try:
                job.data = _card_bytes(job.key)
            except ValidationError as error:
                problem = " ".join(error.messages)[:200]
        if problem:
            job.status, job.error, job.finished_at = EncodeStatus.FAILED, problem, timezone.now()
        job.card_uid = uid if UID_PATTERN.match(uid) else ""
        job.save(update_fields=["data", "status", "error", "card_uid", "finished_at", "updated_at"])
    return (None, problem) if problem else (bytes(job.data), "")


def _take_uid(key: Key, uid: str, *, replace: bool) -> str:
    """Give ``key`` the card UID ``uid`` where it may take it; returns an error code, or "" when it holds it."""
    if key.uid == uid:
        return ""
    if not UID_PATTERN.match(uid) or is_placeholder(uid):
        return BAD_DATA
    if not (replace or is_placeholder(key.uid)):
        return WRONG_CARD
    if Key.objects.filter(uid=uid, status=KeyStatus.ISSUED).exclude(pk=key.pk).exists():
        return UID_IN_USE
    previous, key.uid = key.uid, uid
    try:
        with transaction.atomic():
            key.save(update_fields=["uid"])
    except IntegrityError:
        # Another key took it between the check and the write.
        key.uid = previous
        return UID_IN_USE
    return ""


def _audit_encoded(job: EncodeJob, now: dt.datetime) -> None:
    holder = job.key.cardholder
    events.record(
        at=now,
        kind=AuditKind.KEY_ENCODED,
        cardholder=holder,
        cardholder_name=str(holder)[:201],
        key_uid=job.key.uid,
        device=job.encoder,
        operator=job.operator,
        detail={"job": job.pk, "encoder": job.encoder.name},
    )


def recent_jobs(cardholder, *, within: dt.timedelta = RECENT, limit: int = 3) -> list[EncodeJob]:
    """The cardholder's encode jobs of the last minutes, newest first: what their page follows."""
    since = timezone.now() - within
    jobs = EncodeJob.objects.filter(key__cardholder=cardholder, created_at__gte=since).exclude(
        encoder__kind=DeviceKind.UPDATER
    )
    return list(jobs.select_related("key", "encoder").order_by("-id")[:limit])


# --- the device bridge's side ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobUpdate:
    """A job_progress() call the device bridge makes through its writer, in the batch of the frame it answers."""

    job: int
    status: str
    progress: int | None = None
    error: str = ""
    card_uid: str = ""


def apply_job_updates(updates: list[JobUpdate]) -> None:
    """Inside the writer's transaction; each update in a savepoint, so one refused leaves the others."""
    for update in updates:
        job_progress(update.job, update.status, update.progress, update.error, update.card_uid)


def queued_jobs(skip: set[int], limit: int = 100) -> list[tuple[int, int, bytes, str | None, dt.datetime]]:
    """``(job, encoder pk, data, key uid, created_at)`` of queued jobs on Ethernet encoders, oldest first.
    Empty data: a job on any card (read the card, bind_card, then write); no key uid: a read job."""
    rows = (
        EncodeJob.objects.filter(status=EncodeStatus.QUEUED, encoder__kind=DeviceKind.ENCODER)
        .exclude(pk__in=skip)
        .order_by("id")
        .values_list("id", "encoder_id", "data", "key__uid", "created_at")[:limit]
    )
    return [(job, encoder, bytes(data), uid, created) for job, encoder, data, uid, created in rows]


def fail_interrupted_jobs(now: dt.datetime) -> int:
    """Jobs the bridge was carrying out when it stopped: their encoders forgot them with the session."""
    return EncodeJob.objects.filter(
        encoder__kind__in=(DeviceKind.ENCODER, DeviceKind.UPDATER),
        status__in=(EncodeStatus.SENT, EncodeStatus.WAITING_CARD, EncodeStatus.WRITING),
    ).update(status=EncodeStatus.FAILED, error=INTERRUPTED, finished_at=now, updated_at=now)


def update_presented_card(raw: bytes, uid: str, updater_pk: int, now: dt.datetime) -> tuple[str, int | None, bytes]:
    """A card presented to an updater: ``(outcome, job, data)``; with a job, ``data`` is to be written on it."""
    result = cards.update_card(raw, uid=uid, updater_id=updater_pk, now=now)
    if result.raw is None or result.key_id is None:
        return result.outcome, None, b""
    job = EncodeJob.objects.create(
        key_id=result.key_id, encoder_id=updater_pk, data=result.raw, status=EncodeStatus.SENT, progress=10
    )
    return result.outcome, job.pk, bytes(result.raw)


# --- the local bridge's side (USB encoders) ---------------------------------------------------------------


def local_bridge_jobs(encoder: Device):
    """The queued jobs of a USB encoder, oldest first: what its local bridge writes next."""
    return EncodeJob.objects.filter(
        encoder=encoder, encoder__kind=DeviceKind.USB_ENCODER, status=EncodeStatus.QUEUED
    ).order_by("id")
