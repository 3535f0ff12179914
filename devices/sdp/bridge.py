"""The device bridge: the server side of SDP/1 (docs/sdp1.md) on one UDP port.

One asyncio service. Every datagram is handled synchronously in the protocol
callback: parse, find the device and session, check the replay window and the
tag, then act. Access requests are decided at once from the in-memory rules
snapshot (accesscontrol.snapshot), which a background task refreshes from the
database every few hundred milliseconds. Everything that must be durable (audit
events, command progress, device status) goes to a writer task that stores it
in batches on a database thread; the ``ack`` of an event is sealed and sent
only after its batch committed. A decision is answered before its audit row is
committed, so the row goes to a journal file first (devices/sdp/journal.py),
and a bridge that starts stores the rows a killed one left there.

Bad input of any kind is dropped without an answer and counted in
``Bridge.counters``; a rate-limited log line names the source. Nothing a device
sends can raise out of the callback.
"""

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import os
import re
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.utils import timezone

from accesscontrol import live
from accesscontrol.choices import AuditKind
from accesscontrol.choices import Decision as Reason
from accesscontrol.engine import normalize_uid
from accesscontrol.models import AuditEvent
from accesscontrol.snapshot import get_store
from core.services import close_connection, freeze_what_is_loaded, run_orm, thaw
from devices import encoding, jobwake, metrics, recorder
from devices.choices import AlarmKind, CommandStatus, EncodeStatus
from devices.encoding import JobUpdate
from devices.recorder import AlarmChange, CommandUpdate, DeviceConfig
from devices.runtime.decisions import Decider, access_event
from devices.sdp import codec as sdp1
from devices.sdp.encoderlink import EncoderLink, Link
from devices.sdp.journal import DecisionJournal, Leftovers

logger = logging.getLogger("space.bridge")

HALF_OPEN_LIMIT = 4
HALF_OPEN_SECONDS = 5.0
HELLOS_PER_SECOND = 10
RETRY_FIRST_SECONDS = 0.25
RETRY_TRIES = 5
ANSWERS_KEPT = 2 * sdp1.REPLAY_WINDOW
MISSED_HEARTBEATS = 3
REFRESH_SECONDS = 0.25
REGISTRY_SECONDS = 1.0
REGISTRY_FULL_RELOAD_SECONDS = 60.0
COMMAND_POLL_SECONDS = 0.25
COMMAND_TTL = dt.timedelta(minutes=10)
DEVICE_STATUS_FLUSH_SECONDS = 5.0
WRITER_BATCH = 2000
WRITER_RETRY_SECONDS = 1.0
WRITER_GATHER_SECONDS = 0.005
GIL_SWITCH_SECONDS = 0.001
STOP_WRITER_SECONDS = 8.0
RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024
LOG_EVERY_SECONDS = 10.0
MAX_DOORS = 64
PUBLISH_SECONDS = 0.025
MAX_INT = 2**63 - 1
# Under VAR_DIR: the decision journal's files (devices/sdp/journal.py).
JOURNAL_DIR = "bridge-journal"

EVENT_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
HEX = re.compile(r"^[0-9A-Fa-f:]{2,64}$")
DOOR_STATES = frozenset({"closed", "open", "left_open", "forced"})
KNOWN_REASONS = frozenset(Reason.values)


def _is_int(value, low: int = 0, high: int = MAX_INT) -> bool:
    return type(value) is int and low <= value <= high


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class HalfOpen:
    session_id: int
    nonce_d: bytes
    nonce_s: bytes
    challenge: bytes
    expires: float


@dataclass(slots=True)
class Outgoing:
    """A server frame waiting for the device's ``ack``: retransmitted on a doubling schedule."""

    datagram: bytes
    cmd: int | None
    next_at: float
    job: int | None = None
    interval: float = RETRY_FIRST_SECONDS
    tries: int = 1


@dataclass(slots=True)
class Session:
    session_id: int
    auth: bytes
    d2s: AESGCM
    s2d: AESGCM
    window: sdp1.ReplayWindow = field(default_factory=sdp1.ReplayWindow)
    # Device seq -> the datagram sent in answer (None: accepted, answer not sent yet).
    answers: dict[int, bytes | None] = field(default_factory=dict)
    send_seq: int = 0
    welcome: bytes = b""
    outgoing: dict[int, Outgoing] = field(default_factory=dict)
    link: Link = field(default_factory=Link)


@dataclass(slots=True)
class DeviceState:
    """One commissioned device: its configuration and what the bridge knows of it now."""

    config: DeviceConfig
    session: Session | None = None
    half_open: dict[int, HalfOpen] = field(default_factory=dict)
    hellos: collections.deque = field(default_factory=collections.deque)
    address: tuple | None = None
    last_seen: float = 0.0
    online: bool = False
    door_states: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Pending:
    """A durable item for the writer; when stored, ``ack`` (if any) answers ``seq`` in ``session``."""

    state: DeviceState
    session: Session | None
    seq: int
    event: AuditEvent | None = None
    command: CommandUpdate | None = None
    job: JobUpdate | None = None
    ack: bool = True
    # The source of the datagram the ack will answer: answers go there, not to a newer address.
    address: tuple | None = None
    journaled: bool = False  # its event is a decision's, in the journal until stored


class BridgeProtocol(asyncio.DatagramProtocol):
    def __init__(self, bridge: "Bridge"):
        self.bridge = bridge

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            self.bridge.received(data, addr)
        except Exception:
            self.bridge.counters["internal_error"] += 1
            logger.exception("Device bridge: a datagram from %s could not be handled", addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like, reported on a later send: not the bridge's problem.
        self.bridge.counters["socket_error"] += 1


class Bridge:
    """The SDP/1 server: a :class:`core.services.Service`."""

    name = "device bridge"

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        heartbeat_s: int | None = None,
        encoder_grace_s: float | None = None,
        journal_dir: Path | None = None,
    ):
        self.host = settings.SPACE_DEVICE_HOST if host is None else host
        self.requested_port = settings.SPACE_DEVICE_PORT if port is None else port
        self.heartbeat_s = heartbeat_s or settings.SPACE_DEVICE_HEARTBEAT_SECONDS
        self.journal_dir = Path(journal_dir or settings.VAR_DIR / JOURNAL_DIR)
        self.journal: DecisionJournal | None = None
        self.port: int | None = None
        self.counters: collections.Counter = collections.Counter()
        self.devices: dict[int, DeviceState] = {}
        self.by_pk: dict[int, DeviceState] = {}
        self.decider = Decider(get_store(), on_passage=self._passed)
        self._passages: list = []  # presence passages decided, stored with the next batch
        self._arrived: float | None = None  # perf_counter() when the datagram being handled arrived
        self._alarms: list[AlarmChange] = []  # alarms decisions raised (soft anti-passback), likewise
        self.transport: asyncio.DatagramTransport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task] = []
        self._writer_job: asyncio.Task | None = None
        self._stopping = False
        self._queue: collections.deque[Pending] = collections.deque()
        self._queue_ready = asyncio.Event()
        self._jobs_queued = asyncio.Event()  # set (devices.jobwake) when this process queued an encode job
        self._device_fields: dict[int, dict] = {}
        self._in_flight: dict[int, tuple[DeviceState, Session, int]] = {}
        self._log_times: dict[tuple, float] = {}
        self._fingerprint = None
        self._live: list[dict] = []
        self._loaded_at = 0.0
        self._full_at = 0.0
        # Reads (snapshot refresh, registry, commands) and writes run on separate threads.
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="bridge-read")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="bridge-write")
        grace = {} if encoder_grace_s is None else {"offline_grace_s": encoder_grace_s}
        self.encoders = EncoderLink(self, **grace)

    @property
    def store(self):
        """The rules snapshot the bridge decides from (its decider's)."""
        return self.decider.store

    @store.setter
    def store(self, store) -> None:
        self.decider.store = store

    # --- service --------------------------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        # The writer thread holds the GIL in ORM code; a shorter switch interval keeps decisions prompt.
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_SECONDS))
        self._queue_ready = asyncio.Event()
        self._jobs_queued = asyncio.Event()
        jobwake.add_waker(self._wake_commands)
        await self.read(self.decider.refresh)
        await self._reload_registry(force=True)
        await self.write(encoding.fail_interrupted_jobs, timezone.now())
        await self._store_leftover_decisions()
        try:
            self.journal = DecisionJournal(self.journal_dir)
        except OSError as error:
            # Doors matter more than the journal: decide without it, and say so.
            logger.error(
                "Device bridge: no decision journal in %s (%s); a kill may lose decisions", self.journal_dir, error
            )
        freeze_what_is_loaded()
        self.transport, _ = await self.loop.create_datagram_endpoint(
            lambda: BridgeProtocol(self), local_addr=(self.host, self.requested_port)
        )
        self.port = self.transport.get_extra_info("sockname")[1]
        _enlarge_receive_buffer(self.transport.get_extra_info("socket"))
        self._stopping = False
        self._writer_job = asyncio.create_task(self._writer_task())
        for coroutine in (self._refresher(), self._commands(), self._timers(), self._publisher()):
            self._tasks.append(asyncio.create_task(coroutine))
        logger.info("Device bridge listening on udp://%s:%s", self.host, self.port)

    async def stop(self) -> None:
        jobwake.remove_waker(self._wake_commands)
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._writer_job is not None:
            # What was accepted is stored before the bridge stops (its acks are not sent: the socket is closed).
            self._stopping = True
            self._queue_ready.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._writer_job), STOP_WRITER_SECONDS)
            except TimeoutError:
                logger.error("Device bridge: %d items could not be stored before stopping", len(self._queue))
                self._writer_job.cancel()
                await asyncio.gather(self._writer_job, return_exceptions=True)
            self._writer_job = None
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        for executor in (self._reader, self._writer):
            executor.submit(close_connection)
            executor.shutdown(wait=True)
        thaw()

    async def _store_leftover_decisions(self) -> None:
        """Store what bridges that died had journaled and not stored (devices/sdp/journal.py)."""
        try:
            leftovers = Leftovers(self.journal_dir)
        except OSError as error:
            logger.error("Device bridge: the decision journal in %s cannot be read (%s)", self.journal_dir, error)
            return
        if not leftovers.events:
            leftovers.done()
            return
        try:
            stored = await self.write(_store_journaled, leftovers.events, timezone.now())
        except Exception:
            leftovers.release()
            logger.exception("Device bridge: the journaled decisions of a bridge that died could not be stored")
            return
        leftovers.done()
        self._live.extend(stored)
        self.counters["journaled_decisions_recovered"] += len(stored)
        logger.info(
            "Device bridge: stored %d of the %d decisions journaled by a bridge that died",
            len(stored),
            len(leftovers.events),
        )

    # --- datagrams ------------------------------------------------------------

    def received(self, data: bytes, addr) -> None:
        self._arrived = time.perf_counter()  # a decision's latency starts here (devices/metrics.py)
        self.counters["datagrams"] += 1
        try:
            frame = sdp1.parse(data, sdp1.FROM_DEVICE)
        except sdp1.Malformed as error:
            self._drop(error.reason, addr)
            return
        state = self.devices.get(frame.device_id)
        if state is None:
            self._drop("unknown_device", addr)
            return
        if frame.type == sdp1.SEALED:
            self._sealed(state, frame, data, addr)
        elif frame.type == sdp1.HELLO:
            self._hello(state, frame, addr)
        else:
            self._auth(state, frame, data, addr)

    def _drop(self, reason: str, addr) -> None:
        self.counters[f"dropped_{reason}"] += 1
        self.counters["dropped"] += 1
        now = time.monotonic()
        source = addr[0] if addr else "?"
        if now - self._log_times.get((reason, source), -LOG_EVERY_SECONDS) >= LOG_EVERY_SECONDS:
            if len(self._log_times) > 10000:
                self._log_times.clear()
            self._log_times[(reason, source)] = now
            logger.warning("Device bridge: dropped a frame from %s (%s)", source, reason)

    def _send(self, datagram: bytes, addr) -> None:
        if self.transport is not None and addr is not None:
            self.transport.sendto(datagram, addr)

    # --- handshake --------------------------------------------------------------

    def _hello(self, state: DeviceState, frame: sdp1.Frame, addr) -> None:
        now = time.monotonic()
        hellos = state.hellos
        while hellos and now - hellos[0] >= 1.0:
            hellos.popleft()
        if len(hellos) >= HELLOS_PER_SECOND:
            self._drop("hello_rate", addr)
            return
        hellos.append(now)
        self._expire_half_open(state, now)
        nonce_d = frame.body[: sdp1.NONCE_SIZE]
        for half in state.half_open.values():
            if half.nonce_d == nonce_d:
                self._send(half.challenge, addr)
                return
        if len(state.half_open) >= HALF_OPEN_LIMIT:
            del state.half_open[min(state.half_open.values(), key=lambda h: h.expires).session_id]
        session_id = self._new_session_id(state)
        key = state.config.key
        nonce_s = os.urandom(sdp1.NONCE_SIZE)
        proof = sdp1.server_proof(key, frame.device_id, session_id, nonce_d, nonce_s)
        challenge = sdp1.challenge(frame.device_id, session_id, nonce_s, proof)
        state.half_open[session_id] = HalfOpen(session_id, nonce_d, nonce_s, challenge, now + HALF_OPEN_SECONDS)
        self.counters["hellos"] += 1
        self._send(challenge, addr)

    @staticmethod
    def _expire_half_open(state: DeviceState, now: float) -> None:
        for session_id in [s for s, half in state.half_open.items() if half.expires <= now]:
            del state.half_open[session_id]

    @staticmethod
    def _new_session_id(state: DeviceState) -> int:
        while True:
            session_id = int.from_bytes(os.urandom(4), "big")
            current = state.session.session_id if state.session else 0
            if session_id and session_id != current and session_id not in state.half_open:
                return session_id

    def _auth(self, state: DeviceState, frame: sdp1.Frame, data: bytes, addr) -> None:
        session = state.session
        if session is not None and session.session_id == frame.session_id and data == session.auth:
            # The device missed the welcome: the same datagram again, never a new seal.
            self._send(session.welcome, addr)
            return
        now = time.monotonic()
        self._expire_half_open(state, now)
        half = state.half_open.get(frame.session_id)
        if half is None:
            self._drop("unknown_session", addr)
            return
        key = state.config.key
        expected = sdp1.device_proof(key, frame.device_id, half.session_id, half.nonce_d, half.nonce_s)
        if not sdp1.proofs_equal(expected, frame.body):
            self._drop("bad_proof", addr)
            return
        del state.half_open[half.session_id]
        k_d2s, k_s2d = sdp1.session_keys(key, frame.device_id, half.session_id, half.nonce_d, half.nonce_s)
        if state.session is not None:
            self._abandon(state, state.session)
        session = Session(half.session_id, bytes(data), AESGCM(k_d2s), AESGCM(k_s2d))
        state.session = session
        state.address = addr
        self.counters["sessions"] += 1
        welcome = {"t": "welcome", "time": _rfc3339(timezone.now()), "heartbeat_s": self.heartbeat_s}
        session.welcome = self.send(state, session, welcome, cmd=None)
        self._seen(state, now)

    def _abandon(self, state: DeviceState, session: Session) -> None:
        """A newer session replaced this one: its undelivered commands go back to the queue."""
        for outgoing in session.outgoing.values():
            if outgoing.cmd is not None:
                update = CommandUpdate(outgoing.cmd, CommandStatus.QUEUED)
                self._enqueue(Pending(state, None, 0, command=update, ack=False))
            if outgoing.job is not None:
                self.encoders.undelivered(outgoing.job)
        session.outgoing.clear()

    # --- sealed frames ----------------------------------------------------------

    def _seal(self, state: DeviceState, session: Session, message: dict) -> bytes:
        session.send_seq += 1
        return sdp1.seal(
            session.s2d, state.config.device_id, session.session_id, session.send_seq, sdp1.encode(message)
        )

    # --- sending; public for encoders and updaters (devices/sdp/encoderlink.py) ---------------

    def send(
        self, state: DeviceState, session: Session, message: dict, cmd: int | None = None, job: int | None = None
    ) -> bytes:
        """Seal ``message`` and send it to the device in ``session`` as a frame that expects an ``ack``; it is
        retransmitted until acknowledged. ``cmd``: the command it carries; ``job``: the encode job it belongs to,
        whose link hears (``EncoderLink.undelivered``) when it goes unacknowledged after every try. Returns the
        datagram."""
        datagram = self._seal(state, session, message)
        session.outgoing[session.send_seq] = Outgoing(datagram, cmd, time.monotonic() + RETRY_FIRST_SECONDS, job)
        self._send(datagram, state.address)
        return datagram

    def answer(self, state: DeviceState, session: Session, seq: int, message: dict, address=None) -> None:
        """Seal ``message``, the answer to the device's frame ``seq``, and send it to the source of that datagram
        (``state.address`` while handling it); it is kept to answer a duplicate of ``seq`` again. A session
        replaced meanwhile keeps the answer but sends nothing."""
        datagram = self._seal(state, session, message)
        session.answers[seq] = datagram
        if session is state.session:
            self._send(datagram, address or state.address)

    def _sealed(self, state: DeviceState, frame: sdp1.Frame, data: bytes, addr) -> None:
        session = state.session
        if session is None or session.session_id != frame.session_id:
            self._drop("unknown_session", addr)
            return
        seq = frame.seq
        if not session.window.in_window(seq):
            self._drop("replay_window", addr)
            return
        try:
            plaintext = sdp1.unseal(session.d2s, frame)
        except InvalidTag:
            self._drop("bad_tag", addr)
            return
        if not session.window.accept(seq):
            self.counters["duplicates"] += 1
            answer = session.answers.get(seq)
            if answer is not None:
                self._send(answer, addr)
            return
        state.address = addr
        self._seen(state, time.monotonic())
        session.answers[seq] = None
        if len(session.answers) > ANSWERS_KEPT:
            floor = session.window.highest - sdp1.REPLAY_WINDOW
            for old in [s for s in session.answers if s <= floor]:
                del session.answers[old]
        message = sdp1.decode(plaintext)
        handler = self._handlers.get(message["t"]) if message is not None else None
        if handler is None:
            self.counters["unknown_messages"] += 1
            return
        if not handler(self, state, session, seq, message):
            self.counters["bad_messages"] += 1

    # --- messages: each returns False when the message is malformed ------------------

    def _on_access(self, state: DeviceState, session: Session, seq: int, message: dict) -> bool:
        req, reader, cred = message.get("req"), message.get("reader"), message.get("cred")
        pin = message.get("pin")
        if not (_is_int(req) and _is_int(reader) and isinstance(cred, dict)) or not (
            pin is None or isinstance(pin, str)
        ):
            return False
        place = state.config.readers.get(reader)
        now = timezone.now()
        kind = cred.get("kind")
        if kind == "pin":
            # A PIN typed alone: the device runtime's decider finds its cardholder (a PIN-only access point).
            typed = cred.get("pin")
            if not isinstance(typed, str):
                return False
            decision = self.decider.pin(place, typed, now)
        else:
            uid = self._credential_uid(cred)
            if uid is None:
                return False
            decision = self.decider.card(place, uid, now, pin=pin)
        open_ms = decision.open_time * 1000 if decision.granted else 0
        reply = {"t": "decision", "req": req, "grant": decision.granted, "reason": decision.reason, "open_ms": open_ms}
        detail = {"req": req, "reader": reader, "online": True}
        if kind == "pin":
            detail["credential"] = "pin"
        audit = access_event(decision, place, state.config.pk, now, detail)
        # In the journal before the device hears it: a bridge killed before the writer stores the row loses nothing.
        journaled = self.journal is not None and self.journal.append(audit)
        # Counted before it is answered: whoever reads the answer reads the count with it.
        self.counters["decisions"] += 1
        self.answer(state, session, seq, reply)
        metrics.decided(metrics.SDP, decision.granted, decision.reason, self._arrived)
        self._enqueue(Pending(state, session, seq, event=audit, ack=False, journaled=journaled))
        if decision.warning == Reason.ANTI_PASSBACK:
            # Soft anti-passback: in, but the operators hear of it (an alarm to acknowledge).
            point_id = place.id if place else None
            self._alarms.append(AlarmChange(AlarmKind.ANTI_PASSBACK, True, point_id, state.config.pk, now))
            self._alarms.append(AlarmChange(AlarmKind.ANTI_PASSBACK, False, point_id, state.config.pk, now))
        return True

    def _passed(self, passage) -> None:
        self._passages.append(passage)

    @staticmethod
    def _credential_uid(cred: dict) -> str | None:
        kind = cred.get("kind")
        if kind == "card":
            uid = cred.get("uid")
            return uid if isinstance(uid, str) and HEX.match(uid) else None
        if kind == "mobile":
            token = cred.get("token")
            # A mobile key is a Key whose uid is its token (issued by the mobile-key service).
            return token[:64] if isinstance(token, str) and token else None
        return None

    def _on_event(self, state: DeviceState, session: Session, seq: int, message: dict) -> bool:
        event = message.get("ev")
        if not isinstance(event, dict):
            return False
        event_id, at, kind = event.get("id"), event.get("at"), event.get("kind")
        door, key, detail = event.get("door"), event.get("key"), event.get("detail")
        if not (_is_int(event_id) and isinstance(kind, str) and 0 < len(kind) <= 32):
            return False
        if not (isinstance(at, str) and EVENT_TIME.match(at)):
            return False
        if not (door is None or _is_int(door)) or not (key is None or (isinstance(key, str) and HEX.match(key))):
            return False
        if not (detail is None or isinstance(detail, dict)):
            return False
        try:
            moment = dt.datetime.fromisoformat(at[:-1]).replace(tzinfo=dt.UTC)
        except ValueError:
            return False
        place = state.config.doors.get(door) if door is not None else None
        uid = normalize_uid(key) if key else ""
        holder = self.store.snapshot.keys_by_uid.get(uid) if uid else None
        detail = dict(detail or {})
        reason = detail.get("reason")
        if door is not None and place is None:
            detail["door"] = door
        audit = AuditEvent(
            at=moment,
            kind=kind,
            reason=reason if reason in KNOWN_REASONS else "",
            access_point_id=place.id if place else None,
            access_point_name=place.name if place else "",
            cardholder_id=holder.cardholder_id if holder else None,
            key_uid=uid,
            device_id=state.config.pk,
            device_event_id=event_id,
            detail=detail,
        )
        self._enqueue(Pending(state, session, seq, event=audit, address=state.address))
        return True

    def _on_status(self, state: DeviceState, session: Session, seq: int, message: dict) -> bool:
        doors, battery, tamper, firmware = (message.get(k) for k in ("doors", "battery", "tamper", "fw"))
        if not isinstance(doors, dict) or not all(isinstance(v, str) and v in DOOR_STATES for v in doors.values()):
            return False
        if not (battery is None or _is_int(battery, 0, 100)) or not (tamper is None or isinstance(tamper, bool)):
            return False
        if not (firmware is None or isinstance(firmware, str)):
            return False
        fields = self._device_fields.setdefault(state.config.pk, {})
        fields["door_states"] = {str(k)[:16]: v for k, v in list(doors.items())[:MAX_DOORS]}
        if battery is not None:
            fields["battery"] = battery
        if tamper is not None:
            fields["tamper"] = tamper
        if firmware is not None:
            fields["firmware"] = firmware[:64]
        self.answer(state, session, seq, {"t": "ack", "seq": seq})
        self._door_states_changed(state, doors)
        return True

    def _door_states_changed(self, state: DeviceState, doors: dict) -> None:
        for door, door_state in doors.items():
            if state.door_states.get(door) == door_state or (
                door not in state.door_states and len(state.door_states) >= MAX_DOORS
            ):
                continue
            state.door_states[door] = door_state
            number = int(door) if isinstance(door, str) and door.isdigit() else None
            place = state.config.doors.get(number)
            self._live.append(
                live.door_state_payload(
                    place.id if place else None,
                    place.name if place else "",
                    place.partition_id if place else None,
                    state.config.pk,
                    door,
                    door_state,
                )
            )

    def _on_ack(self, state: DeviceState, session: Session, seq: int, message: dict) -> bool:
        acked = message.get("seq")
        if not _is_int(acked):
            return False
        outgoing = session.outgoing.pop(acked, None)
        if outgoing is not None and outgoing.cmd is not None:
            update = CommandUpdate(outgoing.cmd, CommandStatus.ACKNOWLEDGED)
            self._enqueue(Pending(state, session, seq, command=update, ack=False))
        return True

    def _on_result(self, state: DeviceState, session: Session, seq: int, message: dict) -> bool:
        cmd, ok, error = message.get("cmd"), message.get("ok"), message.get("error")
        if not _is_int(cmd) or not isinstance(ok, bool) or not (error is None or isinstance(error, str)):
            return False
        for number, outgoing in list(session.outgoing.items()):
            if outgoing.cmd == cmd:
                # The result implies the command arrived.
                del session.outgoing[number]
        update = CommandUpdate(cmd, CommandStatus.SUCCEEDED if ok else CommandStatus.FAILED, error or "")
        self._enqueue(Pending(state, session, seq, command=update, address=state.address))
        return True

    # Encoders and updaters: devices/sdp/encoderlink.py.
    def _on_progress(self, state: DeviceState, session: Session, seq: int, message: dict) -> bool:
        return self.encoders.on_progress(state, session, seq, message)

    def _on_encoded(self, state: DeviceState, session: Session, seq: int, message: dict) -> bool:
        return self.encoders.on_encoded(state, session, seq, message)

    def _on_card(self, state: DeviceState, session: Session, seq: int, message: dict) -> bool:
        return self.encoders.on_card(state, session, seq, message)

    def store_job_update(self, state, update: JobUpdate, session: Session | None = None, seq: int = 0) -> None:
        """Store an encode job's progress (``update``) through the writer, in its next batch; with ``session``,
        acknowledge the device's frame ``seq`` once it is committed. Public for devices/sdp/encoderlink.py;
        ``EncoderLink.stored`` hears when it is."""
        address = state.address if session is not None else None
        self._enqueue(Pending(state, session, seq, job=update, ack=session is not None, address=address))

    _handlers = {
        "access": _on_access,
        "event": _on_event,
        "status": _on_status,
        "ack": _on_ack,
        "result": _on_result,
        "progress": _on_progress,
        "encoded": _on_encoded,
        "card": _on_card,
    }

    # --- presence ------------------------------------------------------------------

    def _seen(self, state: DeviceState, now: float) -> None:
        state.last_seen = now
        if not state.online:
            self._set_online(state, True)

    def _set_online(self, state: DeviceState, online: bool) -> None:
        state.online = online
        address = f"{state.address[0]}:{state.address[1]}" if state.address else ""
        fields = self._device_fields.setdefault(state.config.pk, {})
        fields.update(online=online, last_seen_at=timezone.now(), address=address)
        kind = AuditKind.DEVICE_ONLINE if online else AuditKind.DEVICE_OFFLINE
        audit = AuditEvent(
            at=timezone.now(),
            kind=kind,
            device_id=state.config.pk,
            detail={"device": state.config.name, "address": address},
        )
        self._enqueue(Pending(state, None, 0, event=audit, ack=False))
        logger.info(
            "Device %s (%s) is %s", state.config.device_id, state.config.name, "online" if online else "offline"
        )

    # --- the writer ---------------------------------------------------------------

    def _enqueue(self, item: Pending) -> None:
        self._queue.append(item)
        self._queue_ready.set()

    async def _writer_task(self) -> None:
        while True:
            if not (self._queue or self._device_fields):
                if self._stopping:
                    return
                await self._queue_ready.wait()
                self._queue_ready.clear()
            while self._queue or self._device_fields:
                if len(self._queue) < WRITER_BATCH and not self._stopping:
                    # A moment to gather more: one commit for many rows is what makes the writer fast.
                    await asyncio.sleep(WRITER_GATHER_SECONDS)
                try:
                    await self._flush()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.counters["store_failures"] += 1
                    logger.exception("Device bridge: storing a batch failed; retrying")
                    await asyncio.sleep(WRITER_RETRY_SECONDS)

    async def _flush(self) -> None:
        """Store the next batch (and the pending device status); on success send its acks."""
        batch = [self._queue.popleft() for _ in range(min(len(self._queue), WRITER_BATCH))]
        devices, self._device_fields = self._device_fields, {}
        passages, self._passages = self._passages, []
        alarms, self._alarms = self._alarms, []
        events = [item.event for item in batch if item.event is not None]
        commands = [item.command for item in batch if item.command is not None]
        jobs = [item.job for item in batch if item.job is not None]
        try:
            payloads = await self.write(_store, events, commands, devices, timezone.now(), jobs, alarms, None, passages)
        except BaseException:
            # Nothing of it was stored: put it back, in order, for the next try.
            self._queue.extendleft(reversed(batch))
            self._passages[:0] = passages
            self._alarms[:0] = alarms
            for pk, fields in devices.items():
                self._device_fields[pk] = {**fields, **self._device_fields.get(pk, {})}
            raise
        self.counters["events_stored"] += len(events)
        if self.journal is not None:
            self.journal.stored(sum(item.journaled for item in batch))
        for update in commands:
            if update.status == CommandStatus.QUEUED or update.status in CommandStatus.finished():
                # Only now may the poller see it queued again (or no longer see it at all).
                self._in_flight.pop(update.cmd, None)
        self.encoders.stored(jobs)
        if any(update.status in EncodeStatus.finished() for update in jobs):
            jobwake.jobs_finished()
        for item in batch:
            if item.ack and item.session is not None:
                self.answer(item.state, item.session, item.seq, {"t": "ack", "seq": item.seq}, item.address)
        self._live.extend(payloads)

    async def _publisher(self) -> None:
        """Send what happened (events after their commit) to the monitoring websockets, in batches
        a few tens of milliseconds apart: a batch costs each open monitor one message."""
        while True:
            await asyncio.sleep(PUBLISH_SECONDS)
            if self._live:
                items, self._live = self._live, []
                await live.publish(items)

    # --- database work; public for encoders and updaters (devices/sdp/encoderlink.py) -------

    async def write(self, function, *args):
        """``function(*args)`` on the bridge's writer thread, one at a time with its batches (database writes)."""
        return await self.loop.run_in_executor(self._writer, run_orm, function, *args)

    async def read(self, function, *args):
        """``function(*args)`` on the bridge's reader thread (database reads, off the writer's queue)."""
        return await asyncio.get_running_loop().run_in_executor(self._reader, run_orm, function, *args)

    # --- background work ----------------------------------------------------------

    async def _refresher(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.read(self.decider.refresh)
                await self._reload_registry()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.counters["refresh_failures"] += 1
                logger.exception("Device bridge: refreshing the rules failed")
                await asyncio.sleep(1.0)

    async def _reload_registry(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._loaded_at < REGISTRY_SECONDS:
            return
        self._loaded_at = now
        fingerprint = await self.read(recorder.registry_fingerprint)
        if not force and fingerprint == self._fingerprint and now - self._full_at < REGISTRY_FULL_RELOAD_SECONDS:
            return
        registry = await self.read(recorder.load_registry)
        self._fingerprint = fingerprint
        self._full_at = now
        devices = {}
        for device_id, config in registry.items():
            state = self.devices.get(device_id)
            if state is None or state.config.pk != config.pk:
                state = DeviceState(config, online=config.online, last_seen=now)
            elif state.config.key != config.key:
                # A new key: the old session and handshakes were made with the old one.
                state.config, state.session = config, None
                state.half_open.clear()
            else:
                state.config = config
            devices[device_id] = state
        self.devices = devices
        self.by_pk = {state.config.pk: state for state in devices.values()}

    def _wake_commands(self) -> None:
        """An encode job was queued in this process (any thread): read the queued jobs now."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._jobs_queued.set)

    async def _commands(self) -> None:
        expired_at = 0.0
        while True:
            # The poll finds jobs and commands queued by other processes; a job of this process wakes it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._jobs_queued.wait(), COMMAND_POLL_SECONDS)
            self._jobs_queued.clear()
            try:
                online = [s.config.pk for s in self.devices.values() if s.session is not None and s.online]
                if online:
                    rows = await self.read(recorder.queued_commands, online, set(self._in_flight))
                    for cmd, device_pk, op, args in rows:
                        self._send_command(cmd, device_pk, op, args)
                await self.encoders.poll()
                if time.monotonic() - expired_at > 30:
                    expired_at = time.monotonic()
                    await self.write(recorder.expire_commands, COMMAND_TTL, timezone.now())
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Device bridge: reading commands failed")
                await asyncio.sleep(1.0)

    def _send_command(self, cmd: int, device_pk: int, op: str, args: dict) -> None:
        state = self.by_pk.get(device_pk)
        if state is None or state.session is None or cmd in self._in_flight:
            return
        session = state.session
        self.send(state, session, {"t": "cmd", "cmd": cmd, "op": op, "args": args}, cmd=cmd)
        self._in_flight[cmd] = (state, session, session.send_seq)
        self._enqueue(Pending(state, None, 0, command=CommandUpdate(cmd, CommandStatus.SENT), ack=False))

    async def _timers(self) -> None:
        """Retransmit unacknowledged server frames; mark silent devices offline; flush device status."""
        flushed_at = time.monotonic()
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            for state in list(self.devices.values()):
                session = state.session
                if session is not None and session.outgoing:
                    self._retransmit(state, session, now)
                if session is not None and session.link.transfers:
                    self.counters["card_transfers_expired"] += self.encoders.expire_transfers(session, now)
                if state.online and now - state.last_seen > MISSED_HEARTBEATS * self.heartbeat_s:
                    self._set_online(state, False)
            self.encoders.tick(now)
            if now - flushed_at >= DEVICE_STATUS_FLUSH_SECONDS:
                flushed_at = now
                self._record_last_seen()

    def _retransmit(self, state: DeviceState, session: Session, now: float) -> None:
        for seq, outgoing in list(session.outgoing.items()):
            if now < outgoing.next_at:
                continue
            if outgoing.tries >= RETRY_TRIES:
                del session.outgoing[seq]
                self.counters["unacknowledged"] += 1
                if outgoing.cmd is not None:
                    # Not delivered: back to the queue, for this session or the device's next one.
                    update = CommandUpdate(outgoing.cmd, CommandStatus.QUEUED)
                    self._enqueue(Pending(state, None, 0, command=update, ack=False))
                if outgoing.job is not None:
                    self.encoders.undelivered(outgoing.job)
                continue
            outgoing.tries += 1
            outgoing.interval *= 2
            outgoing.next_at = now + outgoing.interval
            self.counters["retransmissions"] += 1
            self._send(outgoing.datagram, state.address)

    def _record_last_seen(self) -> None:
        wall, mono = time.time(), time.monotonic()
        for state in self.devices.values():
            if state.online:
                seen = dt.datetime.fromtimestamp(wall - (mono - state.last_seen), tz=dt.UTC)
                self._device_fields.setdefault(state.config.pk, {})["last_seen_at"] = seen
        if self._device_fields:
            self._queue_ready.set()


def _store(*args) -> list[dict]:
    """Store a batch (recorder.store); returns the payloads of its new events, for the publisher to send.

    Runs on the writer thread: the monitor's sink gathers the payloads at the
    commit instead of publishing them from this thread, one message per
    commit; the publisher sends them from the event loop, with the door states.
    """
    with live.collect() as payloads:
        recorder.store(*args)
    return payloads


def _store_journaled(events, now) -> list[dict]:
    """``recorder.store_journaled_decisions``; returns the payloads of the rows stored, for the publisher."""
    with live.collect() as payloads:
        recorder.store_journaled_decisions(events, now)
    return payloads


def _enlarge_receive_buffer(sock) -> None:
    """Room for bursts (hundreds of devices reconnecting at once); the kernel caps it at net.core.rmem_max."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
