"""Encode jobs end to end: the real bridge on 127.0.0.1, a simulated Ethernet encoder or a hand-driven one.

The card data is the real one (devices.cards): the tests decode what the encoder
wrote with the site card key. The key's cardholder has rights enough for the
data to go in several ``encode`` parts.
"""

import asyncio
import base64

import pytest

from accesscontrol.models import AuditEvent
from devices import cards, encoding
from devices.models import EncodeJob
from simulation.encoders import SimulatedEncoder
from tests.devices.client import Client
from tests.devices.encoders_support import (
    ENCODER_ID,
    KEY,
    MANY_POINTS,
    decoded,
    make_encoder,
    parts_of,
    run,
    with_many_rights,
)
from tests.factories import make_cardholder, make_key
from tests.support.waiting import until, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

UID = "04AA11BB22CC33"


@pytest.fixture
def encoder(encoder_bridge):
    device = make_encoder()
    encoder_bridge.reload()
    return device


@pytest.fixture
def key():
    return make_key(with_many_rights(make_cardholder(first_name="Grace", last_name="Hopper")), uid=UID)


def job_of(job_id: int) -> EncodeJob:
    return EncodeJob.objects.get(pk=job_id)


def finished(job_id: int) -> EncodeJob | None:
    job = job_of(job_id)
    return job if job.status in ("done", "failed") else None


def assert_card_of(key, raw: bytes) -> None:
    """``raw`` is genuine card data of ``key`` as it stands, with its cardholder's access list."""
    key.refresh_from_db()
    card = decoded(raw)
    assert (card.key_id, card.uid, card.cardholder_id, card.revision) == (
        key.pk,
        key.uid,
        key.cardholder_id,
        key.revision,
    )
    assert card.grants == cards.card_grants(key.cardholder_id)


def simulated(encoder_bridge, **options) -> SimulatedEncoder:
    return SimulatedEncoder(ENCODER_ID, KEY, ("127.0.0.1", encoder_bridge.port), retry_first_s=0.1, **options)


# --- with the simulated encoder ------------------------------------------------------------------------


def test_a_job_writes_the_card_and_is_done_with_its_uid_and_an_audit_event(encoder_bridge, encoder, key):
    async def scenario():
        device = simulated(encoder_bridge)
        await device.connect(5)
        device.place_card(UID)
        job = await until_created(key, encoder)
        await until(lambda: finished(job.pk))
        await device.stop()
        return job, device.written

    job, written = run(scenario())
    job = job_of(job.pk)
    assert (job.status, job.progress, job.error, job.card_uid) == ("done", 100, "", UID)
    assert written == [(job.pk, UID, bytes(job.data))]
    assert_card_of(key, written[0][2])
    assert len(decoded(written[0][2]).grants) == MANY_POINTS
    event = AuditEvent.objects.get(kind="key_encoded")
    assert (event.key_uid, event.device_id, event.cardholder_name, event.detail["job"]) == (
        UID,
        encoder.pk,
        "Grace Hopper",
        job.pk,
    )


async def until_created(key, encoder) -> EncodeJob:
    return await asyncio.to_thread(encoding.create_encode_job, key, encoder, None)


def test_the_job_waits_for_the_card_and_shows_it(encoder_bridge, encoder, key):
    async def scenario():
        device = simulated(encoder_bridge)
        await device.connect(5)
        job = await until_created(key, encoder)
        await until(lambda: job_of(job.pk).status == "waiting_card")
        waiting = await asyncio.to_thread(job_of, job.pk)
        device.place_card(UID)
        await until(lambda: finished(job.pk))
        await device.stop()
        return waiting

    waiting = run(scenario())
    assert (waiting.progress, waiting.error) == (40, "")
    assert job_of(waiting.pk).status == "done"


def test_no_card_within_the_timeout_fails_the_job_with_no_card(encoder_bridge, encoder, key, quick_jobs):
    async def scenario():
        device = simulated(encoder_bridge)
        await device.connect(5)
        job = await until_created(key, encoder)
        await until(lambda: finished(job.pk))
        await device.stop()
        return job, device.written

    job, written = run(scenario())
    job = job_of(job.pk)
    assert (job.status, job.error, written) == ("failed", "no_card", [])
    assert not AuditEvent.objects.filter(kind="key_encoded").exists()


def test_a_card_of_another_type_fails_the_job_with_wrong_card_type(encoder_bridge, encoder, key):
    async def scenario():
        device = simulated(encoder_bridge)
        await device.connect(5)
        device.place_card(UID, "mifare_classic_1k")
        job = await until_created(key, encoder)
        await until(lambda: finished(job.pk))
        await device.stop()
        return job, device.card.data

    job, data = run(scenario())
    assert (job_of(job.pk).status, job_of(job.pk).error, data) == ("failed", "wrong_card_type", b"")


def test_a_job_for_an_offline_encoder_fails_with_encoder_offline(encoder_bridge, encoder, key):
    job = encoding.create_encode_job(key, encoder, None)
    wait_until(lambda: finished(job.pk))
    assert (job_of(job.pk).status, job_of(job.pk).error) == ("failed", "encoder_offline")


def issue_on_any_card(encoder_bridge, encoder, card_uid: str):
    """Issue a key without a UID onto the card ``card_uid`` on the simulated encoder: (key as issued, job, written)."""
    holder = with_many_rights(make_cardholder())

    async def scenario():
        device = simulated(encoder_bridge)
        await device.connect(5)
        device.place_card(card_uid)
        key, job = await asyncio.to_thread(encoding.issue_and_encode, holder, encoder, operator=None, via="test")
        await until(lambda: finished(job.pk))
        await device.stop()
        return key, await asyncio.to_thread(job_of, job.pk), device.written

    return run(scenario())


def test_a_job_on_any_card_reads_it_and_the_key_takes_its_uid(encoder_bridge, encoder):
    key, job, written = issue_on_any_card(encoder_bridge, encoder, "04:99:88:77")

    assert encoding.is_placeholder(key.uid)
    key.refresh_from_db()
    assert (key.uid, job.status, job.card_uid) == ("04998877", "done", "04998877")
    # The card data was built once the UID was known: it names the card's UID.
    assert written == [(job.pk, "04998877", bytes(job.data))]
    assert_card_of(key, written[0][2])


def test_a_card_whose_uid_another_key_holds_fails_with_uid_in_use(encoder_bridge, encoder):
    make_key(make_cardholder(), uid="04998877")

    key, job, written = issue_on_any_card(encoder_bridge, encoder, "04998877")

    key.refresh_from_db()
    assert (job.status, job.error, written) == ("failed", "uid_in_use", [])
    assert encoding.is_placeholder(key.uid)


# --- with a hand-driven encoder: every frame under the test's control ---------------------------------------


@pytest.fixture
def wired(encoder_bridge, encoder):
    client = Client(encoder_bridge.port, ENCODER_ID, KEY)
    client.handshake()
    yield client
    client.close()


def read_parts(client, count: int) -> list[tuple[int, dict, bytes]]:
    frames = []
    while len(frames) < count:
        data = client.receive()
        seq, message = client.open(data)
        frames.append((seq, message, data))
    return frames


def test_unacknowledged_parts_come_again_byte_for_byte_and_the_job_ends_on_encoded(encoder, wired, key):
    acks = {}
    job = encoding.create_encode_job(key, encoder, None)
    count = parts_of(bytes(job.data))
    assert count > 1
    frames = read_parts(wired, count)
    assert [message["part"] for _, message, _ in frames] == list(range(count))
    first = frames[0][1]
    assert (first["t"], first["job"], first["parts"], first["uid"], first["timeout_s"]) == (
        "encode",
        job.pk,
        count,
        UID,
        encoding.WAIT_CARD_SECONDS,
    )
    data = b"".join(base64.b64decode(message["data"]) for _, message, _ in frames)
    assert data == bytes(job.data)
    assert_card_of(key, data)
    # Nothing acknowledged: the same datagrams come again.
    again = {bytes(datagram) for _, _, datagram in read_parts(wired, count)}
    assert again == {datagram for _, _, datagram in frames}
    for seq, _, _ in frames:
        wired.request({"t": "ack", "seq": seq}, answer=False)
    assert wired.request({"t": "progress", "job": job.pk, "stage": "writing"}) == {"t": "ack", "seq": wired.seq}
    wait_until(lambda: job_of(job.pk).status == "writing")
    encoded = wired.seal({"t": "encoded", "job": job.pk, "ok": True, "uid": UID})
    wired.send(encoded)
    acks[3] = wired.receive()
    assert wired.open(acks[3])[1] == {"t": "ack", "seq": wired.seq}
    # Acknowledged means stored.
    assert job_of(job.pk).status == "done"
    # A duplicate gets the same ack again, byte for byte, and changes nothing.
    wired.send(encoded)
    assert wired.receive() == acks[3]
    assert AuditEvent.objects.filter(kind="key_encoded").count() == 1


def test_a_silent_encoder_times_the_job_out(encoder_bridge, encoder, wired, key, quick_jobs):
    job = encoding.create_encode_job(key, encoder, None)
    for seq, _, _ in read_parts(wired, parts_of(bytes(job.data))):
        wired.request({"t": "ack", "seq": seq}, answer=False)
    wait_until(lambda: finished(job.pk), timeout=6)
    assert (job_of(job.pk).status, job_of(job.pk).error) == ("failed", "timeout")
    assert encoder_bridge.counters["encode_timeouts"] == 1


def card_part(xfer=1, part=0, parts=1, data=b"", uid="04998877", **extra):
    return {
        "t": "card",
        "xfer": xfer,
        "uid": uid,
        "part": part,
        "parts": parts,
        "data": base64.b64encode(data).decode(),
        **extra,
    }


def test_garbage_card_parts_are_dropped_unanswered_and_counted(encoder_bridge, encoder, wired):
    holder = make_cardholder()
    _, job = encoding.issue_and_encode(holder, encoder, operator=None, via="test")
    seq, read = wired.read()
    assert (read["t"], read["job"]) == ("read", job.pk)
    wired.request({"t": "ack", "seq": seq}, answer=False)
    garbage = [
        card_part(job=job.pk, data=b"x") | {"data": "not base64!"},
        card_part(job=job.pk, part=3, parts=2),
        card_part(job=job.pk, parts=9),
        card_part(job=job.pk, uid="not hex"),
        card_part(job=job.pk, xfer=-1),
        card_part(job=job.pk + 1000),  # no such job in flight
        card_part(),  # an encoder sends cards only for a read
        {"t": "card", "xfer": 1},
        {"t": "encoded", "job": "one", "ok": True},
        {"t": "progress", "job": job.pk, "stage": "dancing"},
    ]
    for message in garbage:
        wired.send(wired.seal(message))
    assert wired.silent(0.5)
    assert encoder_bridge.counters["bad_messages"] == len(garbage)
    # Over 4096 bytes in all: the transfer is dropped at the part that overflows.
    big = bytes(700)
    for part in range(6):
        wired.send(wired.seal(card_part(xfer=7, job=job.pk, part=part, parts=7, data=big)))
    acks = [wired.read()[1]["t"] for _ in range(5)]
    assert acks == ["ack"] * 5 and wired.silent(0.3)
    assert encoder_bridge.counters["bad_messages"] == len(garbage) + 1
    # The job is still waiting for its card: a good transfer binds it.
    assert job_of(job.pk).status == "sent"


def test_a_card_part_sent_again_under_a_new_seq_is_acked_and_taken_once(encoder_bridge, encoder, wired):
    holder = with_many_rights(make_cardholder())
    key, job = encoding.issue_and_encode(holder, encoder, operator=None, via="test")
    seq, _ = wired.read()
    wired.request({"t": "ack", "seq": seq}, answer=False)
    part0 = card_part(job=job.pk, part=0, parts=2, data=b"old", uid="04998877")
    first = wired.seal(part0)
    wired.send(first)
    ack = wired.receive()
    wired.send(first)  # the same datagram: the same ack, byte for byte
    assert wired.receive() == ack
    assert wired.request(part0)["t"] == "ack"  # the same part under a new seq
    wired.request(card_part(job=job.pk, part=1, parts=2, data=b"data", uid="04998877"))
    frames = read_parts(wired, 1)
    frames += read_parts(wired, frames[0][1]["parts"] - 1)
    assert {message["t"] for _, message, _ in frames} == {"encode"}
    key.refresh_from_db()
    assert key.uid == "04998877" and encoder_bridge.counters["bad_messages"] == 0
    # Built once the card was known: the data names that card's UID.
    data = b"".join(base64.b64decode(message["data"]) for _, message in sorted_parts(frames))
    assert data == bytes(job_of(job.pk).data)
    assert_card_of(key, data)


def sorted_parts(frames) -> list[tuple[int, dict]]:
    return sorted(((seq, message) for seq, message, _ in frames), key=lambda frame: frame[1]["part"])
