"""Business operations on devices: commissioning, new keys, which access points their doors and readers are;
OSDP buses and readers; face terminals and enrolling faces at them; acknowledging alarms.

The API, the admin, the web app and ``manage.py commission_device`` call these.
Each owns its transaction and records the operator's action in the system
auditor. A device's key exists in clear text only in what these return; the row
keeps it sealed. An OSDP device's key is its secure channel key (SCBK): Space
makes it and gives it to the reader over the bus, so no action here returns it.
Commands to doors (open, modes, emergencies) are issued by devices/commands.py.
"""

import dataclasses
import datetime as dt
import itertools
import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from accesscontrol import events, faces
from accesscontrol.actions import record_operator_action
from accesscontrol.choices import AuditKind
from accesscontrol.models import Cardholder
from devices.choices import DeviceKind
from devices.models import (
    Alarm,
    Device,
    DeviceDoor,
    DeviceReader,
    FaceEnrolment,
    FaceTerminal,
    OsdpBus,
    OsdpReader,
)

MAPPINGS = {"doors": DeviceDoor, "readers": DeviceReader}
# What a door's and a reader's mapping may say besides its number and access point (the door's wiring).
WIRING = {"doors": ("relay", "contact", "rex", "contact_open_when_active"), "readers": ("direction",)}
MAX_DEVICE_ID = 2**32 - 1


def check_mappings(device: Device, doors: list[dict] | None, readers: list[dict] | None) -> None:
    """Refuse mappings a device cannot have: a number twice, or an access point driven by two doors.

    ``doors`` and ``readers`` are dicts of number and access_point (None: not given).
    """
    errors = {}
    for name, items in (("doors", doors), ("readers", readers)):
        numbers = [item["number"] for item in items or ()]
        if len(numbers) != len(set(numbers)):
            errors[name] = f"Each {name[:-1]} number may appear once."
        elif any(item.get("access_point") is None for item in items or ()):
            errors[name] = f"Each {name[:-1]} names its access point."
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
    if device.kind in DeviceKind.osdp():
        raise ValidationError({"kind": "An OSDP device is commissioned on its bus, with its address (OSDP readers)."})
    clear = device.set_key(key)
    device.full_clean()
    check_mappings(device, doors, readers)
    check_wiring(device, doors, readers)
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
    check_wiring(device, doors, readers)
    names = ["device_id", "name", "kind", "description", "station", "enabled"]
    with transaction.atomic():
        stored = Device.objects.select_for_update().get(pk=device.pk)
        if device.device_id != stored.device_id:
            # The key is sealed for the id: a device with another id is another device.
            raise ValidationError({"device_id": "A device keeps its id; commission a new device instead."})
        if (device.kind in DeviceKind.osdp()) != (stored.kind in DeviceKind.osdp()):
            # An OSDP device's key is a secure channel key on a bus; an SDP/1 device's is another thing.
            raise ValidationError({"kind": "A device stays on OSDP or off it; commission a new device instead."})
        before = {name: getattr(stored, name) for name in names} | _mapping_lists(stored)
        device.save()
        _write_mappings(device, doors, readers)
        after = {name: getattr(device, name) for name in names} | _mapping_lists(device)
        changes = {name: {"from": before[name], "to": after[name]} for name in after if before[name] != after[name]}
        if changes:
            record_operator_action(operator, "update", device, via=via, detail={"changes": changes}, address=address)
    return device


def rekey_device(device: Device, *, operator, via: str, key: bytes | None = None, address: str | None = None) -> bytes:
    """Give ``device`` a new key (a random one when None) and return it: the only time it is in clear text.

    Not for OSDP devices, whose key is never shown: see rekey_osdp_reader.
    """
    if device.kind in DeviceKind.osdp():
        raise ValidationError("An OSDP device's secure channel key is never shown; give it a new one as a reader.")
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
    """Mappings as "number: access point id" lists, and the wiring of doors and readers that have any."""
    lists = {
        relation: [
            f"{number}: {point}"
            for number, point in getattr(device, relation).values_list("number", "access_point_id").order_by("number")
        ]
        for relation in MAPPINGS
    }
    doors = [describe_wiring(door) for door in device.doors.order_by("number")]
    directed = device.readers.exclude(direction="").order_by("number")
    lists["wiring"] = [text for text in doors if text] + [f"reader {r.number}: {r.direction}" for r in directed]
    return lists


def describe_wiring(door: DeviceDoor) -> str:
    """A door's wiring in words, for the system auditor; "" for the default (relay 0 and no inputs)."""
    if door.relay == 0 and door.contact is None and door.rex is None and door.contact_open_when_active:
        return ""
    contact = "none" if door.contact is None else door.contact
    rex = "none" if door.rex is None else door.rex
    active = "open" if door.contact_open_when_active else "closed"
    return f"door {door.number}: relay {door.relay}, contact {contact} ({active} when active), exit button {rex}"


def check_wiring(device: Device, doors: list[dict] | None, readers: list[dict] | None) -> None:
    """Refuse wiring a device cannot have: numbers out of range, a direction that is none, one input used twice.

    The runtime drives the relay and reads the inputs named here; the same input as
    door contact and exit button would open the door whenever it closes.
    """
    errors = {}
    for relation, items in (("doors", doors), ("readers", readers)):
        model = MAPPINGS[relation]
        messages = []
        for item in items or ():
            try:
                # The access point was checked by check_mappings (or the caller): no query per door here.
                model(device=device, **item).full_clean(
                    exclude=["device", "access_point"], validate_unique=False, validate_constraints=False
                )
            except ValidationError as error:
                messages += [f"{model._meta.verbose_name} {item.get('number')}: {text}" for text in error.messages]
            if relation == "doors" and item.get("contact") is not None and item.get("contact") == item.get("rex"):
                number = item.get("number")
                messages.append(f"door {number}: the contact and the exit button must be on different inputs.")
        if messages:
            errors[relation] = messages
    if errors:
        raise ValidationError(errors)


def numbered(items: list[dict] | None) -> list[dict] | None:
    """Mappings given without a number are numbered in order from 1 (an OSDP reader's door and reader are 1)."""
    if items is None:
        return None
    return [{"number": index, **item} for index, item in enumerate(items, start=1)]


# --- OSDP buses ----------------------------------------------------------------------------------

PORT_HELP = (
    "A serial port (/dev/ttyUSB0, /dev/serial/by-id/...) or a pyserial URL: socket://HOST:PORT for a "
    "serial-over-IP converter in raw TCP mode, rfc2217://HOST:PORT for one speaking RFC 2217, loop:// for tests."
)
DEVICE_PATH = re.compile(r"/dev/[A-Za-z0-9._+:@-]+(/[A-Za-z0-9._+:@-]+)*")
NETWORK_SCHEMES = ("socket", "rfc2217")
BUS_FIELDS = ["name", "port", "baud", "enabled", "description"]


def check_port(port: str) -> str:
    """The port, stripped, if the bus's service can open it; else a ValidationError on ``port`` saying what is."""
    port = (port or "").strip()
    if port.startswith("/"):
        if not DEVICE_PATH.fullmatch(port) or "/../" in f"{port}/":
            raise ValidationError({"port": f"{port!r} is no serial device path. {PORT_HELP}"})
        return port
    try:
        parts = urlsplit(port)
        number = parts.port
    except ValueError:
        raise ValidationError({"port": f"{port!r} has no valid TCP port (1 to 65535). {PORT_HELP}"}) from None
    if parts.scheme == "loop":
        if parts.netloc or parts.path:
            raise ValidationError({"port": f"loop:// takes no host or path. {PORT_HELP}"})
        return port
    if parts.scheme not in NETWORK_SCHEMES:
        raise ValidationError({"port": f"{port!r} is neither a serial device nor a URL Space can open. {PORT_HELP}"})
    if not parts.hostname or not number or parts.path or parts.username or parts.password:
        raise ValidationError({"port": f"{parts.scheme}:// takes a host and a TCP port: {parts.scheme}://HOST:PORT."})
    return port


def create_osdp_bus(
    *,
    name: str,
    port: str,
    baud: int = 115200,
    enabled: bool = True,
    description: str = "",
    operator,
    via: str,
    address: str | None = None,
    recorded_as: str = "create",
) -> OsdpBus:
    """Add an RS-485 line of OSDP devices, reached through ``port``; its service opens it when enabled."""
    bus = OsdpBus(name=name, port=check_port(port), baud=baud, enabled=enabled, description=description)
    bus.full_clean()
    with transaction.atomic():
        bus.save()
        detail = {name: getattr(bus, name) for name in BUS_FIELDS}
        record_operator_action(operator, recorded_as, bus, via=via, detail=detail, address=address)
    return bus


def update_osdp_bus(bus: OsdpBus, *, operator, via: str, address: str | None = None, **fields) -> OsdpBus:
    """Save ``bus`` with ``fields`` (or the fields the caller set on it); one auditor row says what changed."""
    unknown = set(fields) - set(BUS_FIELDS)
    if unknown:
        raise ValueError(f"An OSDP bus has no field {', '.join(sorted(unknown))}.")
    for name, value in fields.items():
        setattr(bus, name, value)
    bus.port = check_port(bus.port)
    bus.full_clean()
    with transaction.atomic():
        stored = OsdpBus.objects.select_for_update().get(pk=bus.pk)
        before = {name: getattr(stored, name) for name in BUS_FIELDS}
        bus.save()
        after = {name: getattr(bus, name) for name in BUS_FIELDS}
        changes = {name: {"from": before[name], "to": after[name]} for name in after if before[name] != after[name]}
        if changes:
            record_operator_action(operator, "update", bus, via=via, detail={"changes": changes}, address=address)
    return bus


# --- OSDP readers and I/O modules ----------------------------------------------------------------

OSDP_DEVICE_FIELDS = ["name", "kind", "description", "enabled"]
OSDP_READER_FIELDS = ["bus", "address", "card_format", "allow_clear"]
REKEY_HELP = (
    "A new secure channel key is sealed at once, and the reader still holds the old one: put the reader back "
    "in install mode (see its manual) so Space can give it the new key."
)


def next_device_id() -> int:
    """The id an OSDP device gets: one above the highest in use (the lowest free one once the top is taken).

    OSDP devices send no device id; Space needs one for every device, so it picks one.
    """
    highest = Device.objects.aggregate(highest=Max("device_id"))["highest"] or 0
    if highest < MAX_DEVICE_ID:
        return highest + 1
    taken = set(Device.objects.values_list("device_id", flat=True))
    return next(number for number in itertools.count(1) if number not in taken)


def _osdp_values(device: Device, reader: OsdpReader) -> dict:
    values = {name: getattr(device, name) for name in OSDP_DEVICE_FIELDS}
    values |= {name: getattr(reader, name) for name in OSDP_READER_FIELDS}
    values["bus"] = reader.bus_id
    return values


def _check_osdp(device: Device, reader: OsdpReader, doors, readers) -> None:
    """Every rule at once where they are independent, so a form shows all its errors."""
    errors = {}
    if device.kind not in DeviceKind.osdp():
        errors["kind"] = [f"An OSDP device is one of: {', '.join(DeviceKind.osdp())}."]
    for obj, exclude in ((device, []), (reader, ["device"])):
        try:
            # The reader's one constraint (an address once per bus) is checked below, with words that name who.
            obj.full_clean(exclude=exclude, validate_constraints=obj is device)
        except ValidationError as error:
            for name, messages in error.message_dict.items():
                errors.setdefault(name, []).extend(messages)
    if reader.bus_id is not None and isinstance(reader.address, int):
        holder = OsdpReader.objects.filter(bus_id=reader.bus_id, address=reader.address).select_related("device")
        holder = holder.exclude(pk=reader.pk).first() if reader.pk is not None else holder.first()
        if holder is not None:
            errors.setdefault("address", []).append(
                f"Address {reader.address} on this bus is taken by {holder.device.name}."
            )
    for check in (check_mappings, check_wiring):
        try:
            check(device, doors, readers)
        except ValidationError as error:
            for name, messages in error.message_dict.items():
                errors.setdefault(name, []).extend(messages)
    if errors:
        raise ValidationError(errors)


def commission_osdp_reader(
    device: Device,
    reader: OsdpReader,
    *,
    doors: list[dict] | None = None,
    readers: list[dict] | None = None,
    operator,
    via: str,
    address: str | None = None,
    recorded_as: str = "commission_osdp_reader",
) -> Device:
    """Register the new OSDP ``device`` (a reader or an I/O module) where ``reader`` says it is, with its doors
    and readers; returns the device, saved.

    ``device`` is new and unsaved (name, kind, description, enabled); ``reader`` is
    its unsaved ``OsdpReader`` (bus, address on it, card format, allow_clear).
    ``doors`` are dicts of access_point and the wiring (relay, contact, rex,
    contact_open_when_active), ``readers`` of access_point and direction; a
    missing number counts from 1. The device gets the next free device id
    (whatever it had) and a fresh secure channel key, sealed: the reader is in
    install mode, answers the default key, and is given this one on first
    contact. Nothing returns the key. ``address`` is the operator's network
    address, for the system auditor, as in every action.
    """
    if not device._state.adding:
        raise ValueError("This device is commissioned already: give it a new key with rekey_osdp_reader.")
    doors, readers = numbered(doors), numbered(readers)
    device.device_id = next_device_id()
    reader.device = device
    _check_osdp(device, reader, doors, readers)
    with transaction.atomic():
        _save_with_free_id(device)
        reader.device = device  # now with its primary key
        reader.save()
        _write_mappings(device, doors, readers)
        detail = {
            **_osdp_values(device, reader),
            "device_id": device.device_id,
            "doors": {str(door["number"]): door["access_point"].pk for door in doors or ()},
            "readers": {str(item["number"]): item["access_point"].pk for item in readers or ()},
            "key": "generated",
        }
        record_operator_action(operator, recorded_as, reader, via=via, detail=detail, address=address)
    return device


def _save_with_free_id(device: Device, attempts: int = 5, keyed: bool = True) -> None:
    """Save the new device under a free id, with a key sealed for that id (``keyed``); another commission may
    take one first."""
    for _ in range(attempts):
        if keyed:
            device.set_key()
        try:
            with transaction.atomic():
                device.save()
            return
        except IntegrityError:
            if not Device.objects.filter(device_id=device.device_id).exists():
                raise
            device.device_id = next_device_id()
    raise ValidationError("No free device id could be found; try again.")


def update_osdp_reader(
    reader: OsdpReader,
    *,
    doors: list[dict] | None = None,
    readers: list[dict] | None = None,
    operator,
    via: str,
    address: str | None = None,
) -> OsdpReader:
    """Save ``reader`` and its device (fields set by the caller) and, when given, replace its doors and readers.

    One auditor row, on the reader, says what changed; nothing changed, no row.
    Its device id and key stay: see rekey_osdp_reader for a new key.
    """
    device = reader.device
    doors, readers = numbered(doors), numbered(readers)
    _check_osdp(device, reader, doors, readers)
    with transaction.atomic():
        stored = OsdpReader.objects.select_for_update().select_related("device").get(pk=reader.pk)
        if device.device_id != stored.device.device_id:
            raise ValidationError({"device_id": "A device keeps its id; commission a new device instead."})
        before = _osdp_values(stored.device, stored) | _mapping_lists(stored.device)
        device.save()
        reader.save()
        _write_mappings(device, doors, readers)
        after = _osdp_values(device, reader) | _mapping_lists(device)
        changes = {name: {"from": before[name], "to": after[name]} for name in after if before[name] != after[name]}
        if changes:
            record_operator_action(operator, "update", reader, via=via, detail={"changes": changes}, address=address)
    return reader


def rekey_osdp_reader(reader: OsdpReader, *, operator, via: str, address: str | None = None) -> None:
    """Seal a new secure channel key for ``reader``; it is never shown. ``REKEY_HELP`` says what the installer does.

    Until the reader takes the new key it is no longer "key set" nor secure; the
    bus's service reloads it (its device's updated_at moves).
    """
    device = reader.device
    with transaction.atomic():
        device.set_key()
        device.save(update_fields=["key_sealed", "updated_at"])
        OsdpReader.objects.filter(pk=reader.pk).update(key_set_at=None, secure=False)
        reader.key_set_at, reader.secure = None, False
        record_operator_action(
            operator, "rekey_osdp_reader", reader, via=via, detail={"device_id": device.device_id}, address=address
        )


def decommission_osdp_reader(
    reader: OsdpReader, *, operator, via: str, address: str | None = None, recorded_as: str = "delete"
) -> None:
    """Remove the OSDP device, its doors and readers; its alarms and audit events stay (naming no device)."""
    with transaction.atomic():
        record_operator_action(
            operator,
            recorded_as,
            reader,
            via=via,
            detail={"device_id": reader.device.device_id, "name": reader.device.name},
            address=address,
        )
        reader.device.delete()


def update_door_wiring(
    door: DeviceDoor,
    *,
    relay: int,
    contact: int | None,
    rex: int | None,
    contact_open_when_active: bool,
    operator,
    via: str,
    address: str | None = None,
) -> DeviceDoor:
    """Rewire one door of a device (the runtime reloads the device); one auditor row on the device."""
    wiring = {"relay": relay, "contact": contact, "rex": rex, "contact_open_when_active": contact_open_when_active}
    check_wiring(door.device, [{"number": door.number, "access_point": door.access_point, **wiring}], None)
    with transaction.atomic():
        stored = DeviceDoor.objects.select_for_update().get(pk=door.pk)
        before = describe_wiring(stored) or "default"
        for name, value in wiring.items():
            setattr(door, name, value)
        door.save()
        after = describe_wiring(door) or "default"
        if before != after:
            record_operator_action(
                operator,
                "update",
                door.device,
                via=via,
                detail={"changes": {"wiring": {"from": before, "to": after}}},
                address=address,
            )
    return door


# --- face terminals ------------------------------------------------------------------------------

FACE_DEVICE_FIELDS = ["name", "description", "enabled"]
FACE_TERMINAL_FIELDS = [
    "access_point",
    "direction",
    "face_only",
    "card_and_face",
    "pin_and_face",
    "model_name",
    "min_quality",
    "require_liveness",
]
FACE_VIA = "face terminal"


def _face_values(terminal: FaceTerminal) -> dict:
    values = {name: getattr(terminal.device, name) for name in FACE_DEVICE_FIELDS}
    values |= {name: getattr(terminal, name) for name in FACE_TERMINAL_FIELDS}
    values["access_point"] = terminal.access_point_id
    return values


def _check_face_terminal(terminal: FaceTerminal) -> None:
    """The device's and the terminal's rules at once, so a form shows all its errors."""
    errors = {}
    for obj, exclude in ((terminal.device, []), (terminal, ["device"])):
        try:
            obj.full_clean(exclude=exclude)
        except ValidationError as error:
            for name, messages in error.message_dict.items():
                errors.setdefault(name, []).extend(messages)
    if errors:
        raise ValidationError(errors)


def _split_face_fields(changes: dict) -> tuple[dict, dict]:
    unknown = set(changes) - set(FACE_DEVICE_FIELDS) - set(FACE_TERMINAL_FIELDS)
    if unknown:
        raise ValueError(f"A face terminal has no field {', '.join(sorted(unknown))} to set.")
    device = {name: value for name, value in changes.items() if name in FACE_DEVICE_FIELDS}
    return device, {name: value for name, value in changes.items() if name in FACE_TERMINAL_FIELDS}


def commission_face_terminal(
    *, name: str, terminal_id: str, access_point, operator, via: str, address: str | None = None, **options
) -> FaceTerminal:
    """Register the face terminal ``terminal_id`` (its certificate's common name) guarding ``access_point``.

    ``options`` are the device's description and enabled switch and the terminal's
    settings (direction, methods, model, quality, liveness). Its device gets the next
    free device id and no key: the terminal proves who it is with its certificate
    (``manage.py face_terminal ID``), which this does not issue.
    """
    device_fields, terminal_fields = _split_face_fields(options)
    device = Device(name=name, kind=DeviceKind.FACE_TERMINAL, device_id=next_device_id(), **device_fields)
    terminal = FaceTerminal(device=device, terminal_id=terminal_id, access_point=access_point, **terminal_fields)
    _check_face_terminal(terminal)
    with transaction.atomic():
        _save_with_free_id(device, keyed=False)
        terminal.device = device  # now with its primary key
        terminal.save()
        detail = {**_face_values(terminal), "terminal_id": terminal.terminal_id, "device_id": device.device_id}
        record_operator_action(operator, "commission_face_terminal", terminal, via=via, detail=detail, address=address)
    return terminal


def update_face_terminal(
    terminal: FaceTerminal, *, operator, via: str, address: str | None = None, **changes
) -> FaceTerminal:
    """Change a terminal's device (name, description, enabled) and settings; its id stays (its certificate
    names it). Disabling it cancels its open enrolments: it will not be asked to capture. One auditor row
    says what changed; nothing changed, no row."""
    device_fields, terminal_fields = _split_face_fields(changes)
    for name, value in device_fields.items():
        setattr(terminal.device, name, value)
    for name, value in terminal_fields.items():
        setattr(terminal, name, value)
    _check_face_terminal(terminal)
    with transaction.atomic():
        stored = FaceTerminal.objects.select_for_update().select_related("device").get(pk=terminal.pk)
        if stored.terminal_id != terminal.terminal_id:
            raise ValidationError({"terminal_id": "A terminal keeps its id: its certificate names it."})
        before = _face_values(stored)
        terminal.device.save()
        terminal.save()
        after = _face_values(terminal)
        changes = {name: {"from": before[name], "to": after[name]} for name in after if before[name] != after[name]}
        if not terminal.device.enabled:
            _close_open_enrolments(terminal, FaceEnrolment.Status.CANCELLED, "The terminal was disabled.")
        if changes:
            record_operator_action(operator, "update", terminal, via=via, detail={"changes": changes}, address=address)
    return terminal


def decommission_face_terminal(
    terminal: FaceTerminal, *, operator, via: str, address: str | None = None
) -> FaceTerminal:
    """Take a terminal out of service: its device is disabled (its row and history stay). Revoking its
    certificate is ``manage.py face_terminal ID --revoke``, which calls this too."""
    return update_face_terminal(terminal, enabled=False, operator=operator, via=via, address=address)


# --- enrolling faces at terminals ---------------------------------------------------------------


def _close_open_enrolments(terminal: FaceTerminal, status: str, error: str, now: dt.datetime | None = None) -> int:
    open_ones = FaceEnrolment.objects.filter(terminal=terminal, status__in=FaceEnrolment.OPEN)
    return open_ones.update(status=status, error=error, finished_at=now or timezone.now())


def enrolment_refusals(cardholder: Cardholder, terminal: FaceTerminal, now: dt.datetime) -> dict:
    """Why ``cardholder`` cannot be enrolled at ``terminal`` now, by field; empty when they can.

    A cardholder whose access starts later may be enrolled (new staff before their first day);
    one banned or whose access has ended may not.
    """
    errors = {}
    if cardholder.banned:
        errors["cardholder"] = "This cardholder is banned."
    elif cardholder.expiration is not None and cardholder.expiration <= now:
        errors["cardholder"] = "This cardholder's access has ended (deactivated or expired)."
    elif faces.live_consent(cardholder) is None:
        errors["cardholder"] = "This cardholder has not consented to face matching: record their consent first."
    if not terminal.device.enabled:
        errors["terminal"] = "This terminal is disabled."
    elif terminal.model_name not in faces.FACE_MODELS:
        errors["terminal"] = f"This terminal's face model {terminal.model_name!r} is unknown to Space."
    return errors


def start_face_enrolment(
    cardholder: Cardholder, terminal: FaceTerminal, *, operator, via: str, address: str | None = None
) -> FaceEnrolment:
    """Ask ``terminal`` to capture ``cardholder``'s face, within ``SPACE_FACE_ENROL_SECONDS``.

    A terminal captures one face at a time: an earlier open enrolment there is
    cancelled. The face service (devices/face/) sends the command and calls
    :func:`complete_face_enrolment` when the template arrives.
    """
    now = timezone.now()
    with transaction.atomic():
        terminal = FaceTerminal.objects.select_for_update().select_related("device").get(pk=terminal.pk)
        cardholder = Cardholder.objects.get(pk=cardholder.pk)
        errors = enrolment_refusals(cardholder, terminal, now)
        if errors:
            raise ValidationError(errors)
        replaced = _close_open_enrolments(terminal, FaceEnrolment.Status.CANCELLED, "Replaced by a newer enrolment.")
        enrolment = FaceEnrolment.objects.create(
            cardholder=cardholder,
            terminal=terminal,
            requested_by=operator if getattr(operator, "is_authenticated", False) else None,
            expires_at=now + dt.timedelta(seconds=settings.SPACE_FACE_ENROL_SECONDS),
        )
        detail = {"enrolment": enrolment.pk, "terminal": terminal.terminal_id, "replaced": replaced}
        record_operator_action(operator, "face enrolment", cardholder, via=via, detail=detail, address=address)
    return enrolment


def cancel_face_enrolment(enrolment: FaceEnrolment, *, operator, via: str, address: str | None = None) -> FaceEnrolment:
    """Stop an open enrolment; a template the terminal sends for it afterwards is refused."""
    with transaction.atomic():
        stored = FaceEnrolment.objects.select_for_update().get(pk=enrolment.pk)
        if stored.status not in FaceEnrolment.OPEN:
            raise ValidationError({"status": f"This enrolment is {stored.get_status_display().lower()} already."})
        stored.status, stored.finished_at = FaceEnrolment.Status.CANCELLED, timezone.now()
        stored.save(update_fields=["status", "finished_at"])
        detail = {"enrolment": stored.pk, "terminal": enrolment.terminal.terminal_id}
        record_operator_action(
            operator, "face enrolment cancelled", stored.cardholder, via=via, detail=detail, address=address
        )
    enrolment.status, enrolment.finished_at = stored.status, stored.finished_at
    return enrolment


def mark_face_enrolment_sent(enrolment_id: int, now: dt.datetime | None = None) -> bool:
    """The service has sent the command to the terminal: PENDING becomes SENT. False if it was no longer pending."""
    pending = FaceEnrolment.objects.filter(pk=enrolment_id, status=FaceEnrolment.Status.PENDING)
    return bool(pending.update(status=FaceEnrolment.Status.SENT, sent_at=now or timezone.now()))


def _open_enrolment_of(terminal_id: str, enrolment_id: int) -> FaceEnrolment:
    """The enrolment, locked, if it is open at the terminal ``terminal_id``; else a ValidationError."""
    enrolment = (
        FaceEnrolment.objects.select_for_update(of=("self",))
        .select_related("terminal", "cardholder", "requested_by")
        .filter(pk=enrolment_id, terminal__terminal_id=terminal_id)
        .first()
    )
    if enrolment is None:
        raise ValidationError({"enrolment": f"Terminal {terminal_id} has no enrolment #{enrolment_id}."})
    if enrolment.status not in FaceEnrolment.OPEN:
        raise ValidationError({"enrolment": f"Enrolment #{enrolment_id} is {enrolment.status}, not open."})
    return enrolment


def _finish(enrolment: FaceEnrolment, status: str, now: dt.datetime, error: str = "", template=None) -> None:
    enrolment.status, enrolment.finished_at, enrolment.error, enrolment.template = status, now, error[:200], template
    enrolment.save(update_fields=["status", "finished_at", "error", "template"])


def _error_text(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(f"{name}: {' '.join(messages)}" for name, messages in error.message_dict.items())
    return " ".join(error.messages)


def complete_face_enrolment(
    terminal_id: str, enrolment_id: int, capture: faces.Capture, now: dt.datetime | None = None
) -> FaceEnrolment:
    """The terminal ``terminal_id`` sent the capture asked for by enrolment ``enrolment_id``: store it.

    Only an open, unexpired enrolment of that very terminal takes a capture (else
    ValidationError, and an expired one is marked so). The template is stored
    through :func:`accesscontrol.faces.store_template` in the name of the operator
    who asked; a capture it refuses (no consent any more, the wrong dimension...),
    of another model than the terminal's or below its quality fails the enrolment
    with the reason, and the ValidationError is raised again.
    """
    now = now or timezone.now()
    refusal = None
    with transaction.atomic():
        enrolment = _open_enrolment_of(terminal_id, enrolment_id)
        terminal = enrolment.terminal
        if enrolment.expires_at <= now:
            _finish(enrolment, FaceEnrolment.Status.EXPIRED, now, "The capture came after the enrolment expired.")
            refusal = ValidationError({"enrolment": f"Enrolment #{enrolment_id} has expired."})
        else:
            capture = dataclasses.replace(capture, source_terminal=terminal_id)
            try:
                _check_capture(terminal, capture)
                with transaction.atomic():
                    template = faces.store_template(
                        enrolment.cardholder, capture, operator=enrolment.requested_by, via=FACE_VIA
                    )
            except ValidationError as error:
                _finish(enrolment, FaceEnrolment.Status.FAILED, now, _error_text(error))
                refusal = error
            else:
                _finish(enrolment, FaceEnrolment.Status.COMPLETED, now, template=template)
    if refusal is not None:
        raise refusal
    return enrolment


def _check_capture(terminal: FaceTerminal, capture: faces.Capture) -> None:
    if capture.model_name != terminal.model_name:
        raise ValidationError({"model": f"The terminal runs {terminal.model_name}, not {capture.model_name}."})
    quality = capture.quality
    if isinstance(quality, int | float) and quality < terminal.min_quality:
        raise ValidationError({"quality": f"Quality {quality:.2f} is below the terminal's {terminal.min_quality}."})


def fail_face_enrolment(
    terminal_id: str, enrolment_id: int, error: str, now: dt.datetime | None = None
) -> FaceEnrolment:
    """The terminal ``terminal_id`` reports it could not capture for enrolment ``enrolment_id`` (no face, not live,
    the person left): the enrolment fails with ``error``. ValidationError if it is not open there."""
    with transaction.atomic():
        enrolment = _open_enrolment_of(terminal_id, enrolment_id)
        _finish(enrolment, FaceEnrolment.Status.FAILED, now or timezone.now(), str(error) or "The terminal failed.")
    return enrolment


def expire_face_enrolments(now: dt.datetime | None = None) -> int:
    """Open enrolments past their time become EXPIRED; returns how many."""
    now = now or timezone.now()
    due = FaceEnrolment.objects.filter(status__in=FaceEnrolment.OPEN, expires_at__lte=now)
    return due.update(
        status=FaceEnrolment.Status.EXPIRED, finished_at=now, error="The terminal sent no capture in time."
    )


def open_face_enrolments(now: dt.datetime | None = None):
    """The enrolments waiting to be sent to their terminals (PENDING, not expired), oldest first, for the service."""
    pending = FaceEnrolment.objects.filter(status=FaceEnrolment.Status.PENDING, expires_at__gt=now or timezone.now())
    return pending.select_related("terminal", "cardholder").order_by("requested_at", "id")


# --- alarms --------------------------------------------------------------------------------------

ALREADY_ACKNOWLEDGED = "already_acknowledged"


def acknowledge_alarm(
    alarm: Alarm, *, operator, via: str, note: str = "", address: str | None = None, now: dt.datetime | None = None
) -> Alarm:
    """An operator has seen ``alarm``: it leaves the monitor's open alarms; an audit event says who and when.

    Acknowledging an alarm acknowledged already is refused (ValidationError with
    code ``already_acknowledged``, naming who did it): two operators answering
    the same alarm learn that one was first.
    """
    note = (note or "").strip()
    if len(note) > Alarm._meta.get_field("note").max_length:
        raise ValidationError({"note": f"A note is at most {Alarm._meta.get_field('note').max_length} characters."})
    now = now or timezone.now()
    with transaction.atomic():
        # The alarm's row alone: PostgreSQL locks none on the nullable side of an outer join.
        stored = (
            Alarm.objects.select_for_update(of=("self",))
            .select_related("access_point", "acknowledged_by")
            .get(pk=alarm.pk)
        )
        if stored.acknowledged_at is not None:
            by = stored.acknowledged_by.get_username() if stored.acknowledged_by else "someone"
            when = timezone.localtime(stored.acknowledged_at)
            raise ValidationError(
                f"This alarm was acknowledged already, by {by} at {when:%Y-%m-%d %H:%M:%S}.",
                code=ALREADY_ACKNOWLEDGED,
            )
        is_operator = operator is not None and getattr(operator, "is_authenticated", False)
        stored.acknowledged_at = now
        stored.acknowledged_by = operator if is_operator else None
        stored.note = note
        stored.save(update_fields=["acknowledged_at", "acknowledged_by", "note"])
        point = stored.access_point
        detail = {"alarm": stored.pk, "alarm_kind": stored.kind, "raised_at": stored.raised_at.isoformat()}
        if note:
            detail["note"] = note
        events.record(
            at=now,
            kind=AuditKind.ALARM_ACKNOWLEDGED,
            access_point=point,
            access_point_name=point.name if point else "",
            device_id=stored.device_id,
            operator=stored.acknowledged_by,
            detail=detail,
        )
        record_operator_action(operator, "acknowledge_alarm", stored, via=via, detail=detail, address=address)
    alarm.acknowledged_at, alarm.acknowledged_by, alarm.note = stored.acknowledged_at, stored.acknowledged_by, note
    return alarm
