"""The monitoring websocket, ``/ws/monitor/``: audit events, door states and device presence, live.

An operator connects with a logged-in session (the browser) or an API key
(``Authorization: Api-Key spk_…``, for other systems). The connection is
refused (close code 4403) without the permission to view audit events. Each
batch published by :mod:`accesscontrol.live` is narrowed to what the operator's
groups and partitions may see: an item of an access point in one of their
partitions, or, for operators of all partitions, every item (including those
of no access point, such as a device going offline). The partitions are
re-read every minute, so a changed group takes effect on open connections too.
"""

import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accesscontrol.live import MONITOR_GROUP
from accesscontrol.models import ApiKey
from accesscontrol.permissions import ALL, allowed_partitions

VIEW_EVENTS = "accesscontrol.view_auditevent"
FORBIDDEN = 4403
PARTITIONS_TTL_SECONDS = 60.0


@database_sync_to_async
def _operator_of_api_key(scope):
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            keyword, _, token = value.decode("latin-1").partition(" ")
            if keyword.lower() in ("api-key", "bearer"):
                key = ApiKey.authenticate(token.strip())
                return key.operator if key else None
    return None


class MonitorConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        operator = self.scope.get("user")
        if operator is None or not operator.is_authenticated:
            operator = await _operator_of_api_key(self.scope)
        if operator is None or not operator.is_active:
            await self.close(code=FORBIDDEN)
            return
        self.operator = operator
        await self._load_partitions()
        if self.partitions is not ALL and not self.partitions:
            await self.close(code=FORBIDDEN)
            return
        await self.channel_layer.group_add(MONITOR_GROUP, self.channel_name)
        await self.accept()
        partitions = "all" if self.partitions is ALL else sorted(self.partitions)
        await self.send_json({"type": "hello", "operator": operator.get_username(), "partitions": partitions})

    async def disconnect(self, code):
        await self.channel_layer.group_discard(MONITOR_GROUP, self.channel_name)

    async def receive_json(self, content, **kwargs):
        # The monitor only listens; a ping gets a pong so clients can check the connection.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def monitor_batch(self, message):
        if time.monotonic() - self.partitions_at > PARTITIONS_TTL_SECONDS:
            await self._load_partitions()
        partitions = self.partitions
        if partitions is ALL:
            items = message["items"]
        else:
            items = [item for item in message["items"] if item.get("partition") in partitions]
        if items:
            await self.send_json({"type": "batch", "items": items, "sent": message["sent"]})

    async def _load_partitions(self):
        self.partitions = await database_sync_to_async(allowed_partitions)(self.operator, VIEW_EVENTS)
        self.partitions_at = time.monotonic()
