"""The outbox: where new audit events become deliveries, inside the transaction that stored them.

:func:`enqueue` is called by ``accesscontrol.live.enqueue`` with the payloads
of events just stored (see ``accesscontrol.live.event_payload``; ``key`` is the
event's stable id). Each consumer of events writes its own delivery rows here,
in the same transaction, so a delivery exists if and only if its event does.
"""


def enqueue(payloads: list[dict]) -> None:
    from integrations import webhooks
    from integrations.eventstream import service as eventstream

    webhooks.enqueue(payloads)
    eventstream.enqueue(payloads)
