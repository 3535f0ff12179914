"""The Industry Standard codec: frames, the stream decoder, commands and answers (docs/industry-standard.md)."""

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from integrations.pms import industry
from integrations.pms.industry import (
    ACK,
    ENQ,
    ETX,
    NAK,
    SEPARATOR,
    STX,
    Answer,
    BadLrc,
    CardRead,
    CardRequest,
    CheckOutRequest,
    Decoder,
    Frame,
    Garbage,
    IndustryError,
    LinkByte,
    Malformed,
    ModifyRequest,
    Oversized,
    ReadRequest,
)

TZ = dt.timezone(dt.timedelta(hours=1))
# Field text: Latin-1 without control bytes or the separator.
FIELD_CHARS = st.characters(codec="latin-1", exclude_categories=("Cc",), exclude_characters=chr(SEPARATOR) + "\x7f")
field_text = st.text(FIELD_CHARS, max_size=30)
names = st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=1, max_size=8)
minutes = st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2099, 12, 31)).map(
    lambda moment: moment.replace(second=0, microsecond=0, tzinfo=TZ)
)


def test_a_frame_is_separated_fields_between_stx_and_etx_then_the_lrc():
    frame = industry.encode_frame(("CO", "101"))
    assert frame[:-1] == b"\x02\xb3CO\xb3101\xb3\x03"
    assert frame[-1] == industry.lrc(frame[1:-1])


def test_it_refuses_to_encode_a_field_with_a_control_byte_or_the_separator():
    for text in ("a\x03b", "a\xb3b", "\u20ac"):
        with pytest.raises(IndustryError):
            industry.encode_frame(("CO", text))
    with pytest.raises(IndustryError):
        industry.encode_frame(())


def decoded_as(fields) -> Frame:
    """The frame of ``fields`` as the decoder reads it: a real LRC of 0x0D reads as "do not check"."""
    return Frame(tuple(fields), checked=industry.encode_frame(fields)[-1] != industry.UNCHECKED_LRC)


@given(st.lists(field_text, min_size=1, max_size=20))
def test_frames_round_trip(fields):
    assert Decoder().feed(industry.encode_frame(fields)) == [decoded_as(fields)]


@given(st.lists(st.lists(field_text, min_size=1, max_size=6), min_size=1, max_size=5), st.data())
def test_frames_survive_any_chunking(frames, data):
    stream = b"".join(industry.encode_frame(fields) for fields in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder, events = Decoder(), []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        events += decoder.feed(stream[start:end])
    assert events == [decoded_as(fields) for fields in frames]


@given(st.binary(max_size=3000), st.integers(16, 2048))
def test_random_bytes_never_raise_and_never_fill_the_buffer(data, max_frame):
    decoder = Decoder(max_frame=max_frame)
    for event in decoder.feed(data):
        assert isinstance(event, LinkByte | Frame | BadLrc | Malformed | Garbage | Oversized)
        assert len(decoder._buffer) < max_frame


def test_link_bytes_come_out_as_such():
    assert Decoder().feed(bytes((ENQ, ACK, NAK))) == [LinkByte(ENQ), LinkByte(ACK), LinkByte(NAK)]


def test_a_wrong_lrc_is_a_bad_frame_and_0x0d_is_never_checked():
    frame = industry.encode_frame(("CO", "101"))
    wrong = frame[:-1] + bytes((frame[-1] ^ 0x01,))
    assert Decoder().feed(wrong) == [BadLrc(wrong)]
    unchecked = frame[:-1] + b"\x0d"
    assert Decoder().feed(unchecked) == [Frame(("CO", "101"), checked=False)]


def test_garbage_around_frames_is_counted_and_skipped():
    frame = industry.encode_frame(("LT", "E1"))
    events = Decoder().feed(b"hello" + frame + b"\xff\xfe")
    assert events == [Garbage(5), Frame(("LT", "E1"), True), Garbage(2)]


def test_a_frame_abandoned_half_way_is_garbage_and_the_next_one_is_read():
    frame = industry.encode_frame(("LT", "E1"))
    assert Decoder().feed(frame[:6] + frame) == [Garbage(6), Frame(("LT", "E1"), True)]
    # An ENQ inside a frame means the PMS started over too.
    assert Decoder().feed(frame[:6] + bytes((ENQ,))) == [Garbage(6), LinkByte(ENQ)]


def test_an_oversized_frame_is_dropped_with_its_tail_and_the_next_frame_is_read():
    decoder = Decoder(max_frame=64)
    big = industry.encode_frame(("CO", "x" * 200))
    small = industry.encode_frame(("CO", "101"))
    events = []
    for start in range(0, len(big), 7):  # in pieces: the limit holds across chunks
        events += decoder.feed(big[start : start + 7])
        assert len(decoder._buffer) < 64
    events += decoder.feed(small)
    assert events == [Oversized(), Frame(("CO", "101"), True)]


def test_a_frame_of_exactly_the_limit_is_read():
    frame = industry.encode_frame(("CO", "1" * 10))
    assert Decoder(max_frame=len(frame)).feed(frame) == [Frame(("CO", "1" * 10), True)]
    assert Decoder(max_frame=len(frame) - 1).feed(frame) == [Oversized()]


def test_a_frame_with_a_good_lrc_but_no_separators_is_malformed():
    body = b"CO101" + bytes((ETX,))
    raw = bytes((STX,)) + body + bytes((industry.lrc(body),))
    [event] = Decoder().feed(raw)
    assert isinstance(event, Malformed)


def test_the_decoder_forgets_a_frame_the_link_dropped():
    decoder = Decoder()
    decoder.feed(industry.encode_frame(("CO", "101"))[:5])
    assert decoder.abandon() == 5
    assert decoder.feed(industry.encode_frame(("CO", "2"))) == [Frame(("CO", "2"), True)]


# --- commands -----------------------------------------------------------------------------------------------


card_requests = st.builds(
    CardRequest,
    command=st.sampled_from((industry.NEW_CARD, industry.COPY_CARD)),
    station=names,
    rooms=st.lists(names, min_size=1, max_size=4).map(tuple),
    end=minutes,
    start=st.none() | minutes,
    eject=st.sampled_from(industry.EJECT_MODES),
    granted=st.lists(names, max_size=3).map(tuple),
    denied=st.lists(names, max_size=3).map(tuple),
    operator=field_text,
    print_lines=st.tuples(field_text, field_text),
    return_serial=st.booleans(),
)
mobile_requests = st.builds(
    CardRequest,
    command=st.sampled_from(industry.MOBILE_COMMANDS),
    station=st.from_regex(industry.E164, fullmatch=True),
    rooms=st.lists(names, min_size=1, max_size=4).map(tuple),
    end=minutes,
)
requests = (
    card_requests
    | mobile_requests
    | st.builds(CheckOutRequest, room=names, operator=field_text)
    | st.builds(ModifyRequest, room=names, new_room=names, end=st.none() | minutes, operator=field_text)
    | st.builds(ModifyRequest, room=names, end=minutes)
    | st.builds(ReadRequest, encoder=names)
)


@given(requests)
def test_requests_round_trip_through_frames(request):
    [frame] = Decoder().feed(industry.encode_frame(industry.request_fields(request, TZ)))
    assert industry.parse_request(frame.fields, TZ) == request


@given(st.lists(field_text, min_size=1, max_size=20))
def test_parsing_any_fields_gives_a_request_or_a_syntax_error(fields):
    try:
        industry.parse_request(tuple(fields), TZ)
    except IndustryError as error:
        assert error.code == industry.SYNTAX_ERROR


def cn(**changes):
    values = dict.fromkeys(industry.LAYOUTS["CN"], "")
    values.update(station="E1", room1="101", end="1100251126", return_serial="1")
    values.update(changes)
    return ("CN", *(values[name] for name in industry.LAYOUTS["CN"]))


def test_a_cn_reads_in_the_documented_field_order():
    fields = (
        "CN", "E1", "E", "101", "102", "", "", "Gym,Pool", "Pool", "1400231126", "1100251126", "Ann", "Mr Smith", "",
        "1",
    )  # fmt: skip
    request = industry.parse_request(fields, TZ)
    assert request == CardRequest(
        command="CN",
        station="E1",
        eject="E",
        rooms=("101", "102"),
        granted=("Gym", "Pool"),
        denied=("Pool",),
        start=dt.datetime(2026, 11, 23, 14, 0, tzinfo=TZ),
        end=dt.datetime(2026, 11, 25, 11, 0, tzinfo=TZ),
        operator="Ann",
        print_lines=("Mr Smith", ""),
        return_serial=True,
    )


def test_trailing_fields_may_be_left_out():
    assert industry.parse_request(("LT", "E1"), TZ) == ReadRequest("E1")
    assert industry.parse_request(("CO", "101"), TZ) == CheckOutRequest("101")


@pytest.mark.parametrize(
    "fields",
    [
        ("XX", "1"),
        ("LT",),
        ("LT", "E1", "extra"),
        cn(end=""),
        cn(end="2500251126"),  # hour 25
        cn(end="11002511"),
        cn(room1=""),
        cn(station=""),
        cn(eject="X"),
        cn(return_serial="yes"),
        ("CNM", *cn(station="0612345678")[1:]),  # not E.164
        ("CO", ""),
        ("MC", "101"),  # neither a new room nor a new end
    ],
)
def test_bad_commands_are_syntax_errors(fields):
    with pytest.raises(IndustryError) as raised:
        industry.parse_request(fields, TZ)
    assert raised.value.code == industry.SYNTAX_ERROR


@given(st.lists(field_text, min_size=1, max_size=12))
def test_parsing_any_fields_as_an_answer_gives_one_or_an_industry_error(fields):
    try:
        answer = Answer.parse(tuple(fields))
    except IndustryError:
        return
    assert answer.fields() == tuple(fields)


def test_answers_echo_the_command_or_carry_the_error_first():
    assert Answer("CN", data=("04A1",)).fields() == ("CN", "OK", "04A1")
    assert Answer("CN", error="EA").fields() == ("EA", "CN")
    assert Answer.parse(("CN", "OK", "04A1")) == Answer("CN", data=("04A1",))
    assert Answer.parse(("EA", "CN")) == Answer("CN", error="EA")
    with pytest.raises(IndustryError):
        Answer.parse(("CN",))


@given(st.builds(CardRead, serial=names, rooms=st.lists(names, max_size=4).map(tuple), end=st.none() | minutes,
                 guest_name=field_text, valid=st.booleans()))  # fmt: skip
def test_card_reads_round_trip(read):
    assert CardRead.parse(read.data(TZ), TZ) == read
