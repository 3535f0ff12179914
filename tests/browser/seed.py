"""Objects for a live server's database, made in the server's own environment.

These functions run inside ``manage.py shell`` started with the live server's
environment (``LiveSpace.seed`` in conftest.py), so they write to that
server's database, never to the test run's. Each returns a JSON-able dict.
"""

import secrets

from django.contrib.auth.models import Permission
from django.db import transaction

from accesscontrol.models import (
    AccessLevel,
    AccessLevelEntry,
    AccessPoint,
    Cardholder,
    Key,
    Operator,
    OperatorGroup,
    Partition,
    Zone,
)


@transaction.atomic
def operator(
    username: str,
    password: str,
    *,
    permissions: list[str] | None = None,
    partitions: list[str] | None = None,
    superuser: bool = False,
    staff: bool = False,
    totp: bool = False,
    require_two_factor: bool = False,
) -> dict:
    """An operator; with ``permissions`` ("app.codename") in a group of its own, limited to ``partitions`` (names;
    none given = all partitions). ``totp`` gives a confirmed TOTP device and returns its key (hex)."""
    if superuser:
        user = Operator.objects.create_superuser(username, password=password)
    else:
        user = Operator.objects.create_user(username, password=password, is_staff=staff)
    if permissions is not None or require_two_factor:
        group = OperatorGroup.objects.create(
            name=f"{username} group", all_partitions=partitions is None, require_two_factor=require_two_factor
        )
        for permission in permissions or ():
            app_label, codename = permission.split(".")
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.partitions.set([Partition.objects.get_or_create(name=name)[0] for name in partitions or ()])
        group.members.add(user)
    result = {"id": user.pk, "username": username}
    if totp:
        from accesscontrol.models import Authenticator

        device = Authenticator(user=user, name="Authenticator", confirmed=True)
        result["totp_key"] = device.set_seed().hex()
        device.save()
    return result


def partition(name: str) -> dict:
    return {"id": Partition.objects.get_or_create(name=name)[0].pk, "name": name}


def _partition_id(name: str | None) -> dict:
    return {"partition_id": Partition.objects.get_or_create(name=name)[0].pk} if name else {}


@transaction.atomic
def access_point(name: str, *, zones: list[str] = (), partition: str | None = None, online: bool = True) -> dict:
    point = AccessPoint.objects.create(
        name=name, connection="online" if online else "offline", **_partition_id(partition)
    )
    point.zones.set([Zone.objects.get_or_create(name=zone, defaults=_partition_id(partition))[0] for zone in zones])
    return {"id": point.pk, "name": name}


@transaction.atomic
def access_level(name: str, *, access_points: list[str] = (), zones: list[str] = (), partition=None) -> dict:
    level = AccessLevel.objects.create(name=name, **_partition_id(partition))
    for point in access_points:
        AccessLevelEntry.objects.create(access_level=level, access_point=AccessPoint.objects.get(name=point))
    for zone in zones:
        AccessLevelEntry.objects.create(access_level=level, zone=Zone.objects.get(name=zone))
    return {"id": level.pk, "name": name}


@transaction.atomic
def cardholder(
    first_name: str,
    last_name: str,
    *,
    access_levels: list[str] = (),
    key_uid: str | None = None,
    partition: str | None = None,
    **fields,
) -> dict:
    holder = Cardholder.objects.create(first_name=first_name, last_name=last_name, **_partition_id(partition), **fields)
    holder.access_levels.set(AccessLevel.objects.filter(name__in=access_levels))
    if key_uid:
        Key.objects.create(cardholder=holder, uid=key_uid)
    return {"id": holder.pk, "name": str(holder)}


@transaction.atomic
def device(device_id: int, name: str, *, door: str | None = None, key_hex: str | None = None) -> dict:
    """A commissioned control unit whose door 1 (and reader 1) is the access point ``door``; returns its key."""
    from devices.models import Device, DeviceDoor, DeviceReader

    unit = Device(device_id=device_id, name=name, kind="control_unit")
    key = unit.set_key(bytes.fromhex(key_hex) if key_hex else None)
    unit.save()
    if door:
        point = AccessPoint.objects.get(name=door)
        DeviceDoor.objects.create(device=unit, number=1, access_point=point)
        DeviceReader.objects.create(device=unit, number=1, access_point=point)
    return {"id": unit.pk, "device_id": device_id, "key_hex": key.hex()}


@transaction.atomic
def demo_history(*, events: int = 240, operator_username: str = "ada") -> dict:
    """What a day of running the demo site (``manage.py seed_demo``) leaves behind, for screenshots.

    Access events at its doors over the past day (mostly granted, some denied, a
    forced door), operator groups with members, system auditor rows with
    before/after, and jobs: one running at 45 %, one finished, one failed.
    """
    import datetime as dt
    import random

    from django.utils import timezone

    from accesscontrol.actions import record_operator_action
    from accesscontrol.models import AuditEvent, Calendar, Job, Stay, TimePeriod
    from devices.models import Device

    rng = random.Random(7)
    now = timezone.now().replace(microsecond=0)
    points = list(AccessPoint.objects.order_by("pk")[:30])
    holders = list(Cardholder.objects.filter(keys__isnull=False).prefetch_related("keys").order_by("pk")[:120])
    rows = []
    for n in range(events):
        at = now - dt.timedelta(seconds=int(86_400 * (n / events) ** 1.6) + rng.randint(0, 40))
        point = rng.choice(points)
        roll = rng.random()
        if roll < 0.04:
            rows.append(AuditEvent(at=at, kind="door_forced", access_point=point, access_point_name=point.name))
            continue
        if roll < 0.08:
            rows.append(AuditEvent(at=at, kind="door_left_open", access_point=point, access_point_name=point.name))
            continue
        holder = rng.choice(holders)
        key = holder.keys.all()[0]
        granted = roll > 0.2
        reason = "granted" if granted else rng.choice(["no_permission", "outside_schedule", "expired"])
        rows.append(
            AuditEvent(
                at=at,
                kind="access_granted" if granted else "access_denied",
                reason=reason,
                access_point=point,
                access_point_name=point.name,
                cardholder=holder,
                cardholder_name=str(holder),
                key_uid=key.uid,
            )
        )
    AuditEvent.objects.bulk_create(rows)

    ada = Operator.objects.get(username=operator_username)
    ada.first_name, ada.last_name, ada.email = "Ada", "Lovelace", "ada.lovelace@harbour-house.example"
    ada.save()
    groups = {}
    for name, codenames, partition_names in [
        ("Reception", ["view_cardholder", "add_cardholder", "change_cardholder", "view_key", "add_key"], ["Hotel"]),
        ("Security", ["view_auditevent", "view_accesspoint", "view_zone", "view_cardholder"], None),
        ("Facility managers", ["view_accesspoint", "change_accesspoint", "view_zone", "change_zone"], None),
    ]:
        group = OperatorGroup.objects.create(
            name=name, all_partitions=partition_names is None, require_two_factor=name == "Security"
        )
        group.permissions.set(
            Permission.objects.filter(content_type__app_label="accesscontrol", codename__in=codenames)
        )
        group.partitions.set(Partition.objects.filter(name__in=partition_names or ()))
        groups[name] = group
    people = [
        ("mbauer", "Marta", "Bauer", "Reception"),
        ("jokafor", "James", "Okafor", "Reception"),
        ("lchen", "Li", "Chen", "Security"),
        ("rsilva", "Rafael", "Silva", "Facility managers"),
    ]
    for username, first, last, group in people:
        user = Operator.objects.create_user(
            username,
            password=secrets.token_urlsafe(16),
            first_name=first,
            last_name=last,
            email=f"{username}@harbour-house.example",
        )
        groups[group].members.add(user)

    holder = holders[0]
    level = AccessLevel.objects.order_by("pk").first()
    point = points[0]
    for action, obj, detail in [
        ("login", None, {}),
        ("change", holder, {"changes": {"phone_number": {"from": "", "to": "+4915112345678"}}}),
        ("grant_access_level", holder, {"access_level": level.name}),
        ("issue_key", holder, {"uid": "04A1B2C3D4E5F6"}),
        ("change", point, {"changes": {"open_time_s": {"from": 5, "to": 8}}}),
        ("remote_open", point, {}),
    ]:
        record_operator_action(ada, action, obj, via="web", detail=detail, address="10.20.0.15")
    record_operator_action(
        Operator.objects.get(username="mbauer"), "create", holders[1], via="web", address="10.20.0.31"
    )

    started = now - dt.timedelta(minutes=3)
    Job.objects.create(
        kind="cardholder_import",
        operator=ada,
        status="running",
        total=1200,
        done=540,
        message="Importing line 541 of 1,200",
        started_at=started,
        parameters={"filename": "hotel-guests-june.csv"},
    )
    Job.objects.create(
        kind="cardholder_export",
        operator=ada,
        status="succeeded",
        total=300,
        done=300,
        message="300 cardholders exported",
        started_at=started - dt.timedelta(hours=2),
        finished_at=started - dt.timedelta(hours=2) + dt.timedelta(seconds=4),
        result={"rows": 300},
    )
    Job.objects.create(
        kind="cardholder_import",
        operator=ada,
        status="failed",
        total=80,
        done=12,
        message="Line 13: the partition 'Hotel annex' does not exist.",
        started_at=started - dt.timedelta(days=1),
        finished_at=started - dt.timedelta(days=1) + dt.timedelta(seconds=2),
        result={
            "errors": [{"line": 13, "field": "partition", "message": "The partition 'Hotel annex' does not exist."}]
        },
    )
    for job, ago in zip(
        Job.objects.order_by("pk"), [dt.timedelta(minutes=3), dt.timedelta(hours=2), dt.timedelta(days=1)], strict=True
    ):
        Job.objects.filter(pk=job.pk).update(created_at=now - ago)
    return {
        "cardholder": holder.pk,
        "access_point": point.pk,
        "zone": Zone.objects.filter(access_points__isnull=False).order_by("pk").first().pk,
        "level": level.pk,
        "group": groups["Reception"].pk,
        "time_period": TimePeriod.objects.filter(intervals__isnull=False).order_by("pk").first().pk,
        "calendar": Calendar.objects.order_by("pk").first().pk,
        "device": Device.objects.order_by("pk").first().pk,
        "job": Job.objects.get(status="running").pk,
        "room": Stay.objects.filter(status="in").order_by("room__number").first().room_id,
    }


def device_key(device_id: int) -> dict:
    """A new key for a commissioned device (``seed_demo`` never prints its keys), so a simulator can be it."""
    from devices.models import Device

    unit = Device.objects.get(device_id=device_id)
    key = unit.set_key(None)
    unit.save()
    return {"device_id": device_id, "key_hex": key.hex()}


def valid_key(level: str) -> dict:
    """The UID of an issued key of someone holding access level ``level``."""
    key = Key.objects.filter(status="issued", cardholder__access_levels__name=level).order_by("pk").first()
    return {"uid": key.uid, "cardholder": str(key.cardholder)}


def alarm(kind: str, access_point: str) -> dict:
    """An open alarm (not acknowledged) at the access point named ``access_point``, as the device runtime raises one."""
    from django.utils import timezone

    from devices.models import Alarm

    raised = Alarm.objects.create(
        kind=kind, access_point=AccessPoint.objects.get(name=access_point), raised_at=timezone.now()
    )
    return {"id": raised.pk}


def osdp_bus(name: str, port: str = "socket://127.0.0.1:4001") -> dict:
    """An OSDP bus (its service is not running: the line shows closed)."""
    from devices.models import OsdpBus

    return {"id": OsdpBus.objects.create(name=name, port=port).pk}


@transaction.atomic
def roll_call_area(name: str, people: list[str], *, lockdown: bool = False) -> dict:
    """A roll-call zone with ``people`` ("First Last") inside since ten minutes ago; ``lockdown`` locks it down."""
    import datetime as dt

    from django.utils import timezone

    from accesscontrol.models import Presence

    zone = Zone.objects.create(name=name, roll_call=True, lockdown=lockdown)
    since = timezone.now() - dt.timedelta(minutes=10)
    for person in people:
        first, last = person.split(" ", 1)
        holder = Cardholder.objects.create(first_name=first, last_name=last)
        Presence.objects.create(cardholder=holder, zone=zone, inside=True, since=since, last_at=since)
    return {"id": zone.pk, "name": name}
