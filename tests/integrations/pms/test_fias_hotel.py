"""FIAS end to end: a simulated PMS sends KR over TCP, the connector issues the key through the real hotel
operations, the real device bridge and a simulated Ethernet encoder writes the card, and KA comes back.

No fakes: the hotel of tests/accesscontrol/hotel_support.py, the bridge and the encoder of
tests/devices (``encoder_bridge``, ``make_encoder``, simulation/encoders.py).
"""

import asyncio
import datetime as dt

import pytest
from django.utils import timezone

from accesscontrol.choices import KeyStatus, StayStatus
from accesscontrol.models import BlacklistEntry, Key, Stay
from devices.models import Device
from integrations.pms import fias
from integrations.pms.fias import Record
from integrations.pms.fias_service import FiasService
from simulation.encoders import SimulatedEncoder
from simulation.fias_pms import SimulatedPms
from tests.devices.encoders_support import ENCODER_ID, KEY, decoded, make_encoder, run
from tests.hotel.support import make_hotel
from tests.support.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)

UID = "04FA5C0DE00001"
STATION = "DESK1"


@pytest.fixture
def desk(encoder_bridge):
    """The hotel, and its front-desk encoder with station code DESK1, known to the bridge."""
    site = make_hotel()
    make_encoder(station=STATION)
    encoder_bridge.reload()
    return site


def departure_in(days: int) -> dt.datetime:
    return timezone.localtime() + dt.timedelta(days=days)


async def with_fias(bridge, scenario):
    """Run ``scenario(pms, service, encoder)`` with the encoder online and the FIAS link up."""
    encoder = SimulatedEncoder(ENCODER_ID, KEY, ("127.0.0.1", bridge.port), retry_first_s=0.1)
    await encoder.connect(5)
    await until(lambda: Device.objects.get(device_id=ENCODER_ID).online)
    pms = SimulatedPms()
    await pms.start()
    service = FiasService(f"127.0.0.1:{pms.port}", backoff_first=0.05, backoff_max=0.2)
    await service.start()
    try:
        await pms.linked()
        return await scenario(pms, service, encoder)
    finally:
        await service.stop()
        await pms.stop()
        await encoder.stop()


def test_kr_writes_the_key_on_the_named_encoder_and_ka_returns_its_card_data(encoder_bridge, desk):
    departure = departure_in(2).replace(microsecond=0)

    async def scenario(pms, service, encoder):
        encoder.place_card(UID)
        answer, _ = await pms.key_request(
            room="101", encoder=STATION, departure=departure, guest="Ada Lovelace", reservation="R1", return_data=True
        )
        return answer, encoder.written

    answer, written = run(with_fias(encoder_bridge, scenario), timeout=60)
    assert (answer.type, answer.get("AS"), answer.get("KC"), answer.get("RN"), answer.get("G#")) == (
        "KA",
        "OK",
        STATION,
        "101",
        "R1",
    )
    [(_, uid, data)] = written
    assert uid == UID
    assert bytes.fromhex(answer.get("$3")) == data
    key = Key.objects.get(uid=UID)
    assert decoded(data).key_id == key.pk
    assert key.status == KeyStatus.ISSUED
    stay = Stay.objects.get(reservation="R1")
    assert (stay.room.number, stay.guest_name) == ("101", "Ada Lovelace")
    assert timezone.localtime(key.valid_until) == departure


def test_kr_for_an_unknown_room_or_encoder_gets_ur_and_the_link_stays_up(encoder_bridge, desk):
    async def scenario(pms, service, encoder):
        encoder.place_card(UID)
        unknown_room, _ = await pms.key_request(room="999", encoder=STATION, departure=departure_in(1))
        unknown_encoder, _ = await pms.key_request(room="101", encoder="NOPE", departure=departure_in(1))
        good, _ = await pms.key_request(room="201", encoder=STATION, departure=departure_in(1))
        return unknown_room, unknown_encoder, good, dict(service.counters)

    unknown_room, unknown_encoder, good, counters = run(with_fias(encoder_bridge, scenario), timeout=60)
    assert (unknown_room.type, unknown_room.get("AS")) == ("KA", "UR")
    assert (unknown_encoder.type, unknown_encoder.get("AS")) == ("KA", "UR")
    assert "999" in unknown_room.get("CT") and "NOPE" in unknown_encoder.get("CT")
    assert good.get("AS") == "OK"
    assert counters["refused"] == 2
    assert counters["reconnects"] == 0


def test_kd_checks_the_guest_out_and_blacklists_the_key(encoder_bridge, desk):
    async def scenario(pms, service, encoder):
        encoder.place_card(UID)
        issued, _ = await pms.key_request(room="102", encoder=STATION, departure=departure_in(1), reservation="R2")
        deleted, _ = await pms.request(Record.make("KD", ("KC", STATION), ("RN", "102"), ("G#", "R2")))
        again, _ = await pms.request(Record.make("KD", ("KC", STATION), ("RN", "102"), ("G#", "R2")))
        return issued, deleted, again

    issued, deleted, again = run(with_fias(encoder_bridge, scenario), timeout=60)
    assert issued.get("AS") == "OK"
    assert (deleted.type, deleted.get("AS")) == ("KA", "OK")
    assert again.get("AS") == "NG"  # no guest in the room any more
    key = Key.objects.get(uid=UID)
    assert key.status == KeyStatus.CANCELLED
    assert BlacklistEntry.objects.filter(uid=UID).exists()


def test_km_moves_the_guest_and_gi_go_record_the_stay(encoder_bridge, desk):
    async def scenario(pms, service, encoder):
        date = fias.format_date(departure_in(3))
        await pms.send(Record.make("GI", ("RN", "201"), ("G#", "R3"), ("GN", "Grace Hopper"), ("GD", date)))
        moved, _ = await pms.request(Record.make("KM", ("RN", "102"), ("RO", "201"), ("G#", "R3")))
        await pms.send(Record.make("GO", ("RN", "102"), ("G#", "R3")))
        # Requests naming the same room are done in order: the answer to this KZ (room 102's lane too)
        # comes after GO was done.
        await pms.request(Record.make("KZ", ("KC", "NOPE"), ("RN", "102")))
        return moved

    moved = run(with_fias(encoder_bridge, scenario), timeout=60)
    assert (moved.type, moved.get("AS")) == ("KA", "OK")
    stay = Stay.objects.get(reservation="R3")
    assert (stay.room.number, stay.guest_name) == ("102", "Grace Hopper")
    assert stay.status == StayStatus.OUT


def test_a_wrong_lrc_is_refused_and_the_next_kr_is_served(encoder_bridge, desk):
    async def scenario(pms, service, encoder):
        encoder.place_card(UID)
        wire = fias.encode(Record.make("KR", KC=STATION, RN="101", GD=fias.format_date(departure_in(1))))
        await pms.send_raw(wire[:-1] + bytes([wire[-1] ^ 1]))
        nak = await pms.next(5)
        answer, _ = await pms.key_request(room="101", encoder=STATION, departure=departure_in(1))
        await asyncio.sleep(0)
        return nak, answer

    nak, answer = run(with_fias(encoder_bridge, scenario), timeout=60)
    assert nak == fias.LinkByte(fias.NAK)
    assert answer.get("AS") == "OK"
    assert Key.objects.filter(uid=UID).count() == 1


def test_kz_reads_the_guest_key_on_the_encoder_and_de_once_checked_out(encoder_bridge, desk):
    departure = departure_in(2).replace(microsecond=0)

    async def scenario(pms, service, encoder):
        encoder.place_card(UID)
        issued, _ = await pms.key_request(
            room="301", encoder=STATION, departure=departure, guest="Grace Hopper", reservation="R5"
        )
        valid, _ = await pms.request(Record.make("KZ", KC=STATION, WS="FO1"))
        await pms.request(Record.make("KD", ("RN", "301"), ("G#", "R5")))
        cancelled, _ = await pms.request(Record.make("KZ", KC=STATION, WS="FO1"))
        encoder.place_card("04FA5C0DE00002")  # a blank card
        blank, _ = await pms.request(Record.make("KZ", KC=STATION, WS="FO1"))
        return issued, valid, cancelled, blank

    issued, valid, cancelled, blank = run(with_fias(encoder_bridge, scenario), timeout=90)
    assert issued.get("AS") == "OK"
    assert (valid.type, valid.get("AS"), valid.get("KC"), valid.get("WS")) == ("KZ", "OK", STATION, "FO1")
    assert {valid.get("RN"), *valid.get("SI").split(";")} == {"301", "302"}  # the suite
    assert (valid.get("GN"), valid.get("G#")) == ("Grace Hopper", "R5")
    assert (valid.get("GD"), valid.get("DT")) == (fias.format_date(departure), fias.format_time(departure))
    assert (cancelled.get("AS"), cancelled.get("G#")) == ("DE", "R5")
    assert (blank.get("AS"), blank.get("CT")) == ("UR", "not a key of this hotel (blank)")
