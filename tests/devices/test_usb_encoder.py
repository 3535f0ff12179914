"""USB encoders: the serial codec, the serial link over a real pty, the /ws/encoder/ consumer and the sweep.

The whole path with processes (runspace, the local bridge program, a pty) is
in test_usb_encoder_processes.py; here each part is driven on its own: the
consumer through the real ASGI app with the test speaking the bridge's side.
"""

import asyncio
import base64
import datetime as dt
import json

import pytest
import serial
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from accesscontrol.models import AuditEvent
from devices import bridgewire, consumers, localbridge, usb_encoders
from devices import usbserial as wire
from devices.models import Device, EncodeJob
from simulation.usb_encoder import SimulatedUsbEncoder
from tests.factories import make_cardholder, make_key

KEY = bytes(range(16))
UID = "04A1B2C3D4E5F6"

# --- the serial codec -----------------------------------------------------------------------------

uids = st.binary(max_size=wire.MAX_UID)
timeouts = st.integers(1, wire.MAX_TIMEOUT_S)
messages = st.one_of(
    st.just(wire.Identify()),
    st.just(wire.Cancel()),
    st.builds(wire.Write, st.binary(max_size=wire.MAX_CARD_DATA), timeouts, uids),
    st.builds(wire.Read, timeouts),
    st.builds(wire.Ident, st.text(max_size=40)),
    st.builds(wire.Progress, st.sampled_from(list(wire.STAGE_CODES)), st.integers(0, 100)),
    st.builds(wire.Ok, uids, st.binary(max_size=wire.MAX_CARD_DATA)),
    st.builds(wire.Error, st.sampled_from(list(wire.ERROR_CODES)), st.text(max_size=40)),
)


@given(st.integers(0, 255), messages)
def test_every_message_survives_a_round_trip(seq, message):
    assert wire.Decoder().feed(wire.encode(seq, message)) == [wire.Frame(seq, message)]


@given(st.lists(st.tuples(st.integers(0, 255), messages), max_size=4), st.binary(max_size=64))
def test_frames_split_anywhere_and_noise_between_them_still_decode(frames, noise):
    stream = b"".join(noise.replace(b"\x02", b"") + wire.encode(seq, message) for seq, message in frames)
    decoder = wire.Decoder()
    decoded = [frame for i in range(0, len(stream), 7) for frame in decoder.feed(stream[i : i + 7])]
    assert decoded == [wire.Frame(seq, message) for seq, message in frames]


@given(st.binary(max_size=2000))
def test_garbage_never_raises(garbage):
    decoder = wire.Decoder()
    frames = decoder.feed(garbage) + decoder.idle() + decoder.idle()
    assert all(isinstance(frame, wire.Frame) for frame in frames)


@given(messages, st.data())
def test_a_flipped_bit_is_dropped_and_counted(message, data):
    frame = bytearray(wire.encode(9, message))
    index = data.draw(st.integers(1, len(frame) - 1))
    frame[index] ^= 1 << data.draw(st.integers(0, 7))
    decoder = wire.Decoder()
    decoded = decoder.feed(bytes(frame)) + decoder.idle()
    assert wire.Frame(9, message) not in decoded
    assert decoder.counters


def test_a_frame_is_laid_out_as_the_documentation_says():
    frame = wire.encode(7, wire.Progress("writing", 50))
    assert frame[:6] == bytes([0x02, 0x00, 0x04, 0x07, 0x82, 0x02])
    assert frame[6] == 50
    assert frame[7:9] == wire.crc16(frame[1:7]).to_bytes(2, "big")
    assert frame[9] == 0x03
    assert wire.crc16(b"123456789") == 0x29B1  # the CRC-16/CCITT-FALSE check value


def test_a_well_framed_frame_with_a_bad_crc_is_reported_with_its_seq():
    frame = bytearray(wire.encode(42, wire.Identify()))
    frame[-2] ^= 0xFF
    decoder = wire.Decoder()
    assert decoder.feed(bytes(frame)) == [wire.Frame(42, None, "checksum")]
    assert decoder.counters == {"checksum": 1}


def test_the_largest_frames_pass():
    largest = [
        wire.Write(bytes(wire.MAX_CARD_DATA), wire.MAX_TIMEOUT_S, bytes(wire.MAX_UID)),
        wire.Ok(bytes(16), bytes(4096)),
    ]
    for message in largest:
        assert wire.Decoder().feed(wire.encode(255, message)) == [wire.Frame(255, message)]
    assert len(wire.encode(0, largest[0])) == wire.MAX_BODY + 6


def test_a_long_text_is_cut_on_a_character_boundary():
    frame = wire.encode(1, wire.Ident("é" * 150))
    assert wire.Decoder().feed(frame) == [wire.Frame(1, wire.Ident("é" * 100))]


def test_values_out_of_range_are_refused_when_encoding():
    with pytest.raises(ValueError):
        wire.encode(1, wire.Write(bytes(wire.MAX_CARD_DATA + 1), 30))
    with pytest.raises(ValueError):
        wire.encode(1, wire.Read(0))


# --- the serial link: the local bridge's end and the simulated encoder, over a real pty ------------


@pytest.fixture
def encoder():
    simulated = SimulatedUsbEncoder().start()
    yield simulated
    simulated.stop()


def talk(encoder, *requests):
    """Open the pty as the local bridge does and send ``requests`` (message, timeout); the answers and
    the progress seen."""

    async def scenario():
        host = localbridge.SerialEncoder(encoder.port, 115200)
        progress = []

        async def seen(answer):
            progress.append(answer)

        try:
            answers = [await host.request(message, timeout, seen) for message, timeout in requests]
        finally:
            host.close()
        return answers, progress, host.decoder.counters

    return asyncio.run(scenario())


def test_the_encoder_writes_the_card_and_reports_its_progress(encoder):
    card = encoder.place_card(UID, "desfire_ev3_4k", b"old")
    data = bytes(range(256)) * 8
    answers, progress, _ = talk(encoder, (wire.Write(data, 2, bytes.fromhex(UID)), 5))
    assert answers == [wire.Ok(bytes.fromhex(UID))]
    assert card.data == data
    assert progress[0] == wire.Progress("waiting_card")
    assert progress[1:] == [wire.Progress("writing", percent) for percent in (25, 50, 75, 100)]


@pytest.mark.parametrize(
    ("card", "error"),
    [
        (None, "no_card"),
        (("desfire_ev3_2k", False), "wrong_card_type"),
        (("mifare_classic_1k", False), "wrong_card_type"),
        (("desfire_ev3_4k", True), "write_failed"),
    ],
)
def test_the_encoder_says_why_it_could_not_write(encoder, card, error):
    if card is not None:
        encoder.place_card(UID, card[0], locked=card[1])
    answers, _, _ = talk(encoder, (wire.Write(bytes(3000), 1), 5))
    assert [answer.error for answer in answers] == [error]


def test_a_card_other_than_the_one_asked_for_is_not_written(encoder):
    card = encoder.place_card("0411223344", "desfire_ev3_4k")
    answers, _, _ = talk(encoder, (wire.Write(b"data", 1, bytes.fromhex(UID)), 5))
    assert answers[0].error == "wrong_card"
    assert card.data == b""


def test_a_command_garbled_on_the_line_is_answered_checksum_and_sent_again(encoder):
    encoder.place_card(UID)
    encoder.garble(2)
    answers, _, _ = talk(encoder, (wire.Identify(), 2), (wire.Read(1), 2))
    assert answers == [wire.Ident("Space simulated USB encoder 1.0"), wire.Ok(bytes.fromhex(UID), b"")]
    assert encoder.counters["checksum"] == 2


def test_noise_from_the_encoder_is_dropped_and_counted_by_the_bridge(encoder):
    async def scenario():
        host = localbridge.SerialEncoder(encoder.port, 115200)
        try:
            await host.identify()  # the port is open
            encoder.write_raw(b"\x00\xffnoise\x02\xff\xff" + wire.encode(200, wire.Ident("stale")))
            return await host.identify(), host.decoder.counters
        finally:
            host.close()

    ident, counters = asyncio.run(scenario())
    assert ident == "Space simulated USB encoder 1.0"
    assert counters["noise"] >= 1 and counters["stale_answer"] == 1


def test_noise_from_the_bridge_is_dropped_and_counted_by_the_encoder(encoder):
    with serial.Serial(encoder.port, 115200, timeout=1) as port:
        port.write(b"hello\x02\x00\x01\x02\x03")
        port.write(wire.encode(3, wire.Identify()))
        answer = wire.Decoder().feed(port.read(len(wire.encode(3, wire.Ident(encoder_ident())))))
    assert answer == [wire.Frame(3, wire.Ident(encoder_ident()))]
    assert encoder.counters["noise"] >= 1 and encoder.counters["bad_length"] == 1


def encoder_ident() -> str:
    return "Space simulated USB encoder 1.0"


def test_an_encoder_that_is_not_there_is_offline():
    async def scenario():
        host = localbridge.SerialEncoder("/dev/nonexistent-usb-encoder", 115200)
        await host.identify()

    with pytest.raises(localbridge.EncoderOffline):
        asyncio.run(scenario())


# --- the consumer: /ws/encoder/ ------------------------------------------------------------------


@pytest.fixture
def usb_encoder(transactional_db):
    device = Device(device_id=7001, name="Front desk encoder", kind="usb_encoder")
    device.set_key(KEY)
    device.save()
    return device


def make_job(encoder: Device, data: bytes = b"card file", uid: str | None = None, **fields) -> EncodeJob:
    key = make_key(make_cardholder(first_name="Grace", last_name="Hopper"), uid=uid)
    return EncodeJob.objects.create(key=key, encoder=encoder, data=data, **fields)


async def connected_bridge(device_id: int = 7001, key: bytes = KEY) -> tuple[WebsocketCommunicator, dict | None]:
    """A bridge that answered the challenge; the server's next message (None when it closed the connection)."""
    from space.asgi import application

    ws = WebsocketCommunicator(application, bridgewire.PATH)
    assert (await ws.connect())[0]
    challenge = await ws.receive_json_from()
    mac = bridgewire.proof(key, device_id, bytes.fromhex(challenge["challenge"]))
    await ws.send_json_to({"type": "auth", "device_id": device_id, "mac": mac})
    reply = await ws.receive_output(3)
    if reply["type"] == "websocket.close":
        return ws, reply
    return ws, json.loads(reply["text"])


def db(function, *args):
    return database_sync_to_async(function)(*args)


def is_online(device: Device) -> bool:
    return Device.objects.get(pk=device.pk).online


def job_row(job: EncodeJob) -> dict:
    job.refresh_from_db()
    return {"status": job.status, "progress": job.progress, "error": job.error, "card_uid": job.card_uid}


def test_a_bridge_with_the_wrong_key_is_closed_with_4403(usb_encoder):
    async def scenario():
        return (await connected_bridge(key=bytes(16)))[1]

    assert asyncio.run(scenario()) == {"type": "websocket.close", "code": 4403}
    usb_encoder.refresh_from_db()
    assert not usb_encoder.online
    assert not AuditEvent.objects.exists()


def test_a_device_that_is_not_a_usb_encoder_is_refused_even_with_its_key(usb_encoder):
    Device.objects.filter(pk=usb_encoder.pk).update(kind="control_unit")

    async def scenario():
        return (await connected_bridge())[1]

    assert asyncio.run(scenario())["code"] == 4403


def test_a_bridge_that_does_not_answer_the_challenge_is_closed_with_4408(usb_encoder, monkeypatch):
    monkeypatch.setattr(consumers, "AUTH_SECONDS", 0.2)
    from space.asgi import application

    async def scenario():
        ws = WebsocketCommunicator(application, bridgewire.PATH)
        await ws.connect()
        await ws.receive_json_from()
        return await ws.receive_output(3)

    assert asyncio.run(scenario()) == {"type": "websocket.close", "code": 4408}


def test_a_job_is_sent_to_the_bridge_and_its_progress_and_result_stored(usb_encoder):
    job = make_job(usb_encoder, uid=UID)

    async def scenario():
        ws, welcome = await connected_bridge()
        encode = await ws.receive_json_from(3)
        steps = []
        for message in (
            {"type": "progress", "job": job.pk, "stage": "waiting_card"},
            {"type": "progress", "job": job.pk, "stage": "writing", "percent": 50},
            {"type": "result", "job": job.pk, "ok": True, "uid": UID},
        ):
            await ws.send_json_to(message)
            await ws.send_json_to({"type": "ping"})
            assert await ws.receive_json_from(3) == {"type": "pong"}  # the message before it was handled
            steps.append(await db(job_row, job))
        await ws.disconnect()
        return welcome, encode, steps

    welcome, encode, steps = asyncio.run(scenario())
    assert welcome == {"type": "welcome", "device": "Front desk encoder"}
    assert encode == {
        "type": "encode",
        "job": job.pk,
        "data": base64.b64encode(b"card file").decode(),
        "timeout_s": 30,
        "uid": UID,
    }
    assert steps == [
        {"status": "waiting_card", "progress": 10, "error": "", "card_uid": ""},
        {"status": "writing", "progress": 60, "error": "", "card_uid": ""},
        {"status": "done", "progress": 100, "error": "", "card_uid": UID},
    ]
    event = AuditEvent.objects.get(kind="key_encoded")
    assert (event.key_uid, event.device_id, event.detail["job"]) == (UID, usb_encoder.pk, job.pk)
    assert list(AuditEvent.objects.values_list("kind", flat=True).order_by("id")) == [
        "device_online",
        "key_encoded",
        "device_offline",
    ]


def test_a_key_without_a_card_uid_is_written_on_any_card(usb_encoder):
    job = make_job(usb_encoder, uid="mobile-key-1")

    async def scenario():
        ws, _ = await connected_bridge()
        encode = await ws.receive_json_from(3)
        await ws.disconnect()
        return encode

    assert "uid" not in asyncio.run(scenario())
    assert job_row(job)["error"] == "encoder_offline"  # it was in flight when the bridge left


def test_the_encoder_is_online_while_its_bridge_is_connected(usb_encoder):
    async def scenario():
        ws, _ = await connected_bridge()
        during = await db(is_online, usb_encoder)
        await ws.disconnect()
        return during

    assert asyncio.run(scenario()) is True
    usb_encoder.refresh_from_db()
    assert not usb_encoder.online


def test_bad_messages_are_dropped_and_counted_and_the_connection_stays(usb_encoder):
    job = make_job(usb_encoder)
    before = consumers.COUNTERS["bad_message"] + consumers.COUNTERS["stale_result"]

    async def scenario():
        ws, _ = await connected_bridge()
        await ws.receive_json_from(3)
        for text in ("not json", "[1]", '{"type":"result","job":"x","ok":true}', '{"type":"progress","job":1}'):
            await ws.send_to(text_data=text)
        await ws.send_to(bytes_data=b"\x00\x01")
        await ws.send_json_to({"type": "result", "job": job.pk + 1000, "ok": False, "error": "no_card"})
        await ws.send_json_to({"type": "result", "job": job.pk, "ok": False, "error": "on fire"})
        await ws.send_json_to({"type": "ping"})
        pong = await ws.receive_json_from(3)
        await ws.disconnect()
        return pong

    assert asyncio.run(scenario()) == {"type": "pong"}
    assert consumers.COUNTERS["bad_message"] + consumers.COUNTERS["stale_result"] - before == 6
    assert job_row(job)["error"] == "encoder_error"


def test_a_job_in_flight_when_the_bridge_leaves_fails_as_encoder_offline(usb_encoder):
    job = make_job(usb_encoder)
    waiting = make_job(usb_encoder)

    async def scenario():
        ws, _ = await connected_bridge()
        await ws.receive_json_from(3)
        await ws.send_json_to({"type": "progress", "job": job.pk, "stage": "waiting_card"})
        await ws.send_json_to({"type": "ping"})
        await ws.receive_json_from(3)
        await ws.disconnect()

    asyncio.run(scenario())
    assert job_row(job) == {"status": "failed", "progress": 10, "error": "encoder_offline", "card_uid": ""}
    # The next job was never sent: it waits for a bridge (the sweep fails it after the grace period).
    assert job_row(waiting)["status"] == "queued"


def test_a_job_not_finished_in_time_fails_with_timeout_and_is_cancelled(usb_encoder, monkeypatch, settings):
    settings.SPACE_ENCODE_CARD_WAIT_SECONDS = 1
    monkeypatch.setattr(usb_encoders, "WRITE_MARGIN_SECONDS", 0.0)
    job = make_job(usb_encoder)
    after = make_job(usb_encoder)

    async def scenario():
        ws, _ = await connected_bridge()
        first = await ws.receive_json_from(3)
        cancel = await ws.receive_json_from(3)
        second = await ws.receive_json_from(3)
        await ws.send_json_to({"type": "result", "job": job.pk, "ok": True, "uid": UID})  # too late
        await ws.send_json_to({"type": "result", "job": after.pk, "ok": False, "error": "no_card"})
        await ws.send_json_to({"type": "ping"})
        await ws.receive_json_from(3)
        await ws.disconnect()
        return first["job"], cancel, second["job"]

    assert asyncio.run(scenario()) == (job.pk, {"type": "cancel", "job": job.pk}, after.pk)
    assert job_row(job)["error"] == "timeout"
    assert job_row(after)["error"] == "no_card"


def test_a_newer_bridge_of_the_same_encoder_replaces_the_older_and_it_stays_online(usb_encoder):
    async def scenario():
        old, _ = await connected_bridge()
        new, _ = await connected_bridge()
        closed = await old.receive_output(3)
        await asyncio.sleep(0.1)
        online = await db(is_online, usb_encoder)
        await new.disconnect()
        return closed, online

    closed, online = asyncio.run(scenario())
    assert closed == {"type": "websocket.close", "code": 4409}
    assert online is True


# --- the sweep ----------------------------------------------------------------------------------


def test_the_sweep_fails_jobs_of_an_encoder_without_a_bridge_after_the_grace_period(usb_encoder, settings):
    settings.SPACE_USB_ENCODER_GRACE_SECONDS = 10
    old = make_job(usb_encoder)
    fresh = make_job(usb_encoder)
    lost = make_job(usb_encoder, status="writing")
    now = timezone.now()
    EncodeJob.objects.filter(pk__in=[old.pk, lost.pk]).update(
        created_at=now - dt.timedelta(seconds=11), updated_at=now - dt.timedelta(seconds=11)
    )
    assert usb_encoders.sweep(now) == {"silent_encoders": 0, "offline_jobs": 2, "timed_out_jobs": 0}
    assert [job_row(job)["error"] for job in (old, fresh, lost)] == ["encoder_offline", "", "encoder_offline"]
    assert usb_encoders.sweep(now) == {"silent_encoders": 0, "offline_jobs": 0, "timed_out_jobs": 0}


def test_the_sweep_leaves_jobs_of_a_connected_encoder_and_of_ethernet_encoders(usb_encoder):
    ethernet = Device.objects.create(device_id=7002, name="Lobby encoder", kind="encoder")
    now = timezone.now()
    Device.objects.filter(pk=usb_encoder.pk).update(online=True, last_seen_at=now)
    jobs = [make_job(usb_encoder), make_job(ethernet)]
    EncodeJob.objects.update(created_at=now - dt.timedelta(minutes=5))
    assert usb_encoders.sweep(now)["offline_jobs"] == 0
    assert [job_row(job)["status"] for job in jobs] == ["queued", "queued"]


def test_the_sweep_takes_an_encoder_not_heard_from_offline(usb_encoder):
    now = timezone.now()
    Device.objects.filter(pk=usb_encoder.pk).update(online=True, last_seen_at=now - dt.timedelta(minutes=1))
    job = make_job(usb_encoder, status="waiting_card")
    EncodeJob.objects.update(updated_at=now - dt.timedelta(minutes=1))
    assert usb_encoders.sweep(now) == {"silent_encoders": 1, "offline_jobs": 1, "timed_out_jobs": 0}
    usb_encoder.refresh_from_db()
    assert not usb_encoder.online
    assert job_row(job)["error"] == "encoder_offline"
    assert AuditEvent.objects.get().kind == "device_offline"


def test_the_sweep_times_out_a_job_in_flight_that_no_connection_follows_any_more(usb_encoder, settings):
    settings.SPACE_ENCODE_CARD_WAIT_SECONDS = 30
    settings.SPACE_USB_ENCODER_GRACE_SECONDS = 10
    now = timezone.now()
    Device.objects.filter(pk=usb_encoder.pk).update(online=True, last_seen_at=now)
    orphaned, followed = make_job(usb_encoder, status="sent"), make_job(usb_encoder, status="waiting_card")
    EncodeJob.objects.filter(pk=orphaned.pk).update(updated_at=now - dt.timedelta(seconds=56))
    EncodeJob.objects.filter(pk=followed.pk).update(updated_at=now - dt.timedelta(seconds=54))
    assert usb_encoders.sweep(now)["timed_out_jobs"] == 1
    assert [job_row(job)["error"] for job in (orphaned, followed)] == ["timeout", ""]


# --- the local bridge's own checks -----------------------------------------------------------------


def test_the_bridge_turns_the_server_address_into_the_websocket_url():
    assert localbridge.websocket_url("https://space.example:8100") == "wss://space.example:8100/ws/encoder/"
    assert localbridge.websocket_url("http://127.0.0.1:8100/") == "ws://127.0.0.1:8100/ws/encoder/"


def test_the_bridge_ignores_a_server_message_that_is_not_a_job():
    bridge = localbridge.LocalBridge("ws://x/ws/encoder/", 1, KEY, encoder=None)
    for text in ("{", '{"type":"encode","job":1,"data":"!!","timeout_s":3}', '{"type":"cancel"}', "[]"):
        assert bridge._server_message(text) is None
    assert bridge.counters["bad_message"] == 4
    job = bridge._server_message('{"type":"encode","job":1,"data":"AAE=","timeout_s":3,"uid":"04A1"}')
    assert (job["data"], job["uid"]) == (b"\x00\x01", b"\x04\xa1")
