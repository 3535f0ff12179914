"""Simulated Ethernet encoders and updaters: SDP/1 devices with a card field, for tests and demos.

Written, like simulation/sdp_devices.py, from the protocol pages alone
(docs/sdp1-in-space.md, "Encoders and updaters"). A :class:`SimulatedEncoder`
holds at most one card in its field (:meth:`~SimulatedEncoder.place_card`,
:meth:`~SimulatedEncoder.remove_card`); an ``encode`` job is written onto it
once all parts are in and a fitting card is there, a ``read`` job sends the
card's UID and data back. A :class:`SimulatedUpdater` is a wall reader: a card
presented to it (:meth:`~SimulatedUpdater.present_card_data`) goes to the
server, which answers with the card's new data (written here) or ``updated``.
"""

import asyncio
import contextlib
from dataclasses import dataclass

from devices.sdp import cardtransfer
from devices.sdp.cardtransfer import BadPart, Reassembly
from simulation.sdp_devices import ACK, SimulatedDevice

ENCODED = "encoded"
PROGRESS = "progress"
CARD = "card"
# The card the site's data lives on; any other type cannot hold the card file.
DATA_CARD = "desfire_ev2_4k"
CARD_CAPACITY = 4096


def _uid(value: str) -> str:
    return value.replace(":", "").upper()


@dataclass(slots=True)
class Card:
    uid: str
    card_type: str
    data: bytes = b""


@dataclass(slots=True)
class _Job:
    """An encode job's parts as they arrive; ``meta`` comes with part 0."""

    reassembly: Reassembly
    uid: str | None = None
    timeout_s: float | None = None
    xfer: int | None = None
    meta: bool = False


class SimulatedEncoder(SimulatedDevice):
    """An Ethernet encoder: writes the card data the server sends onto the card in its field.

    ``card_type``: the type of card it writes; another card gets ``wrong_card_type``.
    ``write_s``: how long writing takes.
    ``fresh_cards``: a blank card of ``card_type`` is placed in the field as each new job arrives (a
    front desk handing out a new card per key: ``manage.py bench_hotel``), its UID unique to the encoder.
    """

    def __init__(self, *args, card_type: str = DATA_CARD, write_s: float = 0.05, fresh_cards: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.card_type = card_type
        self.write_s = write_s
        self.fresh_cards = fresh_cards
        self._fresh_for: set[int] = set()  # jobs that were given their fresh card
        self.card: Card | None = None
        self.written: list[tuple[int, str, bytes]] = []  # (job, uid, data) of every card written
        self._incoming: dict[int, _Job] = {}
        self._jobs_seen: set[int] = set()  # jobs written (or refused): their parts sent again change nothing
        self._reads_seen: set[int] = set()
        self._reports: dict[int, dict] = {}  # job -> its unacknowledged ``encoded``
        self._answered: dict[int, tuple[int, str]] = {}  # job -> (xfer, outcome) of a presented card it rewrote
        self._next_xfer = 1
        self._card_changed: asyncio.Event | None = None
        self._work: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._card_changed = asyncio.Event()
        await super().start()

    async def stop(self) -> None:
        for task in list(self._work):
            task.cancel()
        await asyncio.gather(*self._work, return_exceptions=True)
        await super().stop()

    # --- the card field -----------------------------------------------------------

    def place_card(self, uid: str, card_type: str | None = None, data: bytes = b"") -> Card:
        self.card = Card(_uid(uid), card_type or self.card_type, bytes(data))
        if self._card_changed is not None:
            self._card_changed.set()
        return self.card

    def remove_card(self) -> None:
        self.card = None

    def _fresh_card(self, job: int) -> None:
        """With ``fresh_cards``, a new blank card for a job seen for the first time (its read, then its write)."""
        if self.fresh_cards and job not in self._fresh_for:
            self._fresh_for.add(job)
            self.place_card(f"04{self.device_id:06X}{len(self._fresh_for):06X}")

    async def _wait_card(self, job: int, uid: str | None, timeout_s: float) -> Card | None:
        """The card in the field (the one with ``uid`` if named), waiting up to ``timeout_s`` for it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        told = False
        while True:
            card = self.card
            if card is not None and (uid is None or card.uid == _uid(uid)):
                return card
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            if not told:
                self._send_progress(job, "waiting_card")
                told = True
            self._card_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._card_changed.wait(), remaining)

    # --- messages from the server ---------------------------------------------------

    def _on_other(self, session, seq: int, message: dict) -> bool:
        kind = message["t"]
        if kind == "encode":
            self._answer(session, seq, {"t": ACK, "seq": seq})
            self._on_encode(message)
        elif kind == "read":
            self._answer(session, seq, {"t": ACK, "seq": seq})
            self._on_read(message)
        else:
            return False
        return True

    def _on_encode(self, message: dict) -> None:
        job, part, parts = message.get("job"), message.get("part"), message.get("parts")
        if not isinstance(job, int) or not cardtransfer.is_part_number(part, parts) or job in self._jobs_seen:
            return
        incoming = self._incoming.get(job)
        if incoming is None:
            incoming = self._incoming[job] = _Job(Reassembly(parts, (), asyncio.get_running_loop().time()))
        try:
            incoming.reassembly.add(part, parts, (), cardtransfer.decode_part(message.get("data")))
        except BadPart:
            self.stats.drops["bad_part"] += 1
            del self._incoming[job]
            return
        if part == 0:
            uid, timeout_s, xfer = message.get("uid"), message.get("timeout_s"), message.get("xfer")
            incoming.uid = uid if isinstance(uid, str) else None
            incoming.timeout_s = timeout_s if isinstance(timeout_s, int | float) and timeout_s > 0 else 30
            incoming.xfer = xfer if isinstance(xfer, int) else None
            incoming.meta = True
        if incoming.reassembly.complete and incoming.meta:
            del self._incoming[job]
            self._jobs_seen.add(job)
            data = incoming.reassembly.data()
            self._spawn(self._write_job(job, data, incoming.uid, incoming.timeout_s, incoming.xfer))

    def _on_read(self, message: dict) -> None:
        job, timeout_s = message.get("job"), message.get("timeout_s")
        if not isinstance(job, int) or job in self._reads_seen:
            return
        self._reads_seen.add(job)
        self._spawn(self._read_job(job, timeout_s if isinstance(timeout_s, int | float) and timeout_s > 0 else 30))

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    # --- jobs -------------------------------------------------------------------------

    async def _write_job(self, job: int, data: bytes, uid: str | None, timeout_s: float, xfer: int | None) -> None:
        self._fresh_card(job)
        card = await self._wait_card(job, uid, timeout_s)
        error = self._unfit(card)
        if error is None and len(data) > CARD_CAPACITY:
            error = "bad_data"
        if error is not None:
            self._report(job, {"t": ENCODED, "job": job, "ok": False, "error": error}, xfer, error)
            return
        self._send_progress(job, "writing")
        await asyncio.sleep(self.write_s)
        card.data = data
        self.written.append((job, card.uid, data))
        self._report(job, {"t": ENCODED, "job": job, "ok": True, "uid": card.uid}, xfer, "written")

    async def _read_job(self, job: int, timeout_s: float) -> None:
        self._fresh_card(job)
        card = await self._wait_card(job, None, timeout_s)
        error = self._unfit(card)
        if error is not None:
            self._report(job, {"t": ENCODED, "job": job, "ok": False, "error": error})
            return
        self._send_card(card, job=job)

    def _unfit(self, card: Card | None) -> str | None:
        if card is None:
            return "no_card"
        if card.card_type != self.card_type:
            return "wrong_card_type"
        return None

    def _job_finished(self, xfer: int | None, outcome: str) -> None:
        """A job is over; an updater ends the presentation it answered."""

    # --- sending ----------------------------------------------------------------------

    def _send_progress(self, job: int, stage: str) -> None:
        if self.online:
            self._request(self._session, PROGRESS, {"t": PROGRESS, "job": job, "stage": stage}, job)

    def _send_card(self, card: Card, *, job: int | None = None, reader: int | None = None) -> int:
        """The card's UID and data in ``card`` parts under a new transfer id; returns the id."""
        xfer = self._next_xfer
        self._next_xfer += 1
        parts = cardtransfer.split(card.data)
        for number, data in enumerate(parts):
            message = {"t": CARD, "xfer": xfer, "uid": card.uid, "part": number, "parts": len(parts), "data": data}
            if job is not None:
                message["job"] = job
            if reader is not None:
                message["reader"] = reader
            if self.online:
                self._request(self._session, CARD, message, xfer)
        return xfer

    def _report(self, job: int, message: dict, xfer: int | None = None, outcome: str = "") -> None:
        """``encoded`` is kept until acknowledged, and sent again in the next session if need be."""
        self._reports[job] = message
        if xfer is not None:
            self._answered[job] = (xfer, outcome)
        if self.online:
            self._request(self._session, ENCODED, message, job)

    def _acked(self, pending) -> None:
        if pending.kind == ENCODED:
            self._reports.pop(pending.ref, None)
            answered = self._answered.pop(pending.ref, None)
            if answered is not None:
                # The server has stored the job's end: the presentation is over.
                self._job_finished(*answered)

    def _resume(self, session) -> None:
        for job, message in self._reports.items():
            self._request(session, ENCODED, message, job)


class SimulatedUpdater(SimulatedEncoder):
    """An online wall reader that rewrites the cards presented to it with what the server sends."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcomes: list[str] = []
        self._presentations: dict[int, asyncio.Future] = {}

    async def present_card_data(
        self, uid: str, raw: bytes, *, reader: int = 1, card_type: str | None = None, timeout: float = 10.0
    ) -> bytes:
        """Present a card holding ``raw``; returns its data once the server is done with it (new or the same).

        The server's answer is in :attr:`outcomes`: ``written``, or what ``updated`` said.
        """
        await self._online.wait()
        card = self.place_card(uid, card_type, raw)
        xfer = self._send_card(card, reader=reader)
        future = self._presentations[xfer] = asyncio.get_running_loop().create_future()
        try:
            outcome = await asyncio.wait_for(future, timeout)
        finally:
            self._presentations.pop(xfer, None)
        self.outcomes.append(outcome)
        return card.data

    def _on_other(self, session, seq: int, message: dict) -> bool:
        if message["t"] != "updated":
            return super()._on_other(session, seq, message)
        self._answer(session, seq, {"t": ACK, "seq": seq})
        xfer, outcome = message.get("xfer"), message.get("outcome")
        self._job_finished(xfer if isinstance(xfer, int) else None, outcome if isinstance(outcome, str) else "")
        return True

    def _job_finished(self, xfer: int | None, outcome: str) -> None:
        future = self._presentations.get(xfer)
        if future is not None and not future.done():
            future.set_result(outcome)
