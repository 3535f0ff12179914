"""Updaters (online wall readers): a presented card goes to the server in parts and comes back rewritten, or not.

The real bridge on 127.0.0.1 and the real card update (devices.cards.update_card):
stale cards are cards written before a change (a right added, another key
cancelled, a validity that a revalidation moves), and every card written back
is decoded with the site card key.
"""

import base64
import dataclasses
import datetime as dt

import pytest
from django.utils import timezone

from accesscontrol import actions
from accesscontrol.choices import AuditKind
from accesscontrol.models import AuditEvent, BlacklistEntry, Key
from devices import carddata, cards
from devices.carddata import BlacklistItem
from devices.choices import DeviceKind
from devices.lockconfig import LockConfig
from devices.models import Device, EncodeJob, LockState
from simulation.encoders import SimulatedUpdater
from simulation.offline_lock import OfflineLock
from tests.devices.client import Client
from tests.devices.encoders_support import (
    KEY,
    UPDATER_ID,
    decoded,
    make_encoder,
    parts_of,
    run,
    with_many_rights,
    with_too_many_rights,
)
from tests.factories import give_permission, make_access_level, make_access_point, make_cardholder, make_key

pytestmark = pytest.mark.django_db(transaction=True)

UID = "04C0FFEE0011"


@pytest.fixture
def updater(encoder_bridge):
    device = make_encoder(UPDATER_ID, kind="updater", name="Lobby updater")
    encoder_bridge.reload()
    return device


@pytest.fixture
def key():
    holder = make_cardholder(make_access_level(make_access_point()), first_name="Ada", last_name="Lovelace")
    return make_key(holder, uid=UID)


def present(encoder_bridge, uid: str, raw: bytes) -> tuple[bytes, list[str], list]:
    async def scenario():
        device = SimulatedUpdater(UPDATER_ID, KEY, ("127.0.0.1", encoder_bridge.port), retry_first_s=0.1)
        await device.connect(5)
        data = await device.present_card_data(uid, raw)
        await device.stop()
        return data, device.outcomes, device.written

    return run(scenario())


def card_written_at(key: Key, at: dt.datetime) -> bytes:
    """The card of ``key`` as it was written at ``at`` (the key issued then)."""
    Key.objects.filter(pk=key.pk).update(issued_at=at)
    return cards.card_bytes_for_key(Key.objects.select_related("cardholder").get(pk=key.pk), at)


def assert_rewritten(updater, key, stale: bytes, data: bytes, outcomes, written) -> carddata.CardData:
    """The card came back rewritten through a job on the updater, done: what it carries now."""
    assert outcomes == ["written"] and data != stale
    job = EncodeJob.objects.get()
    assert (job.key_id, job.encoder_id, job.status, job.card_uid) == (key.pk, updater.pk, "done", UID)
    assert written == [(job.pk, UID, data)] and bytes(job.data) == data
    key.refresh_from_db()
    card = decoded(data)
    assert (card.key_id, card.uid, card.revision) == (key.pk, UID, key.revision)
    assert key.revision == decoded(stale).revision + 1
    # The update is recorded once, naming the updater; no key_encoded event for an updater.
    event = AuditEvent.objects.get(kind=AuditKind.KEY_UPDATED)
    assert (event.device_id, event.key_uid, event.cardholder_id) == (updater.pk, UID, key.cardholder_id)
    assert not AuditEvent.objects.filter(kind=AuditKind.KEY_ENCODED).exists()
    return card


def test_a_card_written_before_a_right_was_added_is_rewritten_with_it(encoder_bridge, updater, key):
    stale = cards.card_bytes_for_key(key)
    lab = make_access_point()
    give_permission(key.cardholder, lab)

    data, outcomes, written = present(encoder_bridge, UID.lower(), stale)

    card = assert_rewritten(updater, key, stale, data, outcomes, written)
    assert lab.pk in {grant.id for grant in card.grants} - {grant.id for grant in decoded(stale).grants}
    assert card.grants == cards.card_grants(key.cardholder_id)


def test_a_card_written_before_another_key_was_cancelled_gets_its_blacklist_entry(encoder_bridge, updater, key):
    stale = cards.card_bytes_for_key(key)
    lost = make_key(make_cardholder(), uid="04DEAD00", valid_until=timezone.now() + dt.timedelta(days=30))
    actions.cancel_key(lost, operator=None, via="test")
    entry = BlacklistEntry.objects.get(key=lost)

    data, outcomes, written = present(encoder_bridge, UID, stale)

    card = assert_rewritten(updater, key, stale, data, outcomes, written)
    assert decoded(stale).blacklist == ()
    assert card.blacklist == (BlacklistItem(entry.pk, lost.pk, int(entry.until.timestamp())),)
    assert AuditEvent.objects.get(kind=AuditKind.KEY_UPDATED).detail["blacklist_added"] == [entry.pk]


def test_the_blacklist_an_updater_writes_reaches_an_offline_lock_which_then_refuses_the_cancelled_key(
    encoder_bridge, updater, key
):
    """The cycle: a lost card opens an offline lock; once its key is cancelled, another cardholder's card
    takes the blacklist from the updater to the lock (bringing the lock's status back), and the lock
    refuses the lost card."""
    door = key.cardholder.access_levels.get().entries.get().access_point
    lost = make_key(make_cardholder(key.cardholder.access_levels.get()), uid="04DEAD00")
    site, card_key = cards.site_card_key()
    Device.objects.create(device_id=77, name="Room 101", kind=DeviceKind.OFFLINE_LOCK)
    lock = OfflineLock(LockConfig(lock_id=77, access_point_id=door.pk, site=site, card_key=card_key, revision=1))
    lost_card, stale = cards.card_bytes_for_key(lost), cards.card_bytes_for_key(key)
    assert lock.present(lost_card, timezone.now(), uid=lost.uid)[0].granted
    actions.cancel_key(lost, operator=None, via="test")

    outcome, visited = lock.present(stale, timezone.now(), uid=UID)
    assert outcome.granted and not lock.blacklisted(lost.pk, timezone.now())
    data, outcomes, _ = present(encoder_bridge, UID, visited)
    outcome, _ = lock.present(data, timezone.now(), uid=UID)
    refused, _ = lock.present(lost_card, timezone.now(), uid=lost.uid)

    assert outcomes == ["written"] and outcome.granted
    assert (refused.granted, refused.reason) == (False, "blacklisted")
    assert lock.blacklist_number == BlacklistEntry.objects.get(key=lost).pk
    # The status the lock wrote on the card came back through the updater.
    state = LockState.objects.get(device__device_id=77)
    assert (state.battery, state.blacklist_number) == (100, 0)


def test_a_card_with_an_old_validity_is_revalidated_and_rewritten(encoder_bridge, updater):
    holder = make_cardholder(make_access_level(make_access_point()), key_revalidation_days=7)
    key = make_key(holder, uid=UID)
    before = timezone.now()
    stale = card_written_at(key, before - dt.timedelta(days=6))

    data, outcomes, written = present(encoder_bridge, UID, stale)

    card = assert_rewritten(updater, key, stale, data, outcomes, written)
    assert decoded(stale).valid_until == int((before + dt.timedelta(days=1)).timestamp())
    assert card.valid_until == int(key.valid_until.timestamp())
    assert before + dt.timedelta(days=7) <= key.valid_until <= timezone.now() + dt.timedelta(days=7)
    assert key.last_revalidated_at >= before


def test_a_card_that_is_up_to_date_is_left_as_it_is(encoder_bridge, updater, key):
    current = cards.card_bytes_for_key(key)

    data, outcomes, written = present(encoder_bridge, UID, current)

    assert (data, outcomes, written) == (current, ["unchanged"], [])
    assert not EncodeJob.objects.exists() and not AuditEvent.objects.filter(kind=AuditKind.KEY_UPDATED).exists()
    key.refresh_from_db()
    assert key.revision == decoded(current).revision


def another_sites_card(key: Key) -> bytes:
    """``key``'s card data sealed with another card key under another site code."""
    site, _ = cards.site_card_key()
    card = dataclasses.replace(cards.card_data_for_key(key, timezone.now()), site=site % (2**32 - 1) + 1)
    return carddata.encode(card, bytes(32))


@pytest.mark.parametrize(
    ("make_raw", "outcome"),
    [
        (another_sites_card, carddata.WRONG_SITE),
        (lambda key: b"not a card at all", carddata.TRUNCATED),
        (lambda key: carddata.encode(cards.card_data_for_key(key, timezone.now()), bytes(32)), carddata.TAMPERED),
    ],
    ids=["another site", "garbage", "forged"],
)
def test_a_card_that_is_not_ours_is_refused_and_not_written(encoder_bridge, updater, key, make_raw, outcome):
    raw = make_raw(key)

    data, outcomes, written = present(encoder_bridge, UID, raw)

    assert (data, outcomes, written) == (raw, [outcome], [])
    assert not EncodeJob.objects.exists() and not AuditEvent.objects.filter(kind=AuditKind.KEY_UPDATED).exists()


def test_a_card_of_a_cancelled_key_is_refused_and_not_written(encoder_bridge, updater, key):
    stale = cards.card_bytes_for_key(key)
    actions.cancel_key(key, operator=None, via="test")

    data, outcomes, written = present(encoder_bridge, UID, stale)

    assert (data, outcomes, written) == (stale, ["cancelled"], [])
    assert not EncodeJob.objects.exists()


def test_a_card_whose_rights_no_longer_fit_is_left_as_it_was_and_the_updater_told(encoder_bridge, updater, key):
    stale = cards.card_bytes_for_key(key)
    with_too_many_rights(key.cardholder)

    data, outcomes, written = present(encoder_bridge, UID, stale)

    assert (data, outcomes, written) == (stale, ["too_big"], [])
    key.refresh_from_db()
    assert key.revision == decoded(stale).revision and not EncodeJob.objects.exists()


def test_card_data_copied_onto_another_card_is_refused_as_unknown(encoder_bridge, updater, key):
    raw = cards.card_bytes_for_key(key)

    data, outcomes, written = present(encoder_bridge, "04FFFF", raw)

    assert (data, outcomes, written) == (raw, ["unknown_key"], [])


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
    with_many_rights(key.cardholder)
    stale = cards.card_bytes_for_key(key)
    give_permission(key.cardholder, make_access_point())
    middle = len(stale) // 2
    assert wired.request(part(9, 1, 2, stale[middle:]))["t"] == "ack"
    assert wired.request(part(9, 0, 2, stale[:middle]))["t"] == "ack"
    encode = []
    while not encode or len(encode) < encode[0]["parts"]:
        seq, message = wired.read()
        encode.append(message)
        wired.request({"t": "ack", "seq": seq}, answer=False)
    job = EncodeJob.objects.get()
    count = parts_of(bytes(job.data))
    first = next(message for message in encode if message["part"] == 0)
    assert (first["t"], first["xfer"], first["uid"], first["parts"]) == ("encode", 9, UID, count)
    assert count > 1
    written = b"".join(base64.b64decode(m["data"]) for m in sorted(encode, key=lambda m: m["part"]))
    assert written == bytes(job.data)
    assert decoded(written).grants == cards.card_grants(key.cardholder_id) != decoded(stale).grants
    assert (first["job"], job.status, job.key_id) == (job.pk, "sent", key.pk)


def test_an_up_to_date_card_is_answered_updated(wired, key):
    wired.request(part(3, 0, 1, cards.card_bytes_for_key(key)))
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
