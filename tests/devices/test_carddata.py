"""Card data format v1 (devices/carddata.py): round trips, every refusal, size limits, status slots."""

import os
import re
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices import carddata
from devices.carddata import (
    CARD_FILE_SIZE,
    POINT,
    STATUS_SLOTS,
    ZONE,
    BlacklistItem,
    CardData,
    CardError,
    CardGrant,
    CardTooBig,
    LockStatus,
    decode,
    encode,
    write_status,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SITE = 0x5AC3_0001
NOW = 1_750_000_000

ids = st.integers(min_value=0, max_value=2**63)
times = st.integers(min_value=1, max_value=2**32 - 1)
grants = st.builds(
    CardGrant,
    kind=st.sampled_from([POINT, ZONE]),
    id=ids,
    periods=st.lists(st.integers(min_value=0, max_value=2**32), max_size=4).map(tuple),
)
blacklists = st.lists(
    st.tuples(st.integers(min_value=1, max_value=2**40), ids, times), max_size=30, unique_by=lambda item: item[0]
).map(lambda items: tuple(BlacklistItem(*item) for item in sorted(items)))
cards = st.builds(
    CardData,
    site=st.integers(min_value=0, max_value=2**32 - 1),
    key_id=ids,
    uid=st.text("0123456789ABCDEF", min_size=2, max_size=64),
    cardholder_id=ids,
    revision=ids,
    issued_at=times,
    valid_from=st.none() | times,
    valid_until=st.none() | times,
    office=st.booleans(),
    override_privacy=st.booleans(),
    override_lockdown=st.booleans(),
    audit_openings=st.booleans(),
    anti_passback=st.booleans(),
    extended_open_time=st.booleans(),
    grants=st.lists(grants, max_size=40).map(tuple),
    blacklist=blacklists,
    blacklist_base=st.integers(min_value=0, max_value=2**40),
)
statuses = st.builds(
    LockStatus,
    lock_id=st.integers(min_value=1, max_value=2**32 - 1),
    at=times,
    battery=st.integers(min_value=0, max_value=100),
    blacklist_number=st.integers(min_value=0, max_value=2**32 - 1),
    config_revision=st.integers(min_value=0, max_value=2**32 - 1),
    events_pending=st.integers(min_value=0, max_value=65535),
)


def a_card(**changes) -> CardData:
    fields = {
        "site": SITE,
        "key_id": 41,
        "uid": "04A1B2C3D4E580",
        "cardholder_id": 7,
        "revision": 3,
        "issued_at": NOW,
        "valid_from": NOW - 3600,
        "valid_until": NOW + 86400,
        "office": True,
        "grants": (CardGrant(POINT, 12, (1,)), CardGrant(ZONE, 3, ()), CardGrant(POINT, 9, (1, 2))),
        "blacklist": (BlacklistItem(100, 5, NOW + 500), BlacklistItem(101, 77, NOW + 900)),
    }
    fields.update(changes)
    return CardData(**fields)


def rights_range(raw: bytes) -> range:
    """The byte positions of the sealed rights: nonce, ciphertext and tag."""
    length = struct.unpack_from(">H", raw, 9)[0]
    return range(carddata.HEADER.size, carddata.HEADER.size + length)


def refusal(raw: bytes, key: bytes = KEY, site: int = SITE) -> str:
    with pytest.raises(CardError) as caught:
        decode(raw, key, site)
    return caught.value.reason


# --- round trips ---------------------------------------------------------------------------------------------


@given(cards)
def test_any_card_data_round_trips(card):
    assert decode(encode(card, KEY), KEY, card.site) == card


@given(cards, st.lists(statuses, max_size=STATUS_SLOTS, unique_by=lambda status: status.at))
def test_statuses_given_to_encode_round_trip_newest_last(card, written):
    decoded = decode(encode(card.__class__(**{**_fields(card), "statuses": tuple(written)}), KEY), KEY, card.site)
    assert decoded.statuses == tuple(sorted(written, key=lambda status: status.at))


def _fields(card: CardData) -> dict:
    return {name: getattr(card, name) for name in CardData.__dataclass_fields__}


def test_an_odd_length_uid_keeps_its_digits():
    card = a_card(uid="ABC")
    assert decode(encode(card, KEY), KEY, SITE).uid == "ABC"


def test_a_card_file_read_back_padded_to_its_size_decodes():
    raw = encode(a_card(), KEY)
    assert decode(raw + bytes(CARD_FILE_SIZE - len(raw)), KEY, SITE) == a_card()


def test_the_rights_are_encrypted_so_the_card_reveals_no_ids():
    card = a_card(uid="DEADBEEFCAFE", key_id=0x1234567)
    raw = encode(card, KEY)
    assert bytes.fromhex("DEADBEEFCAFE") not in raw
    assert b"\x04\xa1" not in raw[carddata.HEADER.size :]


# --- refusals --------------------------------------------------------------------------------------------------


def test_it_refuses_a_card_of_another_site():
    raw = encode(a_card(site=SITE + 1), KEY)
    assert refusal(raw) == "wrong_site"


def test_it_refuses_a_card_of_the_same_site_code_written_with_another_key():
    raw = encode(a_card(), OTHER_KEY)
    assert refusal(raw) == "tampered"


def test_it_refuses_an_unknown_version():
    raw = bytearray(encode(a_card(), KEY))
    raw[4] = 2
    assert refusal(bytes(raw)) == "unsupported_version"


def test_it_refuses_bytes_that_are_not_card_data():
    assert refusal(b"") == "truncated"
    assert refusal(b"hello, world, this is not a card") == "truncated"


def test_it_refuses_a_header_whose_site_code_was_changed_to_ours():
    raw = bytearray(encode(a_card(site=SITE + 1), KEY))
    raw[5:9] = SITE.to_bytes(4, "big")
    assert refusal(bytes(raw)) == "tampered"


def test_every_flipped_bit_of_the_rights_is_refused_as_tampered():
    raw = encode(a_card(), KEY)
    for position in rights_range(raw):
        for bit in range(8):
            flipped = bytearray(raw)
            flipped[position] ^= 1 << bit
            assert refusal(bytes(flipped)) == "tampered", (position, bit)


def test_a_changed_length_in_the_header_is_refused():
    raw = encode(a_card(), KEY)
    for bit in range(16):
        flipped = bytearray(raw)
        struct.pack_into(">H", flipped, 9, struct.unpack_from(">H", raw, 9)[0] ^ 1 << bit)
        assert refusal(bytes(flipped)) in {"tampered", "truncated"}


def test_every_truncation_is_refused_as_truncated():
    raw = encode(a_card(), KEY)
    for length in range(len(raw)):
        assert refusal(raw[:length]) == "truncated", length


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_random_bytes_only_ever_raise_card_error(raw):
    with pytest.raises(CardError):
        decode(raw, KEY, SITE)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_bytes_behind_a_valid_header_only_ever_raise_card_error(tail):
    header = carddata.HEADER.pack(carddata.MAGIC, 1, SITE, len(tail))
    with pytest.raises(CardError):
        decode(header + tail + bytes(carddata.SLOTS_SIZE), KEY, SITE)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(cards, st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=4), st.data())
def test_mutated_cards_decode_to_themselves_or_raise_card_error(card, changes, data):
    raw = bytearray(encode(card, KEY))
    for position, value in changes:
        raw[position % len(raw)] = value
    cut = data.draw(st.integers(min_value=0, max_value=len(raw)))
    try:
        decoded = decode(bytes(raw[:cut] if data.draw(st.booleans()) else raw), KEY, card.site)
    except CardError as error:
        assert error.reason in carddata.REASONS
    else:
        assert decoded == card  # only a change to the slots (which are dropped) or to nothing passes


def test_a_card_with_a_malformed_but_authentic_plaintext_is_truncated():
    # A writer's bug, not an attack: the tag verifies but the rights do not parse.
    header = carddata.HEADER.pack(carddata.MAGIC, 1, SITE, 12 + 3 + 16)
    nonce = os.urandom(12)
    sealed = carddata._rights_aead(KEY).encrypt(nonce, b"\x00\xff\xff", header)
    assert refusal(header + nonce + sealed + bytes(carddata.SLOTS_SIZE)) == "truncated"


# --- size ------------------------------------------------------------------------------------------------------


def test_a_card_with_500_grants_fits_with_room_for_blacklist_items():
    many = tuple(
        CardGrant(POINT if i % 4 else ZONE, 10_000 + i * 37, ((1,), (2, 3), (), (4,), (1, 5))[i % 5])
        for i in range(500)
    )
    blacklist = tuple(BlacklistItem(n, 50_000 + n * 13, NOW + 86400 * 30) for n in range(1, 201))
    raw = encode(a_card(grants=many, blacklist=blacklist), KEY)
    assert len(raw) <= CARD_FILE_SIZE
    decoded = decode(raw, KEY, SITE)
    assert decoded.grants == many
    assert decoded.blacklist == blacklist


def test_rights_that_do_not_fit_raise_card_too_big_naming_what_to_remove():
    many = tuple(CardGrant(POINT, i, (1,)) for i in range(2500))
    with pytest.raises(CardTooBig) as caught:
        encode(a_card(grants=many), KEY)
    error = caught.value
    match = re.fullmatch(
        r"The access list needs ([\d,]+) bytes but a card holds 4,096: remove at least ([\d,]+) access points "
        r"or zones \(use zones or fewer access levels\)",
        str(error),
    )
    assert match, str(error)
    needed, remove = (int(group.replace(",", "")) for group in match.groups())
    assert needed == error.needed > CARD_FILE_SIZE == error.available
    assert len(encode(a_card(grants=many[: len(many) - remove]), KEY)) <= CARD_FILE_SIZE
    with pytest.raises(CardTooBig):
        encode(a_card(grants=many[: len(many) - remove // 2]), KEY)


def test_blacklist_items_that_do_not_fit_leave_out_the_oldest():
    blacklist = tuple(BlacklistItem(n, 1_000_000 + n, NOW + n) for n in range(1, 3001))
    raw = encode(a_card(blacklist=blacklist), KEY)
    assert len(raw) <= CARD_FILE_SIZE
    carried = decode(raw, KEY, SITE).blacklist
    assert 300 < len(carried) < 3000
    assert carried == blacklist[-len(carried) :]
    assert decode(raw, KEY, SITE).blacklist_base == carried[0].number - 1
    # The card is full: one more item would not have fitted.
    assert CARD_FILE_SIZE - len(raw) < 12


def test_blacklist_items_are_carried_ascending_by_number_whatever_order_they_come_in():
    items = (BlacklistItem(9, 1, NOW), BlacklistItem(3, 2, NOW), BlacklistItem(5, 3, NOW))
    assert decode(encode(a_card(blacklist=items), KEY), KEY, SITE).blacklist == tuple(
        sorted(items, key=lambda item: item.number)
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"key_id": -1},
        {"uid": "XYZ"},
        {"valid_until": 2**32},
        {"grants": (CardGrant("door", 1),)},
        {"blacklist": (BlacklistItem(1, 2, 0),)},
        {"site": 2**32},
    ],
)
def test_data_no_card_can_hold_is_a_value_error(changes):
    with pytest.raises(ValueError):
        encode(a_card(**changes), KEY)


def test_a_key_of_the_wrong_size_is_a_value_error():
    with pytest.raises(ValueError):
        encode(a_card(), b"short")


# --- status slots ----------------------------------------------------------------------------------------------


def status(lock_id: int, at: int, **changes) -> LockStatus:
    return LockStatus(**{"lock_id": lock_id, "at": at, "battery": 80, "blacklist_number": 100, "config_revision": 2,
                         **changes})  # fmt: skip


def test_six_statuses_written_into_four_slots_keep_the_four_newest():
    raw = encode(a_card(), KEY)
    for lock in range(1, 7):
        raw = write_status(raw, KEY, SITE, status(lock, NOW + lock))
    assert [held.lock_id for held in decode(raw, KEY, SITE).statuses] == [3, 4, 5, 6]


def test_a_lock_writing_again_replaces_its_own_slot():
    raw = encode(a_card(), KEY)
    for lock in (1, 2, 3):
        raw = write_status(raw, KEY, SITE, status(lock, NOW + lock))
    raw = write_status(raw, KEY, SITE, status(1, NOW + 10, battery=40))
    held = decode(raw, KEY, SITE).statuses
    assert [(s.lock_id, s.battery) for s in held] == [(2, 80), (3, 80), (1, 40)]


def test_writing_a_status_leaves_the_rights_untouched():
    raw = encode(a_card(), KEY)
    written = write_status(raw, KEY, SITE, status(1, NOW))
    span = rights_range(raw)
    assert written[: span.stop] == raw[: span.stop]
    assert len(written) == len(raw)
    assert decode(written, KEY, SITE) == a_card()


def test_a_forged_or_damaged_slot_is_dropped_and_the_card_still_reads():
    raw = bytearray(
        write_status(write_status(encode(a_card(), KEY), KEY, SITE, status(1, NOW)), KEY, SITE, status(2, NOW + 1))
    )
    first_slot = rights_range(bytes(raw)).stop
    raw[first_slot + 8] ^= 0x01  # the battery byte of lock 1's slot
    decoded = decode(bytes(raw), KEY, SITE)
    assert decoded == a_card()
    assert [held.lock_id for held in decoded.statuses] == [2]
    # The next lock takes the damaged slot rather than the oldest good one.
    again = decode(write_status(bytes(raw), KEY, SITE, status(3, NOW + 2)), KEY, SITE)
    assert [held.lock_id for held in again.statuses] == [2, 3]


def test_a_slot_copied_from_another_card_is_dropped():
    donor = write_status(encode(a_card(), KEY), KEY, SITE, status(9, NOW))
    target = encode(a_card(), KEY)
    slot_at = rights_range(target).stop
    donor_at = rights_range(donor).stop
    copied = target[:slot_at] + donor[donor_at : donor_at + carddata.SLOT_SIZE] + target[slot_at + carddata.SLOT_SIZE :]
    assert decode(copied, KEY, SITE).statuses == ()


def test_a_status_written_with_another_key_is_dropped():
    raw = write_status(encode(a_card(), KEY), OTHER_KEY, SITE, status(1, NOW))
    assert decode(raw, KEY, SITE).statuses == ()


def test_write_status_refuses_what_is_not_a_card():
    with pytest.raises(CardError) as caught:
        write_status(b"garbage", KEY, SITE, status(1, NOW))
    assert caught.value.reason == "truncated"


# --- the documented test vector ----------------------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "card-data-v1.md"


def documented(name: str) -> bytes:
    block = re.search(rf"<!-- test-vector: {name} -->\n```\n(.*?)\n```", DOC.read_text(), re.S)
    return bytes.fromhex(block.group(1).replace("\n", ""))


def test_the_documented_test_vector_is_what_encode_writes():
    vector_key = bytes(range(32))
    card = CardData(
        site=0x00A1B2C3,
        key_id=300,
        uid="04A1B2C3D4E580",
        cardholder_id=7,
        revision=2,
        issued_at=1_750_000_000,
        valid_until=1_750_086_400,
        audit_openings=True,
        extended_open_time=True,
        grants=(CardGrant(ZONE, 3, ()), CardGrant(POINT, 12, (1,)), CardGrant(POINT, 9, (1, 2))),
        blacklist=(BlacklistItem(100, 55, 1_750_600_000), BlacklistItem(102, 61, 1_751_000_000)),
    )
    raw = encode(card, vector_key, nonce=bytes(range(0xA0, 0xAC)))
    assert raw == documented("card")
    assert decode(raw, vector_key, 0x00A1B2C3) == card
    written = write_status(raw, vector_key, 0x00A1B2C3, LockStatus(0x1234, 1_750_000_100, 87, 102, 5, 3))
    assert written[92 : 92 + carddata.SLOT_SIZE] == documented("slot")
