"""What the encoder and updater tests share: devices of those kinds, a bridge that fails offline jobs fast,
and cardholders whose real card data spans several SDP/1 parts or does not fit on a card at all.

Card bytes are the real ones (devices.cards): sealed with AES-GCM under a random
nonce, so two encodings of the same data differ. Tests compare what a card
carries by decoding it with the site card key (:func:`decoded`).
"""

import asyncio

from accesscontrol.models import AccessPoint, Cardholder, CardholderPermission
from devices import carddata, cards
from devices.models import Device
from devices.sdp.cardtransfer import PART_SIZE
from tests.factories import make_time_period, unique

KEY = bytes(range(16))
ENCODER_ID = 5001
UPDATER_ID = 5002
# Access points that make a cardholder's card data longer than two parts of PART_SIZE.
MANY_POINTS = 700
# Rights no card file holds: far more access points than fit, each at three time periods.
TOO_MANY_POINTS = 2500


def decoded(raw: bytes) -> carddata.CardData:
    """What card bytes carry, authenticated with the site card key (raises CardError otherwise)."""
    site, key = cards.site_card_key()
    return carddata.decode(raw, key, site)


def give_points(holder: Cardholder, count: int, periods: int = 0) -> list[AccessPoint]:
    """``count`` new access points, each granted to ``holder`` (at one of ``periods`` new time periods)."""
    points = AccessPoint.objects.bulk_create(AccessPoint(name=unique("Room")) for _ in range(count))
    schedule = [make_time_period() for _ in range(periods)] or [None]
    CardholderPermission.objects.bulk_create(
        CardholderPermission(cardholder=holder, access_point=point, time_period=schedule[number % len(schedule)])
        for number, point in enumerate(points)
    )
    return points


def with_many_rights(holder: Cardholder) -> Cardholder:
    """``holder`` with rights enough that the card data goes in three parts."""
    give_points(holder, MANY_POINTS, periods=2)
    return holder


def with_too_many_rights(holder: Cardholder) -> Cardholder:
    """``holder`` with rights no card holds (devices.carddata.CardTooBig)."""
    give_points(holder, TOO_MANY_POINTS, periods=3)
    return holder


def parts_of(raw: bytes) -> int:
    return -(-len(raw) // PART_SIZE)


def make_encoder(device_id=ENCODER_ID, kind="encoder", **fields) -> Device:
    device = Device(device_id=device_id, name=fields.pop("name", f"Encoder {device_id}"), kind=kind, **fields)
    device.set_key(KEY)
    device.save()
    return device


def run(coroutine, timeout: float = 30):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))
