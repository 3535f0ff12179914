"""The device side of SDP/1 in asyncio: simulated control units for tests, load benchmarks and demos.

A :class:`SimulatedDevice` is what a third party's device would be, written from
``docs/sdp1.md`` alone: it shakes hands, checks the server's proof,
keeps its own seq and replay window, retransmits what expects an answer (250 ms,
doubling, 5 tries), answers a duplicate server frame with the same datagram,
keeps its events until they are acknowledged and re-sends them in the next
session, answers commands and sends a heartbeat ``status``. Many devices share
one event loop; each has its own UDP socket (its own source port), as hardware
does. All bytes come from :mod:`devices.sdp.codec`.

:func:`run_load` drives a set of devices at a target rate of card presentations
and other events and returns the statistics of the run.
"""

import asyncio
import contextlib
import datetime as dt
import random
import secrets
from array import array
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from devices.sdp import codec as sdp1

RETRY_FIRST_S = 0.25
TRIES = 5
# Events in flight per session; the rest of the buffer waits for acks (a device never floods its link).
EVENT_WINDOW = 16
DEFAULT_HEARTBEAT_S = 30
# Commands remembered so that one the server sends again is not carried out twice.
REMEMBERED_COMMANDS = 1024

ACK = "ack"
ACCESS = "access"
EVENT = "event"
STATUS = "status"
RESULT = "result"


class NoDecision(Exception):
    """The server did not answer an ``access`` after every retransmission (or the device stopped)."""


@dataclass(slots=True)
class DeviceStats:
    """What one device did and saw. Events count once per event id, however often they are sent."""

    hellos: int = 0  # handshakes begun (each with a fresh nonce_d)
    handshakes: int = 0  # sessions opened (a welcome received)
    session_breaks: int = 0  # sessions given up after a frame went unanswered
    frames_sent: int = 0  # datagrams, retransmissions included
    frames_received: int = 0
    retransmissions: int = 0
    access_sent: int = 0
    decisions: int = 0
    granted: int = 0
    refused: int = 0
    no_decision: int = 0
    events_queued: int = 0
    events_sent: int = 0
    events_acked: int = 0
    statuses_sent: int = 0
    statuses_acked: int = 0
    commands: int = 0
    results_sent: int = 0
    results_acked: int = 0
    duplicates: int = 0  # server frames received again, answered with the datagram sent the first time
    unknown: int = 0  # verified frames whose message the device does not understand
    stray: int = 0  # an ack or decision for nothing outstanding
    socket_errors: int = 0  # ICMP errors reported on the socket (the server's port closed, ...)
    drops: Counter = field(default_factory=Counter)  # datagrams dropped, by reason
    latencies: array = field(default_factory=lambda: array("d"))  # seconds, first send of access to decision

    def counters(self) -> dict[str, int]:
        numbers = {
            name: getattr(self, name) for name in self.__dataclass_fields__ if name not in ("drops", "latencies")
        }
        numbers["dropped"] = sum(self.drops.values())
        return numbers


class _Pending:
    """A frame of ours that expects an answer, with its retransmission timer."""

    __slots__ = ("datagram", "delay", "first_sent", "future", "kind", "ref", "seq", "timer", "tries")

    def __init__(self, kind: str, ref, seq: int, datagram: bytes, first_sent: float, delay: float):
        self.kind = kind
        self.ref = ref  # req, event id or cmd
        self.seq = seq
        self.datagram = datagram
        self.first_sent = first_sent
        self.delay = delay
        self.tries = 1
        self.timer = None
        self.future = None


class _Session:
    __slots__ = (
        "answers",
        "events_in_flight",
        "id",
        "next_req",
        "next_seq",
        "open",
        "opener",
        "pending",
        "requests",
        "sealer",
        "window",
    )

    def __init__(self, session_id: int, k_d2s: bytes, k_s2d: bytes):
        self.id = session_id
        self.sealer = AESGCM(k_d2s)
        self.opener = AESGCM(k_s2d)
        self.next_seq = 1
        self.next_req = 1
        self.window = sdp1.ReplayWindow()
        self.answers: dict[int, bytes] = {}  # server seq -> the datagram that answered it
        self.pending: dict[int, _Pending] = {}  # our seq -> frame awaiting its answer
        self.requests: dict[int, _Pending] = {}  # req -> access awaiting its decision
        self.open = False  # from the welcome on
        self.events_in_flight: set[int] = set()  # event ids sent in this session, not acknowledged yet


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, device: "SimulatedDevice"):
        self.device = device

    def datagram_received(self, data: bytes, addr) -> None:
        self.device._receive(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while the server is down: the retransmissions cover it.
        self.device.stats.socket_errors += 1


def utc_timestamp(now: dt.datetime | None = None) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ``, the protocol's event time."""
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SimulatedDevice:
    """One SDP/1 device on the event loop it is started on.

    ``readers`` maps each reader number to the door it opens (default ``{1: 1}``).
    ``uids`` is the pool of card UIDs (hex) that :meth:`random_uid` draws from.
    ``first_event_id`` lets a device that restarts continue its event counter.
    ``nonces`` (a function of a byte count) replaces the random source, for test vectors.
    """

    def __init__(
        self,
        device_id: int,
        key: bytes,
        server: tuple[str, int],
        *,
        readers: dict[int, int] | None = None,
        doors=(),
        uids=(),
        first_event_id: int = 1,
        firmware: str = "space-sim/1",
        battery: int | None = None,
        local_host: str | None = None,
        retry_first_s: float = RETRY_FIRST_S,
        tries: int = TRIES,
        event_window: int = EVENT_WINDOW,
        door_hold_s: float = 1.0,
        nonces=secrets.token_bytes,
    ):
        self.device_id = device_id
        self.key = key
        self.server = server
        self.readers = dict(readers or {1: 1})
        self.doors = sorted(set(doors) | set(self.readers.values()))
        self.door_states = {door: "closed" for door in self.doors}
        self.uids = list(uids)
        self.firmware = firmware
        self.battery = battery
        self.tamper = False
        self.local_host = local_host
        self.retry_first_s = retry_first_s
        self.tries = tries
        self.event_window = event_window
        self.door_hold_s = door_hold_s
        self.heartbeat_s = DEFAULT_HEARTBEAT_S
        self.server_time: str | None = None
        self.stats = DeviceStats()
        self._nonces = nonces
        self._next_event_id = first_event_id
        self._events: dict[int, dict] = {}  # unacknowledged events, by id, oldest first
        self._never_sent: set[int] = set()
        self._event_waiters: dict[int, asyncio.Future] = {}
        self._results: dict[int, dict] = {}  # unacknowledged results, by cmd
        self._commands_done: OrderedDict[int, dict] = OrderedDict()
        self._session: _Session | None = None
        self._handshake_task: asyncio.Task | None = None
        self._challenge: asyncio.Future | None = None
        self._welcome: asyncio.Future | None = None
        self._nonce_d = b""
        self._heartbeat = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._transport: asyncio.DatagramTransport | None = None
        self._online: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self):
        return f"<SimulatedDevice {self.device_id} {'online' if self.online else 'offline'}>"

    # --- life cycle -------------------------------------------------------------

    async def start(self) -> None:
        """Open the socket and begin the handshake in the background."""
        if self._transport is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._online = asyncio.Event()
        local = (self.local_host, 0) if self.local_host else None
        self._transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _Endpoint(self), local_addr=local, remote_addr=self.server
        )
        self._start_handshake()

    async def wait_online(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._online.wait(), timeout)

    async def connect(self, timeout: float | None = None) -> None:
        await self.start()
        await self.wait_online(timeout)

    async def stop(self) -> None:
        """Close the socket; outstanding access requests fail with :class:`NoDecision`, events stay buffered."""
        if self._transport is None:
            return
        self._end_session(broken=False)
        for waiter in self._event_waiters.values():
            waiter.cancel()
        self._event_waiters.clear()
        if self._handshake_task is not None:
            self._handshake_task.cancel()
            await asyncio.gather(self._handshake_task, return_exceptions=True)
            self._handshake_task = None
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._transport.close()
        self._transport = None

    @property
    def online(self) -> bool:
        return self._session is not None and self._session.open

    @property
    def session_id(self) -> int | None:
        return self._session.id if self.online else None

    @property
    def local_address(self) -> tuple[str, int]:
        return self._transport.get_extra_info("sockname")[:2]

    @property
    def next_event_id(self) -> int:
        return self._next_event_id

    @property
    def unacked_events(self) -> list[dict]:
        return list(self._events.values())

    # --- what a device does -----------------------------------------------------

    async def present_card(self, reader: int, uid: str, *, pin: str | None = None) -> dict:
        """Ask the server about a card at ``reader`` and return its ``decision`` message."""
        return await self.request_access(reader, {"kind": "card", "uid": uid}, pin=pin)

    async def request_access(self, reader: int, cred: dict, *, pin: str | None = None) -> dict:
        """Send ``access`` with any credential (card, pin, mobile) once a session is open; the ``decision``.

        Raises :class:`NoDecision` when every retransmission went unanswered.
        """
        await self._online.wait()
        session = self._session
        req = session.next_req
        session.next_req += 1
        message = {"t": ACCESS, "req": req, "reader": reader, "cred": cred}
        if pin is not None:
            message["pin"] = pin
        pending = self._request(session, ACCESS, message, req)
        pending.future = self._loop.create_future()
        session.requests[req] = pending
        self.stats.access_sent += 1
        return await pending.future

    def queue_event(
        self,
        kind: str,
        *,
        door: int | None = None,
        key: str | None = None,
        detail: dict | None = None,
        at: str | None = None,
    ) -> int:
        """Buffer an event under the next event id and send it if a session is open; returns the id."""
        event_id = self._next_event_id
        self._next_event_id += 1
        event = {"id": event_id, "at": at or utc_timestamp(), "kind": kind}
        if door is not None:
            event["door"] = door
            self._track_door(kind, door)
        if key is not None:
            event["key"] = key
        if detail is not None:
            event["detail"] = detail
        self._events[event_id] = event
        self._never_sent.add(event_id)
        self.stats.events_queued += 1
        if self.online:
            self._send_event(self._session, event)
        return event_id

    async def send_event(self, kind: str, **members) -> int:
        """:meth:`queue_event`, then wait until the server acknowledges it (over as many sessions as it takes)."""
        event_id = self.queue_event(kind, **members)
        await self.wait_acked(event_id)
        return event_id

    async def wait_acked(self, event_id: int) -> None:
        if event_id not in self._events:
            return
        waiter = self._event_waiters.get(event_id)
        if waiter is None:
            waiter = self._event_waiters[event_id] = self._loop.create_future()
        await asyncio.shield(waiter)

    def send_status(self) -> None:
        """Send a ``status`` now (the heartbeat does this every ``heartbeat_s``)."""
        if not self.online:
            return
        message = {"t": STATUS, "doors": {str(door): state for door, state in self.door_states.items()}}
        if self.battery is not None:
            message["battery"] = self.battery
        message["tamper"] = self.tamper
        message["fw"] = self.firmware
        self._request(self._session, STATUS, message, None)
        self.stats.statuses_sent += 1

    def random_reader(self, rng=random) -> int:
        return rng.choice(list(self.readers))

    def random_uid(self, rng=random) -> str:
        return rng.choice(self.uids)

    def _track_door(self, kind: str, door: int) -> None:
        state = {"door_opened": "open", "door_closed": "closed", "door_left_open": "left_open", "door_forced": "forced"}
        if kind in state and door in self.door_states:
            self.door_states[door] = state[kind]

    # --- handshake --------------------------------------------------------------

    def _start_handshake(self) -> None:
        if self._handshake_task is None or self._handshake_task.done():
            self._handshake_task = self._loop.create_task(self._handshake())

    async def _handshake(self) -> None:
        while True:
            self._nonce_d = self._nonces(sdp1.NONCE_SIZE)
            self._challenge = self._loop.create_future()
            self.stats.hellos += 1
            answer = await self._exchange(sdp1.hello(self.device_id, self._nonce_d), self._challenge)
            if answer is None:
                continue
            session_id, nonce_s = answer
            keys = sdp1.session_keys(self.key, self.device_id, session_id, self._nonce_d, nonce_s)
            self._session = _Session(session_id, *keys)
            self._welcome = self._loop.create_future()
            proof_d = sdp1.device_proof(self.key, self.device_id, session_id, self._nonce_d, nonce_s)
            if await self._exchange(sdp1.auth(self.device_id, session_id, proof_d), self._welcome) is not None:
                return
            self._session = None

    async def _exchange(self, datagram: bytes, answer: asyncio.Future):
        """Send ``datagram`` until ``answer`` is set, per the retransmission schedule; None when it never is."""
        delay = self.retry_first_s
        for attempt in range(self.tries):
            if attempt:
                self.stats.retransmissions += 1
            self._send(datagram)
            await asyncio.wait({answer}, timeout=delay)
            if answer.done():
                return answer.result()
            delay *= 2
        answer.cancel()
        return None

    def _on_challenge(self, frame: sdp1.Frame) -> None:
        if self._challenge is None or self._challenge.done():
            self.stats.drops["unexpected_challenge"] += 1
            return
        nonce_s, proof_s = frame.body[: sdp1.NONCE_SIZE], frame.body[sdp1.NONCE_SIZE :]
        expected = sdp1.server_proof(self.key, self.device_id, frame.session_id, self._nonce_d, nonce_s)
        if not sdp1.proofs_equal(expected, proof_s):
            self.stats.drops["bad_proof"] += 1
            return
        self._challenge.set_result((frame.session_id, nonce_s))

    # --- receiving --------------------------------------------------------------

    def _receive(self, datagram: bytes) -> None:
        self.stats.frames_received += 1
        try:
            frame = sdp1.parse(datagram, sdp1.FROM_SERVER)
        except sdp1.Malformed as error:
            self.stats.drops[error.reason] += 1
            return
        if frame.device_id != self.device_id:
            self.stats.drops["other_device"] += 1
        elif frame.type == sdp1.CHALLENGE:
            self._on_challenge(frame)
        else:
            self._on_sealed(frame)

    def _on_sealed(self, frame: sdp1.Frame) -> None:
        session = self._session
        if session is None or frame.session_id != session.id:
            self.stats.drops["unknown_session"] += 1
            return
        if not session.window.in_window(frame.seq):
            self.stats.drops["outside_window"] += 1
            return
        try:
            plaintext = sdp1.unseal(session.opener, frame)
        except InvalidTag:
            self.stats.drops["bad_tag"] += 1
            return
        message = sdp1.decode(plaintext)
        kind = message and message["t"]
        if not session.open and kind != "welcome":
            # Overtook the welcome: left unaccepted, so that its retransmission is processed once the session opens.
            self.stats.drops["before_welcome"] += 1
            return
        if not session.window.accept(frame.seq):
            self.stats.duplicates += 1
            answer = session.answers.get(frame.seq)
            if answer is not None:
                self._send(answer)
            return
        if kind == "welcome":
            self._on_welcome(session, frame.seq, message)
        elif kind == ACK:
            self._on_ack(session, message)
        elif kind == "decision":
            self._on_decision(session, message)
        elif kind == "cmd":
            self._on_command(session, frame.seq, message)
        elif not self._on_other(session, frame.seq, message):
            self.stats.unknown += 1

    def _on_other(self, session: _Session, seq: int, message: dict) -> bool:
        """Messages of other device kinds (simulation/encoders.py); False: not understood."""
        return False

    def _acked(self, pending: _Pending) -> None:
        """A frame of another kind (sent by a subclass) was acknowledged."""

    def _resume(self, session: _Session) -> None:
        """A new session opened: a subclass re-sends what it has not seen acknowledged."""

    def _on_welcome(self, session: _Session, seq: int, message: dict) -> None:
        self._answer(session, seq, {"t": ACK, "seq": seq})
        if session.open:
            return
        session.open = True
        heartbeat_s = message.get("heartbeat_s")
        self.heartbeat_s = heartbeat_s if isinstance(heartbeat_s, int) and heartbeat_s > 0 else DEFAULT_HEARTBEAT_S
        self.server_time = message.get("time")
        self.stats.handshakes += 1
        if self._welcome is not None and not self._welcome.done():
            self._welcome.set_result(message)
        self._online.set()
        self._heartbeat = self._loop.call_later(self.heartbeat_s, self._beat, session)
        for cmd, result in self._results.items():
            self._request(session, RESULT, result, cmd)
        for event in self._events.values():
            self._send_event(session, event)
        self._resume(session)

    def _on_ack(self, session: _Session, message: dict) -> None:
        seq = message.get("seq")
        pending = session.pending.get(seq) if isinstance(seq, int) else None
        if pending is None or pending.kind == ACCESS:
            self.stats.stray += 1
            return
        del session.pending[seq]
        pending.timer.cancel()
        if pending.kind == EVENT:
            session.events_in_flight.discard(pending.ref)
            if self._events.pop(pending.ref, None) is not None:
                self.stats.events_acked += 1
            self._send_buffered_events(session)
            waiter = self._event_waiters.pop(pending.ref, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif pending.kind == RESULT:
            if self._results.pop(pending.ref, None) is not None:
                self.stats.results_acked += 1
        elif pending.kind == STATUS:
            self.stats.statuses_acked += 1
        else:
            self._acked(pending)

    def _on_decision(self, session: _Session, message: dict) -> None:
        req = message.get("req")
        pending = session.requests.pop(req, None) if isinstance(req, int) else None
        if pending is None:
            self.stats.stray += 1
            return
        del session.pending[pending.seq]
        pending.timer.cancel()
        self.stats.latencies.append(self._loop.time() - pending.first_sent)
        self.stats.decisions += 1
        if message.get("grant") is True:
            self.stats.granted += 1
        else:
            self.stats.refused += 1
        if not pending.future.done():
            pending.future.set_result(message)

    # --- commands ---------------------------------------------------------------

    def _on_command(self, session: _Session, seq: int, message: dict) -> None:
        self._answer(session, seq, {"t": ACK, "seq": seq})
        cmd = message.get("cmd")
        if not isinstance(cmd, int) or cmd in self._results:
            return
        self.stats.commands += 1
        result = self._commands_done.get(cmd)
        events = []
        if result is None:
            args = message.get("args")
            ok, error, events = self._carry_out(message.get("op"), args if isinstance(args, dict) else {})
            result = {"t": RESULT, "cmd": cmd, "ok": ok}
            if error:
                result["error"] = error
            self._commands_done[cmd] = result
            if len(self._commands_done) > REMEMBERED_COMMANDS:
                self._commands_done.popitem(last=False)
        self._results[cmd] = result
        self._request(session, RESULT, result, cmd)
        self.stats.results_sent += 1
        for kind, door, detail in events:
            self.queue_event(kind, door=door, detail=detail)
            if kind == "door_opened":
                self._later(self.door_hold_s, self._close_door, door)

    def _carry_out(self, op, args: dict) -> tuple[bool, str, list[tuple[str, int, dict]]]:
        """``(ok, error, events)`` for one command; the events are ``(kind, door, detail)``."""
        door = args.get("door")
        if door is not None and door not in self.door_states:
            return False, f"unknown door {door}", []
        doors = [door] if door is not None else self.doors
        if op == "open":
            door = doors[0]
            if self.door_states[door] != "closed":
                return True, "", []
            return True, "", [("door_opened", door, {"by": "command"})]
        if op == "set_mode":
            mode = args.get("mode")
            if not isinstance(mode, str):
                return False, "set_mode needs a mode", []
            return True, "", [("mode_changed", d, {"mode": mode}) for d in doors]
        if op in ("emergency_open", "emergency_close", "end_emergency"):
            mode = "normal" if op == "end_emergency" else op
            return True, "", [("mode_changed", d, {"mode": mode}) for d in doors]
        if op in ("set_time", "blacklist"):
            return True, "", []
        return False, f"unsupported op {op!r}", []

    def _close_door(self, door: int) -> None:
        if self.door_states.get(door) != "closed":
            self.queue_event("door_closed", door=door)

    # --- sending ----------------------------------------------------------------

    def _send(self, datagram: bytes) -> None:
        if self._transport is not None:
            self._transport.sendto(datagram)
            self.stats.frames_sent += 1

    def _seal(self, session: _Session, message: dict) -> tuple[int, bytes]:
        seq = session.next_seq
        session.next_seq += 1
        return seq, sdp1.seal(session.sealer, self.device_id, session.id, seq, sdp1.encode(message))

    def _answer(self, session: _Session, server_seq: int, message: dict) -> None:
        """Send an answer that expects none, and keep it for a duplicate of ``server_seq``."""
        _, datagram = self._seal(session, message)
        session.answers[server_seq] = datagram
        if len(session.answers) > 2 * sdp1.REPLAY_WINDOW:
            floor = session.window.highest - sdp1.REPLAY_WINDOW
            session.answers = {seq: sent for seq, sent in session.answers.items() if seq > floor}
        self._send(datagram)

    def _request(self, session: _Session, kind: str, message: dict, ref) -> _Pending:
        seq, datagram = self._seal(session, message)
        pending = _Pending(kind, ref, seq, datagram, self._loop.time(), self.retry_first_s)
        session.pending[seq] = pending
        self._send(datagram)
        pending.timer = self._loop.call_later(pending.delay, self._retransmit, session, pending)
        return pending

    def _send_buffered_events(self, session: _Session) -> None:
        """Fill the event window from the buffer, oldest first."""
        for event_id, event in self._events.items():
            if len(session.events_in_flight) >= self.event_window:
                return
            if event_id not in session.events_in_flight:
                self._send_event(session, event)

    def _send_event(self, session: _Session, event: dict) -> None:
        if len(session.events_in_flight) >= self.event_window:
            return  # it stays in the buffer; an ack makes room
        session.events_in_flight.add(event["id"])
        self._request(session, EVENT, {"t": EVENT, "ev": event}, event["id"])
        if event["id"] in self._never_sent:
            self._never_sent.discard(event["id"])
            self.stats.events_sent += 1

    def _retransmit(self, session: _Session, pending: _Pending) -> None:
        if session is not self._session or session.pending.get(pending.seq) is not pending:
            return
        if pending.tries >= self.tries:
            self._end_session()
            self._start_handshake()
            return
        pending.tries += 1
        pending.delay *= 2
        self.stats.retransmissions += 1
        self._send(pending.datagram)
        pending.timer = self._loop.call_later(pending.delay, self._retransmit, session, pending)

    def _end_session(self, broken: bool = True) -> None:
        """Give up the session: access requests fail; events and results wait for the next one."""
        session = self._session
        self._session = None
        if self._online is not None:
            self._online.clear()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        if session is None:
            return
        if session.open and broken:
            self.stats.session_breaks += 1
        for pending in session.pending.values():
            pending.timer.cancel()
            if pending.kind == ACCESS and not pending.future.done():
                self.stats.no_decision += 1
                pending.future.set_exception(NoDecision(f"no decision for req {pending.ref}"))

    def _beat(self, session: _Session) -> None:
        if session is not self._session:
            return
        if not any(pending.kind == STATUS for pending in session.pending.values()):
            self.send_status()
        self._heartbeat = self._loop.call_later(self.heartbeat_s, self._beat, session)

    def _later(self, delay: float, callback, *args) -> None:
        def fire():
            self._timers.discard(timer)
            callback(*args)

        timer = self._loop.call_later(delay, fire)
        self._timers.add(timer)


# --- load -------------------------------------------------------------------------


class _Traffic:
    """The people at the doors: card presentations, passages after a grant, exits by push button."""

    def __init__(self, rng: random.Random, hold_s: tuple[float, float], left_open_share: float):
        self.rng = rng
        self.hold_s = hold_s
        self.left_open_share = left_open_share
        self.tasks: set[asyncio.Task] = set()
        self.timers: set[asyncio.TimerHandle] = set()
        self.loop = asyncio.get_running_loop()

    @property
    def busy(self) -> bool:
        return bool(self.tasks or self.timers)

    def present_card(self, device: SimulatedDevice) -> None:
        task = self.loop.create_task(self._visit(device))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _visit(self, device: SimulatedDevice) -> None:
        reader = device.random_reader(self.rng)
        uid = device.random_uid(self.rng)
        try:
            decision = await device.present_card(reader, uid)
        except NoDecision:
            return
        if decision.get("grant") is True:
            self._pass(device, device.readers[reader], key=uid)

    def exit_by_button(self, device: SimulatedDevice) -> None:
        left_open = self.rng.random() < self.left_open_share
        self._pass(device, self.rng.choice(device.doors), detail={"by": "exit_button"}, left_open=left_open)

    def _pass(self, device: SimulatedDevice, door: int, *, key=None, detail=None, left_open=False) -> None:
        if device.door_states.get(door) != "closed":
            return  # someone is already going through
        device.queue_event("door_opened", door=door, key=key, detail=detail)
        hold = self.rng.uniform(*self.hold_s)
        if left_open:
            self._later(hold, device.queue_event, "door_left_open", door)
            hold *= 2
        self._later(hold, device.queue_event, "door_closed", door)

    def _later(self, delay: float, queue_event, kind: str, door: int) -> None:
        def fire():
            self.timers.discard(timer)
            queue_event(kind, door=door)

        timer = self.loop.call_later(delay, fire)
        self.timers.add(timer)


def _totals(devices) -> dict[str, int]:
    totals = Counter()
    for device in devices:
        totals.update(device.stats.counters())
    return totals


def _percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _latency_ms(latencies: list[float]) -> dict[str, float] | None:
    if not latencies:
        return None
    ordered = sorted(latencies)
    figures = {"mean": sum(ordered) / len(ordered)}
    figures.update({f"p{round(share * 100)}": _percentile(ordered, share) for share in (0.5, 0.95, 0.99)})
    figures["max"] = ordered[-1]
    return {name: round(value * 1000, 2) for name, value in figures.items()}


async def run_load(
    devices: list[SimulatedDevice],
    rate: float,
    seconds: float | None = None,
    *,
    stop: asyncio.Event | None = None,
    card_share: float = 0.75,
    hold_s: tuple[float, float] = (0.5, 3.0),
    left_open_share: float = 0.05,
    connect_timeout: float = 30.0,
    drain_s: float = 10.0,
    seed: int | None = None,
) -> dict:
    """Run traffic through ``devices`` (started here if need be) and return the run's statistics.

    ``rate`` actions per second over all devices, each at a random online device: a
    card presentation (share ``card_share``; after a grant, ``door_opened`` and
    ``door_closed`` ``hold_s`` later) or an exit by push button (the same door
    events without a key, now and then with ``door_left_open``). The run lasts
    ``seconds`` or until ``stop`` is set; then it waits up to ``drain_s`` for the
    answers and acknowledgements still due. Frame rates are over the load window.
    """
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    initial = _totals(devices)
    await asyncio.gather(*(device.start() for device in devices))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(device.wait_online() for device in devices)), connect_timeout)
    online = sum(device.online for device in devices)
    traffic = _Traffic(rng, hold_s, left_open_share)
    before = _totals(devices)
    marks = [len(device.stats.latencies) for device in devices]
    actions = skipped = 0
    started = loop.time()
    while not (stop is not None and stop.is_set()):
        now = loop.time()
        if seconds is not None and now - started >= seconds:
            break
        for _ in range(int(rate * (now - started)) - actions - skipped):
            device = rng.choice(devices)
            if not device.online:
                skipped += 1
            elif rng.random() < card_share:
                traffic.present_card(device)
                actions += 1
            else:
                traffic.exit_by_button(device)
                actions += 1
        await asyncio.sleep(0.005)
    window = loop.time() - started
    during = _totals(devices)
    drain_until = loop.time() + drain_s
    while loop.time() < drain_until and (traffic.busy or any(device.unacked_events for device in devices)):
        await asyncio.sleep(0.05)
    after = _totals(devices)
    unanswered = len(traffic.tasks)
    for task in list(traffic.tasks):
        task.cancel()
    latencies = [value for device, mark in zip(devices, marks, strict=True) for value in device.stats.latencies[mark:]]
    delta = {name: after[name] - initial[name] for name in after}
    in_window = {name: during[name] - before[name] for name in during}
    return {
        "devices": len(devices),
        "online_at_start": online,
        "online_at_end": sum(device.online for device in devices),
        "seconds": round(window, 3),
        "rate": rate,
        "actions": actions,
        "skipped_offline": skipped,
        "presentations": delta["access_sent"],
        "decisions": delta["decisions"],
        "granted": delta["granted"],
        "refused": delta["refused"],
        "no_decision": delta["no_decision"],
        "unanswered": unanswered,
        "latency_ms": _latency_ms(latencies),
        "events_sent": delta["events_sent"],
        "events_acked": delta["events_acked"],
        "events_unacked": sum(len(device.unacked_events) for device in devices),
        "statuses_sent": delta["statuses_sent"],
        "commands": delta["commands"],
        "retransmissions": delta["retransmissions"],
        "handshakes": delta["handshakes"],
        "session_breaks": delta["session_breaks"],
        "dropped": delta["dropped"],
        "frames_sent": delta["frames_sent"],
        "frames_received": delta["frames_received"],
        "messages_per_s": round((in_window["frames_sent"] + in_window["frames_received"]) / window, 1) if window else 0,
    }
