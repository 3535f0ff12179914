"""Anti-passback shared by device-runtime processes on PostgreSQL: two OSDP bus services, each a
``manage.py runservice osdp-bus-<id>`` process of its own with a reader on a pseudo-terminal, at two entry
doors of one zone. Who went in through one is refused at the other, and after a restart of the first."""

import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

from accesscontrol.choices import AuditKind
from accesscontrol.models import AuditEvent, Presence
from devices.choices import DeviceKind
from devices.models import Device, DeviceDoor, DeviceReader, OsdpBus, OsdpReader
from devices.osdp import cardformats
from simulation.osdp_readers import PtyLine
from tests.factories import give_permission, make_access_point, make_cardholder, make_key, make_zone
from tests.support.processes import BASE_DIR, environment, stop
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FACILITY, NUMBER = 21, 4242
CARD = cardformats.encode(cardformats.H10301, FACILITY, NUMBER)


@pytest.fixture
def postgres():
    if connection.vendor != "postgresql":
        pytest.skip("runs in the PostgreSQL pass: processes share the database through the server")
    return connection.settings_dict


def door_on_a_bus(name: str, device_id: int, zone, line: PtyLine):
    point = make_access_point(name=name, direction="entry", zones=[zone])
    bus = OsdpBus.objects.create(name=f"Line {name}", port=line.url, baud=115200)
    device = Device(device_id=device_id, name=f"{name} reader", kind=DeviceKind.OSDP_READER)
    device.set_key()
    device.save()
    OsdpReader.objects.create(device=device, bus=bus, address=1, card_format=cardformats.H10301)
    DeviceDoor.objects.create(device=device, number=1, access_point=point, relay=0)
    DeviceReader.objects.create(device=device, number=1, access_point=point)
    return point, bus, device


class BusProcess:
    def __init__(self, bus, db, tmp_path, label):
        url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        env = environment(tmp_path / "var", DATABASE_URL=url, SPACE_MASTER_KEY=settings.SPACE_MASTER_KEY)
        self.log_path = tmp_path / f"{label}.log"
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runservice", f"osdp-bus-{bus.pk}"],
            cwd=BASE_DIR,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log_path.read_text()

    def close(self):
        if self.process.poll() is None:
            stop(self.process)
        self.log.close()


def test_two_runtime_processes_share_anti_passback_through_the_database(postgres, tmp_path):
    (tmp_path / "var").mkdir()
    zone = make_zone(name="Data hall", anti_passback=True)
    holder = make_cardholder(use_anti_passback=True, last_name="Lovelace")
    give_permission(holder, zone)
    make_key(holder, uid=cardformats.uid_for(cardformats.H10301, FACILITY, NUMBER))
    lines = [PtyLine(), PtyLine()]
    north, bus_north, reader_north = door_on_a_bus("North entry", 81001, zone, lines[0])
    south, bus_south, reader_south = door_on_a_bus("South entry", 81002, zone, lines[1])
    peripherals = [line.add_reader(1, scbk=None, install_mode=True) for line in lines]
    processes = []

    def start(bus, device, label):
        process = BusProcess(bus, postgres, tmp_path, label)
        processes.append(process)
        wait_until(
            lambda: OsdpReader.objects.get(pk=device.pk).secure or process.process.poll() is not None,
            timeout=30,
            message=lambda: f"no secure channel on {label}:\n{process.output()}",
        )
        assert process.process.poll() is None, process.output()
        return process

    def decided(point, count):
        return wait_until(
            lambda: (
                list(AuditEvent.objects.filter(access_point=point, kind__startswith="access_").order_by("id"))
                if AuditEvent.objects.filter(access_point=point, kind__startswith="access_").count() >= count
                else None
            ),
            timeout=15,
            message=lambda: "\n".join(p.output() for p in processes),
        )

    try:
        first = start(bus_north, reader_north, "north")
        peripherals[0].present_card(*CARD)
        (entry,) = decided(north, 1)
        assert (entry.kind, entry.cardholder_id) == (AuditKind.ACCESS_GRANTED, holder.pk)
        wait_until(lambda: Presence.objects.filter(cardholder=holder, zone=zone, inside=True).exists())

        # Another process, started now, knows who is inside: the same card is refused at the other door.
        start(bus_south, reader_south, "south")
        peripherals[1].present_card(*CARD)
        (refused,) = decided(south, 1)
        assert (refused.kind, refused.reason) == (AuditKind.ACCESS_DENIED, "anti_passback")

        # The first process restarted remembers too.
        first.close()
        processes.remove(first)
        OsdpReader.objects.filter(pk=reader_north.pk).update(secure=False)
        start(bus_north, reader_north, "north again")
        peripherals[0].present_card(*CARD)
        _, again = decided(north, 2)
        assert (again.kind, again.reason) == (AuditKind.ACCESS_DENIED, "anti_passback")
    finally:
        for process in processes:
            process.close()
        for line in lines:
            line.stop()
