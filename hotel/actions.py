"""Hotel operations: what the front desk, the PMS interfaces (FIAS, Industry Standard, SHIP) and the REST
API all call, so a check-in is the same whoever asks for it.

The names and signatures of check_in, check_out, modify and read_key are the
contract the connectors code against (issue 7). Every operation is one
transaction (a key for an encoder is committed before the encoder can take it,
and cancelled in a second one when the encoder fails), recorded in the system
auditor with ``via`` = the interface's name, and raises :class:`HotelError`
with a ``code`` the connectors map to their protocol's negative answer; nothing
else escapes for bad input. docs/hotel.md says what each does, the one-shot
keys' reading, and the staff keys.
"""

import datetime as dt
import secrets
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accesscontrol import actions, rulechanges
from accesscontrol.choices import CardholderKind, KeyKind, KeyStatus, StayStatus
from accesscontrol.models import (
    Cardholder,
    CardholderPermission,
    GuestArea,
    Key,
    Room,
    Stay,
    TimeInterval,
    TimePeriod,
    Zone,
    normalize_uid,
)
from devices import carddata, cards, encoding, jobwake
from devices.carddata import CardError
from devices.choices import DeviceKind, EncodeStatus
from devices.models import Device, EncodeJob

# HotelError codes.
UNKNOWN_ROOM = "unknown_room"
UNKNOWN_ENCODER = "unknown_encoder"
ENCODER_BUSY = "encoder_busy"
ENCODER_OFFLINE = "encoder_offline"
NO_CARD = "no_card"
WRONG_CARD = "wrong_card_type"
ENCODE_FAILED = "encode_failed"
TIMEOUT = "timeout"
GUEST_NOT_FOUND = "guest_not_found"  # no stay in the room (or not the reservation named)
ROOM_OCCUPIED = "room_occupied"  # a move into a room where another stay is
BAD_REQUEST = "bad_request"  # a departure in the past, too many rooms, ...
CODES = (
    UNKNOWN_ROOM,
    UNKNOWN_ENCODER,
    ENCODER_BUSY,
    ENCODER_OFFLINE,
    NO_CARD,
    WRONG_CARD,
    ENCODE_FAILED,
    TIMEOUT,
    GUEST_NOT_FOUND,
    ROOM_OCCUPIED,
    BAD_REQUEST,
)

# Key request kinds.
NEW = "new"  # a new guest key: cancels the stay's earlier keys
COPY = "copy"  # one more key for the same stay
ONE_SHOT = "one_shot"  # opens once (e.g. for a visitor), then is refused


class HotelError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class KeyIssued:
    """A guest key issued (and, with an encoder, written): what the PMS answers carry."""

    stay_id: int
    key_id: int
    uid: str
    rooms: tuple[str, ...]
    departure: dt.datetime
    card_data: bytes = b""  # the card file written (FIAS RT4 returns it in $3)
    job_id: int | None = None


@dataclass(frozen=True)
class KeyRead:
    """What a card placed on an encoder says (FIAS KZ, Industry Standard LT)."""

    uid: str
    rooms: tuple[str, ...] = ()
    guest_name: str = ""
    reservation: str = ""
    departure: dt.datetime | None = None
    valid: bool = False
    extra: dict = field(default_factory=dict)


# --- how it is done ------------------------------------------------------------------------------------
#
# A stay's guest is a cardholder of its own (kind guest, expiring at departure) whose individual
# permissions are the stay's rooms and guest areas: the cheapest correct choice, since the card data
# and the decision engine already compile individual permissions (devices.cards.card_grants) and a
# move or check-out changes one cardholder's rows only.

MAX_ROOMS = 8  # rooms in one stay (the room, its suite and extra rooms)
# A one-shot key (a visitor's) opens the stay's rooms for this long, never past departure. The card
# carries no "opens once" flag: offline locks keep no memory of which keys they let in, so a short
# validity window is the honest way to make such a key stop opening (docs/hotel.md).
ONE_SHOT_VALIDITY = dt.timedelta(minutes=15)
POLL_SECONDS = 0.05
KINDS = (NEW, COPY, ONE_SHOT)
# An encode job's error (devices.encoding) as a HotelError code; any other is ENCODE_FAILED.
JOB_ERRORS = {
    encoding.NO_CARD: NO_CARD,
    encoding.WRONG_CARD_TYPE: WRONG_CARD,
    encoding.ENCODER_OFFLINE: ENCODER_OFFLINE,
    encoding.TIMEOUT: TIMEOUT,
}


def check_in(
    *,
    room: str,
    departure: dt.datetime,
    encoder: str | None,
    kind: str = NEW,
    guest_name: str = "",
    reservation: str = "",
    arrival: dt.datetime | None = None,
    extra_rooms: tuple[str, ...] = (),
    common_areas: tuple[str, ...] | None = None,  # None: the site's default guest areas
    phone_number: str = "",  # a mobile key instead of a card (Industry Standard CNM/CCM)
    operator=None,
    via: str,
    wait_seconds: float = 30.0,
    wait: bool = True,
) -> KeyIssued:
    """Issue a guest key for ``room`` (and ``extra_rooms``) valid until ``departure``; with ``encoder`` (its
    station code, as the PMS names it) write it and wait up to ``wait_seconds`` for the encoder.
    ``wait=False`` returns once the encode job is queued (the front desk follows it on its page).

    ``NEW`` starts the stay (or, for the room's stay of the same reservation, cancels its earlier keys;
    a stay of another reservation still in the room is checked out first: the PMS's new guest wins).
    ``COPY`` and ``ONE_SHOT`` add a key to the room's stay (GUEST_NOT_FOUND without one). Without an
    encoder, or with a phone number (a mobile key), the key is only issued.
    """
    now = timezone.now()
    if kind not in KINDS:
        raise HotelError(BAD_REQUEST, f"Unknown key kind {kind!r}: one of {', '.join(KINDS)}.")
    _check_departure(departure, now)
    if arrival is not None and arrival >= departure:
        raise HotelError(BAD_REQUEST, "The arrival must come before the departure.")
    with transaction.atomic():
        main = _room(room)
        extras = [_room(number) for number in dict.fromkeys(extra_rooms) if number != room]
        device = _encoder(encoder) if encoder and not phone_number else None
        areas = _areas(common_areas)
        stay = _stay_in(main, reservation if kind != NEW else "")
        if kind == NEW:
            if stay is not None and stay.room_id != main.pk:
                raise HotelError(ROOM_OCCUPIED, f"Room {room} is part of the stay in room {stay.room.number}.")
            if stay is not None and reservation and stay.reservation and stay.reservation != reservation:
                _end_stay(stay, now, operator=operator, via=via)
                stay = None
            stay = _begin(stay, main, extras, areas, departure, arrival, guest_name, reservation, now, operator, via)
        elif stay is None:
            raise HotelError(GUEST_NOT_FOUND, f"No guest is checked in to room {room}.")
        elif departure != stay.departure:
            _set_departure(stay, departure)
        if phone_number and stay.cardholder.phone_number != phone_number:
            stay.cardholder.phone_number = phone_number[:32]
            stay.cardholder.save(update_fields=["phone_number", "updated_at"])
        key, job = _issue(stay, kind, device, phone_number, now, operator, via)
        actions.record_operator_action(
            operator,
            "check_in",
            stay,
            via=via,
            detail={"kind": kind, "key": key.pk, "rooms": stay_rooms(stay), "job": job.pk if job else None},
        )
    card_data = b""
    if job is not None and wait:
        job = _wait(job, key, wait_seconds, operator=operator, via=via)
        key.refresh_from_db()
        card_data = bytes(job.data)
    return KeyIssued(
        stay_id=stay.pk,
        key_id=key.pk,
        uid=key.uid,
        rooms=tuple(stay_rooms(stay)),
        departure=stay.departure,
        card_data=card_data,
        job_id=job.pk if job else None,
    )


def check_out(*, room: str, reservation: str = "", operator=None, via: str) -> int:
    """End the stay in ``room``: its keys are cancelled (blacklisted for offline room locks). Returns how many."""
    with transaction.atomic():
        stay = _required_stay(_room(room), reservation)
        cancelled = _end_stay(stay, timezone.now(), operator=operator, via=via)
    return cancelled


def modify(
    *,
    room: str,
    new_room: str = "",
    departure: dt.datetime | None = None,
    reservation: str = "",
    guest_name: str = "",
    operator=None,
    via: str,
) -> int:
    """Room move and/or new departure for the stay in ``room``; its keys follow (rewritten at the next
    updater or desk). Returns the stay id."""
    now = timezone.now()
    if departure is not None:
        _check_departure(departure, now)
    with transaction.atomic():
        current = _room(room)
        stay = _required_stay(current, reservation)
        changes = {}
        if new_room and new_room != room:
            target = _room(new_room)
            other = _stay_in(target)
            if other is not None and other.pk != stay.pk:
                raise HotelError(ROOM_OCCUPIED, f"Room {new_room} is occupied.")
            if other is None:
                _move(stay, current, target)
                changes["room"] = {"from": room, "to": new_room}
        if departure is not None and departure != stay.departure:
            changes["departure"] = {"from": stay.departure.isoformat(), "to": departure.isoformat()}
            _set_departure(stay, departure)
        if guest_name and guest_name != stay.guest_name:
            changes["guest_name"] = {"from": stay.guest_name, "to": guest_name}
            stay.guest_name = guest_name[:200]
            stay.save(update_fields=["guest_name"])
        if "room" in changes:
            _grant(stay)
            _rewrite_keys(stay)
        actions.record_operator_action(operator, "modify_stay", stay, via=via, detail={"changes": changes})
    return stay.pk


def read_key(*, encoder: str, via: str, wait_seconds: float = 30.0, operator=None) -> KeyRead:
    """Read the card placed on ``encoder``."""
    with transaction.atomic():
        device = _encoder(encoder)
        try:
            job = encoding.create_read_job(device, operator, via=via)
        except ValidationError as error:
            raise HotelError(UNKNOWN_ENCODER, " ".join(error.messages)) from None
        actions.record_operator_action(operator, "read_key", job, via=via, detail={"job": job.pk, "encoder": device.pk})
    job = _finished(job, wait_seconds)
    return describe_card(job.card_uid, bytes(job.data), timezone.now())


def describe_card(uid: str, raw: bytes, now: dt.datetime) -> KeyRead:
    """What the card ``uid`` with data ``raw`` says, authenticated with the site card key.

    ``valid``: a card of this site whose key is issued, is this card's, and has not expired.
    ``extra`` says why not (``reason``: ``blank``, a carddata error reason, ``unknown_key``,
    ``cancelled``, ``expired``, ``other_card``) and names the key (``key_id``, ``revision``).
    """
    if not raw:
        return KeyRead(uid=uid, extra={"reason": "blank"})
    site, card_key = cards.site_card_key()
    try:
        card = carddata.decode(raw, card_key, site)
    except CardError as error:
        return KeyRead(uid=uid, extra={"reason": error.reason})
    points = [grant.id for grant in card.grants if grant.kind == carddata.POINT]
    rooms = tuple(Room.objects.filter(access_point__in=points).values_list("number", flat=True))
    key = Key.objects.filter(pk=card.key_id).first()
    stay = Stay.objects.filter(cardholder_id=card.cardholder_id).first()
    departure = dt.datetime.fromtimestamp(card.valid_until, dt.UTC) if card.valid_until is not None else None
    extra = {"key_id": card.key_id, "revision": card.revision, "cardholder_id": card.cardholder_id}
    if key is None:
        extra["reason"] = "unknown_key"
    elif key.status == KeyStatus.CANCELLED:
        extra["reason"] = "cancelled"
    elif key.uid != card.uid or card.uid != normalize_uid(uid):
        extra["reason"] = "other_card"
    elif key.status == KeyStatus.EXPIRED or (departure is not None and departure <= now):
        extra["reason"] = "expired"
    if stay is not None:
        extra["stay_id"] = stay.pk
    return KeyRead(
        uid=uid,
        rooms=rooms,
        guest_name=stay.guest_name if stay else "",
        reservation=stay.reservation if stay else "",
        departure=departure,
        valid="reason" not in extra,
        extra=extra,
    )


# --- staff keys ----------------------------------------------------------------------------------------

# Housekeeping shifts, local time, every day: the night shift crosses midnight.
SHIFTS = {"morning": ("06:00", "14:00"), "evening": ("14:00", "22:00"), "night": ("22:00", "06:00")}
FLOOR_ZONE = "Hotel floor {floor} rooms"
SHIFT_PERIOD = "Hotel shift {shift}"


def floor_zone(floor: int) -> Zone:
    """The zone of the rooms on ``floor`` (made on first use; its rooms brought up to date on every call)."""
    zone, _ = Zone.objects.get_or_create(
        name=FLOOR_ZONE.format(floor=floor), defaults={"description": "Every room on the floor: staff keys."}
    )
    points = Room.objects.filter(floor=floor).values_list("access_point_id", flat=True)
    zone.access_points.set(list(points))
    return zone


def shift_period(shift: str) -> TimePeriod:
    """The time period of housekeeping ``shift`` (made on first use)."""
    start, end = SHIFTS[shift]
    period, created = TimePeriod.objects.get_or_create(
        name=SHIFT_PERIOD.format(shift=shift), defaults={"description": f"Housekeeping {shift} shift."}
    )
    if created:
        every_day = dict.fromkeys((*TimeInterval.DAY_FIELDS, *TimeInterval.DAY_TYPE_FIELDS.values()), True)
        TimeInterval.objects.create(
            time_period=period, start=dt.time.fromisoformat(start), end=dt.time.fromisoformat(end), **every_day
        )
    return period


def staff_access(cardholder: Cardholder, *, floors, shift: str, operator=None, via: str) -> list[CardholderPermission]:
    """Give a staff member (housekeeping) the rooms of ``floors`` during ``shift`` ("morning" 06-14, "evening"
    14-22, "night" 22-06), in place of the floors and shift given before. Their keys are rewritten at the next
    updater. Raises HotelError(BAD_REQUEST) for an unknown shift or a floor without rooms."""
    if shift not in SHIFTS:
        raise HotelError(BAD_REQUEST, f"Unknown shift {shift!r}: one of {', '.join(SHIFTS)}.")
    floors = sorted({int(floor) for floor in floors})
    empty = sorted(set(floors) - set(Room.objects.filter(floor__in=floors).values_list("floor", flat=True)))
    if empty:
        raise HotelError(BAD_REQUEST, f"No rooms on floor {', '.join(map(str, empty))}.")
    with transaction.atomic():
        period = shift_period(shift)
        zones = [floor_zone(floor) for floor in floors]
        earlier = CardholderPermission.objects.filter(cardholder=cardholder, zone__name__startswith="Hotel floor ")
        earlier.delete()
        grants = CardholderPermission.objects.bulk_create(
            CardholderPermission(cardholder=cardholder, zone=zone, time_period=period) for zone in zones
        )
        rulechanges.record_rule_changes("cardholder", [cardholder.pk])
        for key in cardholder.keys.select_for_update().filter(status=KeyStatus.ISSUED):
            key.revision += 1
            key.save(update_fields=["revision"])
        actions.record_operator_action(
            operator, "staff_access", cardholder, via=via, detail={"floors": floors, "shift": shift}
        )
    return grants


# --- rooms and stays ---------------------------------------------------------------------------------


def stay_rooms(stay: Stay) -> list[str]:
    """The numbers of the stay's rooms: its room first, then its extra rooms."""
    return [stay.room.number, *sorted(stay.extra_rooms.values_list("number", flat=True))]


def in_house(stays=None) -> dict[int, Stay]:
    """The stays in house by the id of each of their rooms (its room and extra rooms): the room grid's
    occupancy. ``stays``: a Stay queryset to take them from (prefetching its extra rooms), all by default."""
    stays = Stay.objects.prefetch_related("extra_rooms") if stays is None else stays
    by_room = {}
    for stay in stays.filter(status=StayStatus.IN):
        by_room[stay.room_id] = stay
        for extra in stay.extra_rooms.all():
            by_room[extra.pk] = stay
    return by_room


def _room(number: str) -> Room:
    """The room, locked until the operation's transaction ends: two operations on one room take turns."""
    rooms = Room.objects.select_for_update(of=("self",)).select_related("access_point")
    room = rooms.filter(number=str(number).strip()).first()
    if room is None:
        raise HotelError(UNKNOWN_ROOM, f"There is no room {number}.")
    return room


def _stay_in(room: Room, reservation: str = "") -> Stay | None:
    """The stay in house in ``room`` (as its room or an extra room), locked; of ``reservation`` if named."""
    as_extra = Stay.extra_rooms.through.objects.filter(room=room).values("stay_id")
    stays = Stay.objects.select_for_update().filter(Q(room=room) | Q(pk__in=as_extra), status=StayStatus.IN)
    stay = stays.select_related("room", "cardholder").first()
    if stay is not None and reservation and stay.reservation != reservation:
        return None
    return stay


def _required_stay(room: Room, reservation: str) -> Stay:
    stay = _stay_in(room, reservation)
    if stay is None:
        named = f" under reservation {reservation}" if reservation else ""
        raise HotelError(GUEST_NOT_FOUND, f"No guest is checked in to room {room.number}{named}.")
    return stay


def _check_departure(departure: dt.datetime, now: dt.datetime) -> None:
    if departure is None or timezone.is_naive(departure):
        raise HotelError(BAD_REQUEST, "The departure is a date and time with its time zone.")
    if departure <= now:
        raise HotelError(BAD_REQUEST, "The departure must be in the future.")


def _areas(names: tuple[str, ...] | None) -> list[GuestArea]:
    if names is None:
        return list(GuestArea.objects.filter(default=True))
    wanted = list(dict.fromkeys(str(name).strip() for name in names if str(name).strip()))
    areas = list(GuestArea.objects.filter(name__in=wanted))
    missing = sorted(set(wanted) - {area.name for area in areas})
    if missing:
        raise HotelError(BAD_REQUEST, f"Unknown guest areas: {', '.join(missing)}.")
    return areas


def _with_suites(rooms: list[Room]) -> list[Room]:
    """``rooms`` and, for each suite among them, the rooms it connects to."""
    wanted = {room.pk: room for room in rooms}
    suites = [room.pk for room in rooms if room.suite]
    for joined in Room.objects.filter(connects__in=suites).select_related("access_point").distinct():
        wanted.setdefault(joined.pk, joined)
    return list(wanted.values())


def _begin(stay, main, extras, areas, departure, arrival, guest_name, reservation, now, operator, via) -> Stay:
    """The stay a NEW key is for: a new one, or ``stay`` with its earlier keys cancelled; rooms and rights set."""
    rooms = _with_suites([main, *extras])
    extra = [room for room in rooms if room.pk != main.pk]
    if len(rooms) > MAX_ROOMS:
        raise HotelError(BAD_REQUEST, f"A stay has at most {MAX_ROOMS} rooms.")
    for room in extra:
        other = _stay_in(room)
        if other is not None and (stay is None or other.pk != stay.pk):
            raise HotelError(ROOM_OCCUPIED, f"Room {room.number} is occupied.")
    if stay is None:
        holder = Cardholder.objects.create(
            kind=CardholderKind.GUEST,
            last_name=(guest_name or f"Guest of room {main.number}")[:100],
            expiration=departure,
            partition_id=main.access_point.partition_id,
        )
        stay = Stay.objects.create(
            room=main,
            cardholder=holder,
            reservation=reservation[:32],
            guest_name=guest_name[:200],
            arrival=arrival or now,
            departure=departure,
        )
    else:
        for key in stay.cardholder.keys.filter(status=KeyStatus.ISSUED):
            _cancel(key, operator=operator, via=via)
        stay.guest_name = guest_name[:200] or stay.guest_name
        stay.reservation = reservation[:32] or stay.reservation
        stay.save(update_fields=["guest_name", "reservation"])
        if departure != stay.departure:
            _set_departure(stay, departure)
    stay.extra_rooms.set(extra)
    stay.areas.set(areas)
    _grant(stay)
    return stay


def _grant(stay: Stay) -> None:
    """The guest's permissions: the stay's rooms at any time, and its guest areas at their periods."""
    holder = stay.cardholder
    CardholderPermission.objects.filter(cardholder=holder).delete()
    rooms = [stay.room, *stay.extra_rooms.all()]
    grants = [CardholderPermission(cardholder=holder, access_point_id=room.access_point_id) for room in rooms]
    grants += [
        CardholderPermission(
            cardholder=holder, access_point_id=area.access_point_id, zone_id=area.zone_id, time_period=area.time_period
        )
        for area in stay.areas.all()
    ]
    CardholderPermission.objects.bulk_create(grants)
    rulechanges.record_rule_changes("cardholder", [holder.pk])


def _move(stay: Stay, current: Room, target: Room) -> None:
    if stay.room_id == current.pk:
        stay.room = target
        stay.save(update_fields=["room"])
    else:
        stay.extra_rooms.remove(current)
        stay.extra_rooms.add(target)


def _set_departure(stay: Stay, departure: dt.datetime) -> None:
    """The stay ends at ``departure``; so do the guest and its keys (a one-shot key keeps an earlier end)."""
    old = stay.departure
    stay.departure = departure
    stay.save(update_fields=["departure"])
    holder = stay.cardholder
    holder.expiration = departure
    holder.save(update_fields=["expiration", "updated_at"])
    for key in holder.keys.select_for_update().filter(status=KeyStatus.ISSUED):
        if key.valid_until is None or key.valid_until >= old or key.valid_until > departure:
            key.valid_until = departure
        key.revision += 1
        key.save(update_fields=["valid_until", "revision"])


def _rewrite_keys(stay: Stay) -> None:
    """The keys' card data changes: a new revision, which updaters and desks write on the card."""
    for key in stay.cardholder.keys.select_for_update().filter(status=KeyStatus.ISSUED):
        key.revision += 1
        key.save(update_fields=["revision"])


def _end_stay(stay: Stay, now: dt.datetime, *, operator, via: str) -> int:
    keys = list(stay.cardholder.keys.filter(status=KeyStatus.ISSUED))
    for key in keys:
        _cancel(key, operator=operator, via=via)
    stay.status = StayStatus.OUT
    stay.checked_out_at = now
    stay.save(update_fields=["status", "checked_out_at"])
    actions.record_operator_action(
        operator, "check_out", stay, via=via, detail={"keys_cancelled": len(keys), "rooms": stay_rooms(stay)}
    )
    return len(keys)


# --- keys ----------------------------------------------------------------------------------------------


def _encoder(station: str) -> Device:
    """The encoder with station code ``station``, able to take a job now (locked against a second job)."""
    device = Device.objects.select_for_update().filter(station=str(station).strip()).first()
    if device is None or device.kind not in encoding.ENCODER_KINDS:
        raise HotelError(UNKNOWN_ENCODER, f"There is no encoder {station}.")
    try:
        encoding.check_encoder(device)
    except ValidationError as error:
        raise HotelError(UNKNOWN_ENCODER, " ".join(error.messages)) from None
    if device.kind == DeviceKind.USB_ENCODER:
        raise HotelError(UNKNOWN_ENCODER, f"{device} is a USB encoder: guest keys are written on Ethernet encoders.")
    if not device.online:
        raise HotelError(ENCODER_OFFLINE, f"The encoder {station} is offline.")
    if EncodeJob.objects.filter(encoder=device).exclude(status__in=EncodeStatus.finished()).exists():
        raise HotelError(ENCODER_BUSY, f"The encoder {station} is busy with another card.")
    return device


def _issue(stay: Stay, kind: str, device: Device | None, phone_number: str, now, operator, via):
    """The new key of the stay (and its encode job when written on ``device``)."""
    valid_from = stay.arrival if stay.arrival > now else None
    valid_until = stay.departure
    if kind == ONE_SHOT:
        valid_until = min(valid_until, max(now, valid_from or now) + ONE_SHOT_VALIDITY)
    fields = {"valid_from": valid_from, "valid_until": valid_until}
    holder = stay.cardholder
    if phone_number:
        uid = secrets.token_hex(16).upper()
        return actions.issue_key(holder, uid, operator=operator, via=via, kind=KeyKind.MOBILE, **fields), None
    if device is None:
        return actions.issue_key(holder, encoding.placeholder_uid(), operator=operator, via=via, **fields), None
    try:
        return encoding.issue_and_encode(holder, device, operator=operator, via=via, **fields)
    except ValidationError as error:
        raise HotelError(ENCODE_FAILED, " ".join(error.messages)) from None


def _cancel(key: Key, *, operator, via: str) -> None:
    """Cancel ``key``; one never written on a card (still on a placeholder UID) needs no blacklist entry."""
    if not encoding.is_placeholder(key.uid):
        actions.cancel_key(key, operator=operator, via=via)
        return
    Key.objects.filter(pk=key.pk).update(status=KeyStatus.CANCELLED, cancelled_at=timezone.now())
    rulechanges.record_rule_changes("key", [key.pk])
    actions.record_operator_action(operator, "cancel_key", key, via=via, detail={"cardholder": key.cardholder_id})


def _wait(job: EncodeJob, key: Key, wait_seconds: float, *, operator, via: str) -> EncodeJob:
    """The key's job once done; a job failed or not done in time cancels its key (and raises HotelError)."""
    try:
        return _finished(job, wait_seconds)
    except HotelError:
        with transaction.atomic():
            key.refresh_from_db()
            _cancel(key, operator=operator, via=via)
        raise


def _finished(job: EncodeJob, wait_seconds: float) -> EncodeJob:
    """The job once done, looked at until ``wait_seconds`` have passed; HotelError when it failed or is late."""
    deadline = time.monotonic() + max(0.0, wait_seconds)
    while True:
        seen = jobwake.generation()
        job.refresh_from_db(fields=["status", "error", "data", "card_uid", "progress"])
        if job.status == EncodeStatus.DONE:
            return job
        if job.status == EncodeStatus.FAILED or time.monotonic() >= deadline:
            break
        # Woken when a bridge of this process finished a job; the timeout finds one another process finished.
        jobwake.wait_finished(seen, min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    if job.status != EncodeStatus.FAILED:
        # Too late for the caller: the job ends here, and a report from the encoder after it is ignored.
        encoding.job_progress(job.pk, EncodeStatus.FAILED, error=encoding.TIMEOUT)
        job.refresh_from_db(fields=["status", "error", "data", "card_uid"])
        if job.status == EncodeStatus.DONE:
            return job
    raise HotelError(JOB_ERRORS.get(job.error, ENCODE_FAILED), encoding.error_message(job.error))


def check_out_time() -> dt.time:
    """The hotel's check-out time (``SPACE_HOTEL_CHECK_OUT_TIME``): a departure date's time when none is given."""
    text = settings.SPACE_HOTEL_CHECK_OUT_TIME
    try:
        return dt.time.fromisoformat(text)
    except ValueError as exc:
        raise ImproperlyConfigured(f"SPACE_HOTEL_CHECK_OUT_TIME is a time HH:MM, not {text!r}") from exc
