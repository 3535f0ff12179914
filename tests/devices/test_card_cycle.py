"""The whole data-on-card cycle, with software devices where hardware would be and nothing else stood in for.

The API over real HTTP (live_server), the device bridge on a real UDP socket with a
simulated Ethernet encoder and a simulated updater speaking SDP/1, a simulated PPD
over the API, and a software offline lock that has no other way to learn anything
than the cards presented to it and the PPD:

issue a key and write it on a card → the offline lock grants it → the key is
cancelled → an updater writes the blacklist onto another cardholder's card → that
card visits the lock → the cancelled key is refused there → the PPD collects the
lock's audit trail, which lands once even when uploaded twice.
"""

import asyncio

import pytest
from django.utils import timezone

from accesscontrol.models import ApiKey, AuditEvent, BlacklistEntry, Key
from devices import carddata, cards
from devices.models import LockState
from simulation.encoders import SimulatedEncoder, SimulatedUpdater
from simulation.offline_lock import OfflineLock
from simulation.ppd import JsonClient, SimulatedPPD, factory_config
from tests.devices.encoders_support import ENCODER_ID, KEY, UPDATER_ID, make_encoder, run
from tests.devices.test_locks import make_lock
from tests.factories import make_access_level, make_access_point, make_cardholder, make_key, make_operator
from tests.support.waiting import until

ALICE_UID = "04A11CE0000001"
BOB_UID = "04B0B000000002"


@pytest.fixture
def site(encoder_bridge, live_server):
    point = make_access_point(name="Store room")
    stores = make_access_level((point, None), name="Stores")
    alice = make_key(make_cardholder(stores, first_name="Alice", last_name="Archer"), uid=ALICE_UID)
    bob = make_key(make_cardholder(stores, first_name="Bob", last_name="Baker"), uid=BOB_UID)
    encoder = make_encoder(ENCODER_ID, name="Front desk encoder")
    make_encoder(UPDATER_ID, kind="updater", name="Lobby updater")
    lock = make_lock(point, device_id=7001, name="Store room lock")
    encoder_bridge.reload()
    operator = make_operator(
        "accesscontrol.add_key",
        "accesscontrol.view_key",
        "accesscontrol.change_key",
        "devices.use_ppd",
        all_partitions=True,
    )
    _, token = ApiKey.issue(operator, "integration test")
    return {
        "alice": alice,
        "bob": bob,
        "encoder": encoder,
        "lock": lock,
        "api": JsonClient(live_server.url, f"Api-Key {token}"),
        "ppd": SimulatedPPD(live_server.url, token),
        "port": encoder_bridge.port,
    }


def encode_over_the_api(site, key: Key, uid: str) -> bytes:
    """POST /keys/{id}/encode/ and let the simulated encoder on the bridge write the card; the card's bytes."""
    api = site["api"]

    async def scenario():
        device = SimulatedEncoder(ENCODER_ID, KEY, ("127.0.0.1", site["port"]), retry_first_s=0.1)
        await device.connect(5)
        card = device.place_card(uid)
        job = await asyncio.to_thread(api.post, f"/api/v1/keys/{key.pk}/encode/", {"encoder": site["encoder"].pk})

        def finished():
            state = api.get(f"/api/v1/encode-jobs/{job['id']}/")
            return state if state["status"] in ("done", "failed") else None

        state = await until(finished, timeout=10)
        await device.stop()
        return state, card.data

    state, data = run(scenario())
    assert (state["status"], state["error"], state["card_uid"]) == ("done", "", uid)
    return data


def present_at_the_updater(site, uid: str, raw: bytes) -> tuple[bytes, list[str]]:
    async def scenario():
        device = SimulatedUpdater(UPDATER_ID, KEY, ("127.0.0.1", site["port"]), retry_first_s=0.1)
        await device.connect(5)
        data = await device.present_card_data(uid, raw)
        await device.stop()
        return data, device.outcomes

    return run(scenario())


def test_a_cancelled_key_is_refused_by_an_offline_lock_once_another_card_brings_the_blacklist(site):
    # Issue: both cards are written on the Ethernet encoder through the API.
    alice_card = encode_over_the_api(site, site["alice"], ALICE_UID)
    bob_card = encode_over_the_api(site, site["bob"], BOB_UID)
    code, card_key = cards.site_card_key()
    assert carddata.decode(alice_card, card_key, code).key_id == site["alice"].pk

    # A lock fresh out of its box opens for no card of the site until a PPD has initialised it.
    lock = OfflineLock(factory_config(7001), battery=87)
    now = timezone.now()
    assert lock.present(alice_card, now, uid=ALICE_UID)[0].reason == "wrong_site"
    (visit,) = site["ppd"].round({site["lock"].pk: lock}, now)
    assert visit.reasons == ["never_initialised"] and visit.loaded_revision == lock.config.revision

    # The lock grants both; each card now carries the lock's status back.
    outcome, alice_card = lock.present(alice_card, now, uid=ALICE_UID)
    assert (outcome.granted, outcome.reason, outcome.key_id) == (True, "granted", site["alice"].pk)
    outcome, bob_card = lock.present(bob_card, now, uid=BOB_UID)
    assert outcome.granted

    # Alice loses her card: cancelled over the API, blacklisted until it would have expired.
    site["api"].post(f"/api/v1/keys/{site['alice'].pk}/cancel/", {})
    entry = BlacklistEntry.objects.get(key=site["alice"])
    # The lock has no network: it still knows nothing of it.
    assert lock.present(alice_card, timezone.now(), uid=ALICE_UID)[0].granted

    # Bob passes the lobby updater: his card gets the blacklist entry, and gives up the lock's status.
    bob_card, outcomes = present_at_the_updater(site, BOB_UID, bob_card)
    assert outcomes == ["written"]
    carried = carddata.decode(bob_card, card_key, code).blacklist
    assert [(item.number, item.key_id) for item in carried] == [(entry.pk, site["alice"].pk)]
    state = LockState.objects.get(device=site["lock"])
    assert (state.battery, state.reported_at is not None) == (87, True)

    # Bob's card visits the lock: he is let in, and the lock learns the entry.
    outcome, bob_card = lock.present(bob_card, timezone.now(), uid=BOB_UID)
    assert outcome.granted and lock.blacklist_number == entry.pk
    # Alice's lost card is refused there from now on.
    outcome, _ = lock.present(alice_card, timezone.now(), uid=ALICE_UID)
    assert (outcome.granted, outcome.reason, outcome.key_id) == (False, "blacklisted", site["alice"].pk)

    # The PPD collects the lock's audit trail; an upload repeated (a PPD that crashed before it could
    # acknowledge) stores nothing twice.
    events = lock.collect_audit()
    first = site["ppd"].upload(site["lock"].pk, events)
    again = site["ppd"].upload(site["lock"].pk, events)
    assert (first["received"], first["new"], again["new"]) == (len(events), len(events), 0)
    trail = AuditEvent.objects.filter(device=site["lock"], kind__in=("access_granted", "access_denied"))
    assert sorted(trail.values_list("key_uid", "reason")) == sorted(
        [
            (ALICE_UID, "wrong_site"),
            (ALICE_UID, "granted"),
            (BOB_UID, "granted"),
            (ALICE_UID, "granted"),
            (BOB_UID, "granted"),
            (ALICE_UID, "blacklisted"),
        ]
    )
