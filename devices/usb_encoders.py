"""USB encoders on operators' desks, server side: presence, the jobs their local bridges take, and a sweep.

A USB encoder (a Device of kind ``usb_encoder``) is reached through the local
bridge program (devices/localbridge.py) connected to ``/ws/encoder/``
(devices/consumers.py). While a bridge is connected the device is online; the
connection's peer address is written on the device, so only the connection
that marked it online marks it offline (a bridge that reconnected at once, maybe
to another web process, is not taken offline by its old connection's close).
A connected consumer renews ``last_seen_at`` every few seconds.

The sweep (:class:`EncoderSweep`, a service beside the web server) makes sure
no job is left waiting: a queued job of an encoder with no bridge fails with
``encoder_offline`` after ``SPACE_USB_ENCODER_GRACE_SECONDS``; so does a job in
flight on an encoder whose bridge went away unseen (a web process that died);
an encoder not heard from for ``PRESENCE_TTL`` is marked offline; and a job in
flight with no progress for longer than any connection would wait fails with
``timeout``.

Plain synchronous ORM code; the consumer and the sweep run it on threads.
"""

import asyncio
import contextlib
import datetime as dt
import logging
import re
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accesscontrol import events
from accesscontrol.choices import AuditKind
from core.services import close_connection, run_orm
from core.vault import VaultError
from devices.choices import DeviceKind, EncodeStatus
from devices.encoding import job_progress
from devices.models import Device, EncodeJob

logger = logging.getLogger("space.encoders")

TOUCH_SECONDS = 5.0
PRESENCE_TTL = dt.timedelta(seconds=20)
SWEEP_SECONDS = 0.5
# Beyond the wait for a card: writing 4 KiB over the serial line, and the trip through the bridge.
WRITE_MARGIN_SECONDS = 15.0
IN_FLIGHT = (EncodeStatus.SENT, EncodeStatus.WAITING_CARD, EncodeStatus.WRITING)
PROGRESS = {EncodeStatus.SENT: 5, EncodeStatus.WAITING_CARD: 10, EncodeStatus.WRITING: 20}
CARD_UID = re.compile(r"^(?:[0-9A-Fa-f]{2}:?){4,10}$")


def grace() -> dt.timedelta:
    return dt.timedelta(seconds=settings.SPACE_USB_ENCODER_GRACE_SECONDS)


def card_wait_seconds() -> int:
    return settings.SPACE_ENCODE_CARD_WAIT_SECONDS


def overdue() -> dt.timedelta:
    """How long after its last progress a job in flight is surely orphaned (its connection's deadline is sooner)."""
    return dt.timedelta(seconds=card_wait_seconds() + WRITE_MARGIN_SECONDS) + grace()


# --- job progress ---------------------------------------------------------------------------------


# --- what a connected bridge does -----------------------------------------------------------------


def encoder_of(device_id: int) -> tuple[int, str, bytes] | None:
    """(pk, name, device key) of the enabled USB encoder ``device_id``; None when there is none or its key fails."""
    device = Device.objects.filter(device_id=device_id, kind=DeviceKind.USB_ENCODER, enabled=True).first()
    if device is None or not device.has_key:
        return None
    try:
        return device.pk, device.name, device.key()
    except VaultError as error:
        logger.error("USB encoder %s (%s) is refused: %s", device_id, device.name, error)
        return None


def _presence_event(device: Device, online: bool, address: str) -> None:
    events.record(
        at=timezone.now(),
        kind=AuditKind.DEVICE_ONLINE if online else AuditKind.DEVICE_OFFLINE,
        device=device,
        detail={"device": device.name, "address": address, "via": "local bridge"},
    )


def bridge_connected(device_pk: int, address: str) -> None:
    with transaction.atomic():
        device = Device.objects.select_for_update().get(pk=device_pk)
        Device.objects.filter(pk=device_pk).update(online=True, last_seen_at=timezone.now(), address=address)
        _presence_event(device, True, address)


def bridge_seen(device_pk: int, address: str) -> None:
    Device.objects.filter(pk=device_pk, address=address).update(online=True, last_seen_at=timezone.now())


def bridge_gone(device_pk: int, address: str | None, job_id: int | None) -> None:
    """The connection from ``address`` closed: its job in flight fails; the device goes offline unless
    a newer connection has taken it over (``address`` None: one has, in this process)."""
    if job_id is not None:
        job_progress(job_id, EncodeStatus.FAILED, error="encoder_offline")
    if address is None:
        return
    with transaction.atomic():
        if Device.objects.filter(pk=device_pk, address=address, online=True).update(online=False):
            _presence_event(Device.objects.get(pk=device_pk), False, address)


def expected_uid(key_uid: str) -> str:
    """The UID the card must have, when the key names one (hex, 4 to 10 bytes); else any card will do."""
    return key_uid.replace(":", "").upper() if CARD_UID.match(key_uid) else ""


def claim_job(device_pk: int) -> tuple[int, bytes, str] | None:
    """Take the encoder's oldest queued job (queued → sent, so no other connection takes it too)."""
    queued = EncodeJob.objects.filter(encoder_id=device_pk, status=EncodeStatus.QUEUED).select_related("key")
    for job in queued.order_by("created_at", "pk")[:5]:
        claimed = EncodeJob.objects.filter(pk=job.pk, status=EncodeStatus.QUEUED).update(
            status=EncodeStatus.SENT, progress=PROGRESS[EncodeStatus.SENT], updated_at=timezone.now()
        )
        if claimed:
            return job.pk, bytes(job.data), expected_uid(job.key.uid)
    return None


# --- the sweep ----------------------------------------------------------------------------------


def sweep(now: dt.datetime) -> dict[str, int]:
    """Fail the jobs no bridge will take or finish, and mark silent encoders offline; returns what it did."""
    stale = Device.objects.filter(kind=DeviceKind.USB_ENCODER, online=True, last_seen_at__lt=now - PRESENCE_TTL)
    silent = 0
    for device in stale:
        with transaction.atomic():
            gone = Device.objects.filter(pk=device.pk, online=True, last_seen_at__lt=now - PRESENCE_TTL)
            if gone.update(online=False):
                silent += 1
                _presence_event(device, False, device.address)
    usb_offline = EncodeJob.objects.filter(encoder__kind=DeviceKind.USB_ENCODER, encoder__online=False)
    waiting = usb_offline.filter(status=EncodeStatus.QUEUED, created_at__lt=now - grace())
    lost = usb_offline.filter(status__in=IN_FLIGHT, updated_at__lt=now - grace())
    failed = 0
    for job_id in list(waiting.values_list("pk", flat=True)) + list(lost.values_list("pk", flat=True)):
        failed += job_progress(job_id, EncodeStatus.FAILED, error="encoder_offline") is not None
    # In flight on an online encoder, but its connection is gone (a web process that died, the bridge back on another).
    orphaned = EncodeJob.objects.filter(
        encoder__kind=DeviceKind.USB_ENCODER, status__in=IN_FLIGHT, updated_at__lt=now - overdue()
    )
    timed_out = sum(
        job_progress(job_id, EncodeStatus.FAILED, error="timeout") is not None
        for job_id in orphaned.values_list("pk", flat=True)
    )
    return {"silent_encoders": silent, "offline_jobs": failed, "timed_out_jobs": timed_out}


class EncoderSweep:
    """A service beside the web server (runspace): :func:`sweep` every ``SWEEP_SECONDS``.

    Every web process runs one; the sweeps' updates are conditional, so two
    of them never fail a job twice.
    """

    name = "usb-encoder-sweep"

    def __init__(self, interval: float = SWEEP_SECONDS):
        self.interval = interval
        self.task: asyncio.Task | None = None
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usb-encoder-sweep")

    async def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await asyncio.get_running_loop().run_in_executor(self.thread, close_connection)
        self.thread.shutdown(wait=False)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                done = await asyncio.get_running_loop().run_in_executor(self.thread, run_orm, sweep, timezone.now())
            except Exception:
                logger.exception("Sweeping USB encoder jobs failed")
                continue
            if any(done.values()):
                logger.info("USB encoder sweep: %s", done)
