"""Every API endpoint, described once, for the generic create/read/update/delete and permission tests.

A case says how to make an object of its kind in a partition, what to POST
and what to PATCH, and which other objects the operator must see to write it.
Models of every app are here (accesscontrol, devices, integrations); the
endpoints that act rather than store (commands, encoding, PPD, hotel, phones)
are in ``actions.py``.
"""

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db.models import Model
from django.utils import timezone

from accesscontrol.models import (
    AccessLevel,
    AccessPoint,
    ApiKey,
    AuditEvent,
    BlacklistEntry,
    Calendar,
    Cardholder,
    CardholderPermission,
    Key,
    Location,
    ModeSchedule,
    Operator,
    OperatorGroup,
    Partition,
    Presence,
    SystemAuditEntry,
    TimePeriod,
    Zone,
)
from devices.models import Alarm, Device, DeviceCommand, OsdpBus, OsdpReader
from integrations.eventstream.models import EventStream
from integrations.models import WebhookSubscription
from tests.factories import (
    give_permission,
    make_access_level,
    make_access_point,
    make_calendar,
    make_cardholder,
    make_key,
    make_operator,
    make_partition,
    make_time_period,
    make_zone,
    unique,
)


@dataclass
class Endpoint:
    path: str
    model: type[Model]
    make: Callable[[Partition], Model]
    create: Callable[[Partition], dict] | None = None  # None: read-only
    update: Callable[[Partition], dict] | None = None
    partitioned: bool = True
    needs: tuple[str, ...] = ()  # view permissions the writer needs for the objects a payload names
    # Only operators whose permission covers every partition reach it (event streams carry events of any).
    everywhere: bool = False
    create_action: str = "create"
    extra: dict = field(default_factory=dict)
    # Payload fields that are not columns of the model itself (an OSDP reader's name is its device's).
    unchecked: tuple[str, ...] = ()

    def __str__(self):
        return self.path

    def url(self, obj=None) -> str:
        return f"/api/v1/{self.path}/" if obj is None else f"/api/v1/{self.path}/{obj.pk}/"

    def permission(self, action: str) -> str:
        return f"{self.model._meta.app_label}.{action}_{self.model._meta.model_name}"

    def needed(self) -> list[str]:
        return [name if "." in name else f"accesscontrol.{name}" for name in self.needs]


def _uid() -> str:
    return unique("").strip().zfill(8)


_device_ids = itertools.count(70001)
WEBHOOK_URL = "https://192.0.2.10/hooks/space"


def make_device(**fields) -> Device:
    device_id = next(_device_ids)
    fields.setdefault("kind", "control_unit")
    device = Device(device_id=device_id, name=f"Unit {device_id}", **fields)
    device.set_key()
    device.save()
    return device


_osdp_addresses = itertools.count(1)


def make_osdp_bus() -> OsdpBus:
    return OsdpBus.objects.create(name=unique("Bus"), port="/dev/ttyUSB0")


def make_osdp_reader() -> OsdpReader:
    """An OSDP reader stored as commissioning leaves it, without an auditor row (the tests count theirs)."""
    device = make_device(kind="osdp_reader")
    return OsdpReader.objects.create(device=device, bus=make_osdp_bus(), address=next(_osdp_addresses) % 127)


def make_alarm(partition) -> Alarm:
    """A door alarm (an alarm belongs to its access point's partition)."""
    return Alarm.objects.create(
        kind="forced", access_point=make_access_point(partition=partition), raised_at=timezone.now()
    )


def make_command(partition) -> DeviceCommand:
    """A command to open a door of ``partition`` (a command belongs to its access point's partition)."""
    point = make_access_point(partition=partition)
    return DeviceCommand.objects.create(device=make_device(), op="open", args={"door": 1}, access_point=point)


def make_subscription(partition) -> WebhookSubscription:
    subscription = WebhookSubscription(name=unique("Hook"), url=WEBHOOK_URL, all_partitions=False)
    subscription.set_secret("a secret of sufficient length")
    subscription.save()
    subscription.partitions.set([partition])
    return subscription


ENDPOINTS = [
    Endpoint(
        "partitions",
        Partition,
        make=lambda p: make_partition(),
        create=lambda p: {"name": unique("Wing")},
        update=lambda p: {"description": "East wing"},
        partitioned=False,
    ),
    Endpoint(
        "locations",
        Location,
        make=lambda p: Location.objects.create(name=unique("Floor"), partition=p),
        create=lambda p: {"name": unique("Floor"), "partition": p.pk},
        update=lambda p: {"description": "Second floor"},
    ),
    Endpoint(
        "zones",
        Zone,
        make=lambda p: make_zone(partition=p),
        create=lambda p: {"name": unique("Zone"), "partition": p.pk, "anti_passback": True},
        update=lambda p: {"lockdown": True},
    ),
    Endpoint(
        "access-points",
        AccessPoint,
        make=lambda p: make_access_point(partition=p),
        create=lambda p: {"name": unique("Door"), "partition": p.pk, "open_time": 5, "extended_open_time": 12},
        update=lambda p: {"open_time": 6},
    ),
    Endpoint(
        "time-periods",
        TimePeriod,
        make=lambda p: make_time_period(partition=p),
        create=lambda p: {
            "name": unique("Period"),
            "partition": p.pk,
            "intervals": [{"start": "08:00:00", "end": "12:00:00", "monday": True}],
        },
        update=lambda p: {"description": "Mornings"},
    ),
    Endpoint(
        "mode-schedules",
        ModeSchedule,
        make=lambda p: ModeSchedule.objects.create(name=unique("Modes"), partition=p),
        create=lambda p: {
            "name": unique("Modes"),
            "partition": p.pk,
            "changes": [{"at": "07:30", "mode": "office", "monday": True, "holiday": True}],
        },
        update=lambda p: {"description": "Lobby"},
        unchecked=("changes",),
    ),
    Endpoint(
        "calendars",
        Calendar,
        make=lambda p: make_calendar((dt.date(2030, 1, 1), "holiday")),
        create=lambda p: {"name": unique("Calendar"), "days": [{"date": "2030-12-25", "day_type": "holiday"}]},
        update=lambda p: {"description": "Public holidays"},
        partitioned=False,
    ),
    Endpoint(
        "access-levels",
        AccessLevel,
        make=lambda p: make_access_level(make_access_point(partition=p), partition=p),
        create=lambda p: {
            "name": unique("Level"),
            "partition": p.pk,
            "entries": [{"access_point": make_access_point(partition=p).pk}],
        },
        update=lambda p: {"description": "Everyone"},
        needs=("view_accesspoint",),
    ),
    Endpoint(
        "cardholders",
        Cardholder,
        make=lambda p: make_cardholder(partition=p),
        create=lambda p: {"last_name": unique("Smith"), "partition": p.pk, "pin": "2468"},
        update=lambda p: {"notes": "Night shift"},
    ),
    Endpoint(
        "cardholder-permissions",
        CardholderPermission,
        make=lambda p: give_permission(make_cardholder(partition=p), make_access_point(partition=p)),
        create=lambda p: {
            "cardholder": make_cardholder(partition=p).pk,
            "access_point": make_access_point(partition=p).pk,
        },
        update=lambda p: {"time_period": make_time_period(partition=p).pk},
        needs=("view_cardholder", "view_accesspoint", "view_timeperiod"),
    ),
    Endpoint(
        "keys",
        Key,
        make=lambda p: make_key(make_cardholder(partition=p)),
        create=lambda p: {"cardholder": make_cardholder(partition=p).pk, "uid": _uid()},
        update=lambda p: {"kind": "fob"},
        needs=("view_cardholder",),
        create_action="issue_key",
    ),
    Endpoint(
        "presence",
        Presence,
        make=lambda p: Presence.objects.create(
            cardholder=make_cardholder(),
            zone=make_zone(partition=p, roll_call=True),
            since=timezone.now(),
            last_at=timezone.now(),
        ),
    ),
    Endpoint(
        "audit-events",
        AuditEvent,
        make=lambda p: AuditEvent.objects.create(
            at=timezone.now(), kind="access_granted", reason="granted", access_point=make_access_point(partition=p)
        ),
    ),
    Endpoint(
        "system-audit",
        SystemAuditEntry,
        make=lambda p: SystemAuditEntry.objects.create(action="create", via="web"),
        partitioned=False,
    ),
    Endpoint(
        "blacklist",
        BlacklistEntry,
        make=lambda p: BlacklistEntry.objects.create(
            key_number=1, uid="0A0B", until=timezone.now() + dt.timedelta(days=1)
        ),
        partitioned=False,
    ),
    Endpoint("operators", Operator, make=lambda p: make_operator(), partitioned=False),
    Endpoint(
        "operator-groups",
        OperatorGroup,
        make=lambda p: OperatorGroup.objects.create(name=unique("Group")),
        create=lambda p: {"name": unique("Group"), "permissions": [], "partitions": []},
        update=lambda p: {"description": "Front desk"},
        partitioned=False,
    ),
    Endpoint(
        "api-keys",
        ApiKey,
        make=lambda p: ApiKey.issue(make_operator(), unique("Key"))[0],
        create=lambda p: {"name": unique("PMS")},
        update=lambda p: {"name": "Renamed"},
        partitioned=False,
        create_action="issue_api_key",
    ),
    # --- devices ---------------------------------------------------------------------------------------
    Endpoint(
        "devices",
        Device,
        make=lambda p: make_device(),
        create=lambda p: {"device_id": next(_device_ids), "name": unique("Unit"), "kind": "control_unit"},
        update=lambda p: {"description": "Lobby"},
        unchecked=("changes",),
        partitioned=False,  # a device serves doors of any partition
    ),
    Endpoint("device-commands", DeviceCommand, make=make_command),
    Endpoint(
        "osdp-buses",
        OsdpBus,
        make=lambda p: make_osdp_bus(),
        create=lambda p: {"name": unique("Bus"), "port": "socket://192.0.2.30:4001", "baud": 38400},
        update=lambda p: {"baud": 9600},
        partitioned=False,  # a bus serves doors of any partition
    ),
    Endpoint(
        "osdp-readers",
        OsdpReader,
        make=lambda p: make_osdp_reader(),
        create=lambda p: {"name": unique("Reader"), "bus": make_osdp_bus().pk, "address": 5, "allow_clear": True},
        update=lambda p: {"card_format": "h10301"},
        partitioned=False,  # a device serves doors of any partition
        needs=("devices.view_osdpbus",),
        unchecked=("name",),
    ),
    Endpoint("alarms", Alarm, make=make_alarm),
    # --- integrations ----------------------------------------------------------------------------------
    Endpoint(
        "webhooks",
        WebhookSubscription,
        make=make_subscription,
        create=lambda p: {"name": unique("Hook"), "url": WEBHOOK_URL, "partitions": [p.pk], "all_partitions": False},
        update=lambda p: {"max_tries": 4},
    ),
    Endpoint(
        "event-streams",
        EventStream,
        make=lambda p: EventStream.objects.create(name=unique("SIEM"), host="127.0.0.1", port=5140),
        create=lambda p: {"name": unique("SIEM"), "protocol": "tcp", "host": "192.0.2.20", "port": 6514},
        update=lambda p: {"port": 1514},
        everywhere=True,
    ),
]

WRITABLE = [endpoint for endpoint in ENDPOINTS if endpoint.create is not None]
READ_ONLY = [endpoint for endpoint in ENDPOINTS if endpoint.create is None]
PARTITIONED = [endpoint for endpoint in ENDPOINTS if endpoint.partitioned]
PARTITIONED_WRITABLE = [endpoint for endpoint in WRITABLE if endpoint.partitioned]


def stored(obj: Model, name: str):
    """The value a PATCH of ``name`` should have left in the database, as the API writes it."""
    obj.refresh_from_db()
    model_field = obj._meta.get_field(name)
    return getattr(obj, model_field.attname)
