"""The SHIP codec: requests and answers, the refusals that keep the parser safe, and the STP framing."""

import contextlib
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.ship import xml as ship
from integrations.ship.xml import FrameDecoder, FramingError, ShipError

# The machine the tests share may be busy: time is no part of what these properties say.
fuzz = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def names(rest: str, size: int):
    """A letter, then up to ``size`` characters of ``rest``: names as SHIP has them."""
    return st.builds(str.__add__, st.sampled_from(string.ascii_letters), st.text(rest, max_size=size))


# Tags (letters, digits, dots, underscores); text XML can carry, without outer blanks.
tags = names(string.ascii_letters + string.digits + "._", 20)
values = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufffe\uffff", min_codepoint=0x20),
    max_size=30,
).map(str.strip)
nodes = st.recursive(
    st.lists(st.tuples(tags, values), max_size=4),
    lambda children: st.lists(st.tuples(tags, st.one_of(values, children.filter(bool))), max_size=4),
    max_leaves=20,
)


def request_bytes(body: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>{body}'.encode()


def test_it_reads_a_request_with_blanks_around_the_values():
    request = ship.parse_request(
        b'<?xml version="1.0" encoding="ISO-8859-1"?><RequestCall><RequestName> SaltoDBUserList.Read </RequestName>'
        b"<Params><MaxCount> 10 </MaxCount><Name>Mu\xf1oz</Name></Params></RequestCall>"
    )

    assert request.name == "SaltoDBUserList.Read"
    assert ship.text(request.params, "MaxCount") == "10"
    assert ship.text(request.params, "Name") == "Muñoz"


def test_a_request_without_params_has_empty_ones():
    request = ship.parse_request(request_bytes("<RequestCall><RequestName>GetInfo</RequestName></RequestCall>"))

    assert request.name == "GetInfo"
    assert list(request.params) == []


@pytest.mark.parametrize(
    "body",
    [
        "<RequestResponse><RequestName>GetInfo</RequestName></RequestResponse>",
        "<RequestCall><Params/></RequestCall>",
        "<RequestCall><RequestName> </RequestName></RequestCall>",
        "<RequestCall><RequestName>GetInfo</RequestName>",
        "not xml at all",
        "",
    ],
)
def test_it_refuses_what_is_not_a_request(body):
    with pytest.raises(ShipError) as refused:
        ship.parse_request(request_bytes(body))

    assert refused.value.code == ship.BAD_REQUEST


def test_it_refuses_external_entities():
    body = (
        '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        "<RequestCall><RequestName>&x;</RequestName></RequestCall>"
    )
    with pytest.raises(ShipError, match="Document type"):
        ship.parse_request(request_bytes(body))


def test_it_refuses_entity_expansion():
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    body = f'<!DOCTYPE r [<!ENTITY l0 "lol">{laughs}]><RequestCall><RequestName>&l9;</RequestName></RequestCall>'
    with pytest.raises(ShipError, match="Document type"):
        ship.parse_request(request_bytes(body))


def test_an_undeclared_entity_is_not_well_formed():
    with pytest.raises(ShipError) as refused:
        ship.parse_request(request_bytes("<RequestCall><RequestName>&x;</RequestName></RequestCall>"))

    assert refused.value.code == ship.BAD_REQUEST


def test_it_refuses_a_large_document():
    body = "<RequestCall><RequestName>GetInfo</RequestName><Params>" + "<A>x</A>" * 200_000 + "</Params></RequestCall>"
    with pytest.raises(ShipError) as refused:
        ship.parse_request(request_bytes(body))

    assert refused.value.code == ship.TOO_LARGE


def test_it_refuses_a_deep_document():
    body = "<RequestCall><RequestName>GetInfo</RequestName><Params>" + "<A>" * 40 + "</A>" * 40 + "</Params>"
    with pytest.raises(ShipError, match="deeper"):
        ship.parse_request(request_bytes(body + "</RequestCall>"))


def test_an_error_answer_carries_the_exception_beside_the_params():
    answer = ship.parse_xml(ship.build_error("SaltoDBUser.Insert", ShipError(409, "exists")))

    assert answer.tag == "RequestResponse"
    assert [child.tag for child in answer] == ["RequestName", "Exception"]
    assert ship.text(answer, "Exception/Code") == "409"
    assert ship.text(answer, "Exception/Message") == "exists"
    response = ship.parse_response(ship.build_error("X", ShipError(409, "exists")))
    assert (response.error.code, response.error.message, response.params) == (409, "exists", None)


def test_characters_xml_cannot_carry_are_dropped_from_values():
    document = ship.build_response("GetInfo", [("Name", "a\x01b\x1fc")])

    assert ship.text(ship.parse_response(document).params, "Name") == "abc"


@fuzz
@given(names(string.ascii_letters + ".", 30), nodes)
def test_requests_and_answers_round_trip(name, params):
    request = ship.parse_request(ship.build_request(name, params))
    response = ship.parse_response(ship.build_response(name, params))

    assert (request.name, ship.nodes_of(request.params)) == (name, params)
    assert (response.name, ship.nodes_of(response.params), response.error) == (name, params, None)


@fuzz
@given(st.binary(max_size=300))
def test_random_bytes_never_raise_anything_but_a_ship_error(data):
    for parse in (ship.parse_request, ship.parse_response):
        try:
            parse(data)
        except ShipError as error:
            assert error.code in (ship.BAD_REQUEST, ship.TOO_LARGE)


@fuzz
@given(st.text(max_size=200))
def test_random_text_inside_a_request_never_raises_anything_but_a_ship_error(body):
    with contextlib.suppress(ShipError):
        ship.parse_request(
            request_bytes(f"<RequestCall><RequestName>X</RequestName><Params>{body}</Params></RequestCall>")
        )


# --- framing ---------------------------------------------------------------------------------------------


def test_a_frame_is_the_prefix_the_length_in_bytes_and_the_document():
    assert ship.frame("<a>é</a>".encode()) == "STP/00/9/<a>é</a>".encode()


def test_the_decoder_reads_frames_split_anywhere_and_skips_line_ends_between_them():
    stream = ship.frame(b"<a/>") + b"\r\n" + ship.frame(b"<bb/>")
    decoder = FrameDecoder()

    documents = [document for byte in stream for document in decoder.feed(bytes([byte]))]

    assert documents == [b"<a/>", b"<bb/>"]
    assert not decoder.pending


@pytest.mark.parametrize(
    ("stream", "code"),
    [
        (b"GET / HTTP/1.1\r\n", ship.BAD_REQUEST),
        (b"STP/01/4/<a/>", ship.BAD_REQUEST),
        (b"STP/00/x4/<a/>", ship.BAD_REQUEST),
        (b"STP/00//<a/>", ship.BAD_REQUEST),
        (b"STP/00/99999999/", ship.TOO_LARGE),
        (b"STP/00/1048577/", ship.TOO_LARGE),
        (b"STP/00/123456789", ship.TOO_LARGE),
    ],
)
def test_the_decoder_refuses_what_is_not_a_frame_and_stays_refusing(stream, code):
    decoder = FrameDecoder()

    with pytest.raises(FramingError) as refused:
        decoder.feed(stream)
    assert refused.value.code == code
    with pytest.raises(FramingError):
        decoder.feed(ship.frame(b"<a/>"))


def test_a_half_received_frame_is_pending():
    decoder = FrameDecoder()

    assert decoder.feed(ship.frame(b"<abc/>")[:-2]) == []
    assert decoder.pending


@fuzz
@given(st.lists(st.binary(max_size=200), max_size=5), st.data())
def test_frames_round_trip_over_any_chunks(documents, data):
    stream = b"".join(ship.frame(document) for document in documents)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    decoder = FrameDecoder()

    assert [document for chunk in chunks for document in decoder.feed(chunk)] == documents
    assert not decoder.pending


@fuzz
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_random_chunks_never_raise_anything_but_a_framing_error(chunks):
    decoder = FrameDecoder(max_length=4096)
    try:
        for chunk in chunks:
            for document in decoder.feed(chunk):
                assert len(document) <= 4096
    except FramingError:
        pass
