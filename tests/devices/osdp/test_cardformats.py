"""Card formats (devices/osdp/cardformats.py): known frames, round trips, every single-bit error, any input."""

import ast
import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.osdp import cardformats
from devices.osdp.cardformats import (
    AUTO,
    BAD_LENGTH,
    BAD_PARITY,
    C1K35,
    C1K48,
    FORMATS,
    H10301,
    H10302,
    H10304,
    H10306,
    LAYOUTS,
    RAW,
    REASONS,
    UNKNOWN_FORMAT,
    Card,
    CardReadError,
    decode,
    encode,
    uid_for,
)


def frame(bit_string: str) -> tuple[bytes, int]:
    """A written-out bit string ("1 0110…", spaces ignored) packed the way libosdp delivers it."""
    bit_string = bit_string.replace(" ", "")
    bits = len(bit_string)
    size = (bits + 7) // 8
    return (int(bit_string, 2) << (size * 8 - bits)).to_bytes(size, "big"), bits


def flip(data: bytes, position: int) -> bytes:
    """``data`` with bit ``position`` (0 = the first, most significant bit) inverted."""
    value = bytearray(data)
    value[position // 8] ^= 0x80 >> (position % 8)
    return bytes(value)


def reason_of(format_name, data, bits) -> str:
    with pytest.raises(CardReadError) as raised:
        decode(format_name, data, bits)
    return raised.value.reason


def facility_and_number(format_name: str):
    """A strategy for (facility, number) over the format's whole ranges."""
    layout = LAYOUTS[format_name]
    facilities = st.integers(0, layout.facility.max) if layout.facility else st.none()
    return st.tuples(facilities, st.integers(0, layout.number.max))


# --- known frames --------------------------------------------------------------------------------------------

# Worked out by hand from the layouts in docs/card-formats.md (facility 1, card 1 unless stated).
HAND_VECTORS = [
    (H10301, "1 00000001 0000000000000001 0", 1, 1),
    (H10301, "0 00000000 0000000000000000 1", 0, 0),
    (H10306, "1 0000000000000001 0000000000000001 0", 1, 1),
    (C1K35, "1 1 000000000001 00000000000000000001 1", 1, 1),
    (C1K48, "0 1 0000000000000000000001 00000000000000000000001 0", 1, 1),
    (H10302, "0 00000000000000000000000000000000001 0", None, 1),
    (H10304, "1 0000000000000001 0000000000000000001 0", 1, 1),
]

# Published examples, taken as facts: the Civintec CN56 reader manual (section 6.4, "Wiegand26 Format" and
# "Wiegand34 Format", https://manualshive.com/ru/manual/civintec/cn56-series/2611587?page=25) shows the
# data D4 1B 81 sent as 1 11010100 00011011 10000001 0, and 89 D4 1B 81 as 1 10001001 11010100 00011011
# 10000001 1: the first bit even parity over the first half, the last odd parity over the second.
PUBLISHED_VECTORS = [
    (H10301, "1 11010100 00011011 10000001 0", 0xD4, 0x1B81),
    (H10306, "1 10001001 11010100 00011011 10000001 1", 0x89D4, 0x1B81),
]


@pytest.mark.parametrize(("format_name", "bit_string", "facility", "number"), HAND_VECTORS + PUBLISHED_VECTORS)
def test_it_decodes_and_encodes_known_frames(format_name, bit_string, facility, number):
    data, bits = frame(bit_string)
    card = decode(format_name, data, bits)
    assert (card.format, card.facility, card.number) == (format_name, facility, number)
    assert encode(format_name, facility, number) == (data, bits)


def test_h10301_packs_like_libosdp():
    """26 bits fill four bytes; the last byte keeps the final two bits at its top, six padding bits below."""
    assert encode(H10301, 1, 1) == (bytes([0x80, 0x80, 0x00, 0x80]), 26)
    assert encode(H10301, 0xD4, 0x1B81) == (bytes([0xEA, 0x0D, 0xC0, 0x80]), 26)


# The parity masks, covered bits only, as hexadecimal over the frame (first bit most significant). The
# Corporate 1000 ones are the values vendors publish for configuring these formats on their controllers
# (e.g. 0x1B6DB6DB6 for the 35-bit format's second bit); the others follow from their half-frame rule.
PARITY_MASKS = {
    H10301: [(0, "even", 0x1FFE000), (25, "odd", 0x1FFE)],
    H10306: [(0, "even", 0x1FFFE0000), (33, "odd", 0x1FFFE)],
    C1K35: [(1, "even", 0x1B6DB6DB6), (34, "odd", 0x36DB6DB6C), (0, "odd", 0x3FFFFFFFF)],
    C1K48: [(1, "even", 0x1B6DB6DB6DB6), (47, "odd", 0x36DB6DB6DB6C), (0, "odd", 0x7FFFFFFFFFFF)],
    H10302: [(0, "even", 0xFFFFC0000), (36, "odd", 0x7FFFE)],
    H10304: [(0, "even", 0xFFFFC0000), (36, "odd", 0x7FFFE)],
}


@pytest.mark.parametrize("format_name", sorted(PARITY_MASKS))
def test_parity_masks_are_the_published_ones(format_name):
    layout = LAYOUTS[format_name]
    masks = [
        (parity.position, "odd" if parity.odd else "even", sum(1 << (layout.bits - 1 - p) for p in parity.covers))
        for parity in layout.parity
    ]
    assert masks == PARITY_MASKS[format_name]


def test_the_table_names_every_format():
    assert set(FORMATS) == {H10301, H10306, C1K35, C1K48, H10302, H10304, RAW, AUTO}
    assert set(LAYOUTS) == set(FORMATS) - {RAW, AUTO}
    assert REASONS == (BAD_LENGTH, BAD_PARITY, UNKNOWN_FORMAT)


def test_a_card_is_frozen():
    card = decode(H10301, *encode(H10301, 1, 1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.number = 2


# --- UIDs ----------------------------------------------------------------------------------------------------

UID_EXAMPLES = [
    (H10301, 123, 45678, "12345678"),
    (H10301, 1, 1, "00100001"),
    (H10306, 1, 1, "0000100001"),
    (H10306, 65535, 65535, "6553565535"),
    (C1K35, 1, 1, "00010000001"),
    (C1K35, 4095, 1048575, "40951048575"),
    (C1K48, 1, 1, "00000010000001"),
    (C1K48, 4194303, 8388607, "41943038388607"),
    (H10302, None, 1, "00000000001"),
    (H10302, None, 2**35 - 1, "34359738367"),
    (H10304, 1, 1, "00001000001"),
    (H10304, 65535, 524287, "65535524287"),
]


@pytest.mark.parametrize(("format_name", "facility", "number", "uid"), UID_EXAMPLES)
def test_a_card_maps_to_a_fixed_width_decimal_uid(format_name, facility, number, uid):
    assert uid_for(format_name, facility, number) == uid
    assert decode(format_name, *encode(format_name, facility, number)).uid == uid


def test_fixed_widths_keep_facility_and_number_apart():
    assert uid_for(H10301, 1, 23) != uid_for(H10301, 12, 3)


# --- round trips and single-bit errors -----------------------------------------------------------------------


@pytest.mark.parametrize("format_name", sorted(LAYOUTS))
@given(data=st.data())
def test_every_card_of_every_format_round_trips(format_name, data):
    facility, number = data.draw(facility_and_number(format_name))
    packed, bits = encode(format_name, facility, number)
    assert bits == LAYOUTS[format_name].bits
    assert len(packed) == (bits + 7) // 8
    card = decode(format_name, packed, bits)
    assert card == Card(format_name, facility, number, uid_for(format_name, facility, number))
    assert 2 <= len(card.uid) <= 64
    assert card.uid.isdigit()


@pytest.mark.parametrize("format_name", sorted(LAYOUTS))
@settings(max_examples=50)  # each example flips every bit of its frame
@given(data=st.data())
def test_every_single_bit_error_is_bad_parity(format_name, data):
    """Every bit of these layouts is a parity bit or covered by one (Corporate 1000's first bit covers all), so
    one flipped bit, wherever it is, fails at least one check."""
    facility, number = data.draw(facility_and_number(format_name))
    packed, bits = encode(format_name, facility, number)
    for position in range(bits):
        assert reason_of(format_name, flip(packed, position), bits) == BAD_PARITY


@pytest.mark.parametrize("format_name", sorted(LAYOUTS))
def test_every_bit_is_checked_by_some_parity(format_name):
    layout = LAYOUTS[format_name]
    checked = {p for parity in layout.parity for p in (parity.position, *parity.covers)}
    assert checked == set(range(layout.bits))


@pytest.mark.parametrize("format_name", sorted(LAYOUTS))
def test_padding_bits_and_bytes_beyond_the_length_are_ignored(format_name):
    facility = 0 if LAYOUTS[format_name].facility else None
    packed, bits = encode(format_name, facility, 5)
    card = decode(format_name, packed, bits)
    padded = bytes([*packed[:-1], packed[-1] | (0xFF >> (bits % 8 or 8))])
    assert decode(format_name, padded, bits) == card
    assert decode(format_name, packed + b"\xff\x00", bits) == card


# --- lengths and formats -------------------------------------------------------------------------------------


@pytest.mark.parametrize("format_name", sorted(LAYOUTS))
def test_a_wiegand_format_refuses_other_lengths_and_short_data(format_name):
    facility = 0 if LAYOUTS[format_name].facility else None
    packed, bits = encode(format_name, facility, 1)
    assert reason_of(format_name, packed, bits - 1) == BAD_LENGTH
    assert reason_of(format_name, packed + b"\x00", bits + 1) == BAD_LENGTH
    assert reason_of(format_name, packed[:-1], bits) == BAD_LENGTH
    assert reason_of(format_name, b"", bits) == BAD_LENGTH


@pytest.mark.parametrize("name", ["H10301", "wiegand26", "", None, 26, b"h10301"])
def test_an_unknown_format_is_refused(name):
    assert reason_of(name, *encode(H10301, 1, 1)) == UNKNOWN_FORMAT


@pytest.mark.parametrize("bits", [0, -1, -(2**70), 2**70, True, 26.0, "26", None])
@pytest.mark.parametrize("format_name", sorted(FORMATS))
def test_impossible_lengths_are_bad_length(format_name, bits):
    assert reason_of(format_name, bytes(8), bits) == BAD_LENGTH


@pytest.mark.parametrize("data", [None, "80800080", [0x80, 0x80, 0, 0x80], 4, object()])
@pytest.mark.parametrize("format_name", sorted(FORMATS))
def test_data_that_is_not_bytes_is_bad_length(format_name, data):
    assert reason_of(format_name, data, 26) == BAD_LENGTH


def test_bytearray_and_memoryview_are_read_like_bytes():
    packed, bits = encode(H10301, 7, 9)
    assert decode(H10301, bytearray(packed), bits) == decode(H10301, memoryview(packed), bits)
    released = memoryview(packed)
    released.release()
    assert reason_of(H10301, released, bits) == BAD_LENGTH


@given(
    format_name=st.sampled_from(sorted(FORMATS)) | st.text(max_size=8),
    data=st.binary(max_size=12),
    bits=st.integers() | st.integers(-8, 100) | st.sampled_from([26, 34, 35, 37, 48]),
)
def test_any_input_gives_a_card_or_a_read_error(format_name, data, bits):
    try:
        card = decode(format_name, data, bits)
    except CardReadError as error:
        assert error.reason in REASONS
    else:
        assert isinstance(card, Card)
        assert 2 <= len(card.uid) <= 64
        assert card.uid == card.uid.upper()
        int(card.uid, 16)


# --- auto ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("format_name", [H10301, H10306, C1K35, C1K48])
@given(data=st.data())
def test_auto_reads_each_unambiguous_length(format_name, data):
    facility, number = data.draw(facility_and_number(format_name))
    packed, bits = encode(format_name, facility, number)
    assert decode(AUTO, packed, bits) == decode(format_name, packed, bits)


@pytest.mark.parametrize("format_name", [H10301, H10306, C1K35, C1K48])
def test_auto_passes_on_bad_parity(format_name):
    packed, bits = encode(format_name, 1, 1)
    assert reason_of(AUTO, flip(packed, 5), bits) == BAD_PARITY


@given(data=st.data())
def test_auto_refuses_37_bits_whichever_format_wrote_them(data):
    """H10302 and H10304 have the same parity bits, so a good 37-bit frame fits both: auto cannot choose."""
    format_name = data.draw(st.sampled_from([H10302, H10304]))
    facility, number = data.draw(facility_and_number(format_name))
    packed, bits = encode(format_name, facility, number)
    assert reason_of(AUTO, packed, bits) == BAD_LENGTH
    assert reason_of(AUTO, flip(packed, data.draw(st.integers(0, 36))), bits) == BAD_PARITY


@pytest.mark.parametrize("bits", [1, 8, 24, 25, 27, 32, 33, 36, 38, 40, 47, 49, 56, 64, 128])
def test_auto_refuses_lengths_no_format_has(bits):
    assert reason_of(AUTO, bytes(16), bits) == BAD_LENGTH


# --- raw -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "bits", "uid"),
    [
        (bytes.fromhex("04a1b2c3"), 32, "04A1B2C3"),
        (bytes.fromhex("04a1b2c3d4e5f6"), 56, "04A1B2C3D4E5F6"),
        (bytes.fromhex("04a1b2c3"), 28, "04A1B2C3"),  # padding bits kept as given
        (bytes.fromhex("04a1b2c3"), 20, "04A1B2"),  # trimmed to the bytes the bits need
        (bytes.fromhex("04a1b2c3ff"), 32, "04A1B2C3"),
        (b"\x80", 1, "80"),
        (bytes(range(32)), 256, bytes(range(32)).hex().upper()),
    ],
)
def test_raw_is_the_serial_number_in_hex(data, bits, uid):
    card = decode(RAW, data, bits)
    assert card == Card(RAW, None, int(uid, 16), uid)


@pytest.mark.parametrize(("data", "bits"), [(bytes(4), 33), (b"", 8), (bytes(33), 257), (bytes(8), 0)])
def test_raw_refuses_short_data_and_uids_too_long_for_a_key(data, bits):
    assert reason_of(RAW, data, bits) == BAD_LENGTH


# --- encode and uid_for refuse what no card holds ------------------------------------------------------------


@pytest.mark.parametrize("make", [encode, uid_for])
@pytest.mark.parametrize(
    ("format_name", "facility", "number"),
    [
        (H10301, 256, 0),
        (H10301, -1, 0),
        (H10301, 0, 65536),
        (H10301, 0, -1),
        (H10301, None, 0),
        (H10301, True, 0),
        (H10301, 1.0, 0),
        (H10306, 65536, 0),
        (C1K35, 4096, 0),
        (C1K35, 0, 2**20),
        (C1K48, 2**22, 0),
        (C1K48, 0, 2**23),
        (H10302, 0, 0),
        (H10302, None, 2**35),
        (H10304, 0, 2**19),
        (RAW, None, 0),
        (AUTO, 0, 0),
        ("h10301x", 0, 0),
        (None, 0, 0),
    ],
)
def test_out_of_range_values_are_a_value_error(make, format_name, facility, number):
    with pytest.raises(ValueError):
        make(format_name, facility, number)


@pytest.mark.parametrize("format_name", sorted(LAYOUTS))
def test_range_edges_encode(format_name):
    layout = LAYOUTS[format_name]
    top = layout.facility.max if layout.facility else None
    bottom = 0 if layout.facility else None
    for facility, number in [(bottom, 0), (top, layout.number.max)]:
        assert decode(format_name, *encode(format_name, facility, number)).number == number


def test_the_module_is_pure():
    """Standard library data helpers only: no Django, no sockets, no files."""
    tree = ast.parse(Path(cardformats.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported == {"functools", "dataclasses"}
