"""The device bridge's database side: what it reads (devices, commands) and what it writes.

Plain synchronous ORM code. The bridge runs it on its own worker threads, never
on the event loop, and batches writes: one transaction stores a batch of audit
events, command progress and device status, and only then does the bridge send
the ``ack`` frames for them.
"""

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Count, Max

from accesscontrol.choices import AuditKind
from accesscontrol.events import record_many
from accesscontrol.models import AccessPoint, AuditEvent, Cardholder
from accesscontrol.presence import Passage, record_passages
from core.vault import VaultError
from devices.choices import CommandStatus, DeviceKind
from devices.encoding import JobUpdate, apply_job_updates
from devices.models import Alarm, Device, DeviceCommand, DeviceDoor, DeviceReader, OsdpReader
from devices.places import Place

logger = logging.getLogger("space.bridge")


@dataclass(slots=True)
class DeviceConfig:
    pk: int
    device_id: int
    name: str
    key: bytes
    kind: str = ""
    readers: dict[int, Place] = field(default_factory=dict)
    doors: dict[int, Place] = field(default_factory=dict)
    online: bool = False


def registry_fingerprint() -> tuple:
    """Changes whenever a device, its key or its door/reader mapping changes (mappings touch updated_at)."""
    devices = Device.objects.aggregate(count=Count("id"), last=Max("updated_at"))
    return devices["count"], devices["last"]


def load_registry() -> dict[int, DeviceConfig]:
    """The enabled SDP/1 devices that have a key, by device_id; a key that does not open is logged and skipped.

    OSDP readers and I/O modules are not among them: their key is a secure channel key on a bus, not an SDP/1 key.
    """
    registry = {}
    for device in Device.objects.filter(enabled=True).exclude(key_sealed=b"").exclude(kind__in=DeviceKind.osdp()):
        try:
            key = device.key()
        except VaultError as error:
            logger.error("Device %s (%s) is ignored: %s", device.device_id, device.name, error)
            continue
        registry[device.device_id] = DeviceConfig(
            device.pk, device.device_id, device.name, key, kind=device.kind, online=device.online
        )
    by_pk = {config.pk: config for config in registry.values()}
    for model, attribute in ((DeviceReader, "readers"), (DeviceDoor, "doors")):
        rows = model.objects.filter(device__in=list(by_pk)).values_list(
            "device_id", "number", "access_point_id", "access_point__name", "access_point__partition_id"
        )
        for device_pk, number, point_id, point_name, partition_id in rows:
            getattr(by_pk[device_pk], attribute)[number] = Place(point_id, point_name, partition_id)
    return registry


@dataclass(slots=True)
class CommandUpdate:
    cmd: int
    status: str
    error: str = ""


@dataclass(slots=True)
class AlarmChange:
    """An alarm raised (or its condition cleared) at an access point or a device."""

    kind: str
    raised: bool
    access_point_id: int | None
    device_pk: int
    at: dt.datetime


def store(
    events: list[AuditEvent],
    commands: list[CommandUpdate],
    devices: dict[int, dict],
    now: dt.datetime,
    jobs: list[JobUpdate] = (),
    alarms: list[AlarmChange] = (),
    readers: dict[int, dict] | None = None,
    passages: list[Passage] = (),
) -> list[AuditEvent]:
    """Store one batch in one transaction; returns the events that were new.

    The events go through ``accesscontrol.events.record_many``: each is kept
    once however often a device re-sends it, and the new ones reach the sinks
    (outbox rows in this transaction, the monitor after it). Encode job
    progress (``jobs``) is stored in the same transaction, each update in a
    savepoint of its own (devices.encoding.apply_job_updates), and so are the
    passages the decisions made (presence: accesscontrol.presence.record_passages).
    """
    _name_cardholders(events)
    with transaction.atomic():
        new = record_many(events, now)
        for update in commands:
            _apply_command_update(update, now)
        for pk, fields in devices.items():
            Device.objects.filter(pk=pk).update(**fields)
        apply_job_updates(jobs)
        for change in alarms:
            _apply_alarm(change)
        for pk, fields in (readers or {}).items():
            OsdpReader.objects.filter(pk=pk).update(**fields)
        record_passages(passages)
    return new


def _apply_alarm(change: AlarmChange) -> None:
    same = Alarm.objects.filter(
        kind=change.kind, access_point_id=change.access_point_id, device_id=change.device_pk, cleared_at=None
    )
    if not change.raised:
        same.update(cleared_at=change.at)
    elif not same.filter(acknowledged_at=None).exists():
        # One open alarm per condition: a door forced twice before anyone looked is one alarm to acknowledge.
        Alarm.objects.create(
            kind=change.kind, access_point_id=change.access_point_id, device_id=change.device_pk, raised_at=change.at
        )


class _Names:
    """Cardholder names by id, for audit rows; kept a minute (a renamed cardholder shows late, never wrong for long)."""

    TTL_SECONDS = 60.0

    def __init__(self):
        self.names: dict[int, str] = {}
        self.loaded_at = time.monotonic()

    def fill(self, events: list[AuditEvent]) -> None:
        if time.monotonic() - self.loaded_at > self.TTL_SECONDS:
            self.names.clear()
            self.loaded_at = time.monotonic()
        names = self.names
        missing = {e.cardholder_id for e in events if e.cardholder_id and e.cardholder_id not in names}
        if missing:
            rows = Cardholder.objects.filter(pk__in=missing).values_list("pk", "first_name", "last_name")
            names.update((pk, f"{first} {last}".strip()) for pk, first, last in rows)
        for event in events:
            if event.cardholder_id and not event.cardholder_name:
                event.cardholder_name = names.get(event.cardholder_id, "")


_name_cardholders = _Names().fill


_STATUS_TIMESTAMP = {
    CommandStatus.SENT: "sent_at",
    CommandStatus.ACKNOWLEDGED: "acknowledged_at",
    CommandStatus.SUCCEEDED: "finished_at",
    CommandStatus.FAILED: "finished_at",
    CommandStatus.EXPIRED: "finished_at",
}


def _apply_command_update(update: CommandUpdate, now: dt.datetime) -> None:
    commands = DeviceCommand.objects.filter(pk=update.cmd).exclude(status__in=CommandStatus.finished())
    fields = {"status": update.status}
    if update.error:
        fields["error"] = update.error[:200]
    stamp = _STATUS_TIMESTAMP.get(update.status)
    if stamp:
        fields[stamp] = now
    if update.status == CommandStatus.ACKNOWLEDGED:
        # A result can overtake its ack's write; never move a command backwards.
        commands = commands.exclude(status=CommandStatus.ACKNOWLEDGED)
    commands.update(**fields)


def queued_commands(device_pks: list[int], skip: set[int], limit: int = 500) -> list[tuple[int, int, str, dict]]:
    """``(cmd, device pk, op, args)`` of queued commands for these devices, oldest first."""
    rows = (
        DeviceCommand.objects.filter(status=CommandStatus.QUEUED, device__in=device_pks)
        .exclude(pk__in=skip)
        .order_by("id")
        .values_list("id", "device_id", "op", "args")[:limit]
    )
    return list(rows)


def expire_commands(older_than: dt.timedelta, now: dt.datetime) -> int:
    """Queued commands nobody could deliver in time become ``expired``; returns how many."""
    return DeviceCommand.objects.filter(status=CommandStatus.QUEUED, created_at__lt=now - older_than).update(
        status=CommandStatus.EXPIRED, finished_at=now, error="The device was not reachable."
    )


def store_journaled_decisions(events: list[AuditEvent], now: dt.datetime) -> list[AuditEvent]:
    """Store the decisions' audit rows a bridge that died had journaled (devices/sdp/journal.py) and not stored.

    A row is stored already when its device has a decision at the same instant with the same request and
    reader. A device, access point or cardholder deleted since is left out (the device) or unnamed (the others).
    Returns the rows stored now.
    """
    devices = set(Device.objects.filter(pk__in={e.device_id for e in events}).values_list("pk", flat=True))
    events = [e for e in events if e.device_id in devices]
    if not events:
        return []
    points = set(AccessPoint.objects.filter(pk__in={e.access_point_id for e in events}).values_list("pk", flat=True))
    holders = set(Cardholder.objects.filter(pk__in={e.cardholder_id for e in events}).values_list("pk", flat=True))
    stored = {
        _decision_key(device, at, detail)
        for device, at, detail in AuditEvent.objects.filter(
            device_id__in=devices, at__in={e.at for e in events}, kind__in=DECISION_KINDS
        ).values_list("device_id", "at", "detail")
    }
    missing = []
    for event in events:
        key = _decision_key(event.device_id, event.at, event.detail)
        if key in stored:
            continue
        stored.add(key)
        if event.access_point_id not in points:
            event.access_point_id = None
        if event.cardholder_id not in holders:
            event.cardholder_id = None
        missing.append(event)
    return store(missing, [], {}, now) if missing else []


DECISION_KINDS = (AuditKind.ACCESS_GRANTED, AuditKind.ACCESS_DENIED)


def _decision_key(device_pk: int, at: dt.datetime, detail) -> tuple:
    detail = detail if isinstance(detail, dict) else {}
    return device_pk, at, detail.get("req"), detail.get("reader")
