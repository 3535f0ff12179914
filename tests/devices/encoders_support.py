"""What the encoder and updater tests share: devices of those kinds, a bridge that fails offline jobs fast,
and stand-ins for the two card-data seams (the fixtures are in conftest.py).

STAND-INS: devices.cards.card_bytes_for_key and devices.cards.update_card are being
written on other branches (cards-server, cards-format). Until they are merged, the
``fake_cards`` fixture replaces exactly those two functions with small ones that make
bytes from the key; nothing else is replaced. Once merged, run these tests without it.
"""

import asyncio
import time

from accesscontrol.choices import KeyStatus
from accesscontrol.models import Key
from devices import cards
from devices.models import Device

KEY = bytes(range(16))
ENCODER_ID = 5001
UPDATER_ID = 5002
FILLER = bytes(range(256)) * 6  # 1536 bytes: three parts of 600


def fake_card_bytes(key, now=None) -> bytes:
    return b"CARD" + key.pk.to_bytes(4, "big") + key.uid.encode() + b"|" + FILLER


def fake_update_card(raw: bytes, *, uid: str, updater_id, now):
    key = Key.objects.filter(uid=uid.upper(), status=KeyStatus.ISSUED).first()
    if key is None:
        return cards.UpdateResult("unknown_key")
    if raw.startswith(b"STALE"):
        return cards.UpdateResult("updated", raw=fake_card_bytes(key, now), key_id=key.pk)
    return cards.UpdateResult("unchanged", key_id=key.pk)


def make_encoder(device_id=ENCODER_ID, kind="encoder", **fields) -> Device:
    device = Device(device_id=device_id, name=fields.pop("name", f"Encoder {device_id}"), kind=kind, **fields)
    device.set_key(KEY)
    device.save()
    return device


def run(coroutine, timeout: float = 30):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def eventually(predicate, timeout=8.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError("the condition did not become true in time")


async def until(predicate, timeout=8.0):
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        assert time.monotonic() < deadline, "the condition did not become true in time"
        await asyncio.sleep(0.05)
