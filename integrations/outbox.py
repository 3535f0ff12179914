"""The outbox: where new audit events become deliveries, inside the transaction that stored them.

This app registers the outbox as a sink of ``accesscontrol.events`` when it
starts (:func:`register`). :func:`enqueue` gets the payloads of events just
stored (``accesscontrol.events.event_payload``; ``key`` is the event's stable
id), in their transaction: each consumer of events writes its own delivery rows
there, so a delivery exists if and only if its event does. Once the
transaction commits, :func:`wake` tells the webhook deliverer, if any row was
for a subscription (the event stream's service polls its rows on its own).
"""

from accesscontrol import events, retention

SINK = "outbox"


def enqueue(payloads: list[dict]) -> None:
    from integrations import webhooks
    from integrations.eventstream import service as eventstream

    webhooks.enqueue(payloads)
    eventstream.enqueue(payloads)


def wake(payloads: list[dict]) -> None:
    from integrations import webhooks
    from integrations.webhooks import wakeup

    if webhooks.wanted(payloads):
        wakeup.kick()


def waiting_event_ids() -> set[int]:
    """The audit events some delivery is still waiting to send: the retention purge keeps them until it has."""
    from integrations.models import DeliveryStatus, EventStream, StreamItem, WebhookDelivery

    waiting = WebhookDelivery.objects.filter(status__in=[DeliveryStatus.PENDING, DeliveryStatus.DELIVERING])
    unsent = StreamItem.objects.filter(sent_at__isnull=True, stream__in=EventStream.objects.all())
    ids = set(waiting.values_list("payload__id", flat=True)) | set(unsent.values_list("payload__id", flat=True))
    ids.discard(None)
    return ids


def register() -> None:
    events.register_sink(SINK, stored=enqueue, committed=wake)
    retention.register_hold(SINK, waiting_event_ids)
