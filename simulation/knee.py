"""The bridge's knee: the highest offered rate of SDP/1 decisions it answers with p99 within a bound.

A load generator cheap enough that the bridge, not the generator, is what
saturates when both share a machine's cores. Everything costly is done before
the clock runs:

- one UDP socket for all devices (connected to the bridge, so the kernel drops
  anything else), plain non-blocking calls, no event loop;
- the handshakes first (:meth:`PacedLoad.handshake`); after them each device's
  session keys are known, so a step's ``access`` frames are sealed in advance,
  round robin over the devices with increasing seqs, each with a ``req`` unique
  over the whole run (so an answer names its request without a lookup);
- during a step, once per millisecond tick, the generator sends the frames that
  are due (frame ``k`` is due ``k / rate`` seconds after the start) and reads
  the answers that came, opening each (its tag is checked) to read its ``req``;
  in between it sleeps, so it does not wake for every datagram.

Every request's latency is measured: from the moment just before its send to
its decision's arrival, which the kernel stamps on the datagram (Linux;
elsewhere the generator wakes for each answer and reads the clock). A request
with no decision by the end of the drain counts as infinitely late, so a step
whose answers are lost cannot pass on the ones that came. Nothing is
retransmitted: a lost request is a failure of the bridge at that rate.

:func:`find_knee` offers rates that double from ``start`` until a step fails
(p99 above the bound, or fewer than 95% of the offered decisions answered),
then bisects between the last rate that passed and the first that failed.
"""

import math
import os
import random
import select
import socket
import struct
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from devices.sdp import codec as sdp1

P99_BOUND_MS = 20.0
ACHIEVED_SHARE = 0.95
HANDSHAKE_ROUND_S = 0.25
HANDSHAKE_ROUNDS = 40
RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024
# Answers read per turn of the loop at most, so that a flood of answers cannot delay what is due to be sent.
READS_PER_TURN = 4096
# The generator sends what is due and reads what came once per tick, then sleeps: no wake-up per datagram.
TICK_S = 0.001
# Linux: the kernel stamps each datagram with its arrival (struct timespec, CLOCK_REALTIME, time.time()'s clock),
# so an answer read late in a tick still has its exact latency.
SO_TIMESTAMPNS = 35
TIMESPEC = struct.Struct("@ll")
ANCILLARY_SPACE = socket.CMSG_SPACE(TIMESPEC.size)
# The bridge's decision begins so (devices/sdp/bridge.py puts "t", then "req"); anything else is parsed as JSON.
DECISION_PREFIX = b'{"t":"decision","req":'
GRANTED = b'"grant":true'


@dataclass(slots=True)
class Device:
    """One commissioned device as the generator drives it: its key, then its open session."""

    device_id: int
    key: bytes
    reader: int = 1
    nonce_d: bytes = b""
    session_id: int = 0
    sealer: AESGCM | None = None
    opener: AESGCM | None = None
    auth: bytes = b""
    next_seq: int = 1
    open: bool = False


@dataclass
class Step:
    """One offered rate and what came of it. Latencies in ms; None where a percentile fell on a lost request."""

    offered: float
    seconds: float
    requests: int
    sent_per_second: float
    decisions: int
    decisions_per_second: float
    granted: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    drops: dict = field(default_factory=dict)
    # CPU used over the sending window, in cores: this process, and the bridge when a probe was given.
    load_cpu: float = 0.0
    bridge_cpu: float | None = None
    machine_cpu: float | None = None  # every process on the machine (Linux), to tell whether others were busy
    last_sent_at: float = 0.0  # time.time() of the last send
    # Seconds from the step's last send until the audit trail held all its decisions (set by the caller).
    stored_after_s: float | None = None

    def passed(self, p99_bound_ms: float = P99_BOUND_MS) -> bool:
        return (
            self.p99_ms is not None
            and self.p99_ms <= p99_bound_ms
            and self.decisions_per_second >= ACHIEVED_SHARE * self.offered
        )

    def figures(self) -> dict:
        return {
            "offered": round(self.offered),
            "seconds": round(self.seconds, 2),
            "sent_per_second": round(self.sent_per_second),
            "decisions_per_second": round(self.decisions_per_second),
            "lost": self.requests - self.decisions,
            "granted_share": round(self.granted / self.decisions, 3) if self.decisions else 0.0,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "load_cpu": round(self.load_cpu, 2),
            "bridge_cpu": None if self.bridge_cpu is None else round(self.bridge_cpu, 2),
            "machine_cpu": None if self.machine_cpu is None else round(self.machine_cpu, 2),
            "stored_after_s": self.stored_after_s,
            **({"drops": self.drops} if self.drops else {}),
        }


class HandshakeFailed(Exception):
    """Some devices could not open a session with the bridge."""


class PacedLoad:
    """The generator: ``devices`` (``(device_id, key)`` pairs) against the bridge at ``server``."""

    def __init__(self, server: tuple[str, int], devices: list[tuple[int, bytes]], uids: list[str]):
        if not devices or not uids:
            raise ValueError("The load needs devices and card UIDs.")
        self.server = server
        self.devices = [Device(device_id, key) for device_id, key in devices]
        self.by_id = {device.device_id: device for device in self.devices}
        self.uids = list(uids)
        random.Random(0).shuffle(self.uids)  # known and unknown cards mixed, the same order every run
        self.next_req = 1
        self.drops: Counter = Counter()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        self.sock.connect(server)
        self.sock.setblocking(False)
        self.stamped = _arrival_stamps(self.sock)

    def close(self) -> None:
        self.sock.close()

    # --- handshakes ------------------------------------------------------------------

    def handshake(self) -> None:
        """Open a session for every device (HELLO, CHALLENGE, AUTH, welcome, ack), all at once on the one socket."""
        for device in self.devices:
            device.nonce_d = os.urandom(sdp1.NONCE_SIZE)
        for _ in range(HANDSHAKE_ROUNDS):
            waiting = [device for device in self.devices if not device.open]
            if not waiting:
                return
            for device in waiting:
                self._send(device.auth or sdp1.hello(device.device_id, device.nonce_d))
            deadline = time.monotonic() + HANDSHAKE_ROUND_S
            while time.monotonic() < deadline and not all(device.open for device in waiting):
                select.select([self.sock], [], [], HANDSHAKE_ROUND_S / 10)
                self._read_handshakes()
        missing = sum(not device.open for device in self.devices)
        if missing:
            raise HandshakeFailed(f"{missing} of {len(self.devices)} devices could not open a session.")

    def _read_handshakes(self) -> None:
        while True:
            datagram, _ = self._receive()
            if datagram is None:
                return
            if not datagram:
                continue
            try:
                frame = sdp1.parse(datagram, sdp1.FROM_SERVER)
            except sdp1.Malformed as error:
                self.drops[error.reason] += 1
                continue
            device = self.by_id.get(frame.device_id)
            if device is None:
                self.drops["other_device"] += 1
            elif frame.type == sdp1.CHALLENGE:
                self._on_challenge(device, frame)
            elif device.opener is not None and frame.session_id == device.session_id and not device.open:
                self._on_welcome(device, frame)

    def _on_challenge(self, device: Device, frame: sdp1.Frame) -> None:
        if device.auth:
            return  # a repeated challenge; the AUTH is being re-sent already
        nonce_s, proof_s = frame.body[: sdp1.NONCE_SIZE], frame.body[sdp1.NONCE_SIZE :]
        ids = (device.key, device.device_id, frame.session_id, device.nonce_d, nonce_s)
        if not sdp1.proofs_equal(sdp1.server_proof(*ids), proof_s):
            self.drops["bad_proof"] += 1
            return
        k_d2s, k_s2d = sdp1.session_keys(*ids)
        device.session_id = frame.session_id
        device.sealer, device.opener = AESGCM(k_d2s), AESGCM(k_s2d)
        device.auth = sdp1.auth(device.device_id, frame.session_id, sdp1.device_proof(*ids))
        self._send(device.auth)

    def _on_welcome(self, device: Device, frame: sdp1.Frame) -> None:
        try:
            message = sdp1.decode(sdp1.unseal(device.opener, frame))
        except InvalidTag:
            self.drops["bad_tag"] += 1
            return
        if message is None or message["t"] != "welcome":
            return
        device.open = True
        self._send(self._seal(device, {"t": "ack", "seq": frame.seq}))

    # --- steps -----------------------------------------------------------------------

    def _seal(self, device: Device, message: dict) -> bytes:
        seq = device.next_seq
        device.next_seq += 1
        return sdp1.seal(device.sealer, device.device_id, device.session_id, seq, sdp1.encode(message))

    def seal_access(self, count: int) -> tuple[int, list[bytes]]:
        """The next ``count`` ``access`` frames, round robin over the devices; returns the first ``req`` and them."""
        first = self.next_req
        devices, uids = self.devices, self.uids
        frames = []
        for k in range(count):
            device = devices[k % len(devices)]
            cred = {"kind": "card", "uid": uids[(first + k) % len(uids)]}
            frames.append(self._seal(device, {"t": "access", "req": first + k, "reader": device.reader, "cred": cred}))
        self.next_req += count
        return first, frames

    def run_step(
        self, rate: float, seconds: float, drain_s: float = 1.0, bridge_cpu: Callable[[], float] | None = None
    ) -> Step:
        """Offer ``rate`` decisions per second for ``seconds``; wait up to ``drain_s`` after for the last answers.

        ``bridge_cpu()``, when given, is the bridge's CPU time in seconds so far (its share is reported).
        """
        count = max(1, round(rate * seconds))
        first, frames = self.seal_access(count)
        sent_at = array("d", bytes(8 * count))
        answers = _Answers(self, first, count)
        drops_before = Counter(self.drops)
        clock, send = time.time, self.sock.send
        cpu = _CpuShares(bridge_cpu)
        sent = 0
        started = turn_at = clock()
        while True:
            due = min(count, int((clock() - started) * rate) + 1)
            while sent < due:
                sent_at[sent] = clock()
                try:
                    send(frames[sent])
                except BlockingIOError:
                    break  # the socket's buffer is full: the rest goes on the next turn
                sent += 1
                if sent == count:
                    cpu.stop()
            answers.read()
            if sent == count and (answers.answered == count or clock() > sent_at[count - 1] + drain_s):
                break
            # The next turn: a tick on (never more than a tick behind), or later when nothing is due before then.
            now = clock()
            turn_at = max(turn_at + TICK_S, now - TICK_S, started + sent / rate if sent < count else 0.0)
            self._wait(turn_at - now)
        window = sent_at[count - 1] - started + 1 / rate  # the time it took to send them all; seconds on schedule
        latencies = sorted(
            (arrived - sent_at[k]) * 1000 if arrived else math.inf for k, arrived in enumerate(answers.arrived)
        )
        return Step(
            offered=rate,
            seconds=window,
            requests=count,
            sent_per_second=count / window,
            decisions=answers.answered,
            decisions_per_second=answers.answered / window,
            granted=answers.granted,
            p50_ms=_percentile(latencies, 0.50),
            p95_ms=_percentile(latencies, 0.95),
            p99_ms=_percentile(latencies, 0.99),
            max_ms=_percentile(latencies, 1.0),
            drops=dict(self.drops - drops_before),
            load_cpu=cpu.load / window,
            bridge_cpu=None if cpu.bridge is None else cpu.bridge / window,
            machine_cpu=None if cpu.machine is None else cpu.machine / window,
            last_sent_at=sent_at[count - 1],
        )

    def _wait(self, seconds: float) -> None:
        """Sleep until the next turn; without arrival stamps, wake at an answer too, to note when it came."""
        if seconds <= 0:
            return
        if self.stamped:
            time.sleep(seconds)
        else:
            select.select([self.sock], [], [], seconds)

    # --- the socket --------------------------------------------------------------------

    def _send(self, datagram: bytes) -> None:
        try:
            self.sock.send(datagram)
        except OSError:
            self.drops["send_failed"] += 1

    def _receive(self) -> tuple[bytes | None, float]:
        """The next datagram and when it arrived (``time.time()``'s clock); None when there is none waiting."""
        try:
            datagram, ancillary, _, _ = self.sock.recvmsg(2048, ANCILLARY_SPACE)
        except BlockingIOError:
            return None, 0.0
        except OSError:
            # ICMP port unreachable from an earlier send (the bridge not up yet): it tells nothing more.
            self.drops["socket_error"] += 1
            return b"", 0.0
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= TIMESPEC.size:
                whole, nanoseconds = TIMESPEC.unpack_from(data)
                return datagram, whole + nanoseconds * 1e-9
        return datagram, time.time()


def _arrival_stamps(sock: socket.socket) -> bool:
    """Ask the kernel to stamp each datagram with its arrival (Linux); False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


class _CpuShares:
    """CPU seconds used from now until :meth:`stop`: this process, the bridge (with a probe) and the machine."""

    def __init__(self, bridge_probe: Callable[[], float] | None):
        self.probe = bridge_probe
        self.started = (time.process_time(), bridge_probe() if bridge_probe else 0.0, machine_cpu_seconds())
        self.load = 0.0
        self.bridge = self.machine = None

    def stop(self) -> None:
        load, bridge, machine = self.started
        self.load = time.process_time() - load
        if self.probe is not None:
            self.bridge = self.probe() - bridge
        now = machine_cpu_seconds()
        if machine is not None and now is not None:
            self.machine = now - machine


class _Answers:
    """Reads the decisions of a step and notes when each request's arrived."""

    __slots__ = ("answered", "arrived", "count", "first", "granted", "load")

    def __init__(self, load: PacedLoad, first: int, count: int):
        self.load = load
        self.first = first
        self.count = count
        self.arrived = array("d", bytes(8 * count))
        self.answered = 0
        self.granted = 0

    def read(self) -> None:
        """Everything waiting on the socket, up to ``READS_PER_TURN`` datagrams."""
        load = self.load
        receive, drops, by_id, arrived = load._receive, load.drops, load.by_id, self.arrived
        for _ in range(READS_PER_TURN):
            datagram, at = receive()
            if datagram is None:
                return
            if not datagram:
                continue
            try:
                frame = sdp1.parse(datagram, sdp1.FROM_SERVER)
                device = by_id.get(frame.device_id)
                if device is None or frame.session_id != device.session_id:
                    drops["other_session"] += 1
                    continue
                plaintext = sdp1.unseal(device.opener, frame)
            except sdp1.Malformed as error:
                drops[error.reason] += 1
                continue
            except InvalidTag:
                drops["bad_tag"] += 1
                continue
            k = decision_req(plaintext) - self.first
            if not 0 <= k < self.count:
                drops["not_this_step"] += 1
            elif arrived[k]:
                drops["duplicate"] += 1
            else:
                arrived[k] = at
                self.answered += 1
                if GRANTED in plaintext:
                    self.granted += 1


def decision_req(plaintext: bytes) -> int:
    """The ``req`` of a decision (-1 for any other message): read in place when it comes first, as the bridge
    writes it, else from the parsed JSON."""
    if plaintext.startswith(DECISION_PREFIX):
        end = plaintext.find(b",", len(DECISION_PREFIX))
        digits = plaintext[len(DECISION_PREFIX) : end]
        if end > 0 and digits.isdigit():
            return int(digits)
    message = sdp1.decode(plaintext)
    if message is None or message["t"] != "decision" or type(message.get("req")) is not int:
        return -1
    return message["req"]


def machine_cpu_seconds() -> float | None:
    """CPU time all processes on this machine have used since boot (Linux), or None elsewhere.

    Counted as the time the CPUs were not idle: /proc/stat's idle time is measured on entry and exit, while
    its user and system times are sampled at the timer tick, which misses work done between ticks.
    """
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
        with open("/proc/uptime") as uptime:
            up = float(uptime.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    idle = (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")  # idle and iowait
    return up * os.cpu_count() - idle


def _percentile(ordered: list[float], share: float) -> float | None:
    value = ordered[min(len(ordered) - 1, int(share * len(ordered)))]
    return None if math.isinf(value) else round(value, 2)


# --- the search -------------------------------------------------------------------------


@dataclass
class Knee:
    rate: float | None  # the highest offered rate that passed; None when none did
    step: Step | None
    steps: list[Step]


def find_knee(
    run: Callable[[float], Step],
    *,
    start: float = 2000.0,
    ceiling: float = 256_000.0,
    floor: float = 100.0,
    resolution: float = 0.05,
    bisections: int = 4,
    p99_bound_ms: float = P99_BOUND_MS,
    settle: Callable[[Step], None] = lambda step: None,
) -> Knee:
    """Search the highest rate ``run(rate)`` passes at: doubling from ``start`` (halving when ``start`` fails)
    until the outcome changes, then bisecting until the gap is within ``resolution`` of the rate that passed,
    at most ``bisections`` times. ``settle(step)`` runs after each step (the bridge catches up with its writes).
    """
    steps: list[Step] = []

    def offer(rate: float) -> bool:
        step = run(rate)
        steps.append(step)
        settle(step)
        return step.passed(p99_bound_ms)

    passing = failing = None
    rate = start
    if offer(rate):
        passing = rate
        while rate * 2 <= ceiling:
            rate *= 2
            if not offer(rate):
                failing = rate
                break
            passing = rate
    else:
        failing = rate
        while rate / 2 >= floor:
            rate /= 2
            if offer(rate):
                passing = rate
                break
            failing = rate
    for _ in range(bisections):
        if passing is None or failing is None or failing - passing <= resolution * passing:
            break
        rate = round((passing + failing) / 2, -2)
        if rate in (passing, failing):
            break
        if offer(rate):
            passing = rate
        else:
            failing = rate
    passed = [step for step in steps if step.passed(p99_bound_ms)]
    best = max(passed, key=lambda step: step.offered, default=None)
    return Knee(best.offered if best else None, best, steps)
