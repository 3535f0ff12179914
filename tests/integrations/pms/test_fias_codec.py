"""The FIAS codec: framing, LRC, forbidden bytes, size limit, dates, and the stream decoder's LRC rule."""

import contextlib
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from integrations.pms import fias
from integrations.pms.fias import ACK, ENQ, ETX, NAK, STX, FiasError, LinkByte, Record, Refused, StreamDecoder

KR = Record.make("KR", ("WS", "3"), ("KC", "1"), ("RN", "2781"), ("G#", "55"))


def test_it_encodes_a_record_with_its_lrc():
    data = b"KR|WS3|KC1|RN2781|"
    expected_lrc = ETX
    for byte in data:
        expected_lrc ^= byte
    assert fias.encode(Record.make("KR", WS="3", KC="1", RN="2781")) == b"\x02" + data + b"\x03" + bytes([expected_lrc])
    assert fias.encode(Record.make("KR", WS="3"), with_lrc=False) == b"\x02KR|WS3|\x03"


def test_it_decodes_fields_in_order_with_ids_that_are_not_names():
    record = fias.decode_data(b"KR|WS3|KC1|RN2781|G#55|$3AB|")
    assert record.type == "KR"
    assert record.fields == (("WS", "3"), ("KC", "1"), ("RN", "2781"), ("G#", "55"), ("$3", "AB"))
    assert record.get("G#") == "55"
    assert record.get("GN") == ""
    assert "RN" in record


def test_it_reads_a_record_without_a_trailing_separator_and_with_empty_fields():
    assert fias.decode_data(b"LA|DA260101||TI120000").fields == (("DA", "260101"), ("TI", "120000"))
    assert fias.decode_data(b"LS").fields == ()


@pytest.mark.parametrize("data", [b"K", b"", b"KR|X|", b"KR|WS\x013|", b"K\x7f|", b"|R|"])
def test_it_refuses_what_is_not_a_record(data):
    with pytest.raises(FiasError):
        fias.decode_data(data)


def test_it_refuses_to_encode_a_separator_a_control_character_or_too_much():
    with pytest.raises(FiasError):
        fias.encode(Record.make("KR", GN="A|B"))
    with pytest.raises(FiasError):
        fias.encode(Record.make("KR", GN="A\nB"))
    with pytest.raises(FiasError):
        fias.encode(Record.make("KA", ("$3", "x" * fias.MAX_SENT_BYTES)))
    with pytest.raises(FiasError):
        fias.encode(Record("K"))


def test_dates_and_times():
    assert fias.parse_date("261123") == dt.date(2026, 11, 23)
    assert fias.parse_time("143005") == dt.time(14, 30, 5)
    assert fias.parse_time("1430") == dt.time(14, 30)
    assert fias.format_date(dt.date(2026, 1, 2)) == "260102"
    assert fias.format_time(dt.time(9, 5, 7)) == "090507"
    for bad in ("261323", "2611", "26112x"):
        with pytest.raises(FiasError):
            fias.parse_date(bad)
    for bad in ("246000", "12", "1a0000"):
        with pytest.raises(FiasError):
            fias.parse_time(bad)


# --- the stream decoder ------------------------------------------------------------------------------


def test_it_reads_records_split_across_reads_and_several_in_one_read():
    records = [KR, Record("LA"), Record("LE")]
    for with_lrc in (True, False):
        stream = b"".join(fias.encode(record, with_lrc=with_lrc) for record in records)
        decoder = StreamDecoder()
        out = []
        for index in range(len(stream)):
            out += decoder.feed(stream[index : index + 1])
        # Without LRCs, the second record's STX shows it: from then on records come at their ETX.
        assert out == records
        assert not decoder.holding


def test_until_the_lrc_habit_is_known_a_record_waits_for_the_next_byte_or_a_flush():
    decoder = StreamDecoder()
    assert decoder.feed(fias.encode(KR, with_lrc=False)) == []
    assert decoder.holding
    assert decoder.flush() == [KR]
    assert decoder.flush() == []
    assert decoder.mode == fias.WITHOUT_LRC  # from now on, records come at their ETX
    assert decoder.feed(fias.encode(KR, with_lrc=False)) == [KR]


def test_it_skips_and_counts_garbage_between_records_and_reads_link_bytes():
    decoder = StreamDecoder()
    out = decoder.feed(b"noise" + fias.encode(KR) + bytes([ENQ]) + b"\xff\x00" + fias.encode(KR) + bytes([ACK, NAK]))
    assert out == [KR, LinkByte(ENQ), KR, LinkByte(ACK), LinkByte(NAK)]
    assert decoder.counters["garbage_bytes"] == 7


def test_a_record_cut_by_a_new_stx_is_garbage():
    decoder = StreamDecoder()
    assert decoder.feed(b"\x02KR|RN1" + fias.encode(KR)) == [KR]
    assert decoder.counters["garbage_bytes"] == 7


def test_a_wrong_lrc_is_refused_and_fixes_the_mode_with_lrc():
    good = fias.encode(KR)
    decoder = StreamDecoder()
    assert decoder.feed(good[:-1] + bytes([good[-1] ^ 0x40])) == [Refused("lrc_errors")]
    assert decoder.counters["lrc_errors"] == 1
    assert decoder.mode == fias.WITH_LRC
    assert decoder.feed(good) == [KR]


def test_in_lrc_mode_an_lrc_equal_to_a_control_byte_is_read_as_the_lrc():
    # Find a record whose LRC is STX: in LRC mode it must not start a new record.
    record = next(
        Record.make("KR", RN=str(room)) for room in range(10_000) if fias.lrc(f"KR|RN{room}|".encode()) == STX
    )
    decoder = StreamDecoder(mode=fias.WITH_LRC)
    assert decoder.feed(fias.encode(record) + fias.encode(KR)) == [record, KR]


def test_without_lrc_the_next_stx_or_link_byte_shows_it_and_records_come_at_their_etx():
    decoder = StreamDecoder()
    plain = fias.encode(KR, with_lrc=False)
    assert decoder.feed(plain + bytes([ENQ])) == [KR, LinkByte(ENQ)]
    assert decoder.mode == fias.WITHOUT_LRC
    assert decoder.feed(plain) == [KR]  # no wait for a byte after ETX any more
    assert not decoder.holding


def test_forbidden_bytes_refuse_the_record_and_the_next_one_is_read():
    decoder = StreamDecoder(mode=fias.WITHOUT_LRC)
    out = decoder.feed(b"\x02KR|RN1\x07|\x03" + fias.encode(KR, with_lrc=False))
    assert out == [Refused("forbidden_bytes"), KR]
    assert decoder.counters["forbidden_bytes"] == 1


def test_an_oversized_record_is_refused_without_buffering_it():
    decoder = StreamDecoder(max_record=64)
    out = decoder.feed(b"\x02KR|GN" + b"x" * 10_000)
    assert out == [Refused("oversized")]
    assert len(decoder._data) == 0
    out = decoder.feed(b"y" * 10_000 + b"\x03\x55" + fias.encode(KR) + b"\x02")
    assert out == [KR]
    assert decoder.counters["oversized"] == 1


def test_a_malformed_record_is_refused():
    decoder = StreamDecoder(mode=fias.WITHOUT_LRC)
    assert decoder.feed(b"\x02K\x03") == [Refused("malformed")]


# --- every LRC value -----------------------------------------------------------------------------------


def xor_text(target: int) -> str:
    """A field value whose UTF-8 bytes XOR to ``target``, with no byte a record may not hold."""
    if target >= 0x80:
        return "\u20ac" + xor_text(target ^ 0xCC)  # the euro sign is E2 82 AC, which XOR to CC
    if 0x20 <= target <= 0x7E and chr(target) != "|":
        return chr(target)
    return chr(target ^ 0x40) + "@"


def record_with_lrc(value: int, type_: str = "KR") -> Record:
    record = Record.make(type_, GN=xor_text(value ^ fias.lrc(f"{type_}|GN|".encode())))
    assert fias.lrc(fias.encode_data(record)) == value
    return record


def read_byte_by_byte_and_at_once(stream: bytes, mode: str = fias.UNKNOWN) -> list:
    """What a decoder reads from ``stream`` fed one byte at a time; the same as when fed at once."""
    one_by_one = StreamDecoder(mode=mode)
    out = [item for index in range(len(stream)) for item in one_by_one.feed(stream[index : index + 1])]
    out += one_by_one.flush()
    at_once = StreamDecoder(mode=mode)
    assert at_once.feed(stream) + at_once.flush() == out
    return out


def test_a_first_lrc_equal_to_stx_then_a_second_equal_to_ack_read_as_the_two_records_and_nothing_else():
    # The example Hypothesis found: the first LRC (STX) left the peer's habit open, so the second (ACK)
    # was also read as a link byte.
    first, second = Record.make("3k", GN="P"), Record.make("5S", GN="j")
    assert (fias.lrc(fias.encode_data(first)), fias.lrc(fias.encode_data(second))) == (STX, ACK)
    decoder = StreamDecoder()
    assert decoder.feed(fias.encode(first) + fias.encode(second)) + decoder.flush() == [first, second]
    assert decoder.mode == fias.WITH_LRC
    assert decoder.counters["garbage_bytes"] == 0


@pytest.mark.parametrize("value", range(256), ids=lambda value: f"lrc_{value:02x}")
def test_every_lrc_value_of_a_peer_that_sends_lrcs_reads_every_record(value):
    # Given a first record with this LRC, records after it whose LRCs are the ambiguous ones,
    # and the same records as the first again once the habit is known
    first = record_with_lrc(value)
    others = [record_with_lrc(byte, "LA") for byte in (STX, ENQ, ACK, NAK)] + [first]
    stream = b"".join(fias.encode(record) for record in [first, *others])
    # When the stream is read from the start, and by a decoder that knows the habit
    out = read_byte_by_byte_and_at_once(stream)
    known = read_byte_by_byte_and_at_once(stream, fias.WITH_LRC)
    # Then every record comes out, and the only other thing is the first LRC read as a link byte too
    assert out == ([first, LinkByte(value), *others] if value in (ENQ, ACK, NAK) else [first, *others])
    assert known == [first, *others]


@pytest.mark.parametrize("value", range(256), ids=lambda value: f"lrc_{value:02x}")
def test_every_lrc_value_of_a_peer_that_sends_none_reads_every_record_and_link_byte(value):
    # Given a peer without LRCs whose first record's LRC would be this value, then link bytes and records
    first = record_with_lrc(value)
    stream = fias.encode(first, with_lrc=False) + fias.encode(KR, with_lrc=False) + bytes([ACK])
    stream += fias.encode(first, with_lrc=False) + bytes([NAK])
    # When it is read
    out = read_byte_by_byte_and_at_once(stream)
    # Then every record and every link byte comes out, in order
    assert out == [first, KR, LinkByte(ACK), first, LinkByte(NAK)]


def test_an_lrc_equal_to_stx_then_silence_leaves_no_record_in_progress():
    decoder = StreamDecoder()
    record = record_with_lrc(STX)
    assert decoder.feed(fias.encode(record)) == [record]
    assert not decoder.partial
    assert not decoder.holding
    assert decoder.feed(bytes([ACK])) == [LinkByte(ACK)]
    assert decoder.mode == fias.WITH_LRC


def test_an_stx_right_before_a_link_byte_opens_no_record_in_any_mode():
    for mode in (fias.UNKNOWN, fias.WITH_LRC, fias.WITHOUT_LRC):
        decoder = StreamDecoder(mode=mode)
        assert decoder.feed(bytes([STX, ACK, STX, NAK, STX, ENQ])) == [LinkByte(ACK), LinkByte(NAK), LinkByte(ENQ)]
        assert decoder.counters["garbage_bytes"] == 3


# --- hypothesis ----------------------------------------------------------------------------------------

printable_ascii = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="|")
ids = st.text(alphabet=printable_ascii, min_size=2, max_size=2)
values = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="|\x7f"), max_size=30
).filter(lambda value: value != "")
records = st.builds(Record, ids, st.lists(st.tuples(ids, values), max_size=10).map(tuple))


@given(records, st.booleans())
def test_encode_decode_round_trip(record, with_lrc):
    try:
        wire = fias.encode(record, with_lrc=with_lrc)
    except FiasError:
        return  # values the record cannot carry (e.g. characters Python calls printable but are controls)
    decoder = StreamDecoder()
    out = decoder.feed(wire) + decoder.flush()
    assert_records(out, [record], wire[-1])


@given(st.lists(records, min_size=1, max_size=5), st.data())
def test_a_stream_of_records_cut_anywhere_reads_the_same(stream_records, data):
    wires = []
    for record in stream_records:
        with contextlib.suppress(FiasError):
            wires.append((record, fias.encode(record)))
    stream = b"".join(wire for _, wire in wires)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = StreamDecoder()
    out = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out += decoder.feed(stream[start:end])
    out += decoder.flush()
    assert_records(out, [record for record, _ in wires], wires[0][1][-1] if wires else None)


def assert_records(out, records, first_lrc):
    assert [item for item in out if isinstance(item, Record)] == records
    # Until the peer's LRC habit is known, a first LRC equal to ENQ, ACK or NAK is also read as that link byte
    # (documented); nothing else is left over.
    assert all(item == LinkByte(first_lrc) for item in out if not isinstance(item, Record))


@given(st.binary(max_size=3000), st.integers(1, 64))
def test_random_bytes_never_raise(blob, step):
    decoder = StreamDecoder(max_record=256)
    for start in range(0, len(blob), step):
        for item in decoder.feed(blob[start : start + step]):
            assert isinstance(item, Record | LinkByte | Refused)
    decoder.flush()
    assert len(decoder._data) <= 256
