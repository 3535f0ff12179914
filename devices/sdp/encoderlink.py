"""The device bridge's side of encoders and updaters over SDP/1 (docs/sdp1-in-space.md, "Encoders and updaters").

One :class:`EncoderLink` per bridge. It picks up queued encode jobs for online
Ethernet encoders (as the bridge does commands), sends their card data in
``encode`` parts (or a ``read`` first, for a job on any card or a read job, whose
card is kept on the job: devices.encoding.store_read), follows the
encoder's ``progress`` and ``encoded`` reports, and fails jobs whose encoder is
offline or silent past their time. For updaters it reassembles the ``card``
parts a wall reader sends when a card is presented, has the card revalidated
(devices.encoding.update_presented_card, on the bridge's writer thread), and
answers with an ``encode`` of the new data or ``updated`` when nothing is to be
written.

Job status reaches the database through the bridge's writer, in the batch of
the frame it answers: the ``ack`` of an ``encoded`` is sent after the job's end
is committed. Everything here runs on the event loop; database work goes to the
bridge's threads. The link drives the bridge only through its public methods
(``send``, ``answer``, ``store_job_update``, ``read``, ``write``) and
attributes (``by_pk``, ``counters``). Malformed messages return False, which the bridge counts
(``bad_messages``) and leaves unanswered.
"""

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.utils import timezone

from devices import encoding
from devices.choices import DeviceKind, EncodeStatus
from devices.encoding import JobUpdate
from devices.sdp import cardtransfer
from devices.sdp.cardtransfer import BadPart, Reassembly

if TYPE_CHECKING:
    from devices.sdp.bridge import Bridge, DeviceState, Session

logger = logging.getLogger("space.bridge")

# A queued job whose encoder is not online this long after it was made fails as encoder_offline.
OFFLINE_GRACE_SECONDS = 3.0
# Beyond the encoder's wait for a card: time to send the parts, write and report.
JOB_MARGIN_SECONDS = 15.0
TRANSFER_SECONDS = 30.0  # a card transfer not complete by then is dropped
MAX_TRANSFERS = 4  # card transfers in flight per device session
HEX = re.compile(r"^[0-9A-Fa-f:]{2,64}$")
STAGES = {"waiting_card": EncodeStatus.WAITING_CARD, "writing": EncodeStatus.WRITING}
MAX_ID = 2**63 - 1


def _is_id(value) -> bool:
    return type(value) is int and 0 <= value <= MAX_ID


def _is_uid(value) -> bool:
    return isinstance(value, str) and HEX.match(value) is not None


@dataclass(slots=True)
class InFlight:
    """A job the bridge is carrying out on one device."""

    job: int
    state: "DeviceState"
    deadline: float
    reading: bool = False  # a job on any card: waiting for the card's UID (a read), not yet writing
    read_only: bool = False  # a read job: the card read is the job's result, nothing is written


@dataclass(slots=True)
class Link:
    """What the link keeps per device session: card transfers being reassembled."""

    transfers: dict[int, Reassembly] = field(default_factory=dict)


class EncoderLink:
    def __init__(self, bridge: "Bridge", *, offline_grace_s: float = OFFLINE_GRACE_SECONDS):
        self.bridge = bridge
        self.offline_grace = offline_grace_s
        self.jobs: dict[int, InFlight] = {}
        # Jobs whose final status is enqueued but not yet stored: the poller must not take them again.
        self.closing: set[int] = set()
        self._tasks: set[asyncio.Task] = set()

    # --- jobs -------------------------------------------------------------------------

    async def poll(self) -> None:
        """Start the queued jobs of online encoders; fail those whose encoder stayed offline."""
        bridge = self.bridge
        rows = await bridge.read(encoding.queued_jobs, set(self.jobs) | self.closing)
        now = timezone.now()
        for job, encoder_pk, data, uid, created_at in rows:
            if job in self.jobs or job in self.closing:
                continue
            state = bridge.by_pk.get(encoder_pk)
            if state is not None and state.session is not None and state.online:
                self._start(state, job, data, uid)
            elif (now - created_at).total_seconds() >= self.offline_grace:
                self._close(state, job, JobUpdate(job, EncodeStatus.FAILED, error=encoding.ENCODER_OFFLINE))

    def _start(self, state: "DeviceState", job: int, data: bytes, uid: str) -> None:
        flight = InFlight(job, state, self._deadline(), reading=not data, read_only=uid is None)
        self.jobs[job] = flight
        if data:
            self._send_parts(flight, data, uid)
        else:
            self._push(flight, {"t": "read", "job": job, "timeout_s": encoding.WAIT_CARD_SECONDS})
        self._update(state, JobUpdate(job, EncodeStatus.SENT))

    @staticmethod
    def _deadline() -> float:
        return time.monotonic() + encoding.WAIT_CARD_SECONDS + JOB_MARGIN_SECONDS

    def _send_parts(self, flight: InFlight, data: bytes, uid: str, xfer: int | None = None) -> None:
        parts = cardtransfer.split(data)
        for number, part in enumerate(parts):
            message = {"t": "encode", "job": flight.job, "part": number, "parts": len(parts), "data": part}
            if number == 0:
                message.update(uid=uid, timeout_s=encoding.WAIT_CARD_SECONDS)
                if xfer is not None:
                    message["xfer"] = xfer
            self._push(flight, message)

    def _push(self, flight: InFlight, message: dict) -> None:
        state = flight.state
        self.bridge.send(state, state.session, message, job=flight.job)

    def _update(self, state, update: JobUpdate) -> None:
        self.bridge.store_job_update(state, update)

    def _close(self, state, job: int, update: JobUpdate) -> None:
        """The job ends (as ``update`` says) once the writer stores it."""
        self.jobs.pop(job, None)
        self.closing.add(job)
        self._update(state, update)

    def stored(self, updates: list[JobUpdate]) -> None:
        """The writer committed these updates."""
        for update in updates:
            if update.status in EncodeStatus.finished():
                self.closing.discard(update.job)

    def undelivered(self, job: int) -> None:
        """A frame of the job went unacknowledged after every try, or its session was replaced."""
        flight = self.jobs.get(job)
        if flight is not None:
            self._close(flight.state, job, JobUpdate(job, EncodeStatus.FAILED, error=encoding.ENCODER_OFFLINE))

    def tick(self, now: float) -> None:
        """Fail jobs past their time."""
        for job, flight in list(self.jobs.items()):
            if now >= flight.deadline:
                self.bridge.counters["encode_timeouts"] += 1
                self._close(flight.state, job, JobUpdate(job, EncodeStatus.FAILED, error=encoding.TIMEOUT))

    @staticmethod
    def expire_transfers(session: "Session", now: float) -> int:
        transfers = session.link.transfers
        stale = [xfer for xfer, transfer in transfers.items() if now - transfer.started >= TRANSFER_SECONDS]
        for xfer in stale:
            del transfers[xfer]
        return len(stale)

    # --- messages from devices -----------------------------------------------------------

    def _flight(self, state: "DeviceState", job) -> InFlight | None:
        flight = self.jobs.get(job) if _is_id(job) else None
        return flight if flight is not None and flight.state.config.pk == state.config.pk else None

    def on_progress(self, state, session, seq: int, message: dict) -> bool:
        job, stage = message.get("job"), message.get("stage")
        if not _is_id(job) or stage not in STAGES:
            return False
        self.bridge.answer(state, session, seq, {"t": "ack", "seq": seq})
        flight = self._flight(state, job)
        if flight is not None and not flight.reading:
            self._update(state, JobUpdate(job, STAGES[stage]))
        return True

    def on_encoded(self, state, session, seq: int, message: dict) -> bool:
        job, ok, uid, error = (message.get(name) for name in ("job", "ok", "uid", "error"))
        if not _is_id(job) or not isinstance(ok, bool) or not (uid is None or _is_uid(uid)):
            return False
        if not (error is None or isinstance(error, str)):
            return False
        flight = self._flight(state, job)
        if flight is None:
            # Already ended here (timed out, or reported before a retransmission): acknowledged, nothing changes.
            self.bridge.counters["stray_job_reports"] += 1
            self.bridge.answer(state, session, seq, {"t": "ack", "seq": seq})
            return True
        if ok:
            update = JobUpdate(job, EncodeStatus.DONE, card_uid=uid or "")
        else:
            update = JobUpdate(job, EncodeStatus.FAILED, error=(error or encoding.WRITE_FAILED)[:64])
        self.jobs.pop(job, None)
        self.closing.add(job)
        # The ack goes out once the job's end is committed, like an event's.
        self.bridge.store_job_update(state, update, session, seq)
        return True

    def on_card(self, state, session, seq: int, message: dict) -> bool:
        xfer, uid, reader, job = (message.get(name) for name in ("xfer", "uid", "reader", "job"))
        part, parts = message.get("part"), message.get("parts")
        if not (_is_id(xfer) and _is_uid(uid) and cardtransfer.is_part_number(part, parts)):
            return False
        if not (reader is None or _is_id(reader)):
            return False
        if job is None:
            if state.config.kind != DeviceKind.UPDATER:
                return False
        else:
            flight = self._flight(state, job)
            if flight is None or not flight.reading:
                return False
        transfers = session.link.transfers
        transfer = transfers.get(xfer)
        if transfer is None:
            if len(transfers) >= MAX_TRANSFERS:
                return False
            transfer = Reassembly(parts, (uid, reader, job), time.monotonic())
        try:
            transfer.add(part, parts, (uid, reader, job), cardtransfer.decode_part(message.get("data")))
        except BadPart:
            transfers.pop(xfer, None)
            return False
        transfers[xfer] = transfer
        self.bridge.answer(state, session, seq, {"t": "ack", "seq": seq})
        if transfer.complete:
            del transfers[xfer]
            if job is not None and self.jobs[job].read_only:
                self._spawn(self._store_read(state, job, uid, transfer.data()))
            elif job is not None:
                self._spawn(self._bind(state, job, uid))
            else:
                self._spawn(self._update_card(state, session, xfer, uid, transfer.data()))
        return True

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _bind(self, state, job: int, uid: str) -> None:
        """A job on any card: the card is on the encoder; the key takes its UID, then the data is written."""
        try:
            data, _ = await self.bridge.write(encoding.bind_card, job, uid)
        except Exception:
            # The job stays in flight until its deadline fails it.
            logger.exception("Device bridge: binding encode job %s to card %s failed", job, uid)
            return
        flight = self.jobs.get(job)
        if flight is None:
            return
        if data is None:
            # bind_card stored the failure (or the job ended meanwhile).
            self.jobs.pop(job, None)
            return
        if state.session is None:
            self.undelivered(job)
            return
        flight.reading = False
        flight.deadline = self._deadline()
        self._send_parts(flight, data, uid)

    async def _store_read(self, state, job: int, uid: str, card: bytes) -> None:
        """A read job's card is in: kept on the job, which is done."""
        try:
            await self.bridge.write(encoding.store_read, job, uid, card)
        except Exception:
            # The job stays in flight until its deadline fails it.
            logger.exception("Device bridge: storing the card read by job %s failed", job)
            return
        self.jobs.pop(job, None)

    async def _update_card(self, state, session, xfer: int, uid: str, card: bytes) -> None:
        """A card presented to an updater: revalidated on the writer thread, then rewritten or left as it is."""
        try:
            outcome, job, data = await self.bridge.write(
                encoding.update_presented_card, card, uid, state.config.pk, timezone.now()
            )
        except Exception:
            self.bridge.counters["update_failures"] += 1
            logger.exception("Device bridge: updating card %s on %s failed", uid, state.config.name)
            outcome, job, data = "error", None, b""
        if state.session is not session:
            if job is not None:
                self._close(state, job, JobUpdate(job, EncodeStatus.FAILED, error=encoding.ENCODER_OFFLINE))
            return
        if job is None:
            self.bridge.send(state, session, {"t": "updated", "xfer": xfer, "outcome": outcome})
            return
        flight = InFlight(job, state, self._deadline())
        self.jobs[job] = flight
        self._send_parts(flight, data, uid, xfer=xfer)
