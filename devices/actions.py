"""Business operations on devices: commissioning, new keys, which access points their doors and readers are.

The API, the admin and ``manage.py commission_device`` call these. Each owns its
transaction and records the operator's action in the system auditor. A device's
key exists in clear text only in what these return; the row keeps it sealed.
Commands to doors (open, modes, emergencies) are issued by devices/commands.py.
"""

from django.core.exceptions import ValidationError
from django.db import transaction

from accesscontrol.actions import record_operator_action
from devices.models import Device, DeviceDoor, DeviceReader

MAPPINGS = {"doors": DeviceDoor, "readers": DeviceReader}


def check_mappings(device: Device, doors: list[dict] | None, readers: list[dict] | None) -> None:
    """Refuse mappings a device cannot have: a number twice, or an access point driven by two doors.

    ``doors`` and ``readers`` are dicts of number and access_point (None: not given).
    """
    errors = {}
    for name, items in (("doors", doors), ("readers", readers)):
        numbers = [item["number"] for item in items or ()]
        if len(numbers) != len(set(numbers)):
            errors[name] = f"Each {name[:-1]} number may appear once."
    points = [door["access_point"] for door in doors or ()]
    if "doors" not in errors and len(points) != len({point.pk for point in points}):
        errors["doors"] = "An access point is driven by one door only."
    elif "doors" not in errors and points:
        taken = DeviceDoor.objects.filter(access_point__in=points).select_related("device", "access_point")
        if device.pk is not None:
            taken = taken.exclude(device=device)
        taken = [f'"{door.access_point}" is door {door.number} of "{door.device}" already.' for door in taken]
        if taken:
            errors["doors"] = taken
    if errors:
        raise ValidationError(errors)


def commission_device(
    device: Device,
    *,
    key: bytes | None = None,
    doors: list[dict] | None = None,
    readers: list[dict] | None = None,
    operator,
    via: str,
    address: str | None = None,
    recorded_as: str = "commission_device",
    detail: dict | None = None,
) -> bytes:
    """Register the new ``device`` with its key (a random one when None), doors and readers; return the key.

    The returned key is the only clear copy: the caller shows it once. The auditor
    row says whether the key was given or generated, never the key. ``recorded_as``
    keeps the name each entrance has always used for the row ("create" in the API,
    "add" in the admin).
    """
    if not device._state.adding:
        raise ValueError("This device is commissioned already: give it a new key with rekey_device.")
    clear = device.set_key(key)
    device.full_clean()
    check_mappings(device, doors, readers)
    with transaction.atomic():
        device.save()
        _write_mappings(device, doors, readers)
        detail = {
            **(detail or {}),
            "doors": {str(door["number"]): door["access_point"].pk for door in doors or ()},
            "key": "given" if key else "generated",
        }
        record_operator_action(operator, recorded_as, device, via=via, detail=detail, address=address)
    return clear


def update_device(
    device: Device,
    *,
    doors: list[dict] | None = None,
    readers: list[dict] | None = None,
    operator,
    via: str,
    address: str | None = None,
) -> Device:
    """Save ``device``'s fields (set by the caller) and, when given, replace its door and reader mappings.

    One auditor row says what changed, mappings as "number: access point id" lists;
    nothing changed, no row. The key is not a field here: see rekey_device.
    """
    check_mappings(device, doors, readers)
    names = ["device_id", "name", "kind", "description", "station", "enabled"]
    with transaction.atomic():
        stored = Device.objects.select_for_update().get(pk=device.pk)
        if device.device_id != stored.device_id:
            # The key is sealed for the id: a device with another id is another device.
            raise ValidationError({"device_id": "A device keeps its id; commission a new device instead."})
        before = {name: getattr(stored, name) for name in names} | _mapping_lists(stored)
        device.save()
        _write_mappings(device, doors, readers)
        after = {name: getattr(device, name) for name in names} | _mapping_lists(device)
        changes = {name: {"from": before[name], "to": after[name]} for name in after if before[name] != after[name]}
        if changes:
            record_operator_action(operator, "update", device, via=via, detail={"changes": changes}, address=address)
    return device


def rekey_device(device: Device, *, operator, via: str, key: bytes | None = None, address: str | None = None) -> bytes:
    """Give ``device`` a new key (a random one when None) and return it: the only time it is in clear text."""
    with transaction.atomic():
        key = device.set_key(key)
        # updated_at moves so the device bridge reloads the device with its new key.
        device.save(update_fields=["key_sealed", "updated_at"])
        record_operator_action(
            operator, "rekey_device", device, via=via, detail={"device_id": device.device_id}, address=address
        )
    return key


def _write_mappings(device: Device, doors: list[dict] | None, readers: list[dict] | None) -> None:
    for relation, items in (("doors", doors), ("readers", readers)):
        if items is None:
            continue
        model = MAPPINGS[relation]
        getattr(device, relation).all().delete()
        model.objects.bulk_create([model(device=device, **item) for item in items])
        # A prefetched list would otherwise still show the old mappings.
        getattr(device, "_prefetched_objects_cache", {}).pop(relation, None)


def _mapping_lists(device: Device) -> dict:
    return {
        relation: [
            f"{number}: {point}"
            for number, point in getattr(device, relation).values_list("number", "access_point_id").order_by("number")
        ]
        for relation in MAPPINGS
    }
