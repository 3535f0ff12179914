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
        from django_otp.plugins.otp_totp.models import TOTPDevice

        key = secrets.token_hex(20)
        TOTPDevice.objects.create(user=user, name="Authenticator", key=key, confirmed=True)
        result["totp_key"] = key
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
