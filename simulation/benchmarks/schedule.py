"""The mode scheduler at a schedule boundary: how long from the change's instant to the last set_mode queued.

The site: ``doors`` access points following one schedule (open 07:00, locked 19:00, every day), four to a
control unit, built with bulk_create. The scheduler has run once before the boundary (its start: every door
told its mode). Two figures of its step at the next change (07:00 or 19:00, whichever comes first):

- ``queued_seconds``: loading the plan, storing the new mode on every access point and queueing a set_mode per
  door, committed (the goal: at most a second for 10,000 doors);
- ``boundary_seconds``: the whole step, with a mode_changed audit event per access point recorded after.
"""

import datetime as dt
import time

from django.db import transaction

from accesscontrol.models import AccessPoint, ModeChange, ModeSchedule
from devices.choices import DeviceKind
from devices.models import Device, DeviceDoor
from devices.scheduler import ModeScheduler

DOORS_PER_UNIT = 4
NAME = "Benchmark schedule"


def build(doors: int) -> ModeSchedule:
    days = dict.fromkeys(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"), True)
    with transaction.atomic():
        schedule = ModeSchedule.objects.create(name=NAME)
        ModeChange.objects.bulk_create(
            [
                ModeChange(schedule=schedule, at=dt.time(7), mode="open", **days),
                ModeChange(schedule=schedule, at=dt.time(19), mode="locked", **days),
            ]
        )
        AccessPoint.objects.bulk_create(
            [AccessPoint(name=f"Scheduled door {n}", mode_schedule=schedule) for n in range(doors)], batch_size=2000
        )
        points = list(AccessPoint.objects.filter(mode_schedule=schedule).order_by("pk").values_list("pk", flat=True))
        sealer = Device(kind=DeviceKind.CONTROL_UNIT)
        sealer.set_key(bytes(16))
        units = (len(points) + DOORS_PER_UNIT - 1) // DOORS_PER_UNIT
        first_id = 9_000_000
        Device.objects.bulk_create(
            [
                Device(
                    device_id=first_id + n,
                    name=f"Scheduled unit {n}",
                    kind=DeviceKind.CONTROL_UNIT,
                    key_sealed=sealer.key_sealed,
                )
                for n in range(units)
            ],
            batch_size=2000,
        )
        devices = dict(Device.objects.filter(device_id__gte=first_id).values_list("device_id", "pk"))
        DeviceDoor.objects.bulk_create(
            [
                DeviceDoor(
                    device_id=devices[first_id + index // DOORS_PER_UNIT],
                    number=index % DOORS_PER_UNIT + 1,
                    access_point_id=point_id,
                )
                for index, point_id in enumerate(points)
            ],
            batch_size=2000,
        )
    return schedule


def measure_boundary(doors: int = 10_000) -> dict:
    """Build the site, start the scheduler now, then time its step at the next boundary (07:00 or 19:00)."""
    started = time.perf_counter()
    build(doors)
    built = time.perf_counter() - started
    scheduler = ModeScheduler()
    first = scheduler.step(dt.datetime.now(dt.UTC))
    boundary = first.next_at
    started = time.perf_counter()
    step = scheduler.step(boundary)
    seconds = time.perf_counter() - started
    return {
        "doors": doors,
        "build_seconds": round(built, 3),
        "boundary": boundary.isoformat(),
        "stored": len(step.pushed.stored),
        "commands": len(step.pushed.commands),
        "queued_seconds": round(step.pushed.queued_at - started, 3),  # the boundary to the last command queued
        "boundary_seconds": round(seconds, 3),  # the whole step, the audit events included
    }
