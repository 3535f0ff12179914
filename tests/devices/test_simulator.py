"""The simulated device speaks SDP/1 to the byte: against a scripted server socket, then against the real bridge."""

import asyncio
import io
import itertools
import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.core.management import CommandError, call_command

from accesscontrol.models import AuditEvent
from accesscontrol.snapshot import SnapshotStore
from devices.models import Device, DeviceCommand, DeviceDoor, DeviceReader
from devices.sdp import codec as sdp1
from devices.sdp.bridge import Bridge
from simulation.sdp_devices import NoDecision, SimulatedDevice, run_load
from tests.factories import make_access_level, make_access_point, make_cardholder, make_key
from tests.support.waiting import until, wait_until

VECTORS_PATH = Path(__file__).resolve().parents[1] / "data" / "sdp1" / "vectors.json"
V = json.loads(VECTORS_PATH.read_text())
K = bytes.fromhex(V["K"])
DEVICE = V["device_id"]
SESSION = V["session_id"]
NONCE_D = bytes.fromhex(V["nonce_d"])
NONCE_S = bytes.fromhex(V["nonce_s"])
FAST = 0.02  # a first retransmission delay that keeps these tests quick; the schedule still doubles


def run(coroutine, timeout: float = 30):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def vector_nonces():
    """The vector's nonce_d for the first handshake, fresh ones after it."""
    nonces = itertools.chain([NONCE_D], (bytes([i]) * 16 for i in itertools.count(1)))
    return lambda size: next(nonces)


class FakeServer(asyncio.DatagramProtocol):
    """A scripted server socket on 127.0.0.1: it keeps what arrives and sends only what the test says."""

    def __init__(self):
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.transport = None
        self.device_addr = None
        self.s2d = self.d2s = None
        self.session_id = 0
        self.seq = 0

    @classmethod
    async def open(cls) -> "FakeServer":
        server = cls()
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: server, local_addr=("127.0.0.1", 0))
        return server

    @property
    def address(self) -> tuple[str, int]:
        return self.transport.get_extra_info("sockname")[:2]

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.device_addr = addr
        self.inbox.put_nowait((time.monotonic(), data))

    def close(self):
        self.transport.close()

    async def receive(self, timeout: float = 2.0) -> bytes:
        return (await self.receive_timed(timeout))[1]

    async def receive_timed(self, timeout: float = 2.0) -> tuple[float, bytes]:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def silent(self, seconds: float) -> bool:
        try:
            await self.receive(seconds)
        except TimeoutError:
            return True
        return False

    def send(self, datagram: bytes) -> None:
        self.transport.sendto(datagram, self.device_addr)

    # --- the server's side of the protocol, from the codec ---------------------------

    def challenge(self, hello: bytes, key=K, session_id=SESSION, nonce_s=NONCE_S, device_id=None) -> bytes:
        frame = sdp1.parse(hello, sdp1.FROM_DEVICE)
        assert frame.type == sdp1.HELLO
        nonce_d = frame.body[:16]
        device_id = frame.device_id if device_id is None else device_id
        proof = sdp1.server_proof(key, device_id, session_id, nonce_d, nonce_s)
        k_d2s, k_s2d = sdp1.session_keys(key, device_id, session_id, nonce_d, nonce_s)
        self.d2s, self.s2d, self.session_id, self.seq = AESGCM(k_d2s), AESGCM(k_s2d), session_id, 0
        return sdp1.challenge(device_id, session_id, nonce_s, proof)

    def seal(self, message: dict, device_id=DEVICE, seq=None) -> bytes:
        if seq is None:
            self.seq += 1
            seq = self.seq
        return sdp1.seal(self.s2d, device_id, self.session_id, seq, sdp1.encode(message))

    def open_frame(self, datagram: bytes) -> tuple[int, dict]:
        frame = sdp1.parse(datagram, sdp1.FROM_DEVICE)
        assert frame.type == sdp1.SEALED and frame.session_id == self.session_id
        return frame.seq, json.loads(sdp1.unseal(self.d2s, frame))

    async def expect(self, t: str, timeout: float = 2.0) -> tuple[int, dict, bytes]:
        """The next sealed frame from the device, which must be a ``t`` message."""
        datagram = await self.receive(timeout)
        seq, message = self.open_frame(datagram)
        assert message["t"] == t, message
        return seq, message, datagram

    async def handshake(self, welcome=None) -> None:
        """Answer the device's HELLO and AUTH and send the welcome; its ack is read."""
        hello = await self.receive()
        self.send(self.challenge(hello))
        auth = await self.receive()
        assert sdp1.parse(auth, sdp1.FROM_DEVICE).type == sdp1.AUTH
        self.send(self.seal(welcome or {"t": "welcome", "time": "2026-11-23T10:00:00Z", "heartbeat_s": 30}))
        _, ack, _ = await self.expect("ack")
        assert ack["seq"] == self.seq


async def device_and_server(**options) -> tuple[SimulatedDevice, FakeServer]:
    server = await FakeServer.open()
    options.setdefault("retry_first_s", FAST)
    device = SimulatedDevice(DEVICE, K, server.address, nonces=vector_nonces(), **options)
    await device.start()
    return device, server


async def connected(**options) -> tuple[SimulatedDevice, FakeServer]:
    device, server = await device_and_server(**options)
    await server.handshake()
    await device.wait_online(2)
    return device, server


async def stop(device, server):
    await device.stop()
    server.close()


# --- handshake ---------------------------------------------------------------------


def test_its_hello_and_auth_are_the_vectors_and_it_acks_the_welcome():
    async def scenario():
        device, server = await device_and_server()
        hello = await server.receive()
        assert hello.hex() == V["hello"]
        challenge = server.challenge(hello)
        assert challenge.hex() == V["challenge"]
        server.send(challenge)
        assert (await server.receive()).hex() == V["auth"]
        assert not device.online
        server.send(server.seal({"t": "welcome", "time": "2026-11-23T10:00:00Z", "heartbeat_s": 17}))
        seq, ack, _ = await server.expect("ack")
        assert (seq, ack) == (1, {"t": "ack", "seq": 1})
        assert device.online and device.session_id == SESSION
        assert (device.heartbeat_s, device.server_time) == (17, "2026-11-23T10:00:00Z")
        assert (device.stats.hellos, device.stats.handshakes, device.stats.retransmissions) == (1, 1, 0)
        await stop(device, server)

    run(scenario())


def test_it_retransmits_hello_on_the_protocols_schedule():
    async def scenario():
        device, server = await device_and_server(retry_first_s=0.25)
        arrivals = [await server.receive_timed(2) for _ in range(3)]
        await stop(device, server)
        return arrivals

    arrivals = run(scenario())
    assert len({data for _, data in arrivals}) == 1  # byte for byte
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(arrivals)]
    assert 0.22 < gaps[0] < 0.4
    assert 0.47 < gaps[1] < 0.7


def test_after_five_unanswered_hellos_it_starts_over_with_a_fresh_nonce():
    async def scenario():
        device, server = await device_and_server()
        arrivals = [await server.receive_timed(3) for _ in range(7)]
        await stop(device, server)
        return device, arrivals

    device, arrivals = run(scenario())
    first, second = [data for _, data in arrivals[:5]], [data for _, data in arrivals[5:]]
    assert set(first) == {bytes.fromhex(V["hello"])}
    assert len(set(second)) == 1 and second[0] != first[0]
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(arrivals[:6])]
    for gap, expected in zip(gaps, [FAST, 2 * FAST, 4 * FAST, 8 * FAST, 16 * FAST], strict=True):
        assert expected * 0.9 < gap < expected + 0.1
    assert device.stats.hellos == 2 and device.stats.retransmissions == 5


def test_it_retransmits_auth_until_the_welcome_and_then_starts_over():
    async def scenario():
        device, server = await device_and_server()
        server.send(server.challenge(await server.receive()))
        auths = [await server.receive() for _ in range(5)]
        hello = await server.receive()
        await stop(device, server)
        return auths, hello

    auths, hello = run(scenario())
    assert auths == [bytes.fromhex(V["auth"])] * 5
    frame = sdp1.parse(hello, sdp1.FROM_DEVICE)
    assert frame.type == sdp1.HELLO and frame.body[:16] != NONCE_D


def test_it_ignores_garbage_and_forgeries_from_the_server_address():
    async def scenario():
        device, server = await device_and_server(retry_first_s=5)
        hello = await server.receive()
        good = server.challenge(hello)
        forged = bytearray(good)
        forged[-1] ^= 1
        other_key = server.challenge(hello, key=bytes(16))
        other_device = server.challenge(hello, device_id=DEVICE + 1)
        for garbage in (b"SD\x01", b"\x00" * 68, good[:67], bytes(forged), other_key, other_device, hello):
            server.send(garbage)
        assert await server.silent(0.2)
        assert not device.online
        server.send(server.challenge(hello))
        assert (await server.receive()).hex() == V["auth"]
        server.send(server.seal({"t": "welcome", "time": "2026-11-23T10:00:00Z", "heartbeat_s": 30}))
        await server.expect("ack")
        # Sealed garbage: a bad tag, another session, a sealed frame before the protocol allows one.
        tampered = bytearray(server.seal({"t": "cmd", "cmd": 1, "op": "open", "args": {}}))
        tampered[-1] ^= 1
        server.send(bytes(tampered))
        server.session_id += 1
        server.send(server.seal({"t": "cmd", "cmd": 2, "op": "open", "args": {}}))
        assert await server.silent(0.2)
        drops = dict(device.stats.drops)
        await stop(device, server)
        return drops

    drops = run(scenario())
    assert drops == {
        "short": 1,
        "bad_magic": 1,
        "bad_length": 1,
        "bad_proof": 2,
        "other_device": 1,
        "bad_type": 1,
        "bad_tag": 1,
        "unknown_session": 1,
    }


# --- messages ----------------------------------------------------------------------


def test_a_card_gets_its_decision_with_the_latency_measured():
    async def scenario():
        device, server = await connected()
        asking = asyncio.ensure_future(device.present_card(1, "04a1b2c3d4e5f6"))
        seq, access, _ = await server.expect("access")
        assert access == {"t": "access", "req": 1, "reader": 1, "cred": {"kind": "card", "uid": "04a1b2c3d4e5f6"}}
        assert seq == 2  # seq 1 was the welcome's ack
        decision = {"t": "decision", "req": 1, "grant": True, "reason": "granted", "open_ms": 6000}
        server.send(server.seal(decision))
        assert await asking == decision
        assert await server.silent(0.1)  # a decision is not acknowledged
        await stop(device, server)
        return device.stats

    stats = run(scenario())
    assert (stats.access_sent, stats.decisions, stats.granted, stats.refused) == (1, 1, 1, 0)
    assert len(stats.latencies) == 1 and 0 < stats.latencies[0] < 1


def test_it_retransmits_an_access_byte_for_byte_until_the_decision():
    async def scenario():
        device, server = await connected()
        asking = asyncio.ensure_future(device.present_card(1, "0A0B0C0D", pin="1234"))
        copies = [(await server.expect("access"))[2] for _ in range(3)]
        _, access = server.open_frame(copies[0])
        assert access["pin"] == "1234"
        server.send(server.seal({"t": "decision", "req": 1, "grant": False, "reason": "wrong_pin", "open_ms": 0}))
        decision = await asking
        await stop(device, server)
        return copies, decision, device.stats

    copies, decision, stats = run(scenario())
    assert copies[0] == copies[1] == copies[2]
    assert decision["reason"] == "wrong_pin"
    assert stats.retransmissions == 2 and stats.refused == 1
    assert stats.latencies[0] >= FAST + 2 * FAST  # from the first send, not the last


def test_an_access_left_unanswered_fails_and_the_device_shakes_hands_again():
    async def scenario():
        device, server = await connected()
        asking = asyncio.ensure_future(device.present_card(1, "0A0B0C0D"))
        copies = [(await server.expect("access"))[2] for _ in range(5)]
        with pytest.raises(NoDecision):
            await asking
        hello = sdp1.parse(await server.receive(), sdp1.FROM_DEVICE)
        await stop(device, server)
        return copies, hello, device.stats

    copies, hello, stats = run(scenario())
    assert len(set(copies)) == 1
    assert hello.type == sdp1.HELLO
    assert (stats.no_decision, stats.session_breaks) == (1, 1)


def test_a_duplicate_server_frame_gets_the_same_answer_datagram_and_is_not_processed_again():
    async def scenario():
        device, server = await connected()
        # The welcome again: the device sends its ack datagram again, byte for byte.
        server.send(server.seal({"t": "welcome", "time": "2026-11-23T10:00:00Z", "heartbeat_s": 30}, seq=1))
        seq, ack = server.open_frame(await server.receive())
        assert (seq, ack) == (1, {"t": "ack", "seq": 1})
        # A command, then the same datagram again: the same ack bytes, and one result only.
        command = server.seal({"t": "cmd", "cmd": 41, "op": "set_time", "args": {"time": "2026-11-23T10:00:00Z"}})
        server.send(command)
        _, ack, ack_datagram = await server.expect("ack")
        result_seq, result, _ = await server.expect("result")
        server.send(server.seal({"t": "ack", "seq": result_seq}))
        server.send(command)
        assert await server.receive() == ack_datagram
        assert await server.silent(0.2)
        await stop(device, server)
        return ack, result, device.stats

    ack, result, stats = run(scenario())
    assert ack == {"t": "ack", "seq": 2}
    assert result == {"t": "result", "cmd": 41, "ok": True}
    assert (stats.duplicates, stats.commands, stats.results_acked) == (2, 1, 1)


def test_a_command_that_overtakes_the_welcome_is_carried_out_when_it_comes_again():
    async def scenario():
        device, server = await device_and_server(retry_first_s=0.5)
        server.send(server.challenge(await server.receive()))
        await server.receive()  # AUTH
        welcome = server.seal({"t": "welcome", "time": "2026-11-23T10:00:00Z", "heartbeat_s": 30})
        command = server.seal({"t": "cmd", "cmd": 5, "op": "set_time", "args": {}})
        server.send(command)
        assert await server.silent(0.05)
        server.send(welcome)
        await server.expect("ack")
        server.send(command)  # the server's retransmission
        _, ack, _ = await server.expect("ack")
        _, result, _ = await server.expect("result")
        await stop(device, server)
        return ack, result, device.stats

    ack, result, stats = run(scenario())
    assert (ack, result) == ({"t": "ack", "seq": 2}, {"t": "result", "cmd": 5, "ok": True})
    assert stats.drops == {"before_welcome": 1} and stats.duplicates == 0


@pytest.mark.parametrize(
    ("op", "args", "result", "events"),
    [
        ("open", {"door": 2}, {"ok": True}, [("door_opened", 2, {"by": "command"}), ("door_closed", 2, None)]),
        ("set_mode", {"door": 1, "mode": "office"}, {"ok": True}, [("mode_changed", 1, {"mode": "office"})]),
        (
            "emergency_close",
            {},
            {"ok": True},
            [("mode_changed", 1, {"mode": "emergency_close"}), ("mode_changed", 2, {"mode": "emergency_close"})],
        ),
        ("blacklist", {"uids": ["0A0B"]}, {"ok": True}, []),
        ("open", {"door": 9}, {"ok": False, "error": "unknown door 9"}, []),
        ("self_destruct", {}, {"ok": False, "error": "unsupported op 'self_destruct'"}, []),
    ],
)
def test_a_command_is_acked_then_answered_with_a_result_and_its_events(op, args, result, events):
    async def scenario():
        device, server = await connected(readers={1: 1, 2: 2}, door_hold_s=0.05, retry_first_s=0.2)
        server.send(server.seal({"t": "cmd", "cmd": 7, "op": op, "args": args}))
        seen = [(await server.expect("ack"))[1], (await server.expect("result"))[1]]
        server.send(server.seal({"t": "ack", "seq": 3}))
        for _ in events:
            seq, message, _ = await server.expect("event")
            seen.append(message)
            server.send(server.seal({"t": "ack", "seq": seq}))
        assert await server.silent(0.15)
        await stop(device, server)
        return seen, device

    seen, device = run(scenario())
    assert seen[0] == {"t": "ack", "seq": 2}
    assert seen[1] == {"t": "result", "cmd": 7, **result}
    got = [(m["ev"]["kind"], m["ev"].get("door"), m["ev"].get("detail")) for m in seen[2:]]
    assert got == events
    assert device.stats.results_acked == 1 and device.unacked_events == []


def test_an_unacknowledged_event_goes_again_in_the_next_session_under_a_new_seq():
    async def scenario():
        device, server = await connected(first_event_id=500)
        assert device.queue_event("door_forced", door=1) == 500
        copies = [(await server.expect("event"))[2] for _ in range(5)]
        assert device.unacked_events[0]["id"] == 500
        # No ack after five tries: the session is given up and a new one made.
        await server.handshake()
        seq, message, _ = await server.expect("event")
        server.send(server.seal({"t": "ack", "seq": seq}))
        await until(lambda: device.unacked_events == [])
        await stop(device, server)
        return copies, seq, message, device

    copies, seq, message, device = run(scenario())
    assert len(set(copies)) == 1 and sdp1.parse(copies[0], sdp1.FROM_DEVICE).seq == 2
    assert seq == 2  # seq 1 of the new session was the welcome's ack; another session, another key
    assert message["ev"]["id"] == 500 and message["ev"]["kind"] == "door_forced"
    assert device.unacked_events == []
    assert (device.stats.events_sent, device.stats.events_acked, device.stats.session_breaks) == (1, 1, 1)
    assert device.next_event_id == 501


def test_events_queued_while_offline_are_sent_once_the_session_opens():
    async def scenario():
        device, server = await device_and_server()
        ids = [device.queue_event("door_opened", door=1, key="0A0B"), device.queue_event("door_closed", door=1)]
        await server.handshake()
        messages = [(await server.expect("event"))[1]["ev"] for _ in ids]
        await stop(device, server)
        return ids, messages

    ids, messages = run(scenario())
    assert ids == [1, 2]
    assert [(m["id"], m["kind"]) for m in messages] == [(1, "door_opened"), (2, "door_closed")]
    assert messages[0]["key"] == "0A0B" and messages[0]["at"].endswith("Z")


def test_send_event_returns_once_the_event_is_acknowledged():
    async def scenario():
        device, server = await connected()
        sending = asyncio.ensure_future(device.send_event("tamper", detail={"zone": "lid"}))
        seq, message, _ = await server.expect("event")
        assert not sending.done()
        server.send(server.seal({"t": "ack", "seq": seq}))
        event_id = await sending
        await stop(device, server)
        return event_id, message

    event_id, message = run(scenario())
    assert event_id == 1 and message["ev"]["detail"] == {"zone": "lid"}


def test_it_sends_a_status_every_heartbeat_from_the_welcome():
    async def scenario():
        device, server = await device_and_server(battery=80)
        await server.handshake({"t": "welcome", "time": "2026-11-23T10:00:00Z", "heartbeat_s": 1})
        welcomed = time.monotonic()
        statuses = []
        for _ in range(2):
            seq, status, _ = await server.expect("status", timeout=2)
            statuses.append((time.monotonic() - welcomed, status))
            server.send(server.seal({"t": "ack", "seq": seq}))
        await until(lambda: device.stats.statuses_acked == 2)
        await stop(device, server)
        return statuses, device.stats

    statuses, stats = run(scenario())
    assert 0.9 < statuses[0][0] < 1.3 and 1.9 < statuses[1][0] < 2.4
    assert statuses[0][1] == {
        "t": "status",
        "doors": {"1": "closed"},
        "battery": 80,
        "tamper": False,
        "fw": "space-sim/1",
    }
    assert stats.statuses_acked == 2


def test_many_devices_share_one_loop_each_with_its_own_port():
    async def scenario():
        server = await FakeServer.open()
        devices = [SimulatedDevice(i, K, server.address) for i in range(1, 51)]
        await asyncio.gather(*(device.start() for device in devices))
        hellos = [sdp1.parse(await server.receive(), sdp1.FROM_DEVICE) for _ in devices]
        ports = {device.local_address[1] for device in devices}
        for device in devices:
            await device.stop()
        server.close()
        return hellos, ports

    hellos, ports = run(scenario())
    assert {hello.device_id for hello in hellos} == set(range(1, 51))
    assert len(ports) == 50


# --- against the real bridge -------------------------------------------------------

KNOWN = "04A1B2C3D4E5F6"
UNKNOWN = "DEADBEEF0001"


def commission(make_device, device_id, door, key=K) -> Device:
    device = make_device(device_id=device_id, key=key)
    DeviceDoor.objects.create(device=device, number=1, access_point=door)
    DeviceReader.objects.create(device=device, number=1, access_point=door)
    return device


@pytest.fixture
def site(make_device, bridge):
    door = make_access_point(name="Main entrance", connection="online", open_time=6)
    holder = make_cardholder(make_access_level(door), first_name="Ada", last_name="Lovelace")
    make_key(holder, uid=KNOWN)
    device = commission(make_device, DEVICE, door)
    bridge.reload()
    return {"door": door, "holder": holder, "device": device, "server": ("127.0.0.1", bridge.port)}


@pytest.mark.django_db(transaction=True)
def test_against_the_bridge_a_known_card_is_granted_and_an_unknown_one_refused(site):
    async def scenario():
        device = SimulatedDevice(DEVICE, K, site["server"])
        await device.connect(5)
        decisions = [await device.present_card(1, KNOWN), await device.present_card(1, UNKNOWN)]
        await device.stop()
        return decisions, device.stats

    decisions, stats = run(scenario())
    assert decisions == [
        {"t": "decision", "req": 1, "grant": True, "reason": "granted", "open_ms": 6000},
        {"t": "decision", "req": 2, "grant": False, "reason": "unknown_key", "open_ms": 0},
    ]
    assert (stats.handshakes, stats.retransmissions, sum(stats.drops.values())) == (1, 0, 0)
    wait_until(lambda: AuditEvent.objects.filter(kind__startswith="access_").count() == 2)
    granted, refused = AuditEvent.objects.filter(kind__startswith="access_").order_by("id")
    assert (granted.kind, granted.cardholder_id, granted.access_point_id) == (
        "access_granted",
        site["holder"].pk,
        site["door"].pk,
    )
    assert (refused.kind, refused.reason, refused.key_uid) == ("access_denied", "unknown_key", UNKNOWN)


@pytest.mark.django_db(transaction=True)
def test_against_the_bridge_an_event_is_acked_once_stored_and_stored_once(site):
    async def scenario():
        device = SimulatedDevice(DEVICE, K, site["server"], first_event_id=70)
        await device.connect(5)
        event_id = await device.send_event("door_opened", door=1, key=KNOWN.lower())
        await device.stop()
        # Acknowledged means committed: the row is there the moment the ack is.
        stored = await asyncio.to_thread(
            lambda: list(AuditEvent.objects.filter(device_event_id=event_id).values_list("kind", "cardholder_id"))
        )
        # A device that lost track of the ack sends the same event id again, in another session.
        again = SimulatedDevice(DEVICE, K, site["server"], first_event_id=70)
        await again.connect(5)
        await again.send_event("door_opened", door=1, key=KNOWN.lower())
        await again.stop()
        return event_id, stored, device.stats

    event_id, stored, stats = run(scenario())
    assert event_id == 70
    assert stored == [("door_opened", site["holder"].pk)]
    assert AuditEvent.objects.filter(device=site["device"], device_event_id=70).count() == 1
    assert (stats.events_sent, stats.events_acked) == (1, 1)


@pytest.mark.django_db(transaction=True)
def test_against_the_bridge_a_command_is_acked_and_answered(site):
    command = DeviceCommand.objects.create(device=site["device"], op="set_mode", args={"door": 1, "mode": "office"})

    async def scenario():
        device = SimulatedDevice(DEVICE, K, site["server"])
        await device.connect(5)
        await until(lambda: device.stats.results_acked == 1 and not device.unacked_events)
        await device.stop()
        return device.stats

    stats = run(scenario())
    assert stats.commands == 1 and stats.events_acked == 1
    stored = DeviceCommand.objects.get(pk=command.pk)
    assert (stored.status, stored.error) == ("succeeded", "")
    changed = AuditEvent.objects.get(device=site["device"], kind="mode_changed")
    assert (changed.access_point_id, changed.detail) == (site["door"].pk, {"mode": "office"})


@pytest.mark.django_db(transaction=True)
def test_against_the_bridge_a_status_is_kept_on_the_device(site, bridge):
    async def scenario():
        device = SimulatedDevice(DEVICE, K, site["server"], battery=55)
        await device.connect(5)
        device.door_states[1] = "open"
        device.send_status()
        await until(lambda: device.stats.statuses_acked == 1)
        await device.stop()

    run(scenario())
    bridge.call(bridge.bridge._flush())
    stored = Device.objects.get(pk=site["device"].pk)
    assert (stored.door_states, stored.battery, stored.firmware) == ({"1": "open"}, 55, "space-sim/1")


async def start_bridge(port: int = 0) -> Bridge:
    bridge = Bridge(host="127.0.0.1", port=port, heartbeat_s=30)
    bridge.store = SnapshotStore()  # a store of its own: each test's database starts empty
    await bridge.start()
    return bridge


@pytest.mark.django_db(transaction=True)
def test_against_a_restarted_bridge_the_device_shakes_hands_again_and_delivers_its_buffer(make_device):
    commission(make_device, DEVICE, make_access_point(name="Side door", connection="online"))

    async def scenario():
        first = await start_bridge()
        device = SimulatedDevice(DEVICE, K, ("127.0.0.1", first.port), retry_first_s=0.05)
        await device.connect(5)
        old_session = device.session_id
        await first.stop()
        event_id = device.queue_event("door_left_open", door=1)
        await until(lambda: device.stats.session_breaks == 1, timeout=5)
        assert device.unacked_events[0]["id"] == event_id
        second = await start_bridge(first.port)
        try:
            await asyncio.wait_for(device.wait_acked(event_id), 10)
            assert device.session_id not in (None, old_session)
        finally:
            await device.stop()
            await second.stop()
        return event_id, device.stats

    event_id, stats = run(scenario())
    assert stats.handshakes == 2
    assert (stats.events_sent, stats.events_acked, stats.session_breaks) == (1, 1, 1)
    assert AuditEvent.objects.filter(device_event_id=event_id, kind="door_left_open").count() == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_run_load_against_the_bridge_gets_every_decision_and_every_ack(make_device, bridge):
    door = make_access_point(name="Lobby", connection="online")
    make_key(make_cardholder(make_access_level(door)), uid=KNOWN)
    for number in range(5):
        commission(make_device, 1000 + number, make_access_point(name=f"Door {number}", connection="online"))
    bridge.reload()
    server = ("127.0.0.1", bridge.port)
    devices = [SimulatedDevice(1000 + n, K, server, uids=[KNOWN, UNKNOWN]) for n in range(5)]

    async def scenario():
        try:
            return await run_load(devices, rate=50, seconds=1.5, hold_s=(0.05, 0.2), seed=3)
        finally:
            for device in devices:
                await device.stop()

    stats = run(scenario())
    assert stats["online_at_start"] == 5 and stats["handshakes"] == 5
    assert stats["presentations"] > 20 and stats["decisions"] == stats["presentations"]
    assert stats["no_decision"] == stats["unanswered"] == stats["session_breaks"] == 0
    # The doors are not in the card's access level: refused for no permission or an unknown key.
    assert stats["granted"] == 0 and stats["refused"] == stats["decisions"]
    assert stats["events_sent"] == stats["events_acked"] > 0 and stats["events_unacked"] == 0
    assert stats["latency_ms"]["max"] < 1000
    stored = AuditEvent.objects.filter(device_event_id__isnull=False).count()
    assert stored == stats["events_acked"]


# --- manage.py simulate_devices ----------------------------------------------------


def simulate(bridge, *args) -> dict:
    output = io.StringIO()
    call_command("simulate_devices", *args, f"--server=127.0.0.1:{bridge.port}", "--json", stdout=output)
    return json.loads(output.getvalue())


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_simulate_devices_commissions_its_devices_once_and_runs_the_load(bridge):
    free = make_access_point(name="Free door", connection="online")
    make_access_point(name="Offline door", connection="offline")
    make_key(make_cardholder(make_access_level(free)), uid=KNOWN)

    first = simulate(bridge, "--count=3", "--rate=40", "--seconds=1.5", "--first-id=900001")

    devices = Device.objects.filter(device_id__in=[900001, 900002, 900003]).order_by("device_id")
    assert [device.name for device in devices] == [f"Simulated device {n}" for n in (900001, 900002, 900003)]
    doors = [device.doors.get().access_point.name for device in devices]
    assert doors == ["Free door", "Simulated door 900002", "Simulated door 900003"]
    readers = [(device.readers.get().number, device.readers.get().access_point.name) for device in devices]
    assert readers == [(1, "Free door")] * 3
    assert first["devices"] == first["online_at_start"] == 3
    assert first["granted"] > 0 and first["refused"] > 0  # the known card and an unknown one
    assert first["decisions"] == first["presentations"] > 0 and first["events_unacked"] == 0
    stored = AuditEvent.objects.filter(device_event_id__isnull=False).count()
    assert stored == first["events_acked"]

    # Again: the same devices, and event ids that carry on after the stored ones (so none is skipped as a repeat).
    second = simulate(bridge, "--count=3", "--rate=40", "--seconds=1.5", "--first-id=900001")
    assert Device.objects.count() == 3
    assert second["events_acked"] > 0
    assert AuditEvent.objects.filter(device_event_id__isnull=False).count() == stored + second["events_acked"]


@pytest.mark.django_db(transaction=True)
def test_simulate_devices_refuses_a_device_id_that_is_not_a_simulated_device(make_device):
    make_device(device_id=900001, name="Front desk encoder")
    with pytest.raises(CommandError, match="not a simulated device"):
        call_command("simulate_devices", "--count=2", "--seconds=0.1", "--first-id=900001")
    assert Device.objects.count() == 1
