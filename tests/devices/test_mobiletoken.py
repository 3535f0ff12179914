"""Mobile key tokens (devices/mobiletoken.py) minted by the server and presented by a phone to an offline lock."""

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import mobiletoken
from devices.carddata import POINT, BlacklistItem, CardData, CardError, CardGrant
from devices.lockconfig import LockConfig
from simulation.offline_lock import OfflineLock

KEY = bytes(range(32))
OTHER_KEY = bytes(range(32, 64))
SITE = 4242
DOOR = 12
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


def mobile_card(**changes) -> CardData:
    fields = {
        "site": SITE,
        "key_id": 880,
        "uid": "AB12CD34EF560078",
        "cardholder_id": 9,
        "revision": 1,
        "issued_at": int(NOW.timestamp()) - 60,
        "valid_until": int((NOW + dt.timedelta(days=2)).timestamp()),
        "grants": (CardGrant(POINT, DOOR, ()),),
    }
    fields.update(changes)
    return CardData(**fields)


def a_lock(lock_id: int = 7001, key: bytes = KEY, site: int = SITE) -> OfflineLock:
    return OfflineLock(LockConfig(lock_id=lock_id, access_point_id=DOOR, site=site, card_key=key, revision=1))


def answer(lock: OfflineLock, minted: mobiletoken.MintedToken, at: dt.datetime = NOW) -> tuple[bytes, bytes]:
    """What the phone sends back to the lock's challenge: the token and its proof."""
    challenge = lock.challenge(at)
    return minted.token, mobiletoken.prove(minted.phone_secret, challenge, lock.config.lock_id)


def test_a_minted_token_opens_the_sites_lock():
    lock = a_lock()
    minted = mobiletoken.mint(mobile_card(), KEY)
    outcome = lock.present_mobile(*answer(lock, minted), NOW)
    assert (outcome.granted, outcome.reason, outcome.key_id, outcome.open_ms) == (True, "granted", 880, 4000)
    assert minted.expires_at == mobile_card().valid_until
    assert len(minted.phone_secret) == 32


def test_the_token_opens_to_its_card_data_and_phone_secret():
    minted = mobiletoken.mint(mobile_card(), KEY)
    card, secret = mobiletoken.open_token(minted.token, KEY, SITE)
    assert (card, secret) == (mobile_card(), minted.phone_secret)


def test_the_token_reveals_neither_the_key_nor_the_phone_secret():
    minted = mobiletoken.mint(mobile_card(), KEY)
    assert bytes.fromhex(mobile_card().uid) not in minted.token
    assert minted.phone_secret not in minted.token


def test_a_token_of_another_site_is_refused():
    lock = a_lock()
    minted = mobiletoken.mint(mobile_card(site=SITE + 1), KEY)
    assert lock.present_mobile(*answer(lock, minted), NOW).reason == "wrong_site"


def test_a_token_minted_with_another_key_under_our_site_code_is_refused():
    lock = a_lock()
    minted = mobiletoken.mint(mobile_card(), OTHER_KEY)
    assert lock.present_mobile(*answer(lock, minted), NOW).reason == "tampered"


def test_a_changed_token_is_refused_whatever_byte_changed():
    lock = a_lock()
    minted = mobiletoken.mint(mobile_card(), KEY)
    for position in range(mobiletoken.HEADER.size, len(minted.token)):
        token, proof = answer(lock, minted)
        changed = bytearray(token)
        changed[position] ^= 0x01
        assert lock.present_mobile(bytes(changed), proof, NOW).reason == "tampered", position


@pytest.mark.parametrize(
    ("token", "reason"),
    [(b"", "truncated"), (b"SPMK", "truncated"), (b"SPMK\x02\x00\x00\x10\x92" + bytes(60), "unsupported_version")],
)
def test_what_is_not_a_token_is_refused(token, reason):
    assert a_lock().present_mobile(token, bytes(32), NOW).reason == reason


def test_a_replayed_answer_is_refused():
    lock = a_lock()
    minted = mobiletoken.mint(mobile_card(), KEY)
    token, proof = answer(lock, minted)
    assert lock.present_mobile(token, proof, NOW).granted
    # Recorded and played again, later, while the lock waits with a new challenge.
    lock.challenge(NOW + dt.timedelta(seconds=20))
    replay = lock.present_mobile(token, proof, NOW + dt.timedelta(seconds=21))
    assert (replay.granted, replay.reason, replay.key_id) == (False, "replayed", 880)


def test_an_answer_after_the_challenge_expired_is_refused_as_replayed():
    lock = a_lock()
    token, proof = answer(lock, mobiletoken.mint(mobile_card(), KEY))
    late = NOW + dt.timedelta(seconds=mobiletoken.CHALLENGE_LIFETIME + 1)
    assert lock.present_mobile(token, proof, late).reason == "replayed"


def test_a_wrong_proof_is_refused():
    lock = a_lock()
    minted = mobiletoken.mint(mobile_card(), KEY)
    challenge = lock.challenge(NOW)
    wrong_secret = mobiletoken.prove(bytes(32), challenge, 7001)
    assert lock.present_mobile(minted.token, wrong_secret, NOW).reason == "tampered"
    assert lock.present_mobile(minted.token, b"short", NOW).reason == "tampered"


def test_an_answer_made_for_another_lock_is_refused():
    here, there = a_lock(7001), a_lock(7002)
    minted = mobiletoken.mint(mobile_card(), KEY)
    challenge = here.challenge(NOW)
    for_there = mobiletoken.prove(minted.phone_secret, challenge, 7002)
    assert here.present_mobile(minted.token, for_there, NOW).reason == "tampered"
    assert there.present_mobile(minted.token, for_there, NOW).reason == "tampered"


def test_a_token_expires_with_its_card_data():
    lock = a_lock()
    minted = mobiletoken.mint(mobile_card(valid_until=int(NOW.timestamp()) - 1), KEY)
    assert lock.present_mobile(*answer(lock, minted), NOW).reason == "expired"


def test_a_mobile_key_is_refused_once_blacklisted():
    lock = a_lock()
    minted = mobiletoken.mint(mobile_card(), KEY)
    until = int((NOW + dt.timedelta(days=2)).timestamp())
    messenger = mobile_card(key_id=1, uid="01", blacklist=(BlacklistItem(1, 880, until),))
    lock.decide_card(messenger, NOW)
    assert lock.present_mobile(*answer(lock, minted), NOW).reason == "blacklisted"


def test_each_challenge_is_fresh():
    lock = a_lock()
    assert len({lock.challenge(NOW) for _ in range(50)}) == 50


def test_a_lock_forgets_the_oldest_unanswered_challenges_but_refuses_answers_to_them():
    lock = a_lock()
    minted = mobiletoken.mint(mobile_card(), KEY)
    token, proof = answer(lock, minted)
    for _ in range(mobiletoken.PENDING_CHALLENGES):
        lock.challenge(NOW)
    assert lock.present_mobile(token, proof, NOW).reason == "replayed"


def test_open_token_raises_card_error_only():
    with pytest.raises(CardError):
        mobiletoken.open_token(b"\x00" * 100, KEY, SITE)


@settings(max_examples=300)
@given(st.binary(max_size=200), st.binary(max_size=40))
def test_any_bytes_as_token_and_proof_are_refused_never_crash(token, proof):
    outcome = a_lock().present_mobile(b"SPMK\x01" + SITE.to_bytes(4, "big") + token, proof, NOW)
    assert not outcome.granted
    assert outcome.reason in {"tampered", "truncated"}
