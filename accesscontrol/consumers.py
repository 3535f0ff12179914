"""The monitoring websocket, ``/ws/monitor/``: audit events, door states and device presence, live.

An operator connects with a logged-in session (the browser) or an API key
(``Authorization: Api-Key spk_…``, for other systems). The connection is
refused (close code 4403) without the permission to view audit events. Each
batch published by :mod:`accesscontrol.live` is narrowed to what the operator's
groups and partitions may see: an item of an access point in one of their
partitions, or, for operators of all partitions, every item (including those
of no access point, such as a device going offline). The partitions are
re-read every minute, so a changed group takes effect on open connections too.

A browser's connection lives no longer than its session: every
``SESSION_CHECK_SECONDS`` (on a timer, and before a batch once that long has
passed) the session is looked up, and once it has expired (idle log-off) or
was logged out, the connection is closed with code 4401. A session that must
still set up two-factor login is refused. API-key connections have no session.
"""

import asyncio
import contextlib
import json
import logging
import time
from importlib import import_module

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import SESSION_KEY

from accesscontrol import metrics
from accesscontrol.live import MONITOR_GROUP
from accesscontrol.models import ApiKey
from accesscontrol.permissions import ALL, allowed_partitions
from accesscontrol.twofactor import ENROL_SESSION_KEY

VIEW_EVENTS = "accesscontrol.view_auditevent"
FORBIDDEN = 4403
SESSION_ENDED = 4401
SESSION_CHECK_SECONDS = 30.0
PARTITIONS_TTL_SECONDS = 60.0
GROUP_RENEW_SECONDS = 3600.0
JOIN_TIMEOUT_SECONDS = 5.0

logger = logging.getLogger("space.live")


class MonitorHub:
    """One member of the monitor group per process, fanning each batch out to the open monitors.

    A channel per websocket would make the channel layer copy and queue every
    batch once per monitor (and the in-memory layer scans all its channels on
    every receive); the hub receives it once and hands the same message to each
    consumer in turn.
    """

    def __init__(self):
        self.consumers: set = set()
        self.task: asyncio.Task | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ready = asyncio.Event()

    async def join(self, consumer) -> None:
        """Add a monitor; returns once the hub is in the group, so no event raised from now on is missed."""
        self.consumers.add(consumer)
        loop = asyncio.get_running_loop()
        # A hub of another loop (one that was closed: tests, a restarted server) is of no use here.
        if self.task is None or self.task.done() or self.loop is not loop:
            self.loop, self.ready = loop, asyncio.Event()
            self.task = loop.create_task(self._run())
        with contextlib.suppress(TimeoutError):
            # The layer being away (Redis restarting) must not keep the monitor from opening: the hub retries.
            await asyncio.wait_for(self.ready.wait(), JOIN_TIMEOUT_SECONDS)

    def leave(self, consumer) -> None:
        self.consumers.discard(consumer)

    async def _run(self) -> None:
        layer = get_channel_layer()
        channel = None
        renew_at = None  # None: join the group now
        while True:
            try:
                if channel is None:
                    channel = await layer.new_channel("monitor-hub.")
                if renew_at is None or time.monotonic() >= renew_at:
                    await layer.group_add(MONITOR_GROUP, channel)
                    renew_at = time.monotonic() + GROUP_RENEW_SECONDS
                    self.ready.set()
                message = await asyncio.wait_for(layer.receive(channel), GROUP_RENEW_SECONDS)
            except TimeoutError:
                continue
            except Exception:
                # Redis restarting, a network blip: the monitors stay open and the hub carries on.
                logger.exception("The monitor hub could not receive; retrying")
                await asyncio.sleep(1.0)
                renew_at = None
                continue
            for consumer in list(self.consumers):
                try:
                    await consumer.monitor_batch(message)
                except Exception:
                    logger.exception("A monitor could not be sent a batch")


hub = MonitorHub()


@database_sync_to_async
def _operator_of_api_key(scope):
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            keyword, _, token = value.decode("latin-1").partition(" ")
            if keyword.lower() in ("api-key", "bearer"):
                key = ApiKey.authenticate(token.strip())
                return key.operator if key else None
    return None


@database_sync_to_async
def _session_of(scope) -> tuple[str | None, bool]:
    """The session key of a browser's connection, and whether that session must still enrol a second factor."""
    session = scope.get("session")
    if session is None or not session.session_key:
        return None, False
    return session.session_key, bool(session.get(ENROL_SESSION_KEY))


@database_sync_to_async
def _session_is_live(session_key: str, operator_pk) -> bool:
    """Whether the session still exists, has not expired and still belongs to the operator (a fresh read)."""
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return store.get(SESSION_KEY) == str(operator_pk)


class MonitorConsumer(AsyncJsonWebsocketConsumer):
    # No channel of its own: the hub hands it the batches (an unknown alias gives no channel layer).
    channel_layer_alias = "monitor-consumers-use-the-hub"

    session_key: str | None = None
    session_watch: asyncio.Task | None = None
    closed = False
    counted = False  # in the websocket clients gauge (accesscontrol/metrics.py)

    async def connect(self):
        operator = self.scope.get("user")
        if operator is not None and operator.is_authenticated:
            self.session_key, must_enrol = await _session_of(self.scope)
            if must_enrol:
                await self.close(code=FORBIDDEN)
                return
        else:
            operator = await _operator_of_api_key(self.scope)
        if operator is None or not operator.is_active:
            await self.close(code=FORBIDDEN)
            return
        self.operator = operator
        await self._load_partitions()
        if self.partitions is not ALL and not self.partitions:
            await self.close(code=FORBIDDEN)
            return
        await self.accept()
        self.counted = True
        metrics.MONITOR_CLIENTS.inc()
        if self.session_key:
            self.session_checked_at = time.monotonic()
            self.session_watch = asyncio.get_running_loop().create_task(self._watch_session())
        await hub.join(self)  # before the hello: what a client sees after it, it sees whole
        partitions = "all" if self.partitions is ALL else sorted(self.partitions)
        await self.send_json({"type": "hello", "operator": operator.get_username(), "partitions": partitions})

    async def disconnect(self, code):
        if self.counted:
            self.counted = False
            metrics.MONITOR_CLIENTS.dec()
        hub.leave(self)
        if self.session_watch is not None and self.session_watch is not asyncio.current_task():
            self.session_watch.cancel()

    async def receive_json(self, content, **kwargs):
        # The monitor only listens; a ping gets a pong so clients can check the connection.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def monitor_batch(self, message):
        if self.closed:
            return
        session_due = self.session_key and time.monotonic() - self.session_checked_at >= SESSION_CHECK_SECONDS
        if session_due and not await self._session_still_live():
            return
        if time.monotonic() - self.partitions_at > PARTITIONS_TTL_SECONDS:
            await self._load_partitions()
        partitions = self.partitions
        if partitions is ALL or all(partition in partitions for partition in message["partitions"]):
            await self.send(text_data=message["text"])
            return
        batch = json.loads(message["text"])
        batch["items"] = [item for item in batch["items"] if item.get("partition") in partitions]
        if batch["items"]:
            await self.send_json(batch)

    async def _load_partitions(self):
        self.partitions = await database_sync_to_async(allowed_partitions)(self.operator, VIEW_EVENTS)
        self.partitions_at = time.monotonic()

    async def _watch_session(self):
        while not self.closed:
            await asyncio.sleep(SESSION_CHECK_SECONDS)
            if not await self._session_still_live():
                return

    async def _session_still_live(self) -> bool:
        """Check the session now; when it has ended, close the connection (4401) and say so."""
        self.session_checked_at = time.monotonic()
        if await _session_is_live(self.session_key, self.operator.pk):
            return True
        if not self.closed:
            self.closed = True
            hub.leave(self)
            await self.close(code=SESSION_ENDED)
        return False
