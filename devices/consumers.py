"""``/ws/encoder/``: where local bridges (devices/localbridge.py) connect to write cards on USB encoders.

The bridge proves it holds the USB encoder's device key: the server sends a
random challenge, the bridge answers ``HMAC-SHA256(key, "Space local bridge" ‖
device id ‖ challenge)`` (devices/bridgewire.py). A wrong proof, an unknown or
disabled device, or one that is not a USB encoder closes the connection with
4403; no answer within ``AUTH_SECONDS``, 4408. Once in, the encoder is online
(devices/usb_encoders.py) and the consumer hands the bridge its queued encode
jobs one at a time, polling the database every ``POLL_SECONDS``, and turns the
bridge's ``progress`` and ``result`` into the job's progress. A job not finished
in time fails with ``timeout`` (and the bridge is told to cancel it); the job in
flight when the connection closes fails with ``encoder_offline``.

What a bridge sends that is not a valid message is dropped and counted in
``COUNTERS``; the connection stays open.
"""

import asyncio
import base64
import collections
import json
import logging
import secrets
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from devices import bridgewire, metrics, usb_encoders
from devices.choices import EncodeStatus

logger = logging.getLogger("space.encoders")

AUTH_SECONDS = 10.0
POLL_SECONDS = 0.25

COUNTERS: collections.Counter = collections.Counter()
# This process's authenticated connections, by device pk: a newer one replaces the older.
connections: dict[int, "EncoderConsumer"] = {}

_sync = database_sync_to_async
encoder_of = _sync(usb_encoders.encoder_of)
bridge_connected = _sync(usb_encoders.bridge_connected)
bridge_seen = _sync(usb_encoders.bridge_seen)
bridge_gone = _sync(usb_encoders.bridge_gone)
claim_job = _sync(usb_encoders.claim_job)
job_progress = _sync(usb_encoders.job_progress)


class EncoderConsumer(AsyncWebsocketConsumer):
    # No channel layer: jobs come from the database, and nothing is sent to a bridge through a group.
    channel_layer_alias = "encoder-consumers-poll-the-database"

    device_pk: int | None = None
    replaced = False
    job: int | None = None
    deadline = 0.0
    serving: asyncio.Task | None = None
    auth_timer: asyncio.Task | None = None
    counted = False  # in the websocket clients gauge (devices/metrics.py)

    async def connect(self):
        await self.accept()
        self.counted = True
        metrics.ENCODER_CLIENTS.inc()
        self.challenge = secrets.token_bytes(bridgewire.CHALLENGE_SIZE)
        client = self.scope.get("client") or ("?", 0)
        self.address = f"{client[0]}:{client[1]}"[:64]
        self.auth_timer = asyncio.get_running_loop().create_task(self._auth_deadline())
        await self.send_json({"type": "challenge", "challenge": self.challenge.hex()})

    async def disconnect(self, code):
        if self.counted:
            self.counted = False
            metrics.ENCODER_CLIENTS.dec()
        for task in (self.auth_timer, self.serving):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        if self.device_pk is None:
            return
        if connections.get(self.device_pk) is self:
            del connections[self.device_pk]
        job, self.job = self.job, None
        # A connection replaced by a newer one of the same encoder leaves it online.
        await bridge_gone(self.device_pk, None if self.replaced else self.address, job)
        logger.info("Local bridge of encoder %s left (%s, code %s)", self.device_pk, self.address, code)

    async def receive(self, text_data=None, bytes_data=None):
        message = bridgewire.bridge_message(text_data)
        kind = message and message["type"]
        if kind == "auth" and self.device_pk is None:
            await self._auth(message)
        elif kind == "progress" and self.device_pk is not None:
            await self._progress(message)
        elif kind == "result" and self.device_pk is not None:
            await self._result(message)
        elif kind == "ping":
            await self.send_json({"type": "pong"})
        else:
            self._drop("bad_message")

    async def send_json(self, content: dict) -> None:
        await self.send(text_data=json.dumps(content, separators=(",", ":")))

    def _drop(self, reason: str) -> None:
        COUNTERS[reason] += 1
        logger.warning("Local bridge %s: dropped a message (%s)", self.address, reason)

    # --- authentication -----------------------------------------------------------------------

    async def _auth_deadline(self):
        await asyncio.sleep(AUTH_SECONDS)
        if self.device_pk is None:
            COUNTERS["auth_timeout"] += 1
            await self.close(code=bridgewire.AUTH_TIMEOUT)

    async def _auth(self, message: dict) -> None:
        device_id = message["device_id"]
        encoder = await encoder_of(device_id)
        if encoder is None or not bridgewire.proof_holds(encoder[2], device_id, self.challenge, message["mac"]):
            COUNTERS["refused"] += 1
            logger.warning("Local bridge %s refused: device %s and its proof do not match", self.address, device_id)
            await self.close(code=bridgewire.REFUSED)
            return
        self.device_pk, name, _key = encoder
        self.auth_timer.cancel()
        older = connections.get(self.device_pk)
        connections[self.device_pk] = self
        if older is not None:
            older.replaced = True
            await older.close(code=bridgewire.REPLACED)
        await bridge_connected(self.device_pk, self.address)
        await self.send_json({"type": "welcome", "device": name})
        logger.info("Local bridge of %s connected from %s (%s)", name, self.address, message.get("encoder", ""))
        self.serving = asyncio.get_running_loop().create_task(self._serve())

    # --- jobs ---------------------------------------------------------------------------------

    async def _serve(self):
        seen_at = time.monotonic()
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                if self.job is None:
                    await self._send_next_job()
                elif time.monotonic() > self.deadline:
                    await self._time_out()
                if time.monotonic() - seen_at >= usb_encoders.TOUCH_SECONDS:
                    seen_at = time.monotonic()
                    await bridge_seen(self.device_pk, self.address)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Serving the local bridge of encoder %s failed; retrying", self.device_pk)
                await asyncio.sleep(1.0)

    async def _send_next_job(self) -> None:
        claimed = await claim_job(self.device_pk)
        if claimed is None:
            return
        job, data, uid = claimed
        wait = usb_encoders.card_wait_seconds()
        self.job, self.deadline = job, time.monotonic() + wait + usb_encoders.WRITE_MARGIN_SECONDS
        message = {"type": "encode", "job": job, "data": base64.b64encode(data).decode(), "timeout_s": wait}
        if uid:
            message["uid"] = uid
        await self.send_json(message)

    async def _time_out(self) -> None:
        job, self.job = self.job, None
        COUNTERS["timeouts"] += 1
        await job_progress(job, EncodeStatus.FAILED, error="timeout")
        await self.send_json({"type": "cancel", "job": job})

    async def _progress(self, message: dict) -> None:
        if message["job"] != self.job:
            self._drop("stale_progress")
            return
        if message["stage"] == "waiting_card":
            await job_progress(self.job, EncodeStatus.WAITING_CARD, usb_encoders.PROGRESS[EncodeStatus.WAITING_CARD])
        else:
            start = usb_encoders.PROGRESS[EncodeStatus.WRITING]
            progress = min(99, start + (100 - start) * message.get("percent", 0) // 100)
            await job_progress(self.job, EncodeStatus.WRITING, progress)

    async def _result(self, message: dict) -> None:
        if message["job"] != self.job:
            self._drop("stale_result")
            return
        job, self.job = self.job, None
        if message["ok"]:
            await job_progress(job, EncodeStatus.DONE, card_uid=message["uid"])
        else:
            await job_progress(job, EncodeStatus.FAILED, error=bridgewire.job_error(message["error"]))
