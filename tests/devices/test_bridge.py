"""The device bridge against a real UDP socket, one device written from the protocol page."""

import contextlib
import os
import time

import pytest

from accesscontrol.models import AuditEvent, Key, Presence
from devices.choices import AlarmKind
from devices.models import Alarm, Device, DeviceCommand
from devices.sdp import codec as sdp1
from tests.devices.client import NoAnswer
from tests.devices.conftest import UID
from tests.factories import make_cardholder, make_key, make_zone
from tests.support.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def access(client, uid=UID, reader=1, req=1, **extra):
    return client.request({"t": "access", "req": req, "reader": reader, "cred": {"kind": "card", "uid": uid}, **extra})


def event(event_id, kind="door_opened", door=1, **extra):
    return {"t": "event", "ev": {"id": event_id, "at": "2026-11-23T10:00:00Z", "kind": kind, "door": door, **extra}}


class TestHandshake:
    def test_the_welcome_carries_the_time_and_the_heartbeat(self, site, client_for):
        welcome = client_for(site["device"]).handshake()
        assert welcome["heartbeat_s"] == 30
        assert welcome["time"].endswith("Z") and len(welcome["time"]) == 20

    def test_a_device_that_completes_the_handshake_is_online_and_audited(self, site, client_for):
        client_for(site["device"]).handshake()
        wait_until(lambda: Device.objects.get(pk=site["device"].pk).online)
        assert AuditEvent.objects.filter(kind="device_online", device=site["device"]).count() == 1
        assert Device.objects.get(pk=site["device"].pk).address.startswith("127.0.0.1:")

    def test_a_repeated_hello_gets_the_same_challenge_byte_for_byte(self, site, client_for):
        client = client_for(site["device"])
        nonce = os.urandom(16)
        client.hello(nonce)
        first = client.read_challenge()
        client.hello(nonce)
        assert client.read_challenge() == first

    def test_a_repeated_auth_gets_the_same_welcome_byte_for_byte(self, site, client_for):
        client = client_for(site["device"])
        client.hello()
        client.read_challenge()
        auth = client.auth()
        welcome = client.receive()
        client.send(auth)
        assert client.receive() == welcome

    def test_a_wrong_key_gets_no_welcome(self, site, client_for, bridge):
        client = client_for(site["device"], key=bytes(16))
        client.hello()
        with pytest.raises(AssertionError, match="does not know the key"):
            client.read_challenge()
        client.auth()
        assert client.silent()
        assert bridge.counters["dropped_bad_proof"] == 1

    def test_an_unknown_device_gets_no_answer(self, site, bridge, client_for):
        client = client_for(Device(device_id=999))
        client.hello()
        assert client.silent()
        assert bridge.counters["dropped_unknown_device"] == 1

    def test_a_new_handshake_replaces_the_session(self, device, client_for, site):
        old_session = device.session_id
        device.handshake()
        assert device.session_id != old_session
        assert access(device)["grant"] is True

    def test_hellos_beyond_ten_a_second_are_dropped(self, site, client_for, bridge):
        client = client_for(site["device"])
        for _ in range(12):
            client.hello()
        answers = 0
        try:
            while client.receive(0.3):
                answers += 1
        except NoAnswer:
            pass
        assert (answers, bridge.counters["dropped_hello_rate"]) == (10, 2)


class TestAccess:
    def test_a_permitted_card_is_granted_with_the_door_open_time(self, device):
        assert access(device, req=7) == {"t": "decision", "req": 7, "grant": True, "reason": "granted", "open_ms": 6000}

    def test_an_unknown_card_is_refused(self, device):
        decision = access(device, uid="DEADBEEF")
        assert (decision["grant"], decision["reason"], decision["open_ms"]) == (False, "unknown_key", 0)

    def test_an_unmapped_reader_is_refused(self, device):
        assert access(device, reader=9)["reason"] == "unknown_access_point"

    def test_a_pin_alone_opens_a_pin_only_door_and_is_audited_without_a_key(self, site, device, bridge):
        holder, door = site["holder"], site["door"]
        holder.set_pin("2468")
        holder.save()
        door.pin_only = True
        door.save()
        bridge.reload()

        def typed(pin, req):
            return device.request({"t": "access", "req": req, "reader": 1, "cred": {"kind": "pin", "pin": pin}})

        assert typed("2468", 1) == {"t": "decision", "req": 1, "grant": True, "reason": "granted", "open_ms": 6000}
        assert typed("1357", 2)["reason"] == "unknown_pin"
        event = wait_until(lambda: AuditEvent.objects.filter(kind="access_granted", detail__req=1).first())
        assert (event.cardholder_id, event.key_uid, event.detail["credential"]) == (holder.pk, "", "pin")
        door.pin_only = False
        door.save()
        bridge.reload()
        assert typed("2468", 3)["reason"] == "pin_not_accepted"

    def test_card_and_pin_asks_for_the_pin_then_takes_it(self, site, device, bridge):
        holder, door = site["holder"], site["door"]
        holder.set_pin("2468")
        holder.save()
        door.pin_required = True
        door.save()
        bridge.reload()
        assert access(device, req=1)["reason"] == "pin_required"
        assert access(device, req=2, pin="1111")["reason"] == "wrong_pin"
        assert access(device, req=3, pin="2468")["grant"] is True

    def test_a_retransmitted_access_gets_the_same_decision_datagram(self, device, bridge):
        datagram = device.seal({"t": "access", "req": 1, "reader": 1, "cred": {"kind": "card", "uid": UID}})
        device.send(datagram)
        first = device.receive()
        device.send(datagram)
        assert device.receive() == first
        assert bridge.counters["decisions"] == 1

    def test_decisions_are_in_the_audit_trail(self, device, site):
        access(device)
        access(device, uid="DEADBEEF", req=2)
        wait_until(lambda: AuditEvent.objects.filter(kind__startswith="access_").count() == 2)
        granted, refused = AuditEvent.objects.filter(kind__startswith="access_").order_by("id")
        assert (granted.kind, granted.cardholder_id, granted.cardholder_name) == (
            "access_granted",
            site["holder"].pk,
            "Ada Lovelace",
        )
        assert (granted.access_point_name, granted.device_id) == ("Main entrance", site["device"].pk)
        assert (refused.kind, refused.reason, refused.key_uid) == ("access_denied", "unknown_key", "DEADBEEF")

    def test_a_cancelled_key_is_refused_once_the_rules_refresh(self, device):
        assert access(device)["grant"] is True
        key = Key.objects.get(uid=UID)
        key.status = "cancelled"
        key.save()
        wait_until(lambda: access(device, req=int(time.monotonic() * 1000))["grant"] is False, timeout=5)

    def test_lockdown_of_the_door_refuses_at_once(self, device, site):
        door = site["door"]
        door.lockdown = True
        door.save()
        wait_until(lambda: access(device, req=int(time.monotonic() * 1000))["reason"] == "lockdown")


class TestEvents:
    def test_an_event_is_acknowledged_once_stored(self, device, site):
        assert device.request(event(1)) == {"t": "ack", "seq": device.seq}
        row = AuditEvent.objects.get(device=site["device"], device_event_id=1)
        assert (row.kind, row.access_point_id, row.at.isoformat()) == (
            "door_opened",
            site["door"].pk,
            "2026-11-23T10:00:00+00:00",
        )

    def test_an_event_sent_again_under_a_new_seq_is_stored_once(self, device, site):
        device.request(event(5))
        device.handshake()
        assert device.request(event(5))["t"] == "ack"
        assert AuditEvent.objects.filter(device=site["device"], device_event_id=5).count() == 1

    def test_a_duplicate_frame_gets_the_same_ack_datagram(self, device):
        datagram = device.seal(event(6))
        device.send(datagram)
        ack = device.receive()
        device.send(datagram)
        assert device.receive() == ack

    def test_an_event_with_a_key_names_its_cardholder(self, device, site):
        device.request(event(7, kind="access_granted", key=UID.lower(), detail={"reason": "granted"}))
        row = AuditEvent.objects.get(device_event_id=7)
        assert (row.cardholder_id, row.key_uid, row.reason) == (site["holder"].pk, UID, "granted")

    @pytest.mark.parametrize(
        "ev",
        [
            {"id": -1, "at": "2026-11-23T10:00:00Z", "kind": "door_opened"},
            {"id": 1, "at": "2026-11-23 10:00:00", "kind": "door_opened"},
            {"id": 1, "at": "2026-13-40T10:00:00Z", "kind": "door_opened"},
            {"id": 1, "at": "2026-11-23T10:00:00Z", "kind": ""},
            {"id": True, "at": "2026-11-23T10:00:00Z", "kind": "door_opened"},
            {"id": 1, "at": "2026-11-23T10:00:00Z", "kind": "door_opened", "key": "not hex"},
            {"id": 1, "at": "2026-11-23T10:00:00Z", "kind": "door_opened", "detail": []},
            "not an object",
        ],
    )
    def test_a_malformed_event_gets_no_answer_and_is_counted(self, device, bridge, ev):
        device.send(device.seal({"t": "event", "ev": ev}))
        assert device.silent()
        assert bridge.counters["bad_messages"] == 1
        assert access(device)["grant"] is True

    def test_a_status_is_acknowledged_and_kept_on_the_device(self, device, site, bridge):
        message = {"t": "status", "doors": {"1": "open"}, "battery": 80, "tamper": False, "fw": "1.2.3"}
        assert device.request(message)["t"] == "ack"
        bridge.call(bridge.bridge._flush())
        stored = Device.objects.get(pk=site["device"].pk)
        assert (stored.door_states, stored.battery, stored.firmware) == ({"1": "open"}, 80, "1.2.3")


class TestCommands:
    def test_a_command_is_sent_acknowledged_and_its_result_recorded(self, device, site):
        command = DeviceCommand.objects.create(device=site["device"], op="open", args={"door": 1})
        seq, message, _ = wait_until(lambda: device.inbox or _read_command(device))[0]
        assert message == {"t": "cmd", "cmd": command.pk, "op": "open", "args": {"door": 1}}
        device.request({"t": "ack", "seq": seq}, answer=False)
        wait_until(lambda: DeviceCommand.objects.get(pk=command.pk).status == "acknowledged")
        # Retransmitted as a device does: the ack follows the commit, which a loaded machine may delay.
        assert device.request_retrying({"t": "result", "cmd": command.pk, "ok": True})["t"] == "ack"
        stored = DeviceCommand.objects.get(pk=command.pk)
        assert stored.status == "succeeded" and stored.finished_at and stored.sent_at

    def test_a_failed_result_keeps_the_error(self, device, site):
        command = DeviceCommand.objects.create(device=site["device"], op="set_mode", args={"door": 1, "mode": "x"})
        wait_until(lambda: device.inbox or _read_command(device))
        answer = device.request_retrying({"t": "result", "cmd": command.pk, "ok": False, "error": "unknown mode"})
        assert answer["t"] == "ack"
        stored = DeviceCommand.objects.get(pk=command.pk)
        assert (stored.status, stored.error) == ("failed", "unknown mode")

    def test_an_unacknowledged_command_is_retransmitted_byte_for_byte(self, device, site):
        DeviceCommand.objects.create(device=site["device"], op="open", args={"door": 1})
        _, _, first = wait_until(lambda: device.inbox or _read_command(device))[0]
        assert device.receive(1.0) == first


def _read_command(client):
    with contextlib.suppress(NoAnswer):
        client.read(timeout=0.2, skip_commands=True)
    return client.inbox


class TestSilence:
    def test_garbage_forgeries_and_replays_get_no_answer(self, device, bridge, site):
        datagram = device.seal(event(9))
        device.send(datagram)
        device.receive()
        forged = bytearray(device.seal(event(10)))
        forged[-1] ^= 1
        wrong_session = bytearray(device.seal(event(11)))
        wrong_session[8:12] = (device.session_id ^ 1).to_bytes(4, "big")
        for bad in (b"hello", os.urandom(100), bytes(forged), bytes(wrong_session)):
            device.send(bad)
        assert device.silent()
        # Far behind the window: dropped without an answer.
        for _ in range(70):
            device.request({"t": "ack", "seq": 1}, answer=False)
        device.send(datagram)
        assert device.silent()
        counters = bridge.counters
        assert counters["dropped_bad_tag"] == 1 and counters["dropped_unknown_session"] == 1
        assert counters["dropped_replay_window"] == 1 and counters["dropped_short"] == 1
        assert access(device, req=99)["grant"] is True

    def test_an_unknown_message_uses_its_seq_and_gets_no_answer(self, device, bridge):
        device.send(device.seal({"t": "dance"}))
        device.send(sdp1.seal(device.d2s, device.device_id, device.session_id, device.seq + 1, b"[1]"))
        device.seq += 1
        assert device.silent()
        assert bridge.counters["unknown_messages"] == 2


def test_a_silent_device_goes_offline_after_three_heartbeats(make_device, client_for, transactional_db):
    from tests.support.bridge import RunningBridge

    device = make_device()
    running = RunningBridge(heartbeat_s=1)
    try:
        from tests.devices.client import Client

        client = Client(running.port, device.device_id, bytes(range(16)))
        assert client.handshake()["heartbeat_s"] == 1
        wait_until(lambda: AuditEvent.objects.filter(kind="device_offline").exists(), timeout=8)
        assert not Device.objects.get(pk=device.pk).online
        client.close()
    finally:
        running.stop()


def test_an_ack_after_commit_goes_to_the_source_of_the_event_it_answers(device):
    import socket

    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    other.settimeout(2)
    try:
        # The event from the device's socket, then at once a status from another address (the device moved).
        device.send(device.seal(event(21)))
        other.sendto(device.seal({"t": "status", "doors": {"1": "closed"}}), device.server)
        status_ack = device.open(other.recvfrom(2048)[0])[1]
        event_ack = device.open(device.receive())[1]
    finally:
        other.close()
    assert status_ack == {"t": "ack", "seq": device.seq}
    assert event_ack == {"t": "ack", "seq": device.seq - 1}


class TestPresence:
    """Anti-passback and occupancy at SDP/1 doors, on the presence every process shares."""

    @pytest.fixture
    def hall(self, site, bridge):
        zone = make_zone(name="Hall", anti_passback=True, roll_call=True)
        door = site["door"]
        door.direction = "entry"
        door.save()
        door.zones.add(zone)
        holder = site["holder"]
        holder.use_anti_passback = True
        holder.save()
        bridge.reload()
        return zone

    def test_an_entry_is_stored_as_presence_and_a_second_one_is_refused(self, site, device, hall):
        assert access(device, req=1)["grant"] is True
        wait_until(lambda: Presence.objects.filter(cardholder=site["holder"], zone=hall, inside=True).exists())
        assert access(device, req=2)["reason"] == "anti_passback"

    def test_soft_anti_passback_lets_them_in_and_raises_an_alarm(self, site, device, hall, bridge):
        hall.passback_kind = "soft"
        hall.save()
        bridge.reload()
        assert access(device, req=1)["grant"] is True
        second = access(device, req=2)
        assert (second["grant"], second["reason"]) == (True, "granted")
        alarm = wait_until(lambda: Alarm.objects.filter(kind=AlarmKind.ANTI_PASSBACK).first())
        assert alarm.access_point_id == site["door"].pk and alarm.cleared_at is not None
        assert alarm.acknowledged_at is None

    def test_a_full_zone_refuses_the_next_entry(self, site, device, hall, bridge):
        hall.max_occupancy = 1
        hall.save()
        other = make_cardholder(first_name="Grace")
        other.access_levels.set(site["holder"].access_levels.all())
        make_key(other, uid="0A0B0C0D")
        bridge.reload()
        assert access(device, req=1)["grant"] is True
        full = access(device, uid="0A0B0C0D", req=2)
        assert (full["grant"], full["reason"]) == (False, "zone_full")
