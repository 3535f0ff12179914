"""``manage.py simulate_devices``: simulated SDP/1 devices under load against a running device bridge.

A development and benchmark tool, run as a process of its own beside the
server. It commissions the devices it needs in the configured database (ids
from ``--first-id``, named "Simulated device <id>", a reader at an existing
online door, a door of its own and a key it sets; see :func:`commission`),
reads their keys with the master key the server uses, and drives
:func:`simulation.sdp_devices.run_load` with the UIDs of issued keys plus some
unknown ones, until ``--seconds`` pass or SIGINT/SIGTERM. It ends with a short
summary, or one JSON line with ``--json``.
"""

import asyncio
import itertools
import json
import resource
import secrets
import signal
from dataclasses import dataclass

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Max

from accesscontrol.choices import AccessPointKind, Connection, KeyKind, KeyStatus
from accesscontrol.models import AccessPoint, AuditEvent, Key
from devices.choices import DeviceKind
from devices.models import Device, DeviceDoor, DeviceReader
from simulation.sdp_devices import SimulatedDevice, run_load

FIRST_ID = 900001
SIMULATED_DOOR = "Simulated door "
KNOWN_UIDS = 20_000


@dataclass
class Commissioned:
    device_id: int
    key: bytes
    readers: dict[int, int]
    first_event_id: int


def simulated_name(device_id: int) -> str:
    return f"Simulated device {device_id}"


def parse_server(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CommandError(f"--server is HOST:PORT, not {value!r}.")
    return host, int(port)


@transaction.atomic
def commission(first_id: int, count: int) -> list[Commissioned]:
    """The simulated devices ``first_id`` onwards, created (with a reader, a door and a key) where missing.

    A new device's reader 1 is at an existing online door, taken in turn (several
    simulated readers may serve one door), so the site's cardholders get the
    decisions they would get there. Its door 1 is that same access point when no
    other device drives it, else a simulated door of its own: a door is driven
    by one device only, and simulated door events never mix with a real device's.
    """
    ids = range(first_id, first_id + count)
    existing = {device.device_id: device for device in Device.objects.filter(device_id__in=ids)}
    for device in existing.values():
        if device.name != simulated_name(device.device_id):
            raise CommandError(
                f"Device id {device.device_id} is {device.name!r}, not a simulated device: choose another --first-id."
            )
    driven = set(DeviceDoor.objects.values_list("access_point_id", flat=True))
    doors = list(
        AccessPoint.objects.filter(kind=AccessPointKind.DOOR, connection=Connection.ONLINE)
        .exclude(name__startswith=SIMULATED_DOOR)
        .order_by("id")
    )
    doors.sort(key=lambda point: point.pk in driven)  # the free ones first
    turn = itertools.cycle(doors)
    for device_id in ids:
        device = existing.get(device_id)
        if device is None:
            existing[device_id] = _new_device(device_id, next(turn, None), driven)
        elif not device.has_key or not device.enabled:
            if not device.has_key:
                device.set_key()
            device.enabled = True
            device.save()
    return [_configuration(existing[device_id]) for device_id in ids]


def _new_device(device_id: int, reader_point: AccessPoint | None, driven: set[int]) -> Device:
    device = Device(
        device_id=device_id,
        name=simulated_name(device_id),
        kind=DeviceKind.CONTROL_UNIT,
        description="Commissioned by manage.py simulate_devices.",
    )
    device.set_key()
    device.save()
    if reader_point is not None and reader_point.pk not in driven:
        door_point = reader_point
    else:
        door_point = AccessPoint.objects.create(
            name=f"{SIMULATED_DOOR}{device_id}",
            kind=AccessPointKind.DOOR,
            connection=Connection.ONLINE,
            description="Created by manage.py simulate_devices.",
        )
    driven.add(door_point.pk)
    DeviceDoor.objects.create(device=device, number=1, access_point=door_point)
    DeviceReader.objects.create(device=device, number=1, access_point=reader_point or door_point)
    return device


def _configuration(device: Device) -> Commissioned:
    doors = dict(DeviceDoor.objects.filter(device=device).values_list("access_point_id", "number"))
    readers = {}
    for number, point_id in DeviceReader.objects.filter(device=device).values_list("number", "access_point_id"):
        readers[number] = doors.get(point_id) or min(doors.values(), default=number)
    # Event ids are never reused: carry on after the last one the server stored.
    last = AuditEvent.objects.filter(device_id=device.pk).aggregate(last=Max("device_event_id"))["last"]
    return Commissioned(device.device_id, device.key(), readers or {1: 1}, (last or 0) + 1)


def card_uids(unknown_share: float) -> list[str]:
    """UIDs of issued card keys, and unknown UIDs making up about ``unknown_share`` of the pool."""
    known = list(
        Key.objects.filter(status=KeyStatus.ISSUED, kind__in=[KeyKind.CARD, KeyKind.FOB])
        .order_by("id")
        .values_list("uid", flat=True)[:KNOWN_UIDS]
    )
    if not known or unknown_share >= 1:
        known, unknown = [], 100
    elif unknown_share <= 0:
        unknown = 0
    else:
        unknown = max(1, round(len(known) * unknown_share / (1 - unknown_share)))
    return known + [secrets.token_hex(7).upper() for _ in range(unknown)]


def allow_sockets(count: int) -> None:
    # One socket per device, as hardware has: lift the soft limit when many are asked for.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard)
        )


class Command(BaseCommand):
    help = "Run simulated SDP/1 devices against the device bridge, commissioning them first where needed."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=10, help="Devices (default 10).")
        parser.add_argument(
            "--rate", type=float, default=10.0, help="Card presentations and other events per second, all devices."
        )
        parser.add_argument("--seconds", type=float, help="How long to run (default: until SIGINT or SIGTERM).")
        parser.add_argument(
            "--server",
            default=f"127.0.0.1:{settings.SPACE_DEVICE_PORT}",
            help="The bridge, HOST:PORT (default 127.0.0.1:SPACE_DEVICE_PORT).",
        )
        parser.add_argument("--first-id", type=int, default=FIRST_ID, help=f"First device id (default {FIRST_ID}).")
        parser.add_argument(
            "--unknown-share", type=float, default=0.1, help="Share of presentations with unknown cards (default 0.1)."
        )
        parser.add_argument("--json", action="store_true", help="Print the statistics as one JSON line.")

    def handle(self, *args, **options):
        count, rate = options["count"], options["rate"]
        if count < 1 or rate <= 0:
            raise CommandError("--count and --rate must be positive.")
        if not 1 <= options["first_id"] <= 2**32 - count:
            raise CommandError("--first-id leaves no room for that many device ids.")
        server = parse_server(options["server"])
        commissioned = commission(options["first_id"], count)
        uids = card_uids(options["unknown_share"])
        allow_sockets(count)
        if not options["json"]:
            self.stdout.write(
                f"{count} simulated devices ({commissioned[0].device_id}-{commissioned[-1].device_id}) "
                f"against udp://{server[0]}:{server[1]} at {rate:g}/s, {len(uids)} card UIDs; Ctrl-C stops."
            )
            self.stdout.flush()
        stats = asyncio.run(self.simulate(commissioned, uids, server, rate, options["seconds"]))
        if options["json"]:
            self.stdout.write(json.dumps(stats))
        else:
            self.stdout.write(summary(stats))

    async def simulate(self, commissioned, uids, server, rate, seconds) -> dict:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        devices = [
            SimulatedDevice(
                item.device_id, item.key, server, readers=item.readers, uids=uids, first_event_id=item.first_event_id
            )
            for item in commissioned
        ]
        try:
            return await run_load(devices, rate, seconds, stop=stop)
        finally:
            await asyncio.gather(*(device.stop() for device in devices))


def summary(stats: dict) -> str:
    latency = stats["latency_ms"]
    latency_line = "no decisions"
    if latency is not None:
        latency_line = "latency " + ", ".join(f"{name} {latency[name]} ms" for name in ("p50", "p95", "p99", "max"))
    return "\n".join(
        [
            f"{stats['seconds']} s, {stats['online_at_start']} of {stats['devices']} devices online "
            f"({stats['online_at_end']} at the end), {stats['messages_per_s']} frames/s.",
            f"Cards: {stats['presentations']} presented, {stats['granted']} granted, {stats['refused']} refused, "
            f"{stats['no_decision'] + stats['unanswered']} unanswered; {latency_line}.",
            f"Events: {stats['events_sent']} sent, {stats['events_acked']} acknowledged, "
            f"{stats['events_unacked']} not acknowledged.",
            f"Retransmissions {stats['retransmissions']}, handshakes {stats['handshakes']}, "
            f"session breaks {stats['session_breaks']}, dropped {stats['dropped']}.",
        ]
    )
