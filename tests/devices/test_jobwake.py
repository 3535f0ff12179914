"""An encode job queued in the bridge's own process is picked up at once, and its waiter woken when it ends.

Both polls (the bridge's look at the job table, the hotel operation's look at the job row) are made a
minute long here: a check-in that is done within seconds was carried by the wake-ups of devices/jobwake.py.
"""

import asyncio
import datetime as dt
import time

import pytest
from django.utils import timezone

from accesscontrol.models import Key
from devices import jobwake
from devices.models import Device
from devices.sdp import bridge
from hotel import actions as hotel
from simulation.encoders import SimulatedEncoder
from tests.devices.encoders_support import ENCODER_ID, KEY, make_encoder, run
from tests.hotel.support import make_hotel
from tests.support.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)

SLOW_POLL_SECONDS = 60.0


@pytest.fixture
def slow_polls(monkeypatch):
    monkeypatch.setattr(bridge, "COMMAND_POLL_SECONDS", SLOW_POLL_SECONDS)
    monkeypatch.setattr(hotel, "POLL_SECONDS", SLOW_POLL_SECONDS)


def test_check_ins_are_written_through_the_wake_ups_not_the_polls(slow_polls, encoder_bridge):
    make_hotel()
    make_encoder(station="DESK1")
    encoder_bridge.reload()
    departure = timezone.now() + dt.timedelta(days=2)

    async def scenario():
        encoder = SimulatedEncoder(
            ENCODER_ID, KEY, ("127.0.0.1", encoder_bridge.port), retry_first_s=0.1, fresh_cards=True
        )
        await encoder.connect(5)
        await until(lambda: Device.objects.get(device_id=ENCODER_ID).online)
        await asyncio.sleep(0.5)  # the bridge's first poll is behind it: the next one is a minute away
        took = []
        try:
            for room in ("101", "201"):
                started = time.monotonic()
                issued = await asyncio.to_thread(
                    hotel.check_in, room=room, departure=departure, encoder="DESK1", via="test"
                )
                took.append(time.monotonic() - started)
                assert issued.card_data
        finally:
            await encoder.stop()
        return took, encoder.written

    took, written = run(scenario(), timeout=SLOW_POLL_SECONDS / 2)
    assert max(took) < SLOW_POLL_SECONDS / 4
    # Each job had a blank card of its own, and each key took its card's UID.
    assert len({uid for _job, uid, _data in written}) == 2
    assert set(Key.objects.values_list("uid", flat=True)) == {uid for _job, uid, _data in written}


def test_a_waiter_is_woken_by_a_finished_job_and_otherwise_times_out():
    seen = jobwake.generation()
    started = time.monotonic()
    jobwake.wait_finished(seen, 0.05)
    assert time.monotonic() - started >= 0.04
    jobwake.jobs_finished()
    started = time.monotonic()
    jobwake.wait_finished(seen, SLOW_POLL_SECONDS)  # the generation moved on: no wait at all
    assert time.monotonic() - started < SLOW_POLL_SECONDS / 4
