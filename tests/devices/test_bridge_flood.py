"""100,000 garbage datagrams while a real device keeps getting its decisions."""

import os
import random
import socket
import threading
import time

import pytest

from devices.sdp import codec as sdp1
from tests.devices.conftest import UID
from tests.support.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

GARBAGE = 100_000
AHEAD = 2000


def garbage(device_id: int, session_id: int, rng: random.Random) -> list[bytes]:
    """Every kind of bad frame: noise, bad magic, bad lengths, unknown devices, forged seals, bad proofs."""
    real_header = sdp1.header(sdp1.SEALED, device_id, session_id, 1)[:12]
    kinds = [
        lambda: os.urandom(rng.randrange(0, 1300)),
        lambda: b"SD\x02" + os.urandom(65),
        lambda: sdp1.hello(rng.randrange(10_000, 2**32), os.urandom(16)),
        lambda: sdp1.auth(device_id, rng.randrange(1, 2**32), os.urandom(32)),
        lambda: real_header + rng.randrange(1, 2**64).to_bytes(8, "big") + os.urandom(rng.randrange(17, 200)),
        lambda: sdp1.header(sdp1.SEALED, device_id, session_id ^ 0xFFFF, 5) + os.urandom(40),
        lambda: sdp1.header(sdp1.CHALLENGE, device_id, session_id, 0) + os.urandom(48),
    ]
    return [rng.choice(kinds)() for _ in range(GARBAGE)]


def test_a_device_keeps_getting_decisions_through_a_flood_of_garbage(site, device, bridge):
    datagrams = garbage(device.device_id, device.session_id, random.Random(7))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    done = threading.Event()

    def flood():
        for index, datagram in enumerate(datagrams):
            sender.sendto(datagram, ("127.0.0.1", bridge.port))
            # Never more than a few thousand ahead of the bridge: what is tested is the bridge, not
            # the kernel's socket buffer (whose overflow a loaded test machine would otherwise add).
            while index - bridge.counters["dropped"] > AHEAD:
                time.sleep(0.001)
        done.set()

    thread = threading.Thread(target=flood)
    thread.start()
    decisions = []
    while not done.is_set():
        decisions.append(
            device.request_retrying(
                {"t": "access", "req": len(decisions) + 1, "reader": 1, "cred": {"kind": "card", "uid": UID}}
            )
        )
    thread.join()
    sender.close()

    assert len(decisions) >= 5
    assert all(d["t"] == "decision" and d["grant"] and d["req"] == i + 1 for i, d in enumerate(decisions))
    counters = bridge.counters
    assert counters["internal_error"] == 0
    wait_until(lambda: counters["dropped"] >= GARBAGE, timeout=10, message="every garbage datagram dropped")
    # Each garbage datagram was read, dropped and counted.
    assert counters["dropped"] == GARBAGE
    assert counters["decisions"] == len(decisions)
