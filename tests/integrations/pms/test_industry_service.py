"""The Industry Standard connector over real TCP connections on 127.0.0.1 and a real pseudo-terminal pair.

The hotel operations are the real ones (hotel.actions) on the small test
hotel (tests/accesscontrol/hotel_support.py); keys are written and read through
the real device bridge on a SimulatedEncoder.
"""

import asyncio
import datetime as dt
import os

import pytest
from django.test import override_settings
from django.utils import timezone

from accesscontrol.choices import KeyStatus, StayStatus
from accesscontrol.models import Key, Stay
from devices.models import Device
from hotel import actions as hotel
from integrations.pms import industry, industry_service
from integrations.pms.industry import ACK, NAK, Answer, CardRequest, CheckOutRequest, ModifyRequest
from integrations.pms.industry_service import HOTEL_ERRORS, IndustryStandardService
from simulation.encoders import SimulatedEncoder
from simulation.industry_pms import SimulatedPms
from space.services import SERVICES
from tests.devices.encoders_support import ENCODER_ID, KEY, decoded, make_encoder, run
from tests.integrations.running import LoopThread, RunningService
from tests.support.metrics import own_sample
from tests.support.waiting import until, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

CARD_UID = "04C0FFEE123456"
PHONE = "+34600123456"


def running_connector(**options) -> RunningService:
    """The connector on a loop thread of its own, as it runs under runconnector."""
    return RunningService(IndustryStandardService(host="127.0.0.1", **options))


@pytest.fixture
def connector(transactional_db):
    running = running_connector(port=0, ack_timeout=0.3)
    yield running
    running.stop()


def tz():
    return timezone.get_default_timezone()


def departure(days: int = 2) -> dt.datetime:
    return (timezone.now() + dt.timedelta(days=days)).astimezone(tz()).replace(second=0, microsecond=0)


def cn(station="E1", rooms=("101",), command="CN", **fields) -> CardRequest:
    return CardRequest(command=command, station=station, rooms=rooms, end=departure(), return_serial=True, **fields)


async def pms(connector) -> SimulatedPms:
    return await SimulatedPms.connect("127.0.0.1", connector.service.port, tz=tz())


def exchange(connector, request) -> Answer:
    async def scenario():
        client = await pms(connector)
        try:
            return (await client.exchange(request)).answer
        finally:
            await client.close()

    return run(scenario())


def answer_to(connector, frame: bytes, before: bytes = b"") -> Answer:
    """Send ``before`` (raw bytes), then ``frame`` until it is ACKed at the first send; the answer."""

    async def scenario():
        client = await pms(connector)
        try:
            client.send_raw(before)
            assert await client.send(frame) == 1
            return await client.answer()
        finally:
            await client.close()

    return run(scenario())


@pytest.fixture
def encoder(encoder_bridge, quick_jobs):
    """Encoder E1, online through the real bridge; the test places a card on ``encoder.device``."""
    make_encoder(ENCODER_ID, station="E1")
    encoder_bridge.reload()
    device = SimulatedEncoder(ENCODER_ID, KEY, ("127.0.0.1", encoder_bridge.port), retry_first_s=0.1)
    thread = LoopThread()
    thread.call(device.connect(5))
    wait_until(lambda: Device.objects.get(device_id=ENCODER_ID).online)  # the bridge saw it
    yield device
    thread.call(device.stop())
    thread.close()


# --- commands -----------------------------------------------------------------------------------------------


def test_cn_writes_a_guest_key_on_the_encoder_and_answers_its_serial_number(hotel_site, connector, encoder):
    encoder.place_card(CARD_UID)
    request = cn(rooms=("101", "201"), granted=("GYM", "PARKING"), print_lines=("Ada L", ""))
    answer = exchange(connector, request)
    assert answer == Answer("CN", data=(CARD_UID,))
    key = Key.objects.get(uid=CARD_UID)
    [(_, uid, data)] = encoder.written
    assert (uid, decoded(data).key_id) == (CARD_UID, key.pk)
    stay = Stay.objects.get(status=StayStatus.IN)
    assert (stay.room.number, stay.guest_name, stay.departure) == ("101", "Ada L", request.end)
    assert [room.number for room in stay.extra_rooms.all()] == ["201"]
    assert {area.name for area in stay.areas.all()} == {"GYM", "PARKING"}
    assert (key.status, key.valid_until) == (KeyStatus.ISSUED, request.end)
    assert (connector.service.counters.frames_in, connector.service.counters.frames_out) == (1, 1)


def test_denied_authorisations_are_taken_from_the_granted_or_the_default_ones(hotel_site, connector):
    exchange(connector, cn(station=PHONE, command="CNM", granted=("GYM", "PARKING"), denied=("PARKING",)))
    assert {area.name for area in Stay.objects.get(room__number="101").areas.all()} == {"GYM"}
    exchange(connector, cn(station="+34600999999", command="CNM", rooms=("201",), denied=("GYM",)))
    assert {area.name for area in Stay.objects.get(room__number="201").areas.all()} == {"LIFTS"}


def test_cn_without_the_serial_flag_answers_ok_alone(hotel_site, connector, encoder):
    encoder.place_card(CARD_UID)
    request = CardRequest(command="CN", station="E1", rooms=("101",), end=departure())
    assert exchange(connector, request) == Answer("CN")


def test_cc_adds_a_copy_key_and_keeps_the_first(hotel_site, connector, encoder):
    encoder.place_card(CARD_UID)
    assert exchange(connector, cn()).ok
    encoder.place_card("04DDDDDDDDDDDD")
    assert exchange(connector, cn(command="CC")) == Answer("CC", data=("04DDDDDDDDDDDD",))
    assert set(Key.objects.filter(status=KeyStatus.ISSUED).values_list("uid", flat=True)) == {
        CARD_UID,
        "04DDDDDDDDDDDD",
    }


def test_cnm_and_ccm_issue_mobile_keys_to_the_phone(hotel_site, connector):
    first = exchange(connector, cn(station=PHONE, command="CNM"))
    copy = exchange(connector, cn(station=PHONE, command="CCM"))
    assert (first.command, first.ok, copy.command, copy.ok) == ("CNM", True, "CCM", True)
    stay = Stay.objects.get(status=StayStatus.IN)
    assert stay.cardholder.phone_number == PHONE
    keys = Key.objects.filter(cardholder=stay.cardholder, status=KeyStatus.ISSUED)
    assert {key.uid for key in keys} == {first.data[0], copy.data[0]}
    assert {key.kind for key in keys} == {"mobile"}


def test_co_checks_out_and_answers_how_many_keys_were_cancelled(hotel_site, connector):
    exchange(connector, cn(station=PHONE, command="CNM"))
    exchange(connector, cn(station=PHONE, command="CCM"))
    assert exchange(connector, CheckOutRequest("101")) == Answer("CO", data=("2",))
    assert not Stay.objects.filter(status=StayStatus.IN).exists()
    assert not Key.objects.filter(status=KeyStatus.ISSUED).exists()


def test_mc_moves_the_guest_and_changes_the_end_of_stay(hotel_site, connector):
    exchange(connector, cn(station=PHONE, command="CNM"))
    later = departure(5)
    assert exchange(connector, ModifyRequest("101", new_room="201", end=later)) == Answer("MC")
    stay = Stay.objects.get(status=StayStatus.IN)
    assert (stay.room.number, stay.departure) == ("201", later)


def test_lt_reads_the_card_on_the_encoder_valid_until_check_out(hotel_site, connector, encoder):
    encoder.place_card(CARD_UID)
    request = cn(rooms=("101", "201"), print_lines=("Ada L", ""))
    assert exchange(connector, request).ok
    answer = exchange(connector, industry.ReadRequest("E1"))
    read = industry.CardRead.parse(answer.data, tz())
    assert (answer.command, read.serial, set(read.rooms)) == ("LT", CARD_UID, {"101", "201"})
    assert (read.end, read.guest_name, read.valid) == (request.end, "Ada L", True)
    exchange(connector, CheckOutRequest("101"))
    read = industry.CardRead.parse(exchange(connector, industry.ReadRequest("E1")).data, tz())
    assert (read.serial, read.valid) == (CARD_UID, False)


def test_lt_without_a_card_is_ep(hotel_site, connector, encoder):
    assert exchange(connector, industry.ReadRequest("E1")) == Answer("LT", error=industry.CARD_ERROR)


# --- error answers ------------------------------------------------------------------------------------------


def test_every_hotel_error_code_has_an_error_answer():
    assert set(HOTEL_ERRORS) == set(hotel.CODES)
    assert set(HOTEL_ERRORS.values()) <= set(industry.ERROR_CODES)


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (cn(rooms=("999",)), industry.UNKNOWN_ROOM),  # unknown room
        (cn(station="NOPE"), industry.NOT_FOUND),  # unknown encoder
        (CheckOutRequest("201"), industry.NO_GUEST),  # nobody in the room
        (cn(station=PHONE, command="CCM"), industry.NO_GUEST),  # a copy without a stay
        (cn(station=PHONE, command="CNM", granted=("SAUNA",)), industry.SYNTAX_ERROR),  # unknown area
        (("CN", "E1", "", "101"), industry.SYNTAX_ERROR),  # no end time
        (("ZZ", "1"), industry.SYNTAX_ERROR),  # unknown command
    ],
)
def test_bad_requests_get_their_error_answer(hotel_site, connector, request_, code):
    answer = exchange(connector, request_)
    command = request_[0] if isinstance(request_, tuple) else request_.command
    assert answer == Answer(command, error=code)
    assert connector.service.counters.errors_by_code == {code: 1}
    assert not Key.objects.exists()


def test_a_move_into_an_occupied_room_is_os(hotel_site, connector):
    exchange(connector, cn(station=PHONE, command="CNM"))
    exchange(connector, cn(station="+34600999999", command="CNM", rooms=("201",)))
    assert exchange(connector, ModifyRequest("101", new_room="201")) == Answer("MC", error=industry.OCCUPIED)


def test_no_card_on_the_encoder_is_ep_and_leaves_no_active_key(hotel_site, connector, encoder):
    assert exchange(connector, cn()) == Answer("CN", error=industry.CARD_ERROR)
    assert not Key.objects.filter(status=KeyStatus.ISSUED).exists()


def test_an_encoder_that_is_not_connected_is_nc(hotel_site, connector):
    make_encoder(ENCODER_ID, station="E2")
    assert exchange(connector, cn(station="E2")) == Answer("CN", error=industry.NO_COMMUNICATION)


def test_a_fault_in_space_is_eg_and_the_connector_goes_on(hotel_site, connector, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(hotel, "check_out", broken)
    assert exchange(connector, CheckOutRequest("101")) == Answer("CO", error=industry.GENERAL_ERROR)
    monkeypatch.undo()
    assert exchange(connector, cn(station=PHONE, command="CNM")).ok


# --- the link -----------------------------------------------------------------------------------------------


def co_frame(room="101") -> bytes:
    return industry.encode_frame(("CO", room))


def with_wrong_lrc(frame: bytes) -> bytes:
    """``frame`` with an LRC that is wrong, and not 0x0D either (which is never checked)."""
    return frame[:-1] + bytes((next(value for value in (0x0E, 0x0F) if value != frame[-1]),))


def test_a_connection_over_the_limit_is_closed_and_counted(hotel_site, connector, monkeypatch):
    monkeypatch.setattr(industry_service, "MAX_CONNECTIONS", 1)
    before = own_sample("space_connector_links", connector="industry_standard")

    async def scenario():
        first = await pms(connector)
        assert await first.enquire() == ACK  # connected and served
        second = await pms(connector)
        closed = await second.reader.read()  # the connector hangs up at once
        await second.close()
        links = own_sample("space_connector_links", connector="industry_standard")  # the refused one is not a link
        answer = (await first.exchange(CheckOutRequest("101"))).answer
        await first.close()
        return closed, answer, links

    assert run(scenario()) == (b"", Answer("CO", error=industry.NO_GUEST), before + 1)
    assert (connector.service.counters.connections, connector.service.counters.connections_refused) == (1, 1)
    assert wait_until(lambda: own_sample("space_connector_links", connector="industry_standard") == before)


def test_the_simulated_pms_measures_each_exchange(hotel_site, connector):
    async def scenario():
        client = await pms(connector)
        try:
            return await client.exchange(cn(station=PHONE, command="CNM"))
        finally:
            await client.close()

    measured = run(scenario())
    assert measured.answer.ok and measured.sends == 1
    assert 0 < measured.seconds < 5


def test_enq_is_answered_ack_when_ready(hotel_site, connector):
    async def scenario():
        client = await pms(connector)
        try:
            return await client.enquire()
        finally:
            await client.close()

    assert run(scenario()) == ACK


def test_a_wrong_lrc_is_nakd_the_resent_frame_is_answered(hotel_site, connector):
    async def scenario():
        client = await pms(connector)
        frame = co_frame()
        client.send_raw(with_wrong_lrc(frame))
        nak = await client.next_event()
        assert await client.send(frame) == 1
        answer = await client.answer()
        await client.close()
        return nak, answer

    nak, answer = run(scenario())
    assert nak == industry.LinkByte(NAK)
    assert answer == Answer("CO", error=industry.NO_GUEST)
    assert (connector.service.counters.lrc_errors, connector.service.counters.frames_in) == (1, 1)


def test_an_lrc_of_0x0d_is_not_checked(hotel_site, connector):
    frame = co_frame()
    assert frame[-1] != 0x0D
    assert answer_to(connector, frame[:-1] + b"\x0d") == Answer("CO", error=industry.NO_GUEST)
    assert connector.service.counters.lrc_errors == 0


def test_garbage_and_oversized_frames_are_counted_and_dropped(hotel_site, connector):
    noise = b"\x00\xffnoise" + industry.encode_frame(("CO", "x" * 2000))
    assert answer_to(connector, co_frame(), before=noise) == Answer("CO", error=industry.NO_GUEST)
    counters = connector.service.counters
    assert (counters.garbage_bytes, counters.oversized, counters.frames_in) == (7, 1, 1)


def test_a_malformed_frame_with_a_good_lrc_is_acked_and_answered_es(hotel_site, connector):
    body = b"CO101\x03"
    assert answer_to(connector, b"\x02" + body + bytes((industry.lrc(body),))) == Answer("", error="ES")
    assert connector.service.counters.malformed == 1


def test_a_pms_that_drops_mid_frame_leaves_the_connector_serving(hotel_site, connector):
    async def scenario():
        client = await pms(connector)
        client.send_raw(co_frame()[:5])
        await client.close()
        await until(lambda: connector.service.counters.garbage_bytes == 5)  # the half frame was dropped
        client = await pms(connector)
        answer = (await client.exchange(cn(station=PHONE, command="CNM"))).answer
        await client.close()
        return answer

    assert run(scenario()).ok
    assert connector.service.counters.garbage_bytes == 5
    assert connector.service.counters.connections == 2


def test_an_answer_the_pms_never_acks_is_sent_four_times_then_given_up(hotel_site, connector):
    async def scenario():
        client = await pms(connector)
        await client.send(co_frame())
        answers = [await client.answer(acknowledge=False) for _ in range(4)]
        await until(lambda: connector.service.counters.answers_undelivered == 1)
        assert client.events.empty()  # no fifth
        assert await client.enquire() == ACK  # and the link is ready again
        await client.close()
        return answers

    assert run(scenario()) == [Answer("CO", error=industry.NO_GUEST)] * 4
    assert (connector.service.counters.frames_out, connector.service.counters.answers_undelivered) == (4, 1)


def test_an_answer_nakd_is_sent_again(hotel_site, connector):
    async def scenario():
        client = await pms(connector)
        await client.send(co_frame())
        first = await client.answer(acknowledge=False)
        client.send_raw(bytes((NAK,)))
        second = await client.answer()
        # Longer than the ack timeout (0.3 s): a resend of the acknowledged answer would come within it.
        await asyncio.sleep(0.5)
        await client.close()
        return first, second

    first, second = run(scenario())
    assert first == second == Answer("CO", error=industry.NO_GUEST)
    assert (connector.service.counters.frames_out, connector.service.counters.answers_undelivered) == (2, 0)


def test_a_slow_encoder_holds_up_only_the_pms_that_asked(hotel_site, connector, encoder):
    async def scenario():
        slow, quick = await pms(connector), await pms(connector)
        await slow.send(industry.encode_frame(industry.request_fields(cn(), tz())))  # no card: the encoder waits
        assert await slow.enquire() == NAK  # busy
        other = await quick.exchange(cn(station=PHONE, command="CNM", rooms=("201",)))
        still_waiting = slow.events.empty()  # the first PMS's answer has not come yet
        first = await slow.answer()
        await slow.close()
        await quick.close()
        return first, other.answer, still_waiting

    first, other, still_waiting = run(scenario())
    assert other.ok and still_waiting
    assert first == Answer("CN", error=industry.CARD_ERROR)


# --- the serial line ----------------------------------------------------------------------------------------


@pytest.fixture
def serial_connector(transactional_db):
    master, slave = os.openpty()
    running = running_connector(serial_path=os.ttyname(slave), baud=9600, ack_timeout=0.3, reopen_seconds=0.2)
    os.close(slave)  # the connector opened it itself
    yield running, master
    running.stop()


def serial_line_warnings(caplog, path: str) -> int:
    return sum(
        1 for record in caplog.records if record.getMessage().startswith(f"Industry Standard: serial line {path}")
    )


def test_commands_over_the_serial_line(hotel_site, serial_connector, caplog):
    running, master = serial_connector

    async def scenario():
        client = await SimulatedPms.open_fd(master, tz=tz())
        ready = await client.enquire()
        frame = industry.encode_frame(industry.request_fields(cn(station=PHONE, command="CNM"), tz()))
        client.send_raw(with_wrong_lrc(frame))
        nak = await client.next_event()
        issued = (await client.exchange(cn(station=PHONE, command="CNM"))).answer
        out = (await client.exchange(CheckOutRequest("101"))).answer
        await client.close()
        return ready, nak, issued, out

    ready, nak, issued, out = run(scenario())
    assert (ready, nak) == (ACK, industry.LinkByte(NAK))
    assert issued.ok and out == Answer("CO", data=("1",))
    assert running.service.counters.lrc_errors == 1
    # The PMS end hung up: the connector keeps running and tries the line again.
    path = running.service.serial_line.path
    wait_until(lambda: serial_line_warnings(caplog, path) >= 2, message="two attempts to open the line again")
    assert running.service.serial_line._task is not None
    assert not running.service.serial_line._task.done()


def test_a_serial_line_that_cannot_be_opened_does_not_stop_the_connector(transactional_db, caplog):
    running = running_connector(port=0, serial_path="/dev/does-not-exist", reopen_seconds=0.1, ack_timeout=0.3)
    try:
        wait_until(lambda: serial_line_warnings(caplog, "/dev/does-not-exist") >= 2, message="two failed opens")
        assert exchange(running, ("ZZ",)) == Answer("ZZ", error=industry.SYNTAX_ERROR)
    finally:
        running.stop()


# --- hosting ------------------------------------------------------------------------------------------------


def test_the_connector_is_on_when_a_port_or_a_serial_line_is_set():
    connector = SERVICES["industry"]
    with override_settings(SPACE_INDUSTRY_ENABLED=False):
        assert not connector.configured
    with override_settings(SPACE_INDUSTRY_ENABLED=True, SPACE_INDUSTRY_PORT=0, SPACE_INDUSTRY_SERIAL="/dev/ttyS0"):
        assert connector.configured
        service = connector.make()
        assert (service.port, service.serial_path) == (None, "/dev/ttyS0")
