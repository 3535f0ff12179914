"""The front desk: the hotel's rooms by floor with who is in them, and check-in, copy key, move, new
departure and check-out from a room.

Every action calls hotel.actions (``via="web"``), the same operations the
PMS interfaces call, so a check-in at the desk is a check-in from FIAS. A key
is written on the desk's encoder, chosen once per browser session (an encoder
with a station code, as the operations name encoders); the operation only
queues the encode job (``wait=False``) and the room's page follows it with the
encode-job panel, so no request waits for a card. An encoder writes one card at
a time: the further keys asked for at check-in are written one after the other
from the room's page. A HotelError is shown on the form it came from.

Who may do what: the page needs ``view_key``; check-in and copy ``add_key``,
move, new departure and check-out ``change_key``, each in the room's partition
(its door's).
"""

import dataclasses
import datetime as dt
from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views import View
from django.views.generic import TemplateView

from accesscontrol.choices import StayStatus
from accesscontrol.models import GuestArea, Room, Stay
from accesscontrol.permissions import ALL, allowed_partitions, may_use_partition
from accesscontrol.views.base import VIA, OperatorPage
from accesscontrol.views.keys import back
from devices import encoding, locks
from devices.choices import DeviceKind
from devices.models import Device
from hotel import actions as hotel
from hotel.forms import CheckInForm, DepartureForm, MoveForm

SESSION_ENCODER = "front_desk_encoder"
SESSION_PENDING = "front_desk_pending_keys"  # stay id -> keys asked for at check-in, not yet written

FREE = "free"
RESERVED = "reserved"  # checked in ahead: the guest's key opens from the arrival
OCCUPIED = "occupied"
DUE_OUT = "due_out"
OVERDUE = "overdue"
STATES = {
    FREE: "Free",
    RESERVED: "Arriving",
    OCCUPIED: "Occupied",
    DUE_OUT: "Checking out today",
    OVERDUE: "Departed, not checked out",
}


# --- what the grid shows ---------------------------------------------------------------------------------


@dataclass
class Tile:
    room: Room
    stay: Stay | None
    state: str
    connects: list[str]  # numbers of the rooms it connects to (its suite's, for a suite)
    lock_reasons: list[str] = dataclasses.field(default_factory=list)  # why its offline lock needs a PPD visit

    @property
    def state_label(self) -> str:
        return STATES[self.state]


def occupancy(stay: Stay | None, now: dt.datetime) -> str:
    if stay is None:
        return FREE
    if stay.departure <= now:
        return OVERDUE
    if stay.arrival > now:
        return RESERVED
    if timezone.localdate(stay.departure) == timezone.localdate(now):
        return DUE_OUT
    return OCCUPIED


def visible_rooms(operator):
    """Rooms whose door is in a partition where ``operator`` may see keys."""
    rooms = Room.objects.all()
    partitions = allowed_partitions(operator, "accesscontrol.view_key")
    return rooms if partitions is ALL else rooms.filter(access_point__partition__in=partitions)


def stays_by_room() -> dict[int, Stay]:
    """Every stay in house by the id of each of its rooms (hotel.actions.in_house): two queries."""
    stays = Stay.objects.select_related("room").only("id", "room__number", "guest_name", "arrival", "departure")
    return hotel.in_house(stays.prefetch_related(Prefetch("extra_rooms", Room.objects.only("id"))))


def tiles(rooms, now: dt.datetime) -> list[Tile]:
    """Each room with its stay in house (its own, or the one it is an extra room of): five queries for any count."""
    by_room = stays_by_room()
    rooms = rooms.select_related("access_point").prefetch_related(
        Prefetch("connects", Room.objects.only("id", "number"), to_attr="connected")
    )
    result = []
    for room in rooms:
        stay = by_room.get(room.pk)
        result.append(Tile(room, stay, occupancy(stay, now), [other.number for other in room.connected]))
    return result


def with_lock_reasons(room_tiles: list[Tile], now: dt.datetime) -> None:
    """Mark the tiles whose door's offline lock needs a PPD visit (devices.locks: a fixed number of queries)."""
    points = {tile.room.access_point_id: tile for tile in room_tiles}
    devices = locks.offline_locks().filter(doors__access_point__in=points).distinct().defer("key_sealed")
    point_of = locks.access_point_ids(list(devices))
    for report in locks.lock_reports(devices, now):
        tile = points.get(point_of.get(report.device.pk))
        if tile is not None:
            tile.lock_reasons = [locks.REASON_TEXT[reason] for reason in report.reasons]


def free_rooms(operator) -> list[str]:
    """Numbers of the rooms the operator may see with nobody in them (neither a stay's room nor an extra room)."""
    taken = stays_by_room()
    rooms = visible_rooms(operator).order_by("floor", "number").values_list("pk", "number")
    return [number for pk, number in rooms if pk not in taken]


def desk_encoders():
    """The encoders a desk may write guest keys on: Ethernet encoders (as hotel.actions writes them),
    enabled, with a station code (how the hotel operations name them)."""
    return Device.objects.filter(kind=DeviceKind.ENCODER, enabled=True, station__isnull=False).order_by("name")


def desk_encoder(request) -> Device | None:
    pk = request.session.get(SESSION_ENCODER)
    return desk_encoders().filter(pk=pk).first() if pk else None


# --- the grid ------------------------------------------------------------------------------------------


class FrontDeskView(OperatorPage, TemplateView):
    permission_required = "accesscontrol.view_key"
    page_title = "Front desk"
    template_name = "accesscontrol/front_desk/grid.html"

    def get_template_names(self):
        if self.request.headers.get("HX-Target") == "room-grid":
            return ["accesscontrol/front_desk/_grid.html"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        query = self.request.GET
        rooms = visible_rooms(self.request.user)
        floors = list(rooms.order_by("floor").values_list("floor", flat=True).distinct())
        floor = query.get("floor", "")
        if floor.lstrip("-").isdigit() and len(floor) <= 5:  # a floor is a small integer: anything else is no filter
            rooms = rooms.filter(floor=int(floor)) if abs(int(floor)) < 2**15 else rooms.none()
        now = timezone.now()
        all_tiles = tiles(rooms.order_by("floor", "number"), now)
        if self.request.user.has_perm("devices.view_device"):
            with_lock_reasons(all_tiles, now)
        state = query.get("state", "")
        shown = [tile for tile in all_tiles if tile.state == state] if state in STATES else all_tiles
        by_floor: dict[int, list[Tile]] = {}
        for tile in shown:
            by_floor.setdefault(tile.room.floor, []).append(tile)
        counts = {key: 0 for key in STATES}
        for tile in all_tiles:
            counts[tile.state] += 1
        context.update(
            by_floor=sorted(by_floor.items()),
            floors=floors,
            states=list(STATES.items()),
            counts=[(key, STATES[key], counts[key]) for key in STATES],
            encoders=desk_encoders(),
            encoder=desk_encoder(self.request),
            filtered=bool(floor or state),
            now=now,
        )
        return context


class DeskEncoderView(OperatorPage, View):
    """The desk's encoder for the rest of this browser session."""

    permission_required = "accesscontrol.view_key"

    def post(self, request):
        value = request.POST.get("encoder", "")
        encoder = desk_encoders().filter(pk=int(value)).first() if value.isdigit() and len(value) < 12 else None
        if encoder is None:
            request.session.pop(SESSION_ENCODER, None)
            messages.info(request, "No encoder chosen: keys cannot be written at this desk.")
        else:
            request.session[SESSION_ENCODER] = encoder.pk
            messages.success(request, f"Keys are written on {encoder.name}.")
        return back(request, reverse("front_desk"))


# --- a room ------------------------------------------------------------------------------------------------


def room_for(request, pk, permission: str = "accesscontrol.view_key") -> Room:
    """The room ``pk`` if the operator may see it (else 404) and holds ``permission`` in its partition (else 403)."""
    room = get_object_or_404(visible_rooms(request.user).select_related("access_point"), pk=pk)
    if not may_use_partition(request.user, permission, room.access_point.partition_id):
        raise PermissionDenied("You may not do this in this room.")
    return room


def stay_of(room: Room) -> Stay | None:
    """The stay in house in ``room``, its own or the one it is an extra room of."""
    stays = Stay.objects.filter(status=StayStatus.IN).select_related("room", "cardholder")
    return stays.filter(room=room).first() or stays.filter(extra_rooms=room).first()


def suite_rooms(room: Room, operator) -> list[str]:
    """The free rooms ``room`` connects to: what a check-in may add (a suite gives them all by itself)."""
    if room.suite:
        return []
    connected = set(room.connects.values_list("number", flat=True))
    return [number for number in free_rooms(operator) if number in connected]


def guest_areas():
    return list(GuestArea.objects.order_by("name"))


def show_room(request, room: Room, status: int = 200, error: str = "", **forms):
    """The room's page; an action that failed shows it again with its bound form or its error."""
    operator, partition = request.user, room.access_point.partition_id
    stay = stay_of(room)
    state = occupancy(stay, timezone.now())
    may = {
        "add_key": may_use_partition(operator, "accesscontrol.add_key", partition),
        "change_key": may_use_partition(operator, "accesscontrol.change_key", partition),
    }
    context = {
        "page_title": str(room),
        "room": room,
        "stay": stay,
        "state": STATES[state],
        "state_key": state,
        "may": may,
        "encoder": desk_encoder(request),
        "encoders": desk_encoders(),
        "error": error,
        "connects": list(room.connects.order_by("number").values_list("number", flat=True)),
    }
    if stay is None:
        context["check_in_form"] = forms.get("check_in_form") or CheckInForm(
            suite_rooms=suite_rooms(room, operator), areas=guest_areas()
        )
    else:
        context["encode_jobs"] = encoding.recent_jobs(stay.cardholder)
        context["pending_keys"] = pending_keys(request, stay)
        context["departure_form"] = forms.get("departure_form") or DepartureForm(
            initial={
                "departure_date": timezone.localdate(stay.departure),
                "departure_time": timezone.localtime(stay.departure).strftime("%H:%M"),
            }
        )
        context["move_form"] = forms.get("move_form") or MoveForm(free_rooms=free_rooms(operator))
    return render(request, "accesscontrol/front_desk/room.html", context, status=status)


class RoomView(OperatorPage, View):
    permission_required = "accesscontrol.view_key"

    def get(self, request, pk):
        return show_room(request, room_for(request, pk))


class RoomAction(OperatorPage, View):
    """A POST that changes a room's stay through hotel.actions, then goes back to the room's page."""

    permission_required = "accesscontrol.change_key"

    def post(self, request, pk):
        room = room_for(request, pk, self.permission_required)
        try:
            return self.act(request, room) or redirect("front_desk_room", pk=room.pk)
        except hotel.HotelError as error:
            return self.refused(request, room, error)

    def refused(self, request, room, error):
        return show_room(request, room, status=400, error=str(error))


def desk_station(request, what: str) -> str:
    """The station code of the desk's encoder, or a HotelError asking to choose one."""
    encoder = desk_encoder(request)
    if encoder is None:
        raise hotel.HotelError(hotel.UNKNOWN_ENCODER, f"Choose the desk's encoder before {what}.")
    return encoder.station


def pending_keys(request, stay: Stay) -> int:
    """Keys still to write for ``stay`` (asked for at check-in; an encoder writes one card at a time)."""
    return request.session.get(SESSION_PENDING, {}).get(str(stay.pk), 0)


def set_pending_keys(request, stay_id: int, count: int) -> None:
    pending = dict(request.session.get(SESSION_PENDING, {}))
    if count > 0:
        pending[str(stay_id)] = count
    else:
        pending.pop(str(stay_id), None)
    request.session[SESSION_PENDING] = pending


class CheckInView(RoomAction):
    """Check in with the first key written on the desk's encoder; further keys are written one after the other
    from the room's page (the encoder takes one card at a time)."""

    permission_required = "accesscontrol.add_key"

    def form(self, request, room):
        return CheckInForm(request.POST, suite_rooms=suite_rooms(room, request.user), areas=guest_areas())

    def act(self, request, room):
        form = self.form(request, room)
        if not form.is_valid():
            return show_room(request, room, status=400, check_in_form=form)
        if stay_of(room) is not None:
            raise hotel.HotelError(hotel.ROOM_OCCUPIED, f"{room} is occupied: check its guest out first.")
        data = form.cleaned_data
        areas = data.get("common_areas")
        issued = hotel.check_in(
            room=room.number,
            departure=data["departure"],
            encoder=desk_station(request, "checking in"),
            kind=hotel.NEW,
            guest_name=data["guest_name"],
            extra_rooms=tuple(data.get("extra_rooms") or ()),
            common_areas=None if areas is None else tuple(areas),
            operator=request.user,
            via=VIA,
            wait=False,
        )
        set_pending_keys(request, issued.stay_id, data["keys"] - 1)
        messages.success(request, f"{data['guest_name']} checked in to {room}: present a card to the encoder.")
        return None

    def refused(self, request, room, error):
        if stay_of(room) is not None:  # the form is not on the page of an occupied room
            return super().refused(request, room, error)
        form = self.form(request, room)
        form.is_valid()
        form.add_error(None, str(error))
        return show_room(request, room, status=400, check_in_form=form)


class CopyKeyView(RoomAction):
    """One more key for the room's guest (or the next of those asked for at check-in)."""

    permission_required = "accesscontrol.add_key"

    def act(self, request, room):
        stay = stay_of(room)
        if stay is None:
            raise hotel.HotelError(hotel.GUEST_NOT_FOUND, f"Nobody is checked in to {room}.")
        hotel.check_in(
            room=stay.room.number,
            departure=stay.departure,
            encoder=desk_station(request, "writing a copy"),
            kind=hotel.COPY,
            guest_name=stay.guest_name,
            operator=request.user,
            via=VIA,
            wait=False,
        )
        set_pending_keys(request, stay.pk, pending_keys(request, stay) - 1)
        messages.success(request, f"A copy key for {stay.guest_name or 'the guest'}: present a card to the encoder.")
        return None


class MoveView(RoomAction):
    def act(self, request, room):
        form = MoveForm(request.POST, free_rooms=free_rooms(request.user))
        if not form.is_valid():
            return show_room(request, room, status=400, move_form=form)
        target = form.cleaned_data["new_room"]
        hotel.modify(room=room.number, new_room=target, operator=request.user, via=VIA)
        moved = Room.objects.get(number=target)
        messages.success(
            request,
            f"Moved from {room} to {moved}: write a new key, or the guest's key is updated at the next updater.",
        )
        return redirect("front_desk_room", pk=moved.pk)


class DepartureView(RoomAction):
    def act(self, request, room):
        form = DepartureForm(request.POST)
        if not form.is_valid():
            return show_room(request, room, status=400, departure_form=form)
        departure = form.cleaned_data["departure"]
        hotel.modify(room=room.number, departure=departure, operator=request.user, via=VIA)
        local = timezone.localtime(departure).strftime("%Y-%m-%d %H:%M")
        messages.success(request, f"{room}: the departure is now {local}.")
        return None


class CheckOutView(RoomAction):
    def act(self, request, room):
        stay = stay_of(room)
        number = stay.room.number if stay else room.number
        cancelled = hotel.check_out(room=number, operator=request.user, via=VIA)
        keys = "1 key" if cancelled == 1 else f"{cancelled} keys"
        messages.success(request, f"Room {number} checked out: {keys} cancelled and blacklisted.")
        return redirect("front_desk")
