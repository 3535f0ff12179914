"""The FIAS connector against a simulated PMS interface: a real asyncio TCP server on 127.0.0.1.

The service and the simulated PMS run on an event loop of their own thread, as
under ``runspace``. Here the hotel operations are in-test fakes (``FakeHotel``)
so the protocol layer is tested alone; test_fias_hotel.py runs it against the
real operations, the device bridge and a simulated encoder.
"""

import asyncio
import datetime as dt
import threading
import time

import hypothesis
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from hypothesis import strategies as st

from hotel import actions as hotel
from integrations.pms import fias, fias_requests, fias_service
from integrations.pms.fias import ACK, ENQ, NAK, LinkByte, Record
from integrations.pms.fias_service import FiasService
from simulation.fias_pms import SimulatedPms
from space.services import SERVICES, embedded_services
from tests.support.metrics import own_sample
from tests.support.waiting import until, wait_until

CHECK_OUT = dt.time(11, 0)
DEPARTURE = dt.datetime(2030, 5, 17, 10, 30)


class Running:
    """A simulated PMS and a FiasService connected to it, on an event loop thread."""

    def __init__(self, with_lrc: bool = True, **options):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.pms = SimulatedPms(with_lrc=with_lrc)
        self.call(self.pms.start())
        options = {"backoff_first": 0.05, "backoff_max": 0.2, "check_out_time": CHECK_OUT, **options}
        self.service = FiasService(f"127.0.0.1:{self.pms.port}", **options)
        self.call(self.service.start())

    def call(self, coroutine, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self):
        self.call(self.service.stop())
        self.call(self.pms.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def send(self, record: Record):
        self.call(self.pms.send(record))

    def send_raw(self, data: bytes):
        self.call(self.pms.send_raw(data))

    def answer(self, record: Record, timeout: float = 10) -> Record:
        return self.call(self.pms.request(record, timeout))[0]

    def next(self, timeout: float = 10):
        return self.call(self.pms.next(timeout))

    def linked(self, timeout: float = 10):
        return self.call(self.pms.linked(timeout))


class FakeHotel:
    """Stands in for hotel.actions's operations: known rooms and encoders, the calls made."""

    rooms = {"101", "102", "103", "201"}
    encoders = {"DESK1", "DESK2"}

    def __init__(self):
        self.calls = []
        self.delay = 0.0
        self.error = None  # a HotelError code every operation raises

    def _room(self, room):
        if self.error:
            raise hotel.HotelError(self.error, f"fake {self.error}")
        if room not in self.rooms:
            raise hotel.HotelError(hotel.UNKNOWN_ROOM, f"no room {room}")

    def check_in(self, *, room, departure, encoder, **options):
        self.calls.append(("check_in", room, departure, encoder, options))
        self._room(room)
        if encoder is not None and encoder not in self.encoders:
            raise hotel.HotelError(hotel.UNKNOWN_ENCODER, f"no encoder {encoder}")
        time.sleep(self.delay)  # a slow encoder, as the test asks for
        return hotel.KeyIssued(1, 2, "04AA", (room,), departure, card_data=b"\x01\xab")

    def check_out(self, *, room, reservation="", via):
        self.calls.append(("check_out", room, reservation, via))
        self._room(room)
        return 1

    def modify(self, *, room, new_room="", departure=None, reservation="", guest_name="", via):
        self.calls.append(("modify", room, new_room, departure, reservation, guest_name))
        self._room(room)
        return 1

    def read_key(self, *, encoder, via, wait_seconds=30.0):
        self.calls.append(("read_key", encoder))
        if self.error:
            raise hotel.HotelError(self.error, "fake")
        return hotel.KeyRead("04AA", ("101", "102"), "Ada Lovelace", "R77", timezone.make_aware(DEPARTURE), True)


@pytest.fixture
def fake_hotel(monkeypatch):
    fake = FakeHotel()
    for name in ("check_in", "check_out", "modify", "read_key"):
        monkeypatch.setattr(hotel, name, getattr(fake, name))
    return fake


@pytest.fixture
def running(fake_hotel):
    harness = Running(keepalive_seconds=30)
    harness.linked()
    yield harness
    harness.stop()


def key_request(room="101", encoder="DESK1", **fields) -> Record:
    pairs = {"KC": encoder, "KT": "N", "RN": room, "WS": "FO1", "G#": "R77", "GD": "300517", "DT": "103000"}
    pairs.update(fields)
    pairs.setdefault("DA", "300510")
    pairs.setdefault("TI", "091500")
    return Record.make("KR", *pairs.items())


# --- link start, keep-alive, reconnection ------------------------------------------------------------


def test_it_answers_ls_with_its_link_description(running):
    records = running.linked()
    ld, *lrs, la = records
    assert ld.type == "LD" and ld.get("IF") == "DL" and ld.get("V#") == fias_service.VERSION
    assert ld.get("DA") and ld.get("TI")
    kinds = ("KR", "KD", "KM", "KZ", "GI", "GO", "GC")
    assert [(lr.type, lr.get("RI")) for lr in lrs] == [("LR", kind) for kind in kinds]
    assert lrs[0].get("FL") == "KCKTRNWSDATIG#GAGDDTGNRTSI"
    assert la.type == "LA"


def test_an_ls_sent_again_as_keep_alive_gets_the_description_again(running):
    running.send(Record.make("LS", DA="300510", TI="091500"))
    again = [running.next() for _ in range(1 + len(fias_requests.FIELDS_READ))]
    assert [record.type for record in again] == ["LD"] + ["LR"] * len(fias_requests.FIELDS_READ)
    assert wait_until(lambda: running.pms.alives >= 2)  # and its LA


def test_it_sends_la_when_nothing_was_sent_for_the_keep_alive_interval(fake_hotel):
    harness = Running(keepalive_seconds=0.2)
    try:
        harness.linked()
        started, started_at = harness.pms.alives, time.monotonic()
        wait_until(lambda: harness.pms.alives - started >= 3, timeout=10, message="three keep-alives")
        # The first may come at once, each next one a full interval (0.2 s) after it: never sooner.
        assert time.monotonic() - started_at >= 2 * 0.2
    finally:
        harness.stop()


def test_a_slow_encoder_does_not_stop_keep_alives_and_requests_are_answered_in_order(fake_hotel):
    """Both requests name encoder DESK1: one lane, so in the order they came."""
    fake_hotel.delay = 0.7
    harness = Running(keepalive_seconds=0.2)
    try:
        harness.linked()
        started = harness.pms.alives
        harness.send(key_request("101", WS="first"))
        harness.send(key_request("102", WS="second"))
        first, second = harness.call(harness.pms.next_record()), harness.call(harness.pms.next_record())
        assert harness.pms.alives - started >= 4  # LA went on while the encoder worked
        assert (first.get("WS"), second.get("WS")) == ("first", "second")
    finally:
        harness.stop()


def test_it_connects_again_after_the_pms_closes_the_link(running):
    running.call(running.pms.drop())
    assert wait_until(lambda: running.pms.connections == 2)
    running.call(running.pms._linked.wait())
    assert running.service.counters["reconnects"] == 1
    assert running.answer(key_request()).get("AS") == "OK"


def test_a_record_cut_by_a_dropped_link_is_discarded(running, fake_hotel):
    wire = fias.encode(key_request("101"))
    running.send_raw(wire[: len(wire) // 2])
    running.call(running.pms.drop())
    assert wait_until(lambda: running.pms.connections == 2)
    running.call(running.pms._linked.wait())
    running.send_raw(wire[len(wire) // 2 :])  # the rest of it, on the new connection: garbage
    assert running.answer(key_request("102")).get("RN") == "102"
    assert [call[1] for call in fake_hotel.calls] == ["102"]
    assert running.service.counters["garbage_bytes"] > 0
    assert running.service.counters["partial_records"] == 1


def test_le_ends_the_link_and_it_connects_again(running):
    running.send(Record.make("LE", DA="300510", TI="091500"))
    assert wait_until(lambda: running.pms.connections == 2)
    assert running.service.counters["reconnects"] == 1


def test_a_new_connection_to_the_pms_replaces_the_old_one(running):
    async def intruder():
        reader, writer = await asyncio.open_connection("127.0.0.1", running.pms.port)
        data = await asyncio.wait_for(reader.read(100), 5)  # the LS
        rest = await asyncio.wait_for(reader.read(100), 10)  # then EOF: the service connected again and won
        writer.close()
        return data, rest

    data, rest = running.call(intruder())
    assert data.startswith(b"\x02LS|")
    assert rest == b""
    assert running.pms.connections == 3
    assert running.service.counters["reconnects"] == 1
    running.call(running.pms._linked.wait())
    assert running.answer(key_request()).get("AS") == "OK"


def test_it_keeps_trying_while_the_pms_is_down(fake_hotel, caplog):
    pms = SimulatedPms()
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(pms.start())
        port = pms.port
        loop.run_until_complete(pms.stop())
        service = FiasService(f"127.0.0.1:{port}", backoff_first=0.05, backoff_max=0.1)

        async def scenario():
            await service.start()
            # Three connection attempts failed: it keeps trying, at its backoff.
            await until(lambda: sum("FIAS: cannot connect" in r.getMessage() for r in caplog.records) >= 3)
            later = SimulatedPms(port=port)
            await later.start()
            await later.linked()
            await service.stop()
            await later.stop()

        loop.run_until_complete(asyncio.wait_for(scenario(), 20))
    finally:
        loop.close()


# --- key requests --------------------------------------------------------------------------------------


def test_kr_for_a_known_room_and_encoder_is_answered_ka_ok_with_the_echo_fields(running, fake_hotel):
    answer = running.answer(key_request("101", GN="Ada Lovelace", SI="102;103", RT="4"))
    assert answer.type == "KA"
    assert answer.fields == (
        ("AS", "OK"),
        ("KC", "DESK1"),
        ("WS", "FO1"),
        ("RN", "101"),
        ("G#", "R77"),
        ("DA", "300510"),
        ("TI", "091500"),
        ("$3", "01AB"),
    )
    name, room, departure, encoder, options = fake_hotel.calls[0]
    assert (name, room, encoder) == ("check_in", "101", "DESK1")
    assert timezone.localtime(departure).replace(tzinfo=None) == DEPARTURE
    assert options["kind"] == hotel.NEW and options["extra_rooms"] == ("102", "103")
    assert options["guest_name"] == "Ada Lovelace" and options["reservation"] == "R77" and options["via"] == "fias"


@pytest.mark.parametrize(("key_type", "kind"), [("D", hotel.COPY), ("O", hotel.ONE_SHOT)])
def test_kr_key_types(running, fake_hotel, key_type, kind):
    assert running.answer(key_request(KT=key_type)).get("AS") == "OK"
    assert fake_hotel.calls[0][4]["kind"] == kind


def test_kr_without_a_departure_time_uses_the_check_out_time(running, fake_hotel):
    record = Record(key_request().type, tuple(pair for pair in key_request().fields if pair[0] != "DT"))
    assert running.answer(record).get("AS") == "OK"
    assert timezone.localtime(fake_hotel.calls[0][2]).time() == CHECK_OUT
    assert "$3" not in running.answer(key_request())  # no RT4: no card data


def test_kr_for_an_unknown_room_or_encoder_is_answered_ur(running):
    for record in (key_request(room="999"), key_request(encoder="NOPE")):
        answer = running.answer(record)
        assert (answer.type, answer.get("AS")) == ("KA", "UR")
        assert answer.get("KC") == record.get("KC") and answer.get("WS") == "FO1"
        assert answer.get("CT")
    assert running.service.counters["refused"] == 2


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (hotel.ENCODER_BUSY, "BY"),
        (hotel.ENCODER_OFFLINE, "RY"),
        (hotel.NO_CARD, "RY"),
        (hotel.TIMEOUT, "RY"),
        (hotel.GUEST_NOT_FOUND, "NG"),
        (hotel.ROOM_OCCUPIED, "DN"),
        (hotel.BAD_REQUEST, "UR"),
    ],
)
def test_each_hotel_error_has_its_answer_status(running, fake_hotel, code, status):
    fake_hotel.error = code
    assert running.answer(key_request()).get("AS") == status


def test_kr_with_bad_fields_is_answered_ur(running, fake_hotel):
    assert running.answer(key_request(GD="301399")).get("AS") == "UR"
    assert running.answer(key_request(KT="Z")).get("AS") == "UR"
    assert running.answer(Record.make("KR", KC="DESK1", GD="300517")).get("AS") == "UR"  # no room
    assert fake_hotel.calls == []


def test_kd_checks_out_and_answers_ka(running, fake_hotel):
    answer = running.answer(Record.make("KD", ("KC", "DESK1"), ("RN", "101"), ("G#", "R77"), ("WS", "FO1")))
    assert (answer.type, answer.get("AS"), answer.get("RN")) == ("KA", "OK", "101")
    assert fake_hotel.calls == [("check_out", "101", "R77", "fias")]
    fake_hotel.error = hotel.GUEST_NOT_FOUND
    assert running.answer(Record.make("KD", RN="101")).get("AS") == "NG"


def test_km_moves_the_guest_from_ro_to_rn(running, fake_hotel):
    answer = running.answer(Record.make("KM", ("RN", "102"), ("RO", "101"), ("GD", "300520"), ("G#", "R77")))
    assert (answer.type, answer.get("AS")) == ("KA", "OK")
    name, room, new_room, departure, reservation, _ = fake_hotel.calls[0]
    assert (name, room, new_room, reservation) == ("modify", "101", "102", "R77")
    assert timezone.localtime(departure).replace(tzinfo=None) == dt.datetime(2030, 5, 20, 11, 0)


def test_kz_reads_the_key_on_the_encoder(running, fake_hotel):
    answer = running.answer(Record.make("KZ", KC="DESK1", WS="FO1"))
    assert answer.type == "KZ"
    assert [answer.get(key) for key in ("AS", "KC", "RN", "SI", "GN", "G#", "GD", "DT")] == [
        "OK",
        "DESK1",
        "101",
        "102",
        "Ada Lovelace",
        "R77",
        "300517",
        "103000",
    ]
    assert fake_hotel.calls == [("read_key", "DESK1")]


def test_kz_of_a_cancelled_key_is_de_and_of_a_blank_card_ur(running, fake_hotel, monkeypatch):
    reads = iter(
        [
            hotel.KeyRead("04AA", ("101",), "Ada", "R77", None, False, {"reason": "cancelled"}),
            hotel.KeyRead("04AA", extra={"reason": "blank"}),
        ]
    )
    monkeypatch.setattr(hotel, "read_key", lambda **options: next(reads))
    cancelled = running.answer(Record.make("KZ", KC="DESK1"))
    assert (cancelled.get("AS"), cancelled.get("RN"), cancelled.get("G#")) == ("DE", "101", "R77")
    blank = running.answer(Record.make("KZ", KC="DESK1"))
    assert (blank.type, blank.get("AS"), blank.get("CT")) == ("KZ", "UR", "not a key of this hotel (blank)")


def test_gi_go_gc_call_the_hotel_and_answer_nothing(running, fake_hotel):
    running.send(Record.make("GI", ("RN", "101"), ("G#", "R77"), ("GN", "Ada"), ("GD", "300517")))
    running.send(Record.make("GC", ("RN", "102"), ("RO", "101"), ("G#", "R77")))
    running.send(Record.make("GO", ("RN", "102"), ("G#", "R77")))
    running.send(Record.make("GO", ("RN", "999")))  # refused: logged and counted, no answer
    assert running.answer(key_request("201")).get("RN") == "201"  # the next thing back is this KA
    assert wait_until(lambda: len(fake_hotel.calls) == 5 and running.service.counters["refused"] == 1)
    # Rooms 101 and 102 share a lane: in the order they came. Room 999's and 201's lanes went on beside it.
    assert [call[0] for call in fake_hotel.calls if call[1] in ("101", "102")] == ["check_in", "modify", "check_out"]
    assert sorted(call[0] for call in fake_hotel.calls) == ["check_in", "check_in", "check_out", "check_out", "modify"]
    (gi,) = [call for call in fake_hotel.calls if call[:2] == ("check_in", "101")]
    assert gi[3] is None  # GI: no encoder


def test_answers_carry_no_separator_or_control_character_from_the_database(running, fake_hotel, monkeypatch):
    read = hotel.KeyRead("04AA", ("101",), "Ada | Lovelace\n", "R|77", None, True)
    monkeypatch.setattr(hotel, "read_key", lambda **options: read)
    answer = running.answer(Record.make("KZ", KC="DESK1"))
    assert (answer.get("AS"), answer.get("GN"), answer.get("G#")) == ("OK", "Ada   Lovelace ", "R 77")


def test_an_answer_too_long_to_send_becomes_ur(running, fake_hotel, monkeypatch):
    issued = hotel.KeyIssued(1, 2, "04AA", ("101",), timezone.now(), card_data=bytes(fias.MAX_SENT_BYTES))
    monkeypatch.setattr(hotel, "check_in", lambda **options: issued)
    answer = running.answer(key_request(RT="4"))
    assert (answer.type, answer.get("AS"), answer.get("$3")) == ("KA", "UR", "")
    assert running.answer(key_request()).get("AS") == "OK"  # and the link is still up


def test_a_pms_that_sends_no_lrc_is_served_the_same(fake_hotel):
    harness = Running(with_lrc=False, keepalive_seconds=30)
    try:
        harness.linked()
        for room in ("101", "102", "103"):
            assert harness.answer(key_request(room)).get("RN") == room
        assert harness.service.counters["lrc_errors"] == 0
        assert harness.service.counters["garbage_bytes"] == 0
    finally:
        harness.stop()


# --- bad input ---------------------------------------------------------------------------------------


def test_a_wrong_lrc_is_answered_nak_and_the_connector_keeps_running(running):
    wire = fias.encode(key_request())
    running.send_raw(wire[:-1] + bytes([wire[-1] ^ 0x11]))
    assert running.next() == LinkByte(NAK)
    assert running.service.counters["lrc_errors"] == 1
    assert running.answer(key_request()).get("AS") == "OK"


def test_garbage_forbidden_bytes_and_oversized_records_are_dropped_and_counted(running):
    running.send_raw(b"\xff\xfegarbage")
    forbidden = b"KR|RN1\x0701|"
    running.send_raw(b"\x02" + forbidden + bytes([fias.ETX, fias.lrc(forbidden)]))  # right LRC, forbidden byte
    assert running.next() == LinkByte(NAK)
    running.send_raw(b"\x02KR|GN" + b"x" * 10_000 + b"|\x03\x00")  # oversized: refused at the limit
    assert running.next() == LinkByte(NAK)
    assert running.answer(key_request()).get("AS") == "OK"
    counters = running.service.counters
    assert counters["forbidden_bytes"] == 1 and counters["oversized"] == 1
    assert counters["garbage_bytes"] >= 9


def test_unknown_record_types_are_ignored_and_counted(running, fake_hotel):
    running.send(Record.make("XX", RN="101"))
    running.send(Record.make("PS", RN="101", P1="2.50"))  # another family's record (posting)
    assert running.answer(key_request()).get("AS") == "OK"
    assert running.service.counters["unknown_records"] == 2
    assert len(fake_hotel.calls) == 1


def test_enq_is_answered_ack_and_nak_resends_the_last_record_three_times_at_most(running):
    running.send_raw(bytes([ENQ]))
    assert running.next() == LinkByte(ACK)
    answer = running.answer(key_request())
    for _ in range(fias_service.NAK_RESENDS):
        running.send_raw(bytes([NAK]))
        assert running.call(running.pms.next_record()) == answer
    running.send_raw(bytes([NAK]))
    running.send(Record.make("KZ", KC="DESK1"))
    assert running.call(running.pms.next_record()).type == "KZ"  # not a fourth copy of the KA
    assert running.service.counters["naks_received"] == 4


def test_a_flood_of_requests_past_the_queue_is_answered_busy(fake_hotel, monkeypatch):
    monkeypatch.setattr(fias_service, "QUEUE_MAX", 2)
    fake_hotel.delay = 0.3
    harness = Running(keepalive_seconds=30)
    try:
        harness.linked()
        harness.send_raw(b"".join(fias.encode(key_request(WS=str(index))) for index in range(5)))
        answers = [harness.call(harness.pms.next_record()) for _ in range(5)]
        assert sorted(answer.get("AS") for answer in answers).count("BY") >= 2
        assert harness.service.counters["busy"] >= 2
    finally:
        harness.stop()


# --- hosting -----------------------------------------------------------------------------------------


def test_it_is_a_connector_turned_on_by_its_setting(settings):
    connector = SERVICES["fias"]
    settings.SPACE_FIAS_ADDRESS = ""
    assert not connector.configured
    settings.SPACE_FIAS_ADDRESS = "pms.example:5010"
    service = connector.make()
    assert isinstance(service, FiasService)
    assert (service.host, service.port) == ("pms.example", 5010)


def test_runspace_runs_it_when_it_is_configured(settings):
    settings.SPACE_CONNECTORS_IN_RUNSPACE = True
    settings.SPACE_FIAS_ADDRESS = "127.0.0.1:5010"
    assert FiasService in [type(service) for service in embedded_services()]
    settings.SPACE_FIAS_ADDRESS = ""
    assert FiasService not in [type(service) for service in embedded_services()]
    settings.SPACE_FIAS_ADDRESS = "127.0.0.1:5010"
    settings.SPACE_CONNECTORS_IN_RUNSPACE = False
    assert [service for service in embedded_services() if isinstance(service, FiasService)] == []


def test_the_check_out_time_comes_from_its_setting(settings):
    settings.SPACE_HOTEL_CHECK_OUT_TIME = "10:30"
    assert FiasService("127.0.0.1:5010").check_out_time == dt.time(10, 30)
    settings.SPACE_HOTEL_CHECK_OUT_TIME = "noon"
    with pytest.raises(ImproperlyConfigured, match="SPACE_HOTEL_CHECK_OUT_TIME"):
        FiasService("127.0.0.1:5010")


@pytest.mark.parametrize("address", ["pms", "pms:", ":5010", "pms:port"])
def test_a_bad_address_is_refused(address):
    with pytest.raises(ValueError, match="host:port"):
        fias_service.parse_address(address)


# --- fuzzing the request handlers ---------------------------------------------------------------------

field_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="|"), max_size=12)
known_ids = st.sampled_from(sorted({key for keys in fias_requests.FIELDS_READ.values() for key in keys} | {"RT"}))
requests = st.builds(
    Record,
    st.sampled_from(sorted(fias_requests.HANDLERS)),
    st.lists(st.tuples(known_ids, field_values), max_size=8).map(tuple),
)


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(requests)
def test_any_request_gets_an_answer_that_can_be_sent_and_nothing_escapes(record):
    with pytest.MonkeyPatch.context() as patch:
        fake = FakeHotel()
        for name in ("check_in", "check_out", "modify", "read_key"):
            patch.setattr(hotel, name, getattr(fake, name))
        answer, status = fias_requests.handle(record, CHECK_OUT)
    assert status in ("OK", "BY", "DE", "DN", "NG", "RY", "UR")
    if answer is None:
        assert record.type in ("GI", "GO", "GC")
    else:
        assert fias.decode_data(fias.encode_data(answer)) == answer
        assert answer.fields[0] == ("AS", status)


def test_requests_for_other_rooms_and_encoders_go_on_side_by_side(fake_hotel):
    fake_hotel.delay = 0.6
    harness = Running()
    try:
        harness.linked()
        started = time.monotonic()
        harness.send(key_request("101", encoder="DESK1", WS="one"))
        harness.send(key_request("102", encoder="DESK2", WS="two"))
        answers = {harness.call(harness.pms.next_record()).get("WS") for _ in range(2)}
        assert answers == {"one", "two"}
        assert time.monotonic() - started < 1.1  # not 2 x 0.6 s one after the other
    finally:
        harness.stop()


def test_the_link_is_a_gauge_of_metrics_while_it_is_up(fake_hotel):
    def links() -> float:
        return own_sample("space_connector_links", connector="fias")

    before = links()
    harness = Running(keepalive_seconds=30)
    try:
        harness.linked()
        assert links() == before + 1
        harness.call(harness.pms.drop())
        assert wait_until(lambda: harness.pms.connections == 2)
        harness.call(harness.pms._linked.wait())
        assert links() == before + 1  # dropped and made again: one link, counted once
    finally:
        harness.stop()
    assert links() == before
