"""Audit events as they happen: one payload, three ways out.

Every new audit event becomes one JSON payload (:func:`event_payload`). Inside
the transaction that stores the event, :func:`integrations.outbox.enqueue` turns
it into outbox rows (webhooks, event stream), so nothing is delivered for an
event that was not stored, and nothing stored is forgotten. After the commit,
:func:`publish` sends it over the channel layer to the monitoring websockets
(``accesscontrol.consumers.MonitorConsumer``): in-memory inside ``runspace``,
channels-redis across processes when ``REDIS_URL`` is set.

Events stored through the ORM one by one (operator actions) take this path by
the ``post_save`` signal below; the device bridge, which stores in batches
without signals, calls :func:`enqueue` and :func:`publish` itself.
"""

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from accesscontrol.models import AuditEvent

logger = logging.getLogger("space.live")

MONITOR_GROUP = "monitor"
# The namespace of event keys: uuid5 of a device event's (device, event id) is the same every time it is sent.
EVENT_KEY_NAMESPACE = uuid.UUID("6f1d2c1e-0d55-4f0c-9a55-5d3a1f6b7c01")


def event_key(event: AuditEvent) -> str:
    """A stable id for the event, known before the database gives it a row id: the webhooks' idempotency key."""
    if event.device_id is not None and event.device_event_id is not None:
        return str(uuid.uuid5(EVENT_KEY_NAMESPACE, f"{event.device_id}:{event.device_event_id}"))
    return str(uuid.uuid4())


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def event_payload(event: AuditEvent, partition_id: int | None, key: str | None = None) -> dict:
    """The JSON form of an audit event, the same for websockets, webhooks and the event stream."""
    return {
        "type": "audit_event",
        "key": key or event_key(event),
        "id": event.pk,
        "kind": event.kind,
        "at": _rfc3339(event.at),
        "reason": event.reason,
        "access_point": event.access_point_id,
        "access_point_name": event.access_point_name,
        "partition": partition_id,
        "cardholder": event.cardholder_id,
        "cardholder_name": event.cardholder_name,
        "key_uid": event.key_uid,
        "device": event.device_id,
        "device_event_id": event.device_event_id,
        "operator": event.operator_id,
        "detail": event.detail,
    }


def door_state_payload(
    access_point_id: int | None, name: str, partition_id: int | None, device: int, door, state: str
) -> dict:
    return {
        "type": "door_state",
        "access_point": access_point_id,
        "access_point_name": name,
        "partition": partition_id,
        "device": device,
        "door": door,
        "state": state,
    }


def enqueue(payloads: list[dict]) -> None:
    """Outbox rows for these payloads; call inside the transaction that stored their events."""
    if payloads:
        from integrations import outbox

        outbox.enqueue(payloads)


async def publish(payloads: list[dict]) -> None:
    """Send payloads to every monitoring websocket (each consumer narrows them to what its operator may see).

    The batch is encoded once here: a consumer whose operator may see all of it
    sends the text as it is, so a hundred open monitors cost a hundred sends,
    not a hundred encodings (nor, on the in-memory layer, a hundred deep copies).
    """
    if not payloads:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    text = json.dumps({"type": "batch", "items": payloads, "sent": time.time()}, separators=(",", ":"))
    partitions = list({item.get("partition") for item in payloads})
    try:
        await layer.group_send(MONITOR_GROUP, {"type": "monitor.batch", "text": text, "partitions": partitions})
    except Exception:
        # Monitoring is best effort: the audit trail and the outbox already hold the events.
        logger.exception("Publishing %d live items failed", len(payloads))


def publish_sync(payloads: list[dict]) -> None:
    async_to_sync(publish)(payloads)


def announce(events: Iterable[AuditEvent]) -> None:
    """For events just stored through the ORM: outbox rows now, websockets after the commit."""
    payloads = [event_payload(event, _partition_of(event)) for event in events]
    if payloads:
        enqueue(payloads)
        transaction.on_commit(lambda: publish_sync(payloads))


def _partition_of(event: AuditEvent) -> int | None:
    return event.access_point.partition_id if event.access_point_id and event.access_point else None


@receiver(post_save, sender=AuditEvent)
def _audit_event_saved(sender, instance: AuditEvent, created: bool, raw: bool = False, **kwargs):
    if created and not raw:
        announce([instance])
