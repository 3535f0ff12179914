"""Hotel operations on a real encoder: the device bridge on 127.0.0.1 and a simulated Ethernet encoder
(simulation/encoders.py) named by its station code, as a PMS names it. The card written is decoded
with the site card key; the card read is the one the encoder holds.
"""

import asyncio

import pytest

from accesscontrol.choices import KeyStatus
from accesscontrol.models import BlacklistEntry, Key
from devices.choices import EncodeStatus
from devices.models import Device, EncodeJob
from hotel import actions as hotel
from simulation.encoders import SimulatedEncoder
from tests.devices.encoders_support import ENCODER_ID, KEY, decoded, make_encoder, run
from tests.factories import make_cardholder, make_key
from tests.hotel.support import days, make_hotel
from tests.support.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)

STATION = "DESK1"
CARD = "04A1B2C3D4E5F6"
VIA = "test"


@pytest.fixture
def site(encoder_bridge):
    hotel_site = make_hotel()
    hotel_site["encoder"] = make_encoder(station=STATION, name="Front desk encoder")
    encoder_bridge.reload()
    return hotel_site


async def connected(encoder_bridge, **options) -> SimulatedEncoder:
    device = SimulatedEncoder(ENCODER_ID, KEY, ("127.0.0.1", encoder_bridge.port), retry_first_s=0.1, **options)
    await device.connect(5)
    await until(lambda: Device.objects.get(device_id=ENCODER_ID).online)
    return device


def on_encoder(encoder_bridge, call, *, card=CARD, card_type=None, data=b"", **options):
    """Run ``call`` (a hotel operation) with the simulated encoder online and ``card`` (holding ``data``) on it
    (none: None). Returns (the call's result or its HotelError, the encoder)."""

    async def scenario():
        device = await connected(encoder_bridge, **options)
        if card is not None:
            device.place_card(card, card_type, data)
        try:
            result = await asyncio.to_thread(call)
        except hotel.HotelError as error:
            result = error
        await device.stop()
        return result, device

    return run(scenario(), timeout=60)


def read_key():
    return hotel.read_key(encoder=STATION, via=VIA, wait_seconds=10)


def check_in(room="101", **options):
    options.setdefault("departure", days(2))
    return lambda: hotel.check_in(room=room, encoder=STATION, via=VIA, wait_seconds=10, **options)


def test_check_in_writes_the_key_on_the_encoder_named_by_its_station(encoder_bridge, site):
    issued, device = on_encoder(encoder_bridge, check_in("101", guest_name="Ada", reservation="R1"))

    assert isinstance(issued, hotel.KeyIssued)
    key = Key.objects.get(pk=issued.key_id)
    assert (issued.uid, key.uid, key.status) == (CARD, CARD, KeyStatus.ISSUED)
    assert device.written == [(issued.job_id, CARD, issued.card_data)]
    card = decoded(issued.card_data)
    assert (card.key_id, card.uid, card.valid_until) == (key.pk, CARD, int(issued.departure.timestamp()))
    room_point = site["rooms"]["101"].access_point_id
    assert room_point in {grant.id for grant in card.grants}
    assert EncodeJob.objects.get(pk=issued.job_id).status == EncodeStatus.DONE


def test_a_new_key_on_the_same_card_replaces_the_earlier_one_and_blacklists_it(encoder_bridge, site):
    first, _ = on_encoder(encoder_bridge, check_in("101", reservation="R1"))
    second, _ = on_encoder(encoder_bridge, check_in("101", reservation="R1"))

    assert second.uid == CARD
    assert Key.objects.get(pk=first.key_id).status == KeyStatus.CANCELLED
    assert BlacklistEntry.objects.filter(key_id=first.key_id).exists()


def test_no_card_is_no_card_and_the_key_is_cancelled(encoder_bridge, site, quick_jobs):
    error, device = on_encoder(encoder_bridge, check_in("101"), card=None)

    assert (error.code, device.written) == (hotel.NO_CARD, [])
    assert Key.objects.get().status == KeyStatus.CANCELLED
    assert not BlacklistEntry.objects.exists()  # never written on a card


def test_a_card_of_another_type_is_wrong_card_type(encoder_bridge, site):
    error, _ = on_encoder(encoder_bridge, check_in("101"), card_type="mifare_classic_1k")
    assert error.code == hotel.WRONG_CARD


def test_an_encoder_too_slow_for_the_caller_is_a_timeout(encoder_bridge, site):
    call = lambda: hotel.check_in(room="101", departure=days(1), encoder=STATION, via=VIA, wait_seconds=0.5)  # noqa: E731
    error, _ = on_encoder(encoder_bridge, call, card=None)

    assert error.code == hotel.TIMEOUT
    job = EncodeJob.objects.get()
    assert (job.status, job.error) == (EncodeStatus.FAILED, "timeout")
    assert Key.objects.get().status == KeyStatus.CANCELLED


def test_an_offline_encoder_is_encoder_offline(site):
    with pytest.raises(hotel.HotelError) as caught:
        check_in("101")()
    assert caught.value.code == hotel.ENCODER_OFFLINE
    assert not Key.objects.exists()


def test_an_encoder_with_a_job_running_is_busy(site):
    Device.objects.filter(pk=site["encoder"].pk).update(online=True)
    hotel.check_in(room="201", departure=days(1), encoder=None, via=VIA)
    EncodeJob.objects.create(key=Key.objects.get(), encoder=site["encoder"], data=b"")
    with pytest.raises(hotel.HotelError) as caught:
        check_in("101")()
    assert caught.value.code == hotel.ENCODER_BUSY


def test_a_usb_encoder_or_another_device_is_an_unknown_encoder(site):
    make_encoder(device_id=ENCODER_ID + 1, kind="usb_encoder", station="USB1")
    make_encoder(device_id=ENCODER_ID + 2, kind="control_unit", station="CU1")
    for station in ("USB1", "CU1"):
        with pytest.raises(hotel.HotelError) as caught:
            hotel.check_in(room="101", departure=days(1), encoder=station, via=VIA)
        assert caught.value.code == hotel.UNKNOWN_ENCODER


# --- reading a key ---------------------------------------------------------------------------------------


def test_read_key_says_what_the_guest_card_opens(encoder_bridge, site):
    issued, _ = on_encoder(encoder_bridge, check_in("301", guest_name="Ada", reservation="R7"))

    read, _ = on_encoder(encoder_bridge, read_key, data=issued.card_data)
    assert (read.uid, read.rooms, read.guest_name, read.reservation) == (CARD, ("301", "302"), "Ada", "R7")
    assert (read.departure, read.valid) == (issued.departure.replace(microsecond=0), True)
    assert read.extra["key_id"] == issued.key_id


def test_read_key_of_a_checked_out_guest_is_not_valid(encoder_bridge, site):
    issued, _ = on_encoder(encoder_bridge, check_in("101"))
    hotel.check_out(room="101", via=VIA)

    read, _ = on_encoder(encoder_bridge, read_key, data=issued.card_data)
    assert (read.valid, read.extra["reason"], read.rooms) == (False, "cancelled", ("101",))


def test_read_key_of_a_blank_card_or_none(encoder_bridge, site, quick_jobs):
    blank, _ = on_encoder(encoder_bridge, read_key)
    assert (blank.uid, blank.valid, blank.extra) == (CARD, False, {"reason": "blank"})

    error, _ = on_encoder(encoder_bridge, read_key, card=None)
    assert error.code == hotel.NO_CARD


def test_read_key_of_garbage_is_not_valid(encoder_bridge, site):
    read, _ = on_encoder(encoder_bridge, read_key, data=b"\x00garbage" * 10)
    assert (read.valid, read.rooms) == (False, ())
    assert read.extra["reason"]


def test_a_card_another_key_holds_is_encode_failed(encoder_bridge, site):
    make_key(make_cardholder(), uid=CARD)

    error, device = on_encoder(encoder_bridge, check_in("101"))

    assert (error.code, device.written) == (hotel.ENCODE_FAILED, [])
    assert "Another issued key" in str(error)
    assert Key.objects.get(cardholder__stay__isnull=False).status == KeyStatus.CANCELLED
