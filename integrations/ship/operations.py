"""The SHIP requests Space answers, each a function of the request's Params and the operator.

The operator is the API key's: what they may see and change is what the REST API
lets them (``restrict`` and the partitions of their operator groups). Changes go
through the domain's own paths (the REST API's serializers for validation, the
actions for keys and PINs, devices.commands for door commands), so the rules
snapshot learns of them as of any other change, and each is recorded in the
system auditor with ``via="ship"``. Every refusal is a :class:`ShipError`.

The field mapping and the project's reading of each request: docs/ship-in-space.md.
"""

import datetime as dt
import logging
import types
import xml.etree.ElementTree as ET
from collections.abc import Callable

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, InterfaceError, connection, transaction
from django.db.models import Prefetch, ProtectedError
from django.utils import timezone
from rest_framework import serializers as drf

from accesscontrol import actions
from accesscontrol.api.serializers import CardholderSerializer
from accesscontrol.api.views import changes_made  # the REST API's record of an update
from accesscontrol.choices import KeyKind, KeyStatus
from accesscontrol.models import (
    AccessLevel,
    AccessPoint,
    Cardholder,
    CardholderPermission,
    Key,
    Partition,
    Room,
    TimePeriod,
    Zone,
)
from accesscontrol.permissions import may_use_partition, permission_name, restrict
from devices import carddata, commands
from devices.cards import card_bytes_for_key
from devices.models import DeviceCommand
from hotel import actions as hotel
from integrations.ship.xml import (
    ALREADY_EXISTS,
    BAD_REQUEST,
    HOTEL_ERROR,
    INTERNAL_ERROR,
    NOT_FOUND,
    PERMISSION_DENIED,
    UNKNOWN_REQUEST,
    Node,
    Request,
    ShipError,
    build_error,
    build_response,
    flag,
    parse_flag,
    parse_int,
    parse_request,
    text,
)

logger = logging.getLogger("space.ship")

VIA = "ship"
PROTOCOL_VERSION = "1.0"
MAX_COUNT = 1000  # users in one SaltoDBUserList.Read page
DEFAULT_COUNT = 100
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"

# SaltoDBUser fields and the Cardholder fields they are (flags: 0 or 1).
TEXT_FIELDS = {"Title": "title", "FirstName": "first_name", "LastName": "last_name", "PhoneNumber": "phone_number"}
FLAG_FIELDS = {
    "Office": "office",
    "AuditOpenings": "audit_openings",
    "UseADA": "extended_open_time",
    "UseAntipassback": "use_anti_passback",
    "OverrideLockdown": "override_lockdown",
    "OverridePrivacy": "override_privacy",
    "IsBanned": "banned",
    "KeyIsCancellableThroughBlacklist": "key_cancellable_through_blacklist",
}
REVALIDATION = "KeyRevalidation.UpdatePeriod"
REVALIDATION_UNIT = "KeyRevalidation.UnitOfUpdatePeriod"  # 0: days, the only unit Space keeps
EXPIRATION_ENABLED = "UserExpiration.Enabled"
DOORS, DOOR = "SaltoDB.AccessPermissionList.User_Door", "SaltoDB.AccessPermission.User_Door"
ZONES, ZONE = "SaltoDB.AccessPermissionList.User_Zone", "SaltoDB.AccessPermission.User_Zone"
GROUPS, GROUP = "SaltoDB.MembershipList.User_Group", "SaltoDB.Membership.User_Group"
# Serializer field names back to SHIP's, for error messages.
SHIP_NAMES = {
    **{field: name for name, field in {**TEXT_FIELDS, **FLAG_FIELDS}.items()},
    "ext_id": "ExtUserID",
    "activation": "UserActivation",
    "expiration": "UserExpiration",
    "key_revalidation_days": REVALIDATION,
    "pin": "PINCode",
    "partition": "ExtPartitionID",
    "access_levels": GROUPS,
}


# --- values ------------------------------------------------------------------------------------------


def format_time(value: dt.datetime | None) -> str:
    """SHIP times are the site's local time without a zone."""
    return timezone.localtime(value).strftime(DATE_FORMAT) if value else ""


def parse_time(value: str, name: str) -> dt.datetime:
    try:
        if value[11:19] == "24:00:00":  # SALTO writes the end of a day as 24:00 of it
            moment = dt.datetime.fromisoformat(value[:10]) + dt.timedelta(days=1)
        else:
            moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ShipError(BAD_REQUEST, f"{name} is a time YYYY-MM-DDThh:mm:ss, not {value[:30]!r}.") from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def _required(params: ET.Element, name: str) -> str:
    value = text(params, name)
    if not value:
        raise ShipError(BAD_REQUEST, f"{name} is required.")
    return value


def _require_permission(operator, permission: str) -> None:
    if not operator.has_perm(permission):
        raise ShipError(PERMISSION_DENIED, f"The API key's operator lacks the {permission} permission.")


def _context(operator) -> dict:
    # The REST API's serializers find the operator on the request; a SHIP request has none of its own.
    return {"request": types.SimpleNamespace(user=operator)}


# --- GetInfo -----------------------------------------------------------------------------------------


def get_info(params: ET.Element, operator, address: str | None) -> list[Node]:
    return [
        ("ProtocolID", "SHIP"),
        ("ProtocolVersion", PROTOCOL_VERSION),
        ("DateTime", format_time(timezone.now())),
        ("DefaultLanguage", "eng"),
    ]


# --- SaltoDBUserList.Read ----------------------------------------------------------------------------


def read_users(params: ET.Element, operator, address: str | None) -> list[Node]:
    """A page of users by ExtUserID, from StartingFromExtUserID (included); EOF 1 on the last page."""
    count = parse_int(text(params, "MaxCount", str(DEFAULT_COUNT)), "MaxCount", 1, MAX_COUNT)
    start = text(params, "StartingFromExtUserID")
    wanted = {
        name: parse_flag(text(params, f"Return{name}", "0"), f"Return{name}")
        for name in ("AccessPermissions_User_Door", "AccessPermissions_User_Zone", "Membership_User_Group")
    }
    holders = restrict(Cardholder.objects.filter(ext_id__isnull=False), operator, "view")
    if start:
        holders = holders.filter(ext_id__gte=start)
    page = list(
        holders.order_by("ext_id")
        .select_related("partition")
        .prefetch_related(
            "access_levels",
            Prefetch("keys", Key.objects.filter(status=KeyStatus.ISSUED, kind=KeyKind.CARD), to_attr="cards"),
            Prefetch("permissions", CardholderPermission.objects.select_related("access_point", "zone").order_by("id")),
        )[: count + 1]
    )
    users = [("SaltoDBUser", user_nodes(holder, wanted)) for holder in page[:count]]
    return [("SaltoDBUserList", users), ("EOF", flag(len(page) <= count))]


def user_nodes(holder: Cardholder, wanted: dict[str, bool]) -> list[Node]:
    key = max(holder.cards, key=lambda card: (card.issued_at, card.pk), default=None)
    nodes: list[Node] = [("ExtUserID", holder.ext_id), ("ExtPartitionID", holder.partition.name)]
    nodes += [(name, getattr(holder, field)) for name, field in TEXT_FIELDS.items()]
    nodes += [(name, flag(getattr(holder, field))) for name, field in FLAG_FIELDS.items()]
    nodes += [
        ("UserActivation", format_time(holder.activation)),
        (EXPIRATION_ENABLED, flag(holder.expiration is not None)),
        ("UserExpiration", format_time(holder.expiration)),
        (REVALIDATION, str(holder.key_revalidation_days)),
        (REVALIDATION_UNIT, "0"),
        ("PINEnabled", flag(holder.has_pin)),
        ("PINCode", ""),  # never shown
        ("CurrentKeyExists", flag(key is not None)),
        ("CurrentROMCode", key.uid if key else ""),
    ]
    permissions = holder.permissions.all()
    if wanted.get("AccessPermissions_User_Door"):
        doors = [grant for grant in permissions if grant.access_point_id and grant.access_point.ext_id]
        nodes.append((DOORS, [(DOOR, _grant_nodes(holder, "ExtDoorID", g.access_point.ext_id, g)) for g in doors]))
    if wanted.get("AccessPermissions_User_Zone"):
        zones = [grant for grant in permissions if grant.zone_id]
        nodes.append((ZONES, [(ZONE, _grant_nodes(holder, "ExtZoneID", g.zone.name, g)) for g in zones]))
    if wanted.get("Membership_User_Group"):
        levels = sorted(level.name for level in holder.access_levels.all())
        nodes.append((GROUPS, [(GROUP, [("ExtUserID", holder.ext_id), ("ExtGroupID", name)]) for name in levels]))
    return nodes


def _grant_nodes(holder, id_name: str, ext_id: str, grant: CardholderPermission) -> list[Node]:
    return [("ExtUserID", holder.ext_id), (id_name, ext_id), ("TimezoneTableID", str(grant.time_period_id or 0))]


# --- SaltoDBUser.Insert / Update / Delete ------------------------------------------------------------


def insert_user(params: ET.Element, operator, address: str | None) -> list[Node]:
    user = _user_element(params)
    ext_id = _required(user, "ExtUserID")
    _require_permission(operator, permission_name(Cardholder, "add"))
    with transaction.atomic():
        if Cardholder.objects.filter(ext_id=ext_id).exists():
            raise ShipError(ALREADY_EXISTS, f"A user with ExtUserID {ext_id!r} exists.")
        holder = _save_user(None, user, operator, address)
    return [("ExtUserID", holder.ext_id)]


def update_user(params: ET.Element, operator, address: str | None) -> list[Node]:
    user = _user_element(params)
    with transaction.atomic():
        holder = _find_user(_required(user, "ExtUserID"), operator, "change", lock=True)
        holder = _save_user(holder, user, operator, address)
    return [("ExtUserID", holder.ext_id)]


def delete_user(params: ET.Element, operator, address: str | None) -> list[Node]:
    """Delete the user; their issued keys are cancelled first, so offline locks learn of them (the blacklist)."""
    user = params.find("SaltoDBUser")
    ext_id = _required(user if user is not None else params, "ExtUserID")
    with transaction.atomic():
        holder = _find_user(ext_id, operator, "delete", lock=True)
        try:
            actions.delete_cardholder(holder, operator=operator, via=VIA, address=address)
        except ProtectedError as error:
            users = ", ".join(sorted({str(obj) for obj in error.protected_objects})[:5])
            raise ShipError(BAD_REQUEST, f"User {ext_id!r} is still in use ({users}) and cannot be deleted.") from None
    return [("ExtUserID", ext_id)]


def _user_element(params: ET.Element) -> ET.Element:
    user = params.find("SaltoDBUser")
    if user is None:
        raise ShipError(BAD_REQUEST, "A SaltoDBUser element is required.")
    return user


def _find_user(ext_id: str, operator, action: str, lock: bool = False) -> Cardholder:
    holders = Cardholder.objects.filter(ext_id=ext_id)
    reachable = restrict(holders, operator, action)
    holder = (reachable.select_for_update() if lock else reachable).first()
    if holder is not None:
        return holder
    if action != "view" and restrict(holders, operator, "view").exists():
        raise ShipError(PERMISSION_DENIED, f"The API key's operator may not {action} user {ext_id!r}.")
    raise ShipError(NOT_FOUND, f"No user has ExtUserID {ext_id!r}.")


def _save_user(holder: Cardholder | None, user: ET.Element, operator, address: str | None) -> Cardholder:
    """Create (``holder`` None) or update a cardholder from a SaltoDBUser element, within the caller's transaction."""
    data = _cardholder_data(user)
    if holder is None:
        data["ext_id"] = text(user, "ExtUserID")
    serializer = CardholderSerializer(holder, data=data, partial=holder is not None, context=_context(operator))
    if not serializer.is_valid():
        raise ShipError(BAD_REQUEST, _messages(serializer.errors))
    action = "create" if holder is None else "update"
    before = serializer.to_representation(holder) if holder is not None else {}
    pin = serializer.validated_data.pop("pin", None)
    holder = serializer.save()
    permission = permission_name(Cardholder, "add" if action == "create" else "change")
    if not may_use_partition(operator, permission, holder.partition_id):
        raise ShipError(PERMISSION_DENIED, "The API key's operator may not use this partition.")
    after = serializer.to_representation(holder)
    detail = {"fields": sorted(data)} if action == "create" else {"changes": changes_made(serializer, before, after)}
    actions.record_operator_action(operator, action, holder, via=VIA, detail=detail, address=address)
    if "pin" in data:
        actions.set_cardholder_pin(holder, pin, operator=operator, via=VIA, address=address)
    _replace_permissions(holder, user, operator, address)
    return holder


def _messages(errors: dict) -> str:
    return "; ".join(
        f"{SHIP_NAMES.get(name, name)}: {' '.join(str(message) for message in messages)}"
        for name, messages in errors.items()
    )


def _cardholder_data(user: ET.Element) -> dict:
    """The CardholderSerializer's data for the SaltoDBUser fields present in ``user``."""
    data: dict = {}
    for name, field in TEXT_FIELDS.items():
        if user.find(name) is not None:
            data[field] = text(user, name)
    for name, field in FLAG_FIELDS.items():
        if user.find(name) is not None:
            data[field] = parse_flag(text(user, name), name)
    if user.find("UserActivation") is not None:
        value = text(user, "UserActivation")
        data["activation"] = parse_time(value, "UserActivation") if value else None
    if user.find(EXPIRATION_ENABLED) is not None or user.find("UserExpiration") is not None:
        enabled = parse_flag(text(user, EXPIRATION_ENABLED, "1"), EXPIRATION_ENABLED)
        data["expiration"] = parse_time(_required(user, "UserExpiration"), "UserExpiration") if enabled else None
    if user.find(REVALIDATION) is not None:
        if text(user, REVALIDATION_UNIT, "0") != "0":
            raise ShipError(BAD_REQUEST, f"{REVALIDATION_UNIT}: Space keeps the revalidation period in days (0).")
        data["key_revalidation_days"] = parse_int(text(user, REVALIDATION), REVALIDATION, 0, 32767)
    if user.find("PINEnabled") is not None:
        enabled = parse_flag(text(user, "PINEnabled"), "PINEnabled")
        pin = text(user, "PINCode")
        if enabled and not pin:
            raise ShipError(BAD_REQUEST, "PINCode: PINEnabled 1 needs the PIN.")
        data["pin"] = pin if enabled else None
    if user.find("ExtPartitionID") is not None:
        data["partition"] = _partition(text(user, "ExtPartitionID"))
    groups = user.find(GROUPS)
    if groups is not None:
        data["access_levels"] = [_level(text(member, "ExtGroupID")) for member in groups.findall(GROUP)]
    return data


def _partition(name: str) -> int:
    partition = Partition.objects.filter(name=name).values_list("pk", flat=True).first()
    if partition is None:
        raise ShipError(NOT_FOUND, f"No partition is named {name!r} (ExtPartitionID).")
    return partition


def _level(name: str) -> int:
    # Unknown or invisible, the serializer answers alike; an unknown name is answered here, by name.
    level = AccessLevel.objects.filter(name=name).values_list("pk", flat=True).first()
    if level is None:
        raise ShipError(NOT_FOUND, f"No group (access level) is named {name!r} (ExtGroupID).")
    return level


def _replace_permissions(holder: Cardholder, user: ET.Element, operator, address: str | None) -> None:
    """The door and zone lists given replace the user's individual permissions of that kind."""
    lists = [(DOORS, DOOR, "access_point"), (ZONES, ZONE, "zone")]
    given = [(kind, user.find(name).findall(item)) for name, item, kind in lists if user.find(name) is not None]
    if not given:
        return
    for action in ("add", "delete"):
        _require_permission(operator, permission_name(CardholderPermission, action))
    for kind, items in given:
        grants = [_grant(kind, item, operator) for item in items]
        try:
            actions.set_cardholder_permissions(holder, kind, grants, operator=operator, via=VIA, address=address)
        except PermissionDenied as error:
            raise ShipError(PERMISSION_DENIED, str(error)) from None


def _grant(kind: str, item: ET.Element, operator) -> tuple:
    if kind == "access_point":
        ext_id = _required(item, "ExtDoorID")
        target = restrict(AccessPoint.objects.filter(ext_id=ext_id), operator, "view").first()
        missing = f"No door has ExtDoorID {ext_id!r}."
    else:
        name = _required(item, "ExtZoneID")
        target = restrict(Zone.objects.filter(name=name), operator, "view").first()
        missing = f"No zone is named {name!r} (ExtZoneID)."
    if target is None:
        raise ShipError(NOT_FOUND, missing)
    period_id = parse_int(text(item, "TimezoneTableID", "0"), "TimezoneTableID")
    period = None
    if period_id:
        period = restrict(TimePeriod.objects.filter(pk=period_id), operator, "view").first()
        if period is None:
            raise ShipError(NOT_FOUND, f"No time period has the id {period_id} (TimezoneTableID).")
    return target, period


# --- OnlineDoor.Open ---------------------------------------------------------------------------------


def open_doors(params: ET.Element, operator, address: str | None) -> list[Node]:
    """Open online doors at once, named by ExtDoorID (ExtDoorIDList) or by name (DoorNameList/DoorID)."""
    _require_permission(operator, permission_name(DeviceCommand, "add"))
    wanted = [("ext_id", value) for value in _texts(params, "ExtDoorIDList/ExtDoorID")]
    wanted += [("name", value) for value in _texts(params, "DoorNameList/DoorID")]
    if not wanted:
        raise ShipError(BAD_REQUEST, "Name the doors: ExtDoorIDList/ExtDoorID or DoorNameList/DoorID.")
    points = [_door(field, value, operator) for field, value in wanted]
    opened = []
    with transaction.atomic():
        for point in points:
            issued = commands.remote_open(point, operator=operator, via=VIA, address=address)
            door = [("ExtDoorID", point.ext_id or ""), ("DoorID", point.name), ("CommandsQueued", str(issued.queued))]
            opened.append(("OnlineDoor", door))
    return [("OnlineDoorList", opened)]


def _texts(params: ET.Element, path: str) -> list[str]:
    return [value for element in params.findall(path) if (value := "".join(element.itertext()).strip())]


def _door(field: str, value: str, operator) -> AccessPoint:
    doors = AccessPoint.objects.filter(**{field: value})
    point = restrict(doors, operator, "change").first()
    if point is not None:
        return point
    if restrict(doors, operator, "view").exists():
        raise ShipError(PERMISSION_DENIED, f"The API key's operator may not open door {value!r}.")
    raise ShipError(NOT_FOUND, f"No door has {'ExtDoorID' if field == 'ext_id' else 'the name'} {value!r}.")


# --- EditNewKeyBinary --------------------------------------------------------------------------------


def key_binary(params: ET.Element, operator, address: str | None) -> list[Node]:
    """The card file to write for the user's key, in hex (docs/ship-in-space.md).

    With ROMCode (a card UID) a new card key is issued to that card unless the user
    already holds it; without, the user's newest issued card key is written.
    """
    holder = _find_user(_required(params, "ExtUserID"), operator, "view")
    uid = text(params, "ROMCode")
    with transaction.atomic():
        key = _key_for(holder, uid, operator, address)
        try:
            data = card_bytes_for_key(key)
        except carddata.CardError as error:
            raise ShipError(BAD_REQUEST, f"The card data cannot be made: {error}") from None
        actions.record_operator_action(
            operator, "card_data", key, via=VIA, detail={"cardholder": holder.pk, "bytes": len(data)}, address=address
        )
    return [
        ("ExtUserID", holder.ext_id),
        ("KeyID", str(key.pk)),
        ("ROMCode", key.uid),
        ("BinaryData", data.hex().upper()),
    ]


def _key_for(holder: Cardholder, uid: str, operator, address: str | None) -> Key:
    issued = holder.keys.filter(status=KeyStatus.ISSUED, kind=KeyKind.CARD).order_by("-issued_at", "-id")
    if not uid:
        key = issued.first()
        if key is None:
            raise ShipError(NOT_FOUND, f"User {holder.ext_id!r} has no issued card key; name the card (ROMCode).")
        return key
    key = next((key for key in issued if key.uid == uid.replace(":", "").upper()), None)
    if key is not None:
        return key
    if not may_use_partition(operator, permission_name(Key, "add"), holder.partition_id):
        raise ShipError(PERMISSION_DENIED, "The API key's operator may not issue keys to this user.")
    if Key.objects.filter(uid=uid.replace(":", "").upper(), status=KeyStatus.ISSUED).exists():
        raise ShipError(ALREADY_EXISTS, f"Another user's issued key has the ROMCode {uid!r}.")
    try:
        return actions.issue_key(holder, uid, operator=operator, via=VIA, address=address)
    except ValidationError as error:
        raise ShipError(BAD_REQUEST, "; ".join(error.messages)) from None


# --- hotel: Hotel.CheckIn / Hotel.CheckOut (Space's own requests, through hotel.actions) ---------------

HOTEL_CODES = {
    hotel.UNKNOWN_ROOM: NOT_FOUND,
    hotel.UNKNOWN_ENCODER: NOT_FOUND,
    hotel.GUEST_NOT_FOUND: NOT_FOUND,
    hotel.BAD_REQUEST: BAD_REQUEST,
    hotel.ROOM_OCCUPIED: ALREADY_EXISTS,
}
KEY_TYPES = {"new": hotel.NEW, "copy": hotel.COPY, "one_shot": hotel.ONE_SHOT}


def _hotel_error(error: hotel.HotelError) -> ShipError:
    return ShipError(HOTEL_CODES.get(error.code, HOTEL_ERROR), f"{error.code}: {error}")


def _check_room(number: str, operator, permission: str) -> None:
    """As the hotel REST API: the key permission in the partition of the room's door (an unknown room: the
    operation says so)."""
    _require_permission(operator, permission)
    room = Room.objects.select_related("access_point").filter(number=number).first()
    if room is not None and not may_use_partition(operator, permission, room.access_point.partition_id):
        raise ShipError(PERMISSION_DENIED, f"The API key's operator may not change keys of room {number!r}.")


def check_in(params: ET.Element, operator, address: str | None) -> list[Node]:
    """A guest key for Room until Departure (written on Encoder when named); answers the key and its card data."""
    room = _required(params, "Room")
    _check_room(room, operator, permission_name(Key, "add"))
    kind = KEY_TYPES.get(text(params, "KeyType", "new").lower())
    if kind is None:
        raise ShipError(BAD_REQUEST, f"KeyType is one of {', '.join(KEY_TYPES)}.")
    arrival = text(params, "Arrival")
    try:
        issued = hotel.check_in(
            room=room,
            departure=parse_time(_required(params, "Departure"), "Departure"),
            encoder=text(params, "Encoder") or None,
            kind=kind,
            guest_name=text(params, "GuestName"),
            reservation=text(params, "Reservation"),
            arrival=parse_time(arrival, "Arrival") if arrival else None,
            extra_rooms=tuple(_texts(params, "ExtraRoomList/Room")),
            phone_number=text(params, "PhoneNumber"),
            operator=operator,
            via=VIA,
        )
    except hotel.HotelError as error:
        raise _hotel_error(error) from None
    return [
        ("StayID", str(issued.stay_id)),
        ("KeyID", str(issued.key_id)),
        ("ROMCode", issued.uid),
        ("RoomList", [("Room", number) for number in issued.rooms]),
        ("Departure", format_time(issued.departure)),
        ("BinaryData", issued.card_data.hex().upper()),
    ]


def check_out(params: ET.Element, operator, address: str | None) -> list[Node]:
    """End the stay in Room: its keys are cancelled (and blacklisted for offline room locks)."""
    room = _required(params, "Room")
    _check_room(room, operator, permission_name(Key, "change"))
    try:
        cancelled = hotel.check_out(room=room, reservation=text(params, "Reservation"), operator=operator, via=VIA)
    except hotel.HotelError as error:
        raise _hotel_error(error) from None
    return [("Room", room), ("KeysCancelled", str(cancelled))]


# --- dispatch ----------------------------------------------------------------------------------------

Handler = Callable[[ET.Element, object, str | None], list[Node]]

HANDLERS: dict[str, Handler] = {
    "GetInfo": get_info,
    "SaltoDBUserList.Read": read_users,
    "SaltoDBUser.Insert": insert_user,
    "SaltoDBUser.Update": update_user,
    "SaltoDBUser.Delete": delete_user,
    "OnlineDoor.Open": open_doors,
    "EditNewKeyBinary": key_binary,
    "Hotel.CheckIn": check_in,
    "Hotel.CheckOut": check_out,
}


def handle(request: Request, operator, address: str | None = None) -> bytes:
    """The answer document to ``request`` made as ``operator``: its Params, or a SHIP exception. Never raises."""
    handler = HANDLERS.get(request.name)
    try:
        if handler is None:
            raise ShipError(UNKNOWN_REQUEST, f"Unknown request {request.name[:60]!r}.")
        return build_response(request.name, handler(request.params, operator, address))
    except ShipError as error:
        return build_error(request.name, error)
    except drf.ValidationError as error:
        return build_error(request.name, ShipError(BAD_REQUEST, str(error.detail)))
    except Exception as error:
        logger.exception("SHIP request %s failed", request.name[:60])
        if isinstance(error, DatabaseError | InterfaceError) and not connection.in_atomic_block:
            connection.close()  # the next request opens a new one (as core.services.run_orm would)
        return build_error(request.name, ShipError(INTERNAL_ERROR, "The request failed; the server logged why."))


def handle_document(document: bytes, operator, address: str | None = None) -> tuple[bytes, bool]:
    """Parse and answer one request document: (the answer, whether the request was well-formed)."""
    try:
        request = parse_request(document)
    except ShipError as error:
        return build_error("", error), False
    return handle(request, operator, address), True
