"""Webhooks: audit events POSTed, signed, to the subscribers' URLs, through a database outbox.

:func:`enqueue` runs inside the transaction that stores events (through the
outbox sink of ``accesscontrol.events``, for thousands of events a second from
the device bridge): it matches the events against the active subscriptions
(read at most every ``SUBSCRIPTIONS_TTL_SECONDS``) and writes the delivery rows
with one bulk insert; once the transaction commits, the outbox wakes the
deliverer (``wakeup``) when :func:`wanted` says a row was for it. The rest
is in ``delivery`` (runs and the sweep), ``transport`` (HTTP), ``signing``,
``targets`` (where a webhook may go) and ``actions`` (what operators do).
See docs/webhooks.md.
"""

import threading
import time
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

SUBSCRIPTIONS_TTL_SECONDS = 2.0
INSERT_BATCH = 500


@dataclass(frozen=True, slots=True)
class Subscriber:
    """What enqueue needs of a subscription to match events."""

    id: int
    kinds: frozenset[str]  # empty: every kind
    all_partitions: bool
    partitions: frozenset[int]

    def wants(self, payload: dict) -> bool:
        if self.kinds and payload.get("kind") not in self.kinds:
            return False
        return self.all_partitions or payload.get("partition") in self.partitions


_lock = threading.Lock()
_cached: tuple[float, tuple[Subscriber, ...]] = (0.0, ())


def subscribers() -> tuple[Subscriber, ...]:
    """The subscriptions that take new deliveries (active, paused or not), read again every couple of seconds."""
    global _cached
    expires, cached = _cached
    if time.monotonic() < expires:
        return cached
    from integrations.models import WebhookSubscription

    _listen_to_subscription_changes()  # a cache now exists: be told when it goes stale
    with _lock:
        rows = WebhookSubscription.objects.filter(active=True).prefetch_related("partitions")
        fresh = tuple(
            Subscriber(
                row.pk,
                frozenset(row.kinds or ()),
                row.all_partitions,
                frozenset(partition.pk for partition in row.partitions.all()),
            )
            for row in rows
        )
        _cached = (time.monotonic() + SUBSCRIPTIONS_TTL_SECONDS, fresh)
    return fresh


def forget_subscriptions() -> None:
    """Read the subscriptions again on the next enqueue (this process; others within the TTL)."""
    global _cached
    _cached = (0.0, ())


def _listen_to_subscription_changes() -> None:
    # Saving or deleting a subscription tells this module's cache (integrations.models).
    from integrations.models import subscription_listeners

    if forget_subscriptions not in subscription_listeners:
        subscription_listeners.append(forget_subscriptions)


def enqueue(payloads: list[dict]) -> int:
    """Delivery rows for the events in ``payloads``, one per matching subscription; call inside their transaction.

    A row already there for the same (subscription, event key) is left as it is.
    Returns how many rows were offered.
    """
    wanted = subscribers()
    if not wanted or not payloads:
        return 0
    from integrations.models import WebhookDelivery

    now = timezone.now()
    rows = [
        WebhookDelivery(
            subscription_id=subscriber.id,
            event_key=payload["key"],
            payload=payload,
            next_attempt_at=now,
        )
        for payload in payloads
        if payload.get("key")
        for subscriber in wanted
        if subscriber.wants(payload)
    ]
    if rows:
        # Where the database cannot skip conflicts (SQL Server), an event stored twice is a rare
        # retry of the whole transaction, whose first try rolled back: no row is there yet.
        ignore = connection.features.supports_ignore_conflicts
        WebhookDelivery.objects.bulk_create(rows, batch_size=INSERT_BATCH, ignore_conflicts=ignore)
    return len(rows)


def wanted(payloads: list[dict]) -> bool:
    """Whether any subscription takes any of these events (what :func:`enqueue` wrote rows for)."""
    subscribed = subscribers()
    if not subscribed:
        return False
    return any(subscriber.wants(payload) for payload in payloads if payload.get("key") for subscriber in subscribed)
