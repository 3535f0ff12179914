"""Face terminals as a service of the device runtime: requests in, decisions by the engine's rules, answers out.

One :class:`FaceService` holds Space's MQTT link (devices/face/connector.py)
and answers every commissioned terminal (``devices.models.FaceTerminal``):

- **Access requests** are queued as they arrive and taken in batches by one
  matcher thread, so that concurrent requests share work: the face-only ones of
  a batch are identified in one matrix product (``Gallery.identify_many``),
  each among the cardholders who may open that terminal's access point at that
  moment (``accesscontrol.allowed``, cached per access point until the set can
  change). Then the decision engine rules on the cardholder found, with every
  rule a card gets (validity, schedules, lockdown, opening mode, anti-passback,
  occupancy: ``Decider.holder``). Card + face: the card is decided first; a
  card the rules would let in must then match its holder's templates 1:1.
  PIN + face: the PIN names the cardholder, whose templates the face must match.
  Before any of that the terminal's own verdicts are checked: the method is one
  the terminal takes, the capture is live and good enough.
- **Exactly once**: each request's answer is kept by ``(terminal, message id)``,
  so a request the broker delivers again (QoS 1) gets the same answer and no new
  event; its audit event's ``device_event_id`` is a hash of the same pair, so a
  redelivery after a restart is not stored twice either.
- **Enrolment**: open enrolments (``devices.actions``) are sent to their
  terminal's command topic; the capture that comes back is stored through the
  actions (consent checked there), and answered ``enrolled``.
- **Terminals**: their configuration is published retained, again when it
  changes; their status (``online``, or the ``offline`` last will) marks the
  device online or offline and raises or clears the reader-offline alarm.

Database work runs on two threads of its own (reading; and the writer, which
stores events in batches); matching on a third. A bad request is answered
``type: error`` naming the field and counted; it never stops the service.
"""

import asyncio
import collections
import contextlib
import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from accesscontrol import engine, facematch
from accesscontrol.allowed import AllowedCache
from accesscontrol.choices import Decision as Reason
from accesscontrol.engine import Decision
from accesscontrol.faces import Capture
from accesscontrol.snapshot import get_store
from core.services import close_connection, freeze_what_is_loaded, run_orm, thaw
from devices import actions, metrics
from devices.choices import AlarmKind
from devices.face import messages, pki, topics
from devices.face.connector import FaceConnector, FaceMessage, NotConnected
from devices.models import FaceEnrolment, FaceTerminal
from devices.places import Place
from devices.runtime.decisions import Decider, access_event
from devices.runtime.writer import Writer

logger = logging.getLogger("space.face")

DRIVER = "face"
REFRESH_SECONDS = 0.25  # rules, presence and galleries
TERMINALS_SECONDS = 1.0  # terminal rows and their configurations
ENROL_SECONDS = 0.5  # open enrolments to send, and expiry
BATCH = 256  # requests matched together at most
MAX_QUEUED = 50_000  # requests waiting past this are dropped and counted (terminals time out and ask again)
# Events gather this long before they are stored: a terminal has its answer already, and each store costs a
# transaction and the monitor's lookups whatever its size (at 5 ms, as doors need, that cost dominated).
WRITE_GATHER_SECONDS = 0.05
SEEN = 200_000  # answers kept for redelivered requests (about 3 minutes of 1,000 terminals at 1 a second)

_GRANTED = Reason.GRANTED.value


@dataclass(frozen=True, slots=True)
class Terminal:
    """What the service needs of a commissioned terminal, read once a second."""

    terminal_id: str
    device_pk: int
    enabled: bool
    place: Place
    direction: str | None
    methods: frozenset[str]
    model_name: str
    min_quality: float
    require_liveness: bool
    threshold: float
    revision: int = field(compare=False, default=0)

    def configuration(self) -> dict:
        return messages.configuration(
            self.revision,
            access_point=self.place.name,
            methods=sorted(self.methods),
            model=self.model_name,
            min_quality=self.min_quality,
            require_liveness=self.require_liveness,
            enabled=self.enabled,
        )


TERMINAL_FIELDS = (
    "terminal_id",
    "device_id",
    "device__enabled",
    "device__updated_at",
    "access_point_id",
    "access_point__name",
    "access_point__partition_id",
    "access_point__face_threshold",
    "direction",
    "face_only",
    "card_and_face",
    "pin_and_face",
    "model_name",
    "min_quality",
    "require_liveness",
)


def terminal_rows() -> list[tuple]:
    """The terminals' rows as tuples (read every second: no model instances)."""
    return list(FaceTerminal.objects.order_by("pk").values_list(*TERMINAL_FIELDS))


def load_terminals(rows: list[tuple] | None = None) -> dict[str, Terminal]:
    terminals = {}
    for row in terminal_rows() if rows is None else rows:
        terminal_id, device_pk, enabled, updated, point_id, point_name, partition_id, threshold = row[:8]
        direction, face_only, card_and_face, pin_and_face, model_name, min_quality, require_liveness = row[8:]
        taken = ((messages.FACE, face_only), (messages.CARD_FACE, card_and_face), (messages.PIN_FACE, pin_and_face))
        terminals[terminal_id] = Terminal(
            terminal_id=terminal_id,
            device_pk=device_pk,
            enabled=enabled,
            place=Place(point_id, point_name, partition_id),
            direction=direction or None,
            methods=frozenset(method for method, on in taken if on),
            model_name=model_name,
            min_quality=min_quality,
            require_liveness=require_liveness,
            threshold=facematch.face_threshold(threshold),
            revision=int(updated.timestamp()) if updated else 0,
        )
    return terminals


def event_id(terminal_id: str, message_id: str) -> int:
    """The audit event id of a terminal's request: the same for every delivery of it, positive 63 bits."""
    digest = hashlib.blake2b(f"{terminal_id}\0{message_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


class Seen:
    """The answers given, by (terminal, message id), the oldest forgotten first."""

    def __init__(self, capacity: int = SEEN):
        self.capacity = capacity
        self._answers: collections.OrderedDict[tuple[str, str], dict] = collections.OrderedDict()

    def get(self, key: tuple[str, str]) -> dict | None:
        return self._answers.get(key)

    def add(self, key: tuple[str, str], answer: dict) -> None:
        self._answers[key] = answer
        if len(self._answers) > self.capacity:
            self._answers.popitem(last=False)


@dataclass(slots=True)
class _Pending:
    """A face-only request waiting for the batch's 1:N identification."""

    message: FaceMessage
    request: messages.AccessRequest
    terminal: Terminal
    allowed: np.ndarray


class FaceService:
    name = "face terminals"

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        identity: pki.Identity | None = None,
        *,
        store=None,
        galleries=None,
    ):
        """``store``: the rules snapshot's store; ``galleries``: model name → its GalleryStore (the process's own
        by default; a test gives fresh ones)."""
        host = host or settings.SPACE_FACE_MQTT_HOST
        port = port or settings.SPACE_FACE_MQTT_PORT
        identity = identity or pki.DevicePaths(Path(pki.device_ca_folder())).space
        self.writer = Writer("face", gather_seconds=WRITE_GATHER_SECONDS)
        self.store = store or get_store()
        self._galleries = galleries or facematch.get_store
        self._stores: dict[str, facematch.GalleryStore] = {}
        self.decider = Decider(self.store, on_passage=self._passed)
        self.connector = FaceConnector(host, port, identity, self._arrived, self._status)
        self.allowed = AllowedCache()
        self.seen = Seen()
        self.terminals: dict[str, Terminal] = {}
        self.counters: collections.Counter = collections.Counter()
        self._queue: collections.deque[FaceMessage] = collections.deque()
        self._ready: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="face-read")
        self._matcher = ThreadPoolExecutor(1, thread_name_prefix="face-match")
        self._tasks: list[asyncio.Task] = []
        self._sending: set[asyncio.Task] = set()
        self._configured: dict[str, dict] = {}  # terminal id -> the configuration last published
        self._offline: set[str] = set()  # terminals whose offline alarm is raised
        self._sent_enrolments: dict[int, str] = {}  # enrolment id -> terminal id, while the terminal may capture

    # --- running ----------------------------------------------------------------------------------------------

    async def read(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._reader, run_orm, function, *args)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self.terminals = await self.read(load_terminals)
        await self.read(self._refresh)
        freeze_what_is_loaded()  # the snapshot and the galleries' bookkeeping: no full collection walks them
        self.writer.start()
        await self.connector.start()
        for work in (self._worker(), self._refresher(), self._terminal_watch(), self._enrolments()):
            self._tasks.append(asyncio.create_task(work))

    async def stop(self) -> None:
        await self.connector.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._sending, return_exceptions=True)
        self._tasks.clear()
        await self.writer.stop()
        for executor in (self._reader, self._matcher):
            executor.submit(close_connection)
            executor.shutdown(wait=True)
        thaw()

    def galleries(self, model: str) -> facematch.GalleryStore:
        store = self._stores.get(model)
        if store is None:
            store = self._stores[model] = self._galleries(model)
        return store

    def _refresh(self) -> None:
        self.decider.refresh()
        for model in {terminal.model_name for terminal in self.terminals.values()}:
            self.galleries(model).refresh()

    async def _refresher(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.read(self._refresh)
            except Exception:
                self.counters["refresh_failures"] += 1
                logger.exception("Face terminals: refreshing the rules and templates failed")

    async def _terminal_watch(self) -> None:
        rows = None
        while True:
            try:
                fresh = await self.read(terminal_rows)
                if fresh != rows:
                    self.terminals, rows = load_terminals(fresh), fresh
                await self._publish_configurations()
            except Exception:
                self.counters["terminal_load_failures"] += 1
                logger.exception("Face terminals: reading the terminals failed")
            await asyncio.sleep(TERMINALS_SECONDS)

    async def _publish_configurations(self) -> None:
        if not self.connector.connected:
            return
        for terminal_id, terminal in self.terminals.items():
            config = terminal.configuration()
            if self._configured.get(terminal_id) != config:
                with contextlib.suppress(NotConnected):
                    await self.connector.configure(terminal_id, config)
                    self._configured[terminal_id] = config

    # --- arriving ---------------------------------------------------------------------------------------------

    def _arrived(self, message: FaceMessage) -> None:
        if len(self._queue) >= MAX_QUEUED:
            self.counters["dropped_overload"] += 1
            return
        self._queue.append(message)
        self._ready.set()

    def _status(self, terminal_id: str, status: str) -> None:
        terminal = self.terminals.get(terminal_id)
        if terminal is None:
            return
        online = status == topics.ONLINE
        now = timezone.now()
        self.writer.device(terminal.device_pk, online=online, last_seen_at=now)
        if online and terminal_id in self._offline:
            self._offline.discard(terminal_id)
            self.writer.alarm(AlarmKind.OFFLINE, False, terminal.place, terminal.device_pk, now)
        elif not online and terminal_id not in self._offline:
            self._offline.add(terminal_id)
            self.writer.alarm(AlarmKind.OFFLINE, True, terminal.place, terminal.device_pk, now)

    def _passed(self, passage) -> None:
        # Called on the matcher thread: the writer lives on the event loop.
        self._loop.call_soon_threadsafe(self.writer.passage, passage)

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._ready.clear()
                await self._ready.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), BATCH))]
            try:
                answers, enrolments, events = await loop.run_in_executor(self._matcher, self.decide_batch, batch)
            except Exception:
                self.counters["batch_failures"] += 1
                logger.exception("Face terminals: a batch of %d requests failed", len(batch))
                continue
            for event in events:
                self.writer.event(event)
            self._send(answers)
            for terminal_id, request in enrolments:
                task = asyncio.create_task(self._enrolment_capture(terminal_id, request))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)

    def _send(self, answers: list[tuple[str, dict]]) -> None:
        sent = sum(self.connector.answer_at_once(terminal_id, answer) for terminal_id, answer in answers)
        self.counters["answers_sent"] += sent
        self.counters["answers_unsent"] += len(answers) - sent

    # --- deciding (on the matcher thread) ---------------------------------------------------------------------

    def decide_batch(self, batch: list[FaceMessage]) -> tuple[list, list, list]:
        """Answer a batch: ``(answers, enrolment requests, audit events)``; answers as ``(terminal id, payload)``."""
        at = timezone.now()
        snapshot = self.store.snapshot
        answers: list[tuple[str, dict]] = []
        enrolments: list[tuple[str, messages.Request]] = []
        events: list = []
        pending: list[_Pending] = []
        for message in batch:
            terminal_id, message_id = message.terminal_id, message.payload["id"]
            if message.kind == topics.EVENT:
                self.counters[f"terminal_event_{str(message.payload['type'])[:32]}"] += 1
                continue
            seen = self.seen.get((terminal_id, message_id))
            if seen is not None:
                self.counters["duplicates"] += 1
                answers.append((terminal_id, seen))
                continue
            terminal = self.terminals.get(terminal_id)
            if terminal is None or not terminal.enabled:
                self.counters["unknown_terminal"] += 1
                problem = messages.BadRequest("terminal", "not commissioned or disabled in Space")
                answers.append((terminal_id, messages.error(message_id, problem)))
                continue
            try:
                request = messages.parse_request(message.payload)
            except messages.BadRequest as problem:
                self.counters["bad_requests"] += 1
                self._answer(answers, terminal_id, message_id, messages.error(message_id, problem))
                continue
            if not isinstance(request, messages.AccessRequest):
                enrolments.append((terminal_id, request))
                continue
            refusal = self._screen(terminal, request)
            if refusal is not None:
                decision = Decision(False, refusal, None, request.card, 0)
                self._decided(answers, events, message, request, terminal, decision, at, None)
            elif request.method == messages.FACE:
                allowed = self.allowed.get(snapshot, terminal.place.id, at)
                pending.append(_Pending(message, request, terminal, allowed))
            else:
                decision, score = self._verify_and_decide(snapshot, terminal, request, at)
                self._decided(answers, events, message, request, terminal, decision, at, score)
        if pending:
            self._identify(snapshot, pending, answers, events, at)
        return answers, enrolments, events

    def _screen(self, terminal: Terminal, request: messages.AccessRequest) -> str | None:
        """The refusal the terminal's own verdicts call for before any matching, or None."""
        face = request.face
        if request.method not in terminal.methods:
            return Reason.METHOD_NOT_ACCEPTED.value
        if face.model != terminal.model_name:
            return Reason.METHOD_NOT_ACCEPTED.value
        if terminal.require_liveness and face.live is not True:
            return Reason.LIVENESS_FAILED.value
        if terminal.min_quality > 0 and (face.quality is None or face.quality < terminal.min_quality):
            return Reason.LOW_QUALITY.value
        return None

    def _identify(self, snapshot, pending: list[_Pending], answers, events, at) -> None:
        # Requests at one access point share its allowed set, whose rows are gathered once for all of them;
        # sets of different doors are searched apart (their union would be most of a large site).
        groups: dict[tuple[str, int], list[_Pending]] = collections.defaultdict(list)
        for item in pending:
            groups[item.terminal.model_name, id(item.allowed)].append(item)
        for (model, _), items in groups.items():
            gallery = self.galleries(model).gallery
            matches = gallery.identify_many(
                [item.request.face.vector for item in items],
                [item.allowed for item in items],
                [item.terminal.threshold for item in items],
            )
            for item, match in zip(items, matches, strict=True):
                if match is None:
                    # Nobody allowed matched: at a door in lockdown or locked, that is why (only those who
                    # override it were searched).
                    reason = engine.door_refusal(snapshot, item.terminal.place.id) or Reason.FACE_NOT_RECOGNISED.value
                    decision = Decision(False, reason, None, "", 0)
                    score = None
                else:
                    terminal = item.terminal
                    decision = self.decider.holder(
                        terminal.place, match.cardholder_id, at, direction=terminal.direction
                    )
                    score = match.score
                self._decided(answers, events, item.message, item.request, item.terminal, decision, at, score)

    def _verify_and_decide(self, snapshot, terminal: Terminal, request, at) -> tuple[Decision, float | None]:
        """Card + face and PIN + face: the credential names a cardholder, whose templates the face must match."""
        place, direction = terminal.place, terminal.direction
        if request.method == messages.CARD_FACE:
            first = engine.decide(snapshot, request.card, place.id, at, direction=direction)
            if not first.granted:
                return self.decider.card(place, request.card, at, direction=direction), None
            holder_id, uid = first.cardholder_id, first.key_uid
        else:
            holder = snapshot.holder_by_pin(request.pin)
            if holder is None:
                return Decision(False, Reason.UNKNOWN_PIN.value, None, "", 0), None
            holder_id, uid = holder.id, ""
        gallery = self.galleries(terminal.model_name).gallery
        if not gallery.enrolled(holder_id):
            return Decision(False, Reason.NO_FACE_ENROLLED.value, holder_id, uid, 0), None
        match = gallery.verify(request.face.vector, holder_id, terminal.threshold)
        if match is None:
            score = gallery.best_score(request.face.vector, holder_id)
            return Decision(False, Reason.FACE_MISMATCH.value, holder_id, uid, 0), score
        if request.method == messages.CARD_FACE:
            return self.decider.card(place, request.card, at, direction=direction), match.score
        return self.decider.holder(place, holder_id, at, pin_checked=True, direction=direction), match.score

    def _decided(self, answers, events, message, request, terminal: Terminal, decision: Decision, at, score) -> None:
        detail = {"method": request.method, "terminal": terminal.terminal_id, "message": request.message_id}
        if score is not None:
            detail["score"] = round(float(score), 4)
        if request.face.quality is not None:
            detail["quality"] = request.face.quality
        if request.face.live is not None:
            detail["liveness"] = request.face.live
        event = access_event(decision, terminal.place, terminal.device_pk, at, detail)
        event.device_event_id = event_id(terminal.terminal_id, request.message_id)
        events.append(event)
        metrics.decided(DRIVER, decision.granted, decision.reason, message.received)
        self.counters["granted" if decision.granted else "refused"] += 1
        answer = messages.answer(request.message_id, decision.granted, decision.reason, decision.open_time)
        self._answer(answers, terminal.terminal_id, request.message_id, answer)

    def _answer(self, answers, terminal_id: str, message_id: str, answer: dict) -> None:
        self.seen.add((terminal_id, message_id), answer)
        answers.append((terminal_id, answer))

    # --- enrolment ----------------------------------------------------------------------------------------------

    async def _enrolment_capture(self, terminal_id: str, request) -> None:
        """A terminal's enrolment capture (or its failure to take one): stored through the actions, answered."""
        if isinstance(request, messages.EnrolFailure):
            await self.read(actions.fail_face_enrolment, terminal_id, request.enrolment_id, request.error or "failed")
            answer = messages.enrolled(request.message_id, request.enrolment_id, False, request.error or "failed")
        else:
            answer = await self.read(self._store_capture, terminal_id, request)
        self.seen.add((terminal_id, request.message_id), answer)
        self._send([(terminal_id, answer)])

    def _store_capture(self, terminal_id: str, request: messages.EnrolCapture) -> dict:
        terminal = self.terminals.get(terminal_id)
        face = request.face
        problem = ""
        if terminal is not None and terminal.require_liveness and face.live is not True:
            problem = "The capture was not found live."
        elif terminal is not None and face.quality is not None and face.quality < terminal.min_quality:
            problem = f"The capture's quality {face.quality:.2f} is below {terminal.min_quality:.2f}."
        if problem:
            actions.fail_face_enrolment(terminal_id, request.enrolment_id, problem)
            return messages.enrolled(request.message_id, request.enrolment_id, False, problem)
        capture = Capture(face.model, face.vector, face.quality, terminal_id)
        try:
            actions.complete_face_enrolment(terminal_id, request.enrolment_id, capture)
        except ValidationError as error:
            self.counters["enrolments_refused"] += 1
            return messages.enrolled(request.message_id, request.enrolment_id, False, "; ".join(error.messages))
        self.counters["enrolments_completed"] += 1
        return messages.enrolled(request.message_id, request.enrolment_id, True)

    async def _enrolments(self) -> None:
        while True:
            try:
                await self.read(actions.expire_face_enrolments, timezone.now())
                if self.connector.connected:
                    for enrolment in await self.read(_open_enrolments):
                        await self._send_enrolment(enrolment)
                    if self._sent_enrolments:
                        await self._cancel_ended()
            except Exception:
                self.counters["enrolment_failures"] += 1
                logger.exception("Face terminals: sending enrolments failed")
            await asyncio.sleep(ENROL_SECONDS)

    async def _send_enrolment(self, enrolment: FaceEnrolment) -> None:
        holder = enrolment.cardholder
        command = messages.enrol_command(
            enrolment.pk, f"{holder.first_name} {holder.last_name}".strip(), enrolment.expires_at.isoformat()
        )
        try:
            await self.connector.command(enrolment.terminal.terminal_id, command)
        except NotConnected:
            return
        await self.read(actions.mark_face_enrolment_sent, enrolment.pk)
        self._sent_enrolments[enrolment.pk] = enrolment.terminal.terminal_id
        self.counters["enrolments_sent"] += 1

    async def _cancel_ended(self) -> None:
        """Tell terminals to stop capturing for enrolments cancelled or expired since they were sent."""
        statuses = await self.read(_statuses, list(self._sent_enrolments))
        for enrolment_id, status in statuses.items():
            if status in FaceEnrolment.OPEN:
                continue
            terminal_id = self._sent_enrolments.pop(enrolment_id)
            if status in (FaceEnrolment.Status.CANCELLED, FaceEnrolment.Status.EXPIRED):
                with contextlib.suppress(NotConnected):
                    await self.connector.command(terminal_id, messages.cancel_command(enrolment_id))
        for gone in set(self._sent_enrolments) - set(statuses):
            del self._sent_enrolments[gone]


def _open_enrolments() -> list[FaceEnrolment]:
    return list(actions.open_face_enrolments())


def _statuses(enrolment_ids: list[int]) -> dict[int, str]:
    return dict(FaceEnrolment.objects.filter(pk__in=enrolment_ids).values_list("pk", "status"))
