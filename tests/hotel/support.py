"""A small hotel for tests of the hotel operations and of the interfaces that call them (REST, FIAS, ...).

:func:`make_hotel`: rooms 101 and 102 (floor 1, connecting), 201 (floor 2), suite 301 joined to 302
(floor 3), a lift zone and a gym given to every guest, and a parking area given only when named.
"""

import datetime as dt

from django.utils import timezone

from accesscontrol.choices import AccessPointKind
from accesscontrol.models import GuestArea, Room
from tests.factories import make_access_point, make_time_period, make_zone


def make_room(number: str, floor: int = 1, *, suite: bool = False, connects=()) -> Room:
    point = make_access_point(name=f"Room {number}", kind=AccessPointKind.ROOM)
    room = Room.objects.create(number=number, access_point=point, floor=floor, suite=suite)
    room.connects.set(connects)
    return room


def make_hotel() -> dict:
    rooms = {number: make_room(number, floor) for number, floor in (("101", 1), ("102", 1), ("201", 2))}
    rooms["101"].connects.add(rooms["102"])
    rooms["302"] = make_room("302", 3)
    rooms["301"] = make_room("301", 3, suite=True, connects=[rooms["302"]])
    lifts = make_zone(name="Guest lifts")
    make_access_point(name="Lift 1", zones=[lifts])
    gym = make_access_point(name="Gym")
    parking = make_access_point(name="Parking gate")
    areas = {
        "LIFTS": GuestArea.objects.create(name="LIFTS", zone=lifts),
        "GYM": GuestArea.objects.create(name="GYM", access_point=gym, time_period=make_time_period()),
        "PARKING": GuestArea.objects.create(name="PARKING", access_point=parking, default=False),
    }
    return {"rooms": rooms, "areas": areas, "lifts": lifts, "gym": gym, "parking": parking}


def days(count: float) -> dt.datetime:
    """``count`` days from now."""
    return timezone.now() + dt.timedelta(days=count)
