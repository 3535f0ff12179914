"""Space's MQTT link to face terminals: one TLS connection to the broker with Space's client certificate.

It subscribes to every terminal's requests, events and status, checks each
payload's envelope and hands it on; whatever is not a message of the layout
(not JSON, wrong fields, too large, a bad status) is dropped and counted in
``counters`` (and ``space_face_mqtt_dropped``), as the device protocols drop
bad frames: a terminal cannot crash Space or fill its log. The terminal id of
a message is the one in its topic, which the broker's ACL ties to the sender's
certificate.

A service (``start``/``stop``) on the device runtime's event loop; it
reconnects by itself, with a persistent session so that requests and events
published while Space was away are delivered when it is back (QoS 1).
"""

import asyncio
import collections
import contextlib
import inspect
import json
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt

from devices.face import topics
from devices.face.pki import SPACE_IDENTITY, Identity
from devices.metrics import face_mqtt_dropped

logger = logging.getLogger(__name__)

MAX_PAYLOAD = 64 * 1024  # a request with a few templates of a few thousand floats, in JSON, fits with room to spare
MAX_ID = 64
MAX_TYPE = 32
RECONNECT_SECONDS = (0.5, 1, 2, 5, 10)  # backoff while the broker cannot be reached, the last repeated
LOG_EVERY_SECONDS = 60.0
MAX_PENDING_PUBLISHES = 100_000  # a drop is logged at most this often per terminal and reason
# paho-mqtt leaves Nagle's algorithm on: an answer written right after the request's PUBACK would wait for the
# broker's delayed ACK, 40 ms on Linux (measured: answer p50 39 ms with it, 2 ms without).
NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


class NotConnected(Exception):
    """Space is not connected to the broker now; the message was not sent."""


@dataclass(frozen=True)
class FaceMessage:
    """A request or event from a terminal: its id (from the topic, so proven), kind, payload, and arrival time."""

    terminal_id: str
    kind: str  # topics.REQUEST or topics.EVENT
    payload: dict[str, Any]
    received: float  # time.perf_counter() when it arrived


Handler = Callable[[FaceMessage], Awaitable[None] | None]
StatusHandler = Callable[[str, str], Awaitable[None] | None]


def envelope_problem(payload: Any) -> str | None:
    """Why ``payload`` is not a message of the layout (a JSON object with a string ``id`` and ``type``), or None."""
    if not isinstance(payload, dict):
        return "not an object"
    message_id, kind = payload.get("id"), payload.get("type")
    if not isinstance(message_id, str) or not 1 <= len(message_id) <= MAX_ID:
        return "id"
    if not isinstance(kind, str) or not 1 <= len(kind) <= MAX_TYPE:
        return "type"
    return None


def tls_context(identity: Identity) -> ssl.SSLContext:
    """TLS 1.2+ that checks the broker against the device CA (and its name) and presents ``identity``."""
    context = ssl.create_default_context(cafile=str(identity.ca))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(identity.cert), str(identity.key))
    return context


class FaceConnector:
    name = "face-mqtt"

    def __init__(
        self,
        host: str,
        port: int,
        identity: Identity,
        on_message: Handler,
        on_status: StatusHandler | None = None,
        keepalive: int = 30,
    ):
        self.host, self.port, self.identity = host, port, identity
        self.on_message, self.on_status = on_message, on_status
        self.keepalive = keepalive
        self.counters: collections.Counter = collections.Counter()
        self.statuses: dict[str, str] = {}  # terminal id → "online" / "offline", as last heard
        self.connected = False  # subscribed and taking messages
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task | None = None
        self._log_times: dict[tuple[str, str], float] = {}

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.connected = False

    # --- sending ----------------------------------------------------------------------------------------------

    async def answer(self, terminal_id: str, payload: dict) -> None:
        await self._publish(topics.topic(terminal_id, topics.ANSWER), payload, retain=False, qos=topics.ANSWER_QOS)

    async def configure(self, terminal_id: str, config: dict) -> None:
        """Publish the terminal's configuration, retained: it gets it whenever it (re)connects."""
        await self._publish(topics.topic(terminal_id, topics.CONFIG), config, retain=True)

    def answer_at_once(self, terminal_id: str, payload: dict) -> bool:
        """Queue an answer for sending on the event loop, without waiting; False when the link is down.

        aiomqtt's ``publish`` gives every message a future and a timer and awaits its completion; an answer
        (QoS 0) needs neither, and under load that bookkeeping cost more than the answer. So it goes straight
        to the paho client aiomqtt wraps (``Client._client``, at the pinned versions), whose writes aiomqtt
        still drives on this loop; aiomqtt ignores the completion of a message it did not send."""
        client = self._client
        if client is None or not self.connected:
            return False
        data = json.dumps(payload, separators=(",", ":"))
        info = client._client.publish(topics.topic(terminal_id, topics.ANSWER), data, qos=topics.ANSWER_QOS)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    async def command(self, terminal_id: str, payload: dict) -> None:
        """Ask something of a terminal (an enrolment capture) on its command topic."""
        await self._publish(topics.topic(terminal_id, topics.COMMAND), payload, retain=False)

    async def _publish(self, topic: str, payload: dict, retain: bool, qos: int = topics.QOS) -> None:
        client = self._client
        if client is None or not self.connected:
            raise NotConnected(f"not connected to the face terminal broker {self.host}:{self.port}")
        try:
            await client.publish(topic, json.dumps(payload, separators=(",", ":")), qos=qos, retain=retain)
        except aiomqtt.MqttError as error:
            raise NotConnected(str(error)) from None

    # --- receiving --------------------------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    identifier=SPACE_IDENTITY,  # the broker makes the client id the certificate's name anyway
                    clean_session=False,
                    keepalive=self.keepalive,
                    tls_context=tls_context(self.identity),
                    socket_options=NO_DELAY,
                ) as client:
                    # aiomqtt logs a warning per publish past 10 unacknowledged ones: under load there are hundreds.
                    client.pending_calls_threshold = MAX_PENDING_PUBLISHES
                    await client.subscribe([(topics.every(kind), topics.QOS) for kind in topics.TERMINAL_WRITES])
                    self._client, self.connected, attempt = client, True, 0
                    logger.info("Face terminals: connected to the broker %s:%s", self.host, self.port)
                    async for message in client.messages:
                        await self.receive(str(message.topic), message.payload)
            except (aiomqtt.MqttError, OSError) as error:  # OSError: TLS files missing or unreadable, TLS errors
                self.counters["disconnects"] += 1
                logger.warning("Face terminals: no connection to the broker %s:%s (%s)", self.host, self.port, error)
            finally:
                self._client, self.connected = None, False
            await asyncio.sleep(RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)])
            attempt += 1

    async def receive(self, topic: str, data: Any) -> None:
        """One message from the broker: checked, then handed on, or dropped and counted."""
        received = time.perf_counter()
        parsed = topics.parse(topic)
        if parsed is None:
            return self._drop("topic", topic)
        terminal_id, kind = parsed
        if not isinstance(data, bytes | bytearray):
            data = b"" if data is None else str(data).encode()
        if kind == topics.STATUS:
            status = bytes(data).decode("ascii", "replace")
            if status not in (topics.ONLINE, topics.OFFLINE):
                return self._drop("status", terminal_id)
            self.statuses[terminal_id] = status
            self.counters["statuses"] += 1
            if self.on_status is not None:
                await self._call(self.on_status, terminal_id, status)
            return None
        if kind not in (topics.REQUEST, topics.EVENT):
            return self._drop("topic", topic)  # Space's own answers and configurations are not subscribed to
        if len(data) > MAX_PAYLOAD:
            return self._drop("oversized", terminal_id)
        try:
            payload = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return self._drop("not_json", terminal_id)
        if envelope_problem(payload) is not None:
            return self._drop("fields", terminal_id)
        self.counters[f"received_{kind}"] += 1
        await self._call(self.on_message, FaceMessage(terminal_id, kind, payload, received))
        return None

    async def _call(self, handler, *args) -> None:
        try:
            result = handler(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self.counters["handler_errors"] += 1
            logger.exception("Face terminals: the handler failed on a message from %s", args[0])

    def _drop(self, reason: str, source: str) -> None:
        self.counters[f"dropped_{reason}"] += 1
        self.counters["dropped"] += 1
        face_mqtt_dropped(reason)
        now = time.monotonic()
        if now - self._log_times.get((reason, source), -LOG_EVERY_SECONDS) >= LOG_EVERY_SECONDS:
            if len(self._log_times) > 10000:
                self._log_times.clear()
            self._log_times[(reason, source)] = now
            logger.warning("Face terminals: dropped a message from %s (%s)", source, reason)
