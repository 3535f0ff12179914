"""Audit events: the one way they are stored, and the one way they leave.

:func:`record` (one event) and :func:`record_many` (a batch: the device bridge,
a PPD's upload, a command to many doors) store audit events and hand each new
event's JSON form (:func:`event_payload`, computed once per event) to the sinks
the apps registered when they started (:func:`register_sink`). A sink has up to
two parts:

- ``stored(payloads)`` runs inside the transaction that stores the events, right
  after the insert. It writes rows of its own (the outbox: webhook deliveries,
  event stream items), so those rows exist exactly when their events do. If it
  raises, nothing of the batch is stored.
- ``committed(payloads)`` runs once the outermost transaction has committed, and
  never when it rolls back. It tells the world (the monitor's channel layer, the
  webhook deliverer). If it raises, the error is logged and the other sinks
  still run: the events and their outbox rows are stored already.

The domain imports none of the sinks: ``integrations`` registers the outbox and
``accesscontrol.live`` the monitor, each in its ``AppConfig.ready()``. No signal
is involved, so an ``AuditEvent`` saved any other way leaves by no sink at all.
"""

import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from accesscontrol import metrics
from accesscontrol.models import AccessPoint, AuditEvent

logger = logging.getLogger("space.events")

# The namespace of event keys: uuid5 of a device event's (device, event id) is the same every time it is sent.
EVENT_KEY_NAMESPACE = uuid.UUID("6f1d2c1e-0d55-4f0c-9a55-5d3a1f6b7c01")

Payloads = list[dict]


# --- the payload ------------------------------------------------------------------------------------


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


# --- the sinks --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sink:
    name: str
    stored: Callable[[Payloads], None] | None = None
    committed: Callable[[Payloads], None] | None = None


# By name: an app that registers again (ready() run twice, a test) replaces its sink, never doubles it.
_sinks: dict[str, Sink] = {}


def register_sink(
    name: str,
    *,
    stored: Callable[[Payloads], None] | None = None,
    committed: Callable[[Payloads], None] | None = None,
) -> None:
    """Hand every new audit event's payload to ``stored`` (in its transaction) and ``committed`` (after it)."""
    if stored is None and committed is None:
        raise ValueError(f"The sink {name!r} has neither a stored nor a committed part.")
    _sinks[name] = Sink(name, stored, committed)


def unregister_sink(name: str) -> None:
    _sinks.pop(name, None)


def sink_names() -> list[str]:
    return sorted(_sinks)


def _hand_over(payloads: Payloads) -> None:
    """Inside the storing transaction: the stored parts now, the committed parts once it commits."""
    if not payloads:
        return
    sinks = list(_sinks.values())
    for sink in sinks:
        if sink.stored is not None:
            sink.stored(payloads)
    for sink in sinks:
        if sink.committed is not None:
            transaction.on_commit(_committed(sink, payloads))


def _committed(sink: Sink, payloads: Payloads) -> Callable[[], None]:
    def run() -> None:
        try:
            sink.committed(payloads)
        except Exception:
            # The events are stored; a sink that failed to tell of them must not stop the others.
            logger.exception("The %s sink failed on %d committed audit events", sink.name, len(payloads))

    return run


# --- recording --------------------------------------------------------------------------------------


def record(**fields) -> AuditEvent:
    """Store one audit event (``AuditEvent`` fields by name) and hand it to the sinks; returns it stored."""
    event = AuditEvent(**fields)
    with transaction.atomic(savepoint=False):
        event.save()
        point = event.access_point if event.access_point_id is not None else None
        _hand_over([event_payload(event, point.partition_id if point is not None else None)])
        transaction.on_commit(metrics.events_committed(1))
    return event


def record_many(events: list[AuditEvent], now: dt.datetime | None = None) -> list[AuditEvent]:
    """Store a batch of new ``AuditEvent`` objects in one transaction; returns the ones that were new.

    A device event whose ``(device, device_event_id)`` is stored already is
    skipped: a device re-sends what it has not seen acknowledged, and each event
    is kept once. Only the new ones go to the sinks. ``now`` is their
    ``recorded_at`` (default: the current time).
    """
    if not events:
        return []
    now = now or timezone.now()
    with transaction.atomic(savepoint=False):
        new = _insert(events, now)
        _hand_over([event_payload(event, _partition_of(event)) for event in new])
        if new:
            transaction.on_commit(metrics.events_committed(len(new)))
    return new


_EVENT_COLUMNS = (
    "at",
    "recorded_at",
    "kind",
    "reason",
    "access_point_id",
    "access_point_name",
    "cardholder_id",
    "cardholder_name",
    "key_uid",
    "device_id",
    "device_event_id",
    "operator_id",
    "detail",
)


INSERT_CHUNK = 500


def _insert(events: list[AuditEvent], now: dt.datetime) -> list[AuditEvent]:
    """Insert, skipping device events already stored; returns the new ones, with their ids.

    ``bulk_create(ignore_conflicts=True)`` by hand where the database allows: the
    ORM's per-field work is most of the bridge writer's time at thousands of
    events per second, and it cannot say which rows were skipped. Rows come back
    from RETURNING in insertion order (as Django's bulk_create relies on),
    without the skipped ones; device events are matched by their (device, event id).
    """
    for event in events:
        event.recorded_at = now
    if connection.vendor not in ("sqlite", "postgresql"):
        # No RETURNING of skipped rows here: a re-sent event may go to the sinks again (their rows are idempotent).
        AuditEvent.objects.bulk_create(events, ignore_conflicts=True)
        return events
    ops = connection.ops
    recorded_at = ops.adapt_datetimefield_value(now)
    table = ops.quote_name(AuditEvent._meta.db_table)
    columns = ", ".join(ops.quote_name(c) for c in _EVENT_COLUMNS)
    row = "(" + ", ".join(["%s"] * len(_EVENT_COLUMNS)) + ")"
    new = []
    with connection.cursor() as cursor:
        for start in range(0, len(events), INSERT_CHUNK):
            chunk = events[start : start + INSERT_CHUNK]
            params = []
            for e in chunk:
                params += (
                    ops.adapt_datetimefield_value(e.at),
                    recorded_at,
                    e.kind,
                    e.reason,
                    e.access_point_id,
                    e.access_point_name,
                    e.cardholder_id,
                    e.cardholder_name,
                    e.key_uid,
                    e.device_id,
                    e.device_event_id,
                    e.operator_id,
                    json.dumps(e.detail),
                )
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * len(chunk))} "  # noqa: S608 (no input in it)
                "ON CONFLICT DO NOTHING RETURNING id, device_id, device_event_id",
                params,
            )
            returned = cursor.fetchall()
            by_device_event = {(device, number): pk for pk, device, number in returned if number is not None}
            plain = iter([pk for pk, _, number in returned if number is None])
            for e in chunk:
                pk = (
                    next(plain)
                    if e.device_event_id is None
                    else by_device_event.pop((e.device_id, e.device_event_id), None)
                )
                if pk is not None:
                    e.pk = pk
                    e._state.adding = False
                    new.append(e)
    return new


class _Partitions:
    """Access point id -> partition id, for payloads of batches; kept a minute (a moved door shows late, briefly)."""

    TTL_SECONDS = 60.0

    def __init__(self):
        self.partitions: dict[int, int | None] = {}
        self.loaded_at = time.monotonic()

    def __call__(self, point_id: int) -> int | None:
        if time.monotonic() - self.loaded_at > self.TTL_SECONDS:
            self.partitions.clear()
            self.loaded_at = time.monotonic()
        if point_id not in self.partitions:
            self.partitions.update(AccessPoint.objects.values_list("id", "partition_id"))
            self.partitions.setdefault(point_id, None)
        return self.partitions[point_id]


_cached_partition = _Partitions()


def _partition_of(event: AuditEvent) -> int | None:
    """The partition of a batch's event: from its access point when the caller holds it, else from the cache."""
    if event.access_point_id is None:
        return None
    if AuditEvent.access_point.is_cached(event):
        # The caller holds the access point (an operator's command, a PPD upload): its partition is current.
        point = event.access_point
        return point.partition_id if point is not None else None
    return _cached_partition(event.access_point_id)
