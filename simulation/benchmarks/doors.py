"""Card at the reader to relay command at the reader, on an OSDP bus: what the bus costs and what Space costs.

A bus of N simulated readers (libosdp's peripheral devices, simulation/osdp_readers.py)
on a pseudo-terminal paced at the bus's baud rate, the secure channel on, each
reader a door with its own access point and a cardholder allowed there. Space
runs the bus as runspace does (devices/osdp/service.py, its own event loop thread).

- **latency**: one card at a time, round robin over the readers: from the
  moment the simulated reader holds the card (it can only send it when the
  control panel polls it) to the moment the reader took the output command.
  Space's own share is measured inside the driver: from libosdp's hand-over of
  the card read to the last command submitted (relay, LED, buzzer). The rest is
  the bus: waiting for the poll that carries the card, and for the poll that
  carries the command.
- **burst**: every reader presents a card at once, several rounds: decisions
  per second, the time until the last relay command arrived.
"""

import statistics
import time

from django.db import connection

from accesscontrol.models import AccessPoint, Cardholder, CardholderPermission, Key
from accesscontrol.snapshot import SnapshotStore
from devices.choices import DeviceKind
from devices.models import Device, DeviceDoor, DeviceReader, OsdpBus, OsdpReader
from devices.osdp import cardformats
from devices.osdp.service import BusService
from simulation.benchmarks import servicethread
from simulation.benchmarks.servicethread import ServiceThread
from simulation.osdp_readers import PtyLine

FACILITY = 100
TIMED_ON = 5


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def make_bus(readers: int, baud: int, line: PtyLine, offset: int) -> tuple[OsdpBus, list[tuple[int, bytes]]]:
    """A bus with ``readers`` readers (keys already set), each a door; returns it and each reader's (address, key)."""
    bus = OsdpBus.objects.create(name=f"Bench bus {offset}", port=line.url, baud=baud)
    keyed = []
    for address in range(1, readers + 1):
        number = offset + address
        point = AccessPoint.objects.create(name=f"Bench door {number}", open_time=5)
        holder = Cardholder.objects.create(first_name="Bench", last_name=f"Holder {number}")
        CardholderPermission.objects.create(cardholder=holder, access_point=point)
        Key.objects.create(cardholder=holder, uid=cardformats.uid_for(cardformats.H10301, FACILITY, number))
        device = Device(device_id=900_000 + number, name=f"Bench reader {number}", kind=DeviceKind.OSDP_READER)
        key = device.set_key()
        device.save()
        OsdpReader.objects.create(device=device, bus=bus, address=address, card_format=cardformats.H10301)
        DeviceDoor.objects.create(device=device, number=1, access_point=point, relay=0)
        DeviceReader.objects.create(device=device, number=1, access_point=point)
        keyed.append((address, key))
    return bus, keyed


def wait(predicate, timeout: float, what: str) -> None:
    servicethread.wait(predicate, timeout, what, bench="bench_doors", every=0.01)


def outputs(reader) -> int:
    return sum(1 for command in reader.received("output") if command.fields["control_code"] == TIMED_ON)


def measure(readers: int, samples: int, rounds: int, baud: int, offset: int) -> dict:
    line = PtyLine(baud=baud)
    try:
        bus, keyed = make_bus(readers, baud, line, offset)
        connection.close()  # the service reads on threads of its own
        simulated = [line.add_reader(address, scbk=key, install_mode=False) for address, key in keyed]
        running = ServiceThread(BusService(bus.pk, store=SnapshotStore()))
        try:
            bus_obj = running.service.bus
            wait(lambda: all(bus_obj.is_secure(a) for a, _ in keyed), 60 + readers, "every reader secure")
            driver = running.service.driver
            driver.trace = []
            cards = [cardformats.encode(cardformats.H10301, FACILITY, offset + a) for a, _ in keyed]
            totals = []
            for sample in range(samples):
                index = sample % readers
                reader = simulated[index]
                before = outputs(reader)
                started = time.monotonic()
                reader.present_card(*cards[index])
                wait(lambda r=reader, b=before: outputs(r) > b, 10, "a relay command")
                arrived = [c for c in reader.received("output") if c.fields["control_code"] == TIMED_ON][-1].at
                totals.append(arrived - started)
                time.sleep(0.005)
            own = list(driver.trace)
            driver.trace = None
            burst = burst_rounds(simulated, cards, rounds)
        finally:
            running.stop()
    finally:
        line.stop()
    bus_share = [max(0.0, total - mine) for total, mine in zip(totals, own, strict=False)]
    return {
        "readers": readers,
        "samples": len(totals),
        "card_to_relay_ms": {"p50": ms(statistics.median(totals)), "p99": ms(percentile(totals, 0.99))},
        "space_ms": {"p50": ms(statistics.median(own)), "p99": ms(percentile(own, 0.99)), "max": ms(max(own))},
        "bus_ms": {"p50": ms(statistics.median(bus_share)), "p99": ms(percentile(bus_share, 0.99))},
        **burst,
    }


def burst_rounds(simulated, cards, rounds: int) -> dict:
    """Every reader presents at once; decisions per second over ``rounds`` rounds."""
    decisions = 0
    started = time.monotonic()
    slowest = []
    for _ in range(rounds):
        before = [outputs(reader) for reader in simulated]
        began = time.monotonic()
        for reader, card in zip(simulated, cards, strict=True):
            reader.present_card(*card)
        wait(
            lambda b=before: all(outputs(r) > n for r, n in zip(simulated, b, strict=True)),
            30,
            "every relay command of a burst",
        )
        slowest.append(time.monotonic() - began)
        decisions += len(simulated)
        time.sleep(0.01)
    elapsed = time.monotonic() - started
    return {
        "burst_decisions_per_s": round(decisions / elapsed, 1),
        "burst_last_relay_ms": {"p50": ms(statistics.median(slowest)), "max": ms(max(slowest))},
    }


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)
