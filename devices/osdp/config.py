"""What an OSDP bus's service needs from the database: the line, its readers and I/O modules, their doors.

Read on the service's database thread; plain data out, so the driver and the
runtime never touch the ORM. A secure channel key is unsealed here and lives
only in the service's memory.
"""

import logging
from dataclasses import dataclass, field

from core.vault import VaultError
from devices.models import DeviceDoor, DeviceReader, OsdpBus, OsdpReader
from devices.places import Place
from devices.runtime.doors import DoorTimes
from devices.runtime.runtime import DoorConfig, ReaderConfig

logger = logging.getLogger("space.osdp")


@dataclass(frozen=True, slots=True)
class OsdpDevice:
    """A reader or I/O module on the bus."""

    device_pk: int
    name: str
    address: int
    scbk: bytes = field(repr=False)
    card_format: str
    allow_clear: bool
    key_set: bool  # it took its own key already: install mode is over


@dataclass(slots=True)
class BusConfig:
    id: int
    name: str
    port: str
    baud: int
    devices: list[OsdpDevice]
    readers: list[ReaderConfig]
    doors: list[DoorConfig]

    def line(self) -> tuple:
        """What the line itself is made of: a change here restarts the bus (libosdp knows its readers at start)."""
        return (self.port, self.baud, tuple((d.address, d.scbk, d.allow_clear) for d in self.devices))


def load_bus(bus_id: int) -> BusConfig | None:
    """The enabled bus ``bus_id`` with its enabled devices; None when it is gone or disabled."""
    bus = OsdpBus.objects.filter(pk=bus_id, enabled=True).first()
    if bus is None:
        return None
    devices = []
    for link in OsdpReader.objects.filter(bus=bus, device__enabled=True).select_related("device").order_by("address"):
        try:
            scbk = link.device.key()
        except VaultError as error:
            logger.error("OSDP device %s is left out: %s", link.device.name, error)
            continue
        devices.append(
            OsdpDevice(
                link.device.pk,
                link.device.name,
                link.address,
                scbk,
                link.card_format,
                link.allow_clear,
                link.key_set_at is not None,
            )
        )
    pks = [device.device_pk for device in devices]
    readers = [
        ReaderConfig(
            reader.device_id,
            reader.number,
            _place(reader.access_point),
            reader.direction or None,
        )
        for reader in DeviceReader.objects.filter(device__in=pks).select_related("access_point")
    ]
    doors = [
        DoorConfig(
            device_pk=door.device_id,
            number=door.number,
            place=_place(door.access_point),
            relay=door.relay,
            contact=door.contact,
            rex=door.rex,
            contact_open_when_active=door.contact_open_when_active,
            times=DoorTimes(door.access_point.open_time, door.access_point.held_open_time),
            mode=door.access_point.opening_mode,
        )
        for door in DeviceDoor.objects.filter(device__in=pks).select_related("access_point")
    ]
    return BusConfig(bus.pk, bus.name, bus.port, bus.baud, devices, readers, doors)


def enabled_buses() -> list[tuple[int, str]]:
    return list(OsdpBus.objects.filter(enabled=True).order_by("pk").values_list("pk", "name"))


def _place(point) -> Place:
    return Place(point.pk, point.name, point.partition_id)
