"""Updaters (online wall readers): a presented card goes to the server in parts and comes back rewritten, or not.

The real bridge on 127.0.0.1; the card update itself is the ``fake_cards`` stand-in
for devices.cards.update_card (see tests/devices/encoders_support.py).
"""

import base64

import pytest

from accesscontrol.models import AuditEvent
from devices.cardtransfer import PART_SIZE
from devices.models import EncodeJob
from devices.sim_encoders import SimulatedUpdater
from tests.devices.client import Client
from tests.devices.encoders_support import KEY, UPDATER_ID, fake_card_bytes, make_encoder, run
from tests.factories import make_cardholder, make_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fake_cards")]

UID = "04C0FFEE0011"


@pytest.fixture
def updater(encoder_bridge):
    device = make_encoder(UPDATER_ID, kind="updater", name="Lobby updater")
    encoder_bridge.reload()
    return device


@pytest.fixture
def key():
    return make_key(make_cardholder(first_name="Ada", last_name="Lovelace"), uid=UID)


def present(encoder_bridge, uid: str, raw: bytes) -> tuple[bytes, list[str], list]:
    async def scenario():
        device = SimulatedUpdater(UPDATER_ID, KEY, ("127.0.0.1", encoder_bridge.port), retry_first_s=0.1)
        await device.connect(5)
        data = await device.present_card_data(uid, raw)
        await device.stop()
        return data, device.outcomes, device.written

    return run(scenario())


def test_a_card_with_stale_data_is_rewritten_with_the_new_data(encoder_bridge, updater, key):
    stale = b"STALE" + bytes(range(256)) * 5  # 1285 bytes: three parts to the server

    data, outcomes, written = present(encoder_bridge, UID.lower(), stale)

    assert data == fake_card_bytes(key) and outcomes == ["written"]
    job = EncodeJob.objects.get()
    assert (job.key_id, job.encoder_id, job.status, job.card_uid) == (key.pk, updater.pk, "done", UID)
    assert written == [(job.pk, UID, data)]
    # The update itself is the cards module's to record: no key_encoded event for an updater.
    assert not AuditEvent.objects.filter(kind="key_encoded").exists()


def test_a_card_that_is_up_to_date_is_left_as_it_is(encoder_bridge, updater, key):
    current = b"CURRENT" + bytes(100)

    data, outcomes, written = present(encoder_bridge, UID, current)

    assert (data, outcomes, written) == (current, ["unchanged"], [])
    assert not EncodeJob.objects.exists()


def test_a_card_of_no_issued_key_is_refused_and_not_written(encoder_bridge, updater):
    data, outcomes, written = present(encoder_bridge, "04FFFF", b"STALE")

    assert (data, outcomes, written) == (b"STALE", ["unknown_key"], [])


# --- by hand ------------------------------------------------------------------------------------------------


@pytest.fixture
def wired(encoder_bridge, updater):
    client = Client(encoder_bridge.port, UPDATER_ID, KEY)
    client.handshake()
    yield client
    client.close()


def part(xfer, number, parts, data, uid=UID, reader=1):
    raw = base64.b64encode(data).decode()
    return {"t": "card", "xfer": xfer, "reader": reader, "uid": uid, "part": number, "parts": parts, "data": raw}


def test_parts_in_any_order_are_reassembled_and_answered_with_an_encode_for_that_transfer(wired, key):
    stale = b"STALE" + bytes(PART_SIZE)
    halves = [stale[:PART_SIZE], stale[PART_SIZE:]]
    assert wired.request(part(9, 1, 2, halves[1]))["t"] == "ack"
    assert wired.request(part(9, 0, 2, halves[0]))["t"] == "ack"
    encode = []
    while len(encode) < 3:
        seq, message = wired.read()
        encode.append(message)
        wired.request({"t": "ack", "seq": seq}, answer=False)
    first = next(message for message in encode if message["part"] == 0)
    assert (first["t"], first["xfer"], first["uid"], first["parts"]) == ("encode", 9, UID, 3)
    written = b"".join(base64.b64decode(m["data"]) for m in sorted(encode, key=lambda m: m["part"]))
    assert written == fake_card_bytes(key)
    job = EncodeJob.objects.get()
    assert (first["job"], job.status) == (job.pk, "sent")


def test_an_up_to_date_card_is_answered_updated(wired, key):
    wired.request(part(3, 0, 1, b"CURRENT"))
    _, message = wired.read()
    assert message == {"t": "updated", "xfer": 3, "outcome": "unchanged"}


def test_more_transfers_at_once_than_allowed_are_dropped_and_counted(encoder_bridge, wired):
    for xfer in range(1, 5):
        assert wired.request(part(xfer, 0, 2, b"half"))["t"] == "ack"
    wired.send(wired.seal(part(5, 0, 2, b"half")))
    assert wired.silent(0.3)
    assert encoder_bridge.counters["bad_messages"] == 1


def test_a_part_that_disagrees_with_its_transfer_drops_it(encoder_bridge, wired):
    assert wired.request(part(1, 0, 2, b"one"))["t"] == "ack"
    wired.send(wired.seal(part(1, 1, 2, b"two", uid="04000000")))
    assert wired.silent(0.3)
    assert wired.request(part(1, 1, 2, b"two"))["t"] == "ack"  # a new transfer under the same id: part 0 is gone
    assert wired.silent(0.3)
    assert encoder_bridge.counters["bad_messages"] == 1
