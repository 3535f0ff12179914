"""A fleet of simulated face terminals over MQTT, in one asyncio process (docs/face-terminals.md).

Each terminal is an aiomqtt client with its own client certificate from the
device CA (issued once per id and kept in the CA's folder), connecting over TLS
with a last will of ``offline`` retained on its status topic; it publishes
``online`` (retained), subscribes to its answer and command topics, and then
presents access requests at ``rate`` a second, paced from a random phase of its
own so the fleet does not present in lock step.

A request is drawn from the mix of the :class:`FleetSpec`: face only or card +
face (``face_only_share``), genuine or an impostor (``impostor_share``). A
genuine request is a fresh capture (simulation/synthetic_faces.py) of a person
allowed at the terminal's door, with that person's card for card + face; an
impostor presents a face nobody enrolled, with the stolen card of someone
allowed there for card + face. The time from sending a request to its answer
at the terminal is kept per message id, with the answer's verdict by ground
truth. An ``enrol`` command is answered with a capture of the person it names
(``FleetSpec.enrol_names``), or ``enrol_failed`` for a name the fleet does not know.

:class:`FleetProcess` runs the fleet in a child process (spawn) so it shares no
GIL with Space: the child reports when every terminal is online, presents when
told to, and sends back a :class:`FleetResult`.
"""

import asyncio
import collections
import contextlib
import json
import multiprocessing
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import numpy as np

from devices.face import messages, pki, topics
from devices.face.connector import NO_DELAY, tls_context
from simulation import childprocess
from simulation.synthetic_faces import DIMENSION, NOISE, Population

GENUINE = "genuine"
IMPOSTOR = "impostor"
CONNECTING_AT_ONCE = 50  # TLS handshakes in flight while the fleet connects (the broker's listen backlog is 100)
IMPOSTOR_POOL = 10_000  # impostor identities, each captured afresh when presented


@dataclass(frozen=True)
class TerminalPlan:
    terminal_id: str
    allowed: tuple[int, int] | None  # the people (indices, a half-open range) allowed at its door; None: everyone


@dataclass(frozen=True)
class FleetSpec:
    host: str
    port: int
    folder: str  # the device CA's folder: certificates are issued there once per terminal id
    terminals: tuple[TerminalPlan, ...]
    people: int  # person i is enrolled (their identity is the population's row i)
    cards: tuple[str, ...]  # person i's card UID
    seed: int = 1
    noise: float = NOISE
    dimension: int = DIMENSION
    model: str = "xs4face-v1"
    rate: float = 1.0  # requests a second per terminal
    warmup: float = 0.0  # seconds presented before the measurement starts
    seconds: float = 10.0  # seconds measured
    grace: float = 5.0  # seconds to wait for the last answers after presenting stops
    face_only_share: float = 0.5
    impostor_share: float = 0.1
    quality: float = 0.9  # what every capture claims; Space refuses captures below the terminal's minimum
    enrol_names: dict = field(default_factory=dict)  # a cardholder's name in an enrol command -> person index


@dataclass
class FleetResult:
    terminals: int
    connect_s: float
    measured_s: float
    sent: int  # requests sent in the measured window
    answered: int
    latencies: list  # seconds, send to answer, of the measured window's answered requests
    outcomes: dict  # "genuine face" / "impostor card_face" ... -> {"granted": n, "refused": n}
    refusals: dict  # the reasons given to genuine requests that were refused -> count
    errors: int  # "error" answers (a request Space could not read)
    enrolments: int  # enrol commands answered with a capture
    enrolled: list  # the "enrolled" answers received
    cpu_s: float = 0.0  # the fleet's own CPU time while presenting

    @property
    def lost(self) -> int:
        return self.sent - self.answered


@dataclass
class _Pending:
    sent: float
    truth: str
    method: str
    measured: bool


class Fleet:
    def __init__(self, spec: FleetSpec):
        self.spec = spec
        self.rng = random.Random(spec.seed)
        # The enrolled people's identities; captures of them with noise of their own, not the enrolments'.
        self.population = Population(
            spec.people, spec.dimension, noise=spec.noise, seed=spec.seed, capture_seed=spec.seed + 2
        )
        self.impostors = Population(
            min(IMPOSTOR_POOL, max(spec.people, 1)), spec.dimension, noise=spec.noise, seed=spec.seed + 7919
        )
        self.paths = pki.DevicePaths(Path(spec.folder))
        self.clients: dict[str, aiomqtt.Client] = {}
        self.pending: dict[str, _Pending] = {}
        self.latencies: list[float] = []
        self.outcomes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.refusals: collections.Counter = collections.Counter()
        self.sent = self.answered = self.errors = self.enrolments = 0
        self.enrolled: list[dict] = []
        self.window = (float("inf"), float("inf"))
        self._stack = contextlib.AsyncExitStack()
        self._readers: list[asyncio.Task] = []

    # --- connecting -------------------------------------------------------------------------------------------

    def identity(self, terminal_id: str) -> pki.Identity:
        identity = self.paths.terminal(terminal_id)
        return identity if identity.cert.exists() else pki.issue_terminal(terminal_id, self.paths.folder)

    async def connect(self) -> float:
        """Connect every terminal (a few at a time); returns the seconds it took."""
        started = time.perf_counter()
        gate = asyncio.Semaphore(CONNECTING_AT_ONCE)

        async def one(plan: TerminalPlan) -> None:
            async with gate:
                await self._connect(plan.terminal_id)

        await asyncio.gather(*(one(plan) for plan in self.spec.terminals))
        return time.perf_counter() - started

    async def _connect(self, terminal_id: str) -> None:
        status = topics.topic(terminal_id, topics.STATUS)
        client = aiomqtt.Client(
            self.spec.host,
            self.spec.port,
            identifier=terminal_id,
            will=aiomqtt.Will(status, topics.OFFLINE, qos=topics.QOS, retain=True),
            clean_session=True,
            keepalive=60,
            tls_context=tls_context(self.identity(terminal_id)),
            timeout=30,
            socket_options=NO_DELAY,
        )
        await self._stack.enter_async_context(client)
        await client.subscribe(
            [(topics.topic(terminal_id, kind), topics.QOS) for kind in (topics.ANSWER, topics.COMMAND)]
        )
        await client.publish(status, topics.ONLINE, qos=topics.QOS, retain=True)
        self.clients[terminal_id] = client
        self._readers.append(asyncio.create_task(self._read(terminal_id, client)))

    async def close(self) -> None:
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        await self._stack.aclose()

    # --- presenting -------------------------------------------------------------------------------------------

    async def present(self) -> None:
        """Every terminal presents at ``rate`` for the warm-up and the measured seconds, then the last answers
        are awaited for up to ``grace`` seconds."""
        spec = self.spec
        now = time.perf_counter()
        start = now + spec.warmup
        end = start + spec.seconds
        self.window = (start, end)
        await asyncio.gather(*(self._present(plan, now, end) for plan in spec.terminals))
        deadline = time.perf_counter() + spec.grace
        while time.perf_counter() < deadline and any(p.measured for p in self.pending.values()):
            await asyncio.sleep(0.05)

    async def _present(self, plan: TerminalPlan, begin: float, end: float) -> None:
        client, period = self.clients[plan.terminal_id], 1.0 / self.spec.rate
        topic = topics.topic(plan.terminal_id, topics.REQUEST)
        at = begin + self.rng.uniform(0, period)
        number = 0
        while at < end:
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            number += 1
            message_id = f"{plan.terminal_id}-{number}"
            payload, truth, method = self.request(plan, message_id)
            sent = time.perf_counter()
            measured = self.window[0] <= sent < self.window[1]
            self.pending[message_id] = _Pending(sent, truth, method, measured)
            self.sent += measured
            with contextlib.suppress(aiomqtt.MqttError):  # counted as lost: no answer comes
                await client.publish(topic, json.dumps(payload, separators=(",", ":")), qos=topics.QOS)
            at += period

    def request(self, plan: TerminalPlan, message_id: str) -> tuple[dict, str, str]:
        """A request from the mix: (payload, ground truth, method)."""
        spec, rng = self.spec, self.rng
        low, high = plan.allowed or (0, spec.people)
        person = rng.randrange(low, high)
        method = messages.FACE if rng.random() < spec.face_only_share else messages.CARD_FACE
        if rng.random() < spec.impostor_share:
            truth, face = IMPOSTOR, self.impostors.capture(rng.randrange(len(self.impostors.identities)))
        else:
            truth, face = GENUINE, self.population.capture(person)
        payload = self.face(message_id, messages.ACCESS, face)
        payload["method"] = method
        if method == messages.CARD_FACE:
            payload["card"] = spec.cards[person]  # an impostor's is stolen from someone allowed here
        return payload, truth, method

    def face(self, message_id: str, kind: str, vector: np.ndarray) -> dict:
        return {
            "id": message_id,
            "type": kind,
            "model": self.spec.model,
            "template_b64": messages.encode_template(vector),
            "quality": self.spec.quality,
            "liveness": True,
        }

    # --- receiving --------------------------------------------------------------------------------------------

    async def _read(self, terminal_id: str, client: aiomqtt.Client) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for message in client.messages:
                arrived = time.perf_counter()
                try:
                    payload = json.loads(message.payload)
                except (TypeError, ValueError):
                    continue
                if not isinstance(payload, dict):
                    continue
                if message.topic.matches(topics.topic(terminal_id, topics.COMMAND)):
                    await self._command(terminal_id, client, payload)
                else:
                    self._answer(payload, arrived)

    def _answer(self, payload: dict, arrived: float) -> None:
        if payload.get("type") == "enrolled":
            self.enrolled.append(payload)
            return
        pending = self.pending.pop(str(payload.get("id")), None)
        if pending is None:
            return  # a duplicate (QoS 1 delivers at least once) or an answer to an enrolment
        if payload.get("type") == "error":
            self.errors += 1
        granted = payload.get("granted") is True
        if pending.measured:
            self.answered += 1
            self.latencies.append(arrived - pending.sent)
            self.outcomes[f"{pending.truth} {pending.method}"]["granted" if granted else "refused"] += 1
            if pending.truth == GENUINE and not granted:
                self.refusals[str(payload.get("reason") or payload.get("error"))] += 1

    async def _command(self, terminal_id: str, client: aiomqtt.Client, payload: dict) -> None:
        if payload.get("type") != messages.ENROL:
            return
        enrolment = payload.get("enrolment")
        person = self.spec.enrol_names.get(payload.get("name"))
        message_id = f"{terminal_id}-enrol-{enrolment}"
        if person is None:
            reply = {"id": message_id, "type": messages.ENROL_FAILED, "enrolment": enrolment, "error": "no such face"}
        else:
            reply = {**self.face(message_id, messages.ENROL, self.population.capture(person)), "enrolment": enrolment}
        await client.publish(
            topics.topic(terminal_id, topics.REQUEST), json.dumps(reply, separators=(",", ":")), qos=topics.QOS
        )
        self.enrolments += 1

    def result(self, connect_s: float) -> FleetResult:
        return FleetResult(
            terminals=len(self.spec.terminals),
            connect_s=round(connect_s, 2),
            measured_s=self.spec.seconds,
            sent=self.sent,
            answered=self.answered,
            latencies=self.latencies,
            outcomes={name: dict(counts) for name, counts in self.outcomes.items()},
            refusals=dict(self.refusals),
            errors=self.errors,
            enrolments=self.enrolments,
            enrolled=self.enrolled,
        )


async def run(spec: FleetSpec) -> FleetResult:
    """The fleet in this process: connect, present, and what came of it."""
    fleet = Fleet(spec)
    try:
        connect_s = await fleet.connect()
        await fleet.present()
        return fleet.result(connect_s)
    finally:
        await fleet.close()


# --- in a child process ---------------------------------------------------------------------------------------


def serve(spec: FleetSpec, pipe) -> None:
    """The child's work: connect, say ``("online", seconds)``, wait for ``"go"``, present, send the result."""
    asyncio.run(_serve(spec, pipe))


async def _serve(spec: FleetSpec, pipe) -> None:
    fleet = Fleet(spec)
    try:
        connect_s = await fleet.connect()
        pipe.send(("online", connect_s))
        while not pipe.poll():
            await asyncio.sleep(0.05)
        if pipe.recv() != "go":
            return
        cpu = time.process_time()
        await fleet.present()
        result = fleet.result(connect_s)
        result.cpu_s = round(time.process_time() - cpu, 2)
        pipe.send(("result", result))
    except Exception as error:  # the parent reports it; a bench never hangs on a dead child
        pipe.send(("failed", f"{type(error).__name__}: {error}"))
        raise
    finally:
        await fleet.close()


class FleetError(RuntimeError):
    pass


class FleetProcess:
    """A :class:`Fleet` in a spawned child process: ``start``, ``wait_online``, ``go``, ``result``, ``stop``."""

    def __init__(self, spec: FleetSpec):
        context = multiprocessing.get_context("spawn")
        self.pipe, child_end = context.Pipe()
        self.process = context.Process(
            target=childprocess.run,
            args=("simulation.face_terminals:serve", childprocess.pack(spec), child_end),
            daemon=True,
        )

    def start(self) -> "FleetProcess":
        self.process.start()
        return self

    def _receive(self, expected: str, timeout: float):
        deadline = time.monotonic() + timeout
        while not self.pipe.poll(0.1):
            if not self.process.is_alive():
                raise FleetError(f"the terminal fleet exited (code {self.process.exitcode})")
            if time.monotonic() > deadline:
                raise FleetError(f"the terminal fleet said nothing ({expected}) within {timeout} s")
        kind, value = self.pipe.recv()
        if kind != expected:
            raise FleetError(f"the terminal fleet {kind}: {value}")
        return value

    def wait_online(self, timeout: float) -> float:
        """Seconds the fleet took to connect every terminal."""
        return self._receive("online", timeout)

    def go(self) -> None:
        self.pipe.send("go")

    def result(self, timeout: float) -> FleetResult:
        return self._receive("result", timeout)

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self.pipe.send("stop")
            self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
