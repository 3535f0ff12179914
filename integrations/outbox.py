"""The outbox: where new audit events become deliveries, inside the transaction that stored them.

This app registers the outbox as a sink of ``accesscontrol.events`` when it
starts (:func:`register`). :func:`enqueue` gets the payloads of events just
stored (``accesscontrol.events.event_payload``; ``key`` is the event's stable
id), in their transaction: each consumer of events writes its own delivery rows
there, so a delivery exists if and only if its event does. Once the
transaction commits, :func:`wake` tells the webhook deliverer, if any row was
for a subscription (the event stream's service polls its rows on its own).
"""

from accesscontrol import events

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


def register() -> None:
    events.register_sink(SINK, stored=enqueue, committed=wake)
