"""OSDP buses, readers and alarms for the tests of their actions, API, admin and pages."""

import itertools

from django.utils import timezone

from devices import actions
from devices.choices import AlarmKind
from devices.models import Alarm, Device, OsdpBus, OsdpReader
from tests.factories import unique

_addresses = itertools.count(1)


def make_bus(**fields) -> OsdpBus:
    fields.setdefault("name", unique("Bus"))
    fields.setdefault("port", "socket://127.0.0.1:4001")
    return OsdpBus.objects.create(**fields)


def make_osdp_reader(bus: OsdpBus | None = None, point=None, *, address=None, kind="osdp_reader", **wiring) -> Device:
    """A commissioned OSDP reader (through the action, with no operator): door 1 and reader 1 on ``point``."""
    device = Device(name=unique("Reader"), kind=kind)
    reader = OsdpReader(bus=bus or make_bus(), address=next(_addresses) % 127 if address is None else address)
    doors = [{"access_point": point, **wiring}] if point is not None else None
    readers = [{"access_point": point}] if point is not None else None
    return actions.commission_osdp_reader(device, reader, doors=doors, readers=readers, operator=None, via="command")


def make_alarm(point=None, device=None, kind=AlarmKind.FORCED, **fields) -> Alarm:
    fields.setdefault("raised_at", timezone.now())
    return Alarm.objects.create(kind=kind, access_point=point, device=device, **fields)
