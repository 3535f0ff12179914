"""What the registered sinks of accesscontrol.events did with recorded events: the real sinks, observed.

A webhook subscription and an event stream that want every event, and a channel
of the monitor's group on the real channel layer. ``reached()`` says, per sink,
the ids of the events each row or message carried, so a test can say "each
event once, at every sink".
"""

import asyncio
import json
from collections.abc import Callable, Coroutine

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from accesscontrol.live import MONITOR_GROUP
from integrations import webhooks
from integrations.eventstream import service as eventstream
from integrations.eventstream.models import EventStream, StreamItem
from integrations.models import WebhookDelivery, WebhookSubscription

Runner = Callable[[Coroutine], object]


async def _awaited(coroutine: Coroutine):
    return await coroutine


def _run_here(coroutine: Coroutine):
    return async_to_sync(_awaited)(coroutine)


class Sinks:
    def __init__(self, run: Runner = _run_here):
        self.run = run
        subscription = WebhookSubscription(
            name="every event", url="http://127.0.0.1:9/hooks", allow_private_target=True, all_partitions=True
        )
        subscription.set_secret()
        subscription.save()
        EventStream.objects.create(name="every event", host="127.0.0.1", port=9)
        webhooks.forget_subscriptions()
        eventstream.forget_streams()
        self.layer = get_channel_layer()
        self.channel = self.run(self.layer.new_channel())
        self.run(self.layer.group_add(MONITOR_GROUP, self.channel))

    def close(self) -> None:
        self.run(self.layer.group_discard(MONITOR_GROUP, self.channel))
        webhooks.forget_subscriptions()
        eventstream.forget_streams()

    def monitor_ids(self, expected: int, timeout: float = 5.0, quiet: float = 0.3) -> list:
        """Event ids in the monitor's messages: wait for ``expected`` of them, then for ``quiet`` s of no more."""
        return self.run(self._receive(expected, timeout, quiet))

    async def _receive(self, expected: int, timeout: float, quiet: float) -> list:
        ids = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            wait = quiet if len(ids) >= expected else deadline - loop.time()
            if wait <= 0:
                return ids
            try:
                message = await asyncio.wait_for(self.layer.receive(self.channel), wait)
            except TimeoutError:
                return ids
            items = json.loads(message["text"])["items"]
            ids += [item["id"] for item in items if item["type"] == "audit_event"]

    def reached(self, expected: int) -> dict[str, list]:
        """Per sink, the ids of the events it got, sorted: ``expected`` is how many the monitor should see."""
        return {
            "webhook": sorted(WebhookDelivery.objects.values_list("payload__id", flat=True)),
            "stream": sorted(StreamItem.objects.values_list("payload__id", flat=True)),
            "monitor": sorted(self.monitor_ids(expected)),
        }
