"""A realistic demo site: an office building and a small hotel, with their people.

Harbour House (offices, partition "Office building") and Hotel Miramar
(partition "Hotel"): about sixty access points, time periods, a holiday
calendar for the site's time zone, automatic opening mode changes (the hotel lobby's, the main entrance's),
access levels, 300 cardholders with keys,
hotel guests in their rooms (the hotel's rooms, two suites, guest areas and a
stay per guest), and devices: control units, encoders and an updater with keys
(generated, never printed), the control units driving every online door, so a
simulator can run them; the front desk encoder has station code FD1. The same random seed gives the same site every
time. Runs once: on a database that already holds access points or
cardholders it adds nothing. The rows are written by the site generator
(simulation/sitegen.py), which every benchmark uses too; this command gives it
the demo's content.
"""

import datetime as dt
import random
from dataclasses import dataclass, field

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from accesscontrol.choices import (
    AccessPointKind,
    CardholderKind,
    Connection,
    DayType,
    Direction,
    KeyKind,
    KeyStatus,
    OpeningMode,
    StayStatus,
)
from accesscontrol.holidays import country_for_time_zone, public_holidays
from accesscontrol.models import (
    AccessLevel,
    AccessLevelEntry,
    AccessPoint,
    Calendar,
    Cardholder,
    CardholderPermission,
    GuestArea,
    Location,
    ModeChange,
    ModeSchedule,
    Partition,
    Stay,
    TimePeriod,
    Zone,
)
from accesscontrol.rulechanges import record_everything
from devices.choices import DeviceKind
from simulation import sitegen

RANDOM_SEED = 20240611
CARDHOLDER_COUNT = 300

# Space-separated: far easier to read and extend than a list of 70 quoted names.
FIRST_NAMES = (  # noqa: SIM905
    "Aisha Alba Alejandro Amelia Ana Anders Ben Bruno Camille Carlos Chloe Clara Daniel David Diego Elena Elif "
    "Emma Ethan Eva Fatima Felix Finn Freya Gabriel Grace Hannah Hugo Ines Isaac Ivan Jack James Javier Julia "
    "Kenji Lara Laura Leo Liam Lina Lucas Lucia Maja Marco Maria Mateo Mia Mohammed Nadia Noah Nora Olivia Omar "
    "Oscar Paula Pedro Priya Rafael Rosa Samuel Sara Sofia Tariq Theo Tom Valentina Victor William Yara Zoe"
).split()
LAST_NAMES = (  # noqa: SIM905
    "Andersen Baker Becker Bianchi Brown Castro Chen Clarke Costa Dubois Evans Fernandez Fischer Garcia Gomez "
    "Hansen Hughes Ivanova Jansen Jensen Jones Kaya Keller Kowalski Larsen Laurent Lopez Martin Martinez Meyer "
    "Moreau Morris Muller Nakamura Nielsen Novak Okafor Oliveira Patel Perez Petit Rossi Ruiz Sanchez Santos "
    "Schmidt Schneider Silva Singh Smith Sorensen Taylor Thomas Torres Walker Weber Williams Wilson Wright Yilmaz"
).split()

OFFICE = "Office building"
HOTEL = "Hotel"

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
WEEKEND = ("saturday", "sunday")
EVERY_DAY = (*WEEKDAYS, *WEEKEND)
EVERY_DAY_TYPE = (*EVERY_DAY, "holiday", "special1", "special2")

# Automatic opening mode changes (docs/modes.md): name -> (partition, description, access points, changes), a
# change being (local time, mode, day types...).
MODE_SCHEDULES = {
    "Hotel lobby day and night": (
        HOTEL,
        "Timed open from 07:00 (the door opens with the lobby's period), standard from 23:00, every day.",
        ["Hotel lobby entrance"],
        [("07:00", OpeningMode.TIMED, *EVERY_DAY_TYPE), ("23:00", OpeningMode.STANDARD, *EVERY_DAY_TYPE)],
    ),
    "Harbour House reception hours": (
        OFFICE,
        "Office mode while reception is staffed (not at lunch), locked at night and on holidays; half days close "
        "at 13:00; weekends standard.",
        ["Main entrance"],
        [
            ("07:30", OpeningMode.OFFICE, *WEEKDAYS, "special1"),
            ("12:00", OpeningMode.STANDARD, *WEEKDAYS),
            ("13:00", OpeningMode.OFFICE, *WEEKDAYS),
            ("13:00", OpeningMode.LOCKED, "special1"),
            ("19:00", OpeningMode.LOCKED, *WEEKDAYS),
            ("00:00", OpeningMode.STANDARD, *WEEKEND),
            ("00:00", OpeningMode.LOCKED, "holiday"),
        ],
    ),
}


@dataclass
class Door:
    name: str
    location: str
    zones: tuple[str, ...]
    kind: str = AccessPointKind.DOOR
    connection: str = Connection.OFFLINE
    opening_mode: str = OpeningMode.STANDARD
    timed_period: str | None = None
    direction: str = Direction.BOTH
    pin_required: bool = False


@dataclass
class Plan:
    """What the command made, for the summary."""

    counts: dict[str, int] = field(default_factory=dict)


def office_doors() -> list[Door]:
    hh = "Harbour House"
    doors = [
        Door(
            "Main entrance",
            f"{hh} ground floor",
            ("Harbour House perimeter",),
            connection=Connection.ONLINE,
            opening_mode=OpeningMode.OFFICE,
            timed_period="Office hours",
        ),
        Door("Reception back office", f"{hh} ground floor", ("Office floors",)),
        Door("Mail room", f"{hh} ground floor", ("Office floors",)),
        Door("Loading dock", f"{hh} ground floor", ("Harbour House perimeter",), connection=Connection.ONLINE),
        Door("Security office", f"{hh} ground floor", ("Security",), connection=Connection.ONLINE),
        Door(
            "Parking gate",
            f"{hh} basement",
            ("Harbour House perimeter", "Car park"),
            connection=Connection.ONLINE,
            direction=Direction.ENTRY,
        ),
        Door(
            "Parking exit",
            f"{hh} basement",
            ("Harbour House perimeter", "Car park"),
            connection=Connection.ONLINE,
            direction=Direction.EXIT,
        ),
        Door("Bike storage", f"{hh} basement", ("Office floors",)),
        Door(
            "Server room",
            f"{hh} basement",
            ("Technical rooms",),
            connection=Connection.ONLINE,
            pin_required=True,
        ),
        Door("Electrical room", f"{hh} basement", ("Technical rooms",)),
        Door("Plant room", f"{hh} basement", ("Technical rooms",)),
    ]
    for floor in range(1, 6):
        where = f"{hh} floor {floor}"
        doors += [
            Door(f"Floor {floor} stairwell", where, ("Office floors",)),
            Door(f"Floor {floor} wing A", where, ("Office floors",)),
            Door(f"Floor {floor} wing B", where, ("Office floors",)),
            Door(f"Floor {floor} comms room", where, ("Technical rooms",)),
        ]
    doors += [
        Door("Boardroom", f"{hh} floor 5", ("Executive floor",)),
        Door("Executive suite", f"{hh} floor 5", ("Executive floor",), connection=Connection.ONLINE),
        Door("Meeting room Harbour", f"{hh} floor 1", ("Office floors",)),
        Door("Roof access", f"{hh} floor 5", ("Technical rooms",)),
        Door("First aid room", f"{hh} ground floor", ("Office floors",)),
    ]
    return doors


def hotel_doors() -> list[Door]:
    hm = "Hotel Miramar"
    doors = [
        Door(
            "Hotel lobby entrance",
            f"{hm} ground floor",
            ("Hotel common areas",),
            connection=Connection.ONLINE,
            opening_mode=OpeningMode.TIMED,
            timed_period="Hotel lobby open",
        ),
        Door("Hotel staff entrance", f"{hm} ground floor", ("Hotel back of house",), connection=Connection.ONLINE),
        Door("Hotel gym", f"{hm} ground floor", ("Hotel common areas",)),
        Door("Hotel pool", f"{hm} ground floor", ("Hotel common areas",)),
        Door("Hotel housekeeping store", f"{hm} floor 1", ("Hotel back of house",)),
        Door("Hotel back office", f"{hm} ground floor", ("Hotel back of house",)),
        Door("Hotel luggage room", f"{hm} ground floor", ("Hotel back of house",)),
    ]
    for floor in (1, 2):
        for number in range(1, 11):
            doors.append(
                Door(f"Room {floor}{number:02d}", f"{hm} floor {floor}", ("Hotel rooms",), kind=AccessPointKind.ROOM)
            )
    return doors


# name: (partition, description, anti-passback)
# name: (partition, description, zone options: anti-passback, roll-call area, occupancy limit)
ZONES = {
    "Harbour House perimeter": (OFFICE, "Ways into the building and the car park.", {"roll_call": True}),
    "Car park": (OFFICE, "The basement car park: 40 places.", {"max_occupancy": 40, "anti_passback": True}),
    "Office floors": (OFFICE, "Office wings, stairwells and shared rooms.", {}),
    "Technical rooms": (OFFICE, "Server, electrical, plant and comms rooms.", {}),
    "Executive floor": (OFFICE, "Boardroom and executive suite.", {}),
    "Security": (OFFICE, "The security office.", {}),
    "Hotel common areas": (HOTEL, "Lobby, gym and pool.", {}),
    "Hotel back of house": (HOTEL, "Staff-only areas.", {}),
    "Hotel rooms": (HOTEL, "Guest rooms.", {}),
}

# name: (description, [(start, end, day fields...)])
TIME_PERIODS = {
    "Office hours": ("Mon-Fri 07:00-20:00; half day on special day 1.", [
        ("07:00", "20:00", *WEEKDAYS),
        ("07:00", "13:00", "special1"),
    ]),
    "Cleaning evenings": ("Mon-Fri 18:00-22:00, Saturday mornings.", [
        ("18:00", "22:00", *WEEKDAYS),
        ("08:00", "12:00", "saturday"),
    ]),
    "Night shift": ("22:00-06:00 every night, holidays included.", [
        ("22:00", "06:00", *EVERY_DAY, "holiday", "special1", "special2"),
    ]),
    "Weekends": ("All day Saturday, Sunday and holidays.", [
        ("00:00", "00:00", *WEEKEND, "holiday"),
    ]),
    "Always": ("Every day, all day.", [
        ("00:00", "00:00", *EVERY_DAY_TYPE),
    ]),
    "Hotel lobby open": ("The lobby door is open 06:00-23:00.", [
        ("06:00", "23:00", *EVERY_DAY_TYPE),
    ]),
    "Hotel shifts": ("Hotel staff, 06:00-23:30 every day.", [
        ("06:00", "23:30", *EVERY_DAY_TYPE),
    ]),
}  # fmt: skip

# name: (partition, description, [(zone or door, time period or None)])
ACCESS_LEVELS = {
    "Staff": (OFFICE, "Everyone working at Harbour House.", [
        ("Harbour House perimeter", "Office hours"),
        ("Office floors", "Office hours"),
    ]),
    "IT": (OFFICE, "IT team: technical rooms at any time.", [
        ("Harbour House perimeter", "Always"),
        ("Office floors", "Always"),
        ("Technical rooms", "Always"),
    ]),
    "Cleaning": (OFFICE, "Contract cleaners, evenings.", [
        ("Harbour House perimeter", "Cleaning evenings"),
        ("Office floors", "Cleaning evenings"),
        ("Executive floor", "Cleaning evenings"),
    ]),
    "Security": (OFFICE, "Guards: everywhere in the office building, day and night.", [
        ("Harbour House perimeter", None),
        ("Office floors", None),
        ("Technical rooms", None),
        ("Executive floor", None),
        ("Security", None),
    ]),
    "Night security": (OFFICE, "Night patrol.", [
        ("Harbour House perimeter", "Night shift"),
        ("Office floors", "Night shift"),
    ]),
    "Management": (OFFICE, "Directors.", [
        ("Harbour House perimeter", "Always"),
        ("Office floors", "Always"),
        ("Executive floor", "Office hours"),
    ]),
    "Hotel staff": (HOTEL, "Front desk, housekeeping, maintenance.", [
        ("Hotel common areas", "Hotel shifts"),
        ("Hotel back of house", "Hotel shifts"),
        ("Hotel rooms", "Hotel shifts"),
    ]),
    "Hotel guests": (HOTEL, "What every guest may use besides their room.", [
        ("Hotel lobby entrance", None),
        ("Hotel gym", "Hotel lobby open"),
        ("Hotel pool", "Hotel lobby open"),
    ]),
}  # fmt: skip

DEVICES = [
    (1001, "Harbour House control unit 1", DeviceKind.CONTROL_UNIT, "Main entrance, loading dock, parking."),
    (1002, "Harbour House control unit 2", DeviceKind.CONTROL_UNIT, "Server room, security office, executive suite."),
    (1003, "Hotel Miramar control unit", DeviceKind.CONTROL_UNIT, "Lobby and staff entrances."),
    (2001, "Reception encoder", DeviceKind.ENCODER, "Harbour House reception desk."),
    (2002, "Front desk encoder", DeviceKind.ENCODER, "Hotel Miramar front desk."),
    (3001, "Lobby updater", DeviceKind.UPDATER, "Wall reader by the Harbour House lifts."),
    (4001, "PPD 1", DeviceKind.PPD, "Portable programming device, facilities office."),
]
# Devices that talk SDP/1 get a key, so a simulator can drive them; the keys are never printed.
KEYED_KINDS = (DeviceKind.CONTROL_UNIT, DeviceKind.UPDATER, DeviceKind.ENCODER)
# Encoders a PMS names by station code (FIAS KC/WS).
STATIONS = {2002: "FD1"}
# The hotel: suites and the rooms they join, rooms with a connecting door, and the guest areas.
SUITES = {"110": ["109"], "210": ["209"]}
CONNECTING = [("101", "102"), ("201", "202")]
# name: (access point, time period)
GUEST_AREAS = {
    "LOBBY": ("Hotel lobby entrance", None),
    "GYM": ("Hotel gym", "Hotel lobby open"),
    "POOL": ("Hotel pool", "Hotel lobby open"),
}
# device id: the access points its doors 1, 2, ... drive; reader n reads for door n. Every online door is here.
DEVICE_DOORS = {
    1001: ["Main entrance", "Loading dock", "Parking gate", "Parking exit"],
    1002: ["Server room", "Security office", "Executive suite"],
    1003: ["Hotel lobby entrance", "Hotel staff entrance"],
}


class Command(BaseCommand):
    help = "Fill an empty database with a demo site: an office building and a small hotel."

    def handle(self, *args, **options):
        points, people = AccessPoint.objects.count(), Cardholder.objects.count()
        if points or people:
            self.stdout.write(
                f"The database already holds {points} access points and {people} cardholders; seed_demo adds nothing."
            )
            return
        with transaction.atomic():
            plan = Seeder(random.Random(RANDOM_SEED), timezone.now()).run()
        self.stdout.write(self.style.SUCCESS("Demo site created:"))
        for name, count in plan.counts.items():
            self.stdout.write(f"  {name:<28} {count}")


class Seeder:
    def __init__(self, rng: random.Random, now: dt.datetime):
        self.rng = rng
        self.now = now
        self.plan = Plan()
        self.used_uids: set[str] = set()

    def run(self) -> Plan:
        self.partitions = {name: Partition.objects.get_or_create(name=name)[0] for name in (OFFICE, HOTEL)}
        self.periods = self.make_time_periods()
        calendar = self.make_calendar()
        sitegen.use_calendar(calendar, site_name="Harbour House & Hotel Miramar")
        self.make_places()
        self.make_mode_schedules()
        self.levels = self.make_access_levels()
        self.make_people()
        self.make_devices()
        self.make_hotel()
        # bulk_create sends no signals: tell running rules snapshots to reload everything.
        record_everything()
        return self.plan

    # --- schedules ---

    def make_time_periods(self) -> dict[str, TimePeriod]:
        periods = sitegen.make_time_periods(TIME_PERIODS)
        self.plan.counts["time periods"] = len(periods)
        return periods

    def make_calendar(self) -> Calendar:
        tz_name = settings.TIME_ZONE
        country = country_for_time_zone(tz_name) or "common"
        calendar = Calendar.objects.create(
            name="Site holidays", description=f"Public holidays ({country}, from the time zone {tz_name})."
        )
        year = timezone.localdate(self.now).year
        days = {}
        for y in (year, year + 1):
            for date, name in public_holidays(tz_name, y):
                days.setdefault(date, (date, DayType.HOLIDAY, False, name))
            # Half days before the holidays: offices close at lunchtime (special day 1).
            for month, day, name in ((12, 24, "Christmas Eve"), (12, 31, "New Year's Eve")):
                date = dt.date(y, month, day)
                days.setdefault(date, (date, DayType.SPECIAL1, False, name))
        self.plan.counts["holidays and special days"] = sitegen.make_calendar_days(calendar, days.values())
        return calendar

    # --- places ---

    def make_places(self) -> None:
        office, hotel = self.partitions[OFFICE], self.partitions[HOTEL]
        buildings = {
            "Harbour House": (office, ["ground floor", "basement", *(f"floor {n}" for n in range(1, 6))]),
            "Hotel Miramar": (hotel, ["ground floor", "floor 1", "floor 2"]),
        }
        self.locations = {}
        for building, (partition, floors) in buildings.items():
            parent = Location.objects.create(name=building, partition=partition)
            self.locations[building] = parent
            for floor in floors:
                name = f"{building} {floor}"
                self.locations[name] = Location.objects.create(name=name, parent=parent, partition=partition)

        self.zones = {
            name: Zone.objects.create(
                name=name, partition=self.partitions[partition], description=description, **options
            )
            for name, (partition, description, options) in ZONES.items()
        }
        self.points = {}
        memberships = []
        for partition, doors in ((office, office_doors()), (hotel, hotel_doors())):
            for door in doors:
                point = AccessPoint.objects.create(
                    name=door.name,
                    partition=partition,
                    kind=door.kind,
                    connection=door.connection,
                    opening_mode=door.opening_mode,
                    timed_period=self.periods[door.timed_period] if door.timed_period else None,
                    direction=door.direction,
                    pin_required=door.pin_required,
                    location=self.locations[door.location],
                )
                self.points[door.name] = point
                memberships += [
                    AccessPoint.zones.through(accesspoint=point, zone=self.zones[zone]) for zone in door.zones
                ]
        AccessPoint.zones.through.objects.bulk_create(memberships)
        rooms = sum(1 for point in self.points.values() if point.kind == AccessPointKind.ROOM)
        self.plan.counts["locations"] = len(self.locations)
        self.plan.counts["zones"] = len(self.zones)
        self.plan.counts["access points"] = len(self.points)
        self.plan.counts["  of which hotel rooms"] = rooms

    def make_mode_schedules(self) -> None:
        changes = []
        for name, (partition, description, doors, entries) in MODE_SCHEDULES.items():
            schedule = ModeSchedule.objects.create(
                name=name, description=description, partition=self.partitions[partition]
            )
            for at, mode, *days in entries:
                changes.append(
                    ModeChange(schedule=schedule, at=dt.time.fromisoformat(at), mode=mode, **dict.fromkeys(days, True))
                )
            AccessPoint.objects.filter(name__in=doors).update(mode_schedule=schedule)
        ModeChange.objects.bulk_create(changes)
        self.plan.counts["mode schedules"] = len(MODE_SCHEDULES)

    def make_access_levels(self) -> dict[str, AccessLevel]:
        levels, entries = {}, []
        for name, (partition, description, grants) in ACCESS_LEVELS.items():
            level = AccessLevel.objects.create(name=name, partition=self.partitions[partition], description=description)
            levels[name] = level
            for target, period in grants:
                entries.append(
                    AccessLevelEntry(
                        access_level=level,
                        zone=self.zones.get(target),
                        access_point=None if target in self.zones else self.points[target],
                        time_period=self.periods[period] if period else None,
                    )
                )
        AccessLevelEntry.objects.bulk_create(entries)
        self.plan.counts["access levels"] = len(levels)
        return levels

    # --- people ---

    def new_uid(self) -> str:
        # 7-byte UIDs as on MIFARE DESFire cards: NXP's manufacturer byte 04, then six random bytes.
        while True:
            uid = "04" + "".join(f"{self.rng.randrange(256):02X}" for _ in range(6))
            if uid not in self.used_uids:
                self.used_uids.add(uid)
                return uid

    def roles(self) -> list[tuple[str, str, list[str], bool]]:
        """(kind, partition, levels, has PIN) for each cardholder who is not a hotel guest."""
        office_staff = [
            *[("IT", True)] * 12,
            *[("Security", True)] * 8,
            *[("Night security", True)] * 4,
            *[("Management", False)] * 8,
            *[("Cleaning", False)] * 20,
        ]
        roles = [(CardholderKind.STAFF, OFFICE, [level, "Staff"], pin) for level, pin in office_staff]
        roles += [(CardholderKind.STAFF, HOTEL, ["Hotel staff"], False)] * 40
        roles += [(CardholderKind.VISITOR, OFFICE, ["Staff"], False)] * 10
        guests = 12
        roles += [(CardholderKind.STAFF, OFFICE, ["Staff"], False)] * (CARDHOLDER_COUNT - guests - len(roles))
        return roles

    def make_people(self) -> None:
        rng = self.rng
        roles = self.roles()
        holders = []
        # PINs are unique on a site (a PIN alone names its cardholder at a PIN-only keypad).
        pins = iter(rng.sample(range(10000), len(roles)))
        for number, (kind, partition, _, has_pin) in enumerate(roles, start=1):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            holder = Cardholder(
                kind=kind,
                partition=self.partitions[partition],
                first_name=first,
                last_name=last,
                ext_id=f"HR-{number:04d}" if kind == CardholderKind.STAFF else f"VIS-{number:04d}",
                email=f"{first}.{last}{number}@harbourhouse.example".lower(),
                office=kind == CardholderKind.STAFF and partition == OFFICE and rng.random() < 0.05,
            )
            pin = next(pins)
            if has_pin:
                holder.set_pin(f"{pin:04d}")
            if kind == CardholderKind.VISITOR:
                # Contractors: most still here for a few weeks; some whose contract ended.
                holder.activation = self.now - dt.timedelta(days=rng.randint(30, 90))
                holder.expiration = self.now + dt.timedelta(days=rng.randint(-20, 40))
            holders.append(holder)
        for holder in holders[-5:]:
            holder.expiration = self.now - dt.timedelta(days=rng.randint(1, 60))
            holder.notes = "Left the company."
        banned = holders[-6]
        banned.banned = True
        banned.notes = "Banned after an incident; see the security log."
        holders += self.guests()
        holders = Cardholder.objects.bulk_create(holders)

        Membership = Cardholder.access_levels.through
        Membership.objects.bulk_create(
            Membership(cardholder=holder, accesslevel=self.levels[level])
            for holder, (_, _, levels, _) in zip(holders, roles, strict=False)
            for level in levels
        )
        guests = holders[len(roles) :]
        Membership.objects.bulk_create(
            Membership(cardholder=guest, accesslevel=self.levels["Hotel guests"]) for guest in guests
        )
        self.plan.counts["cardholders"] = len(holders)
        self.plan.counts["  of which hotel guests"] = len(guests)
        self.make_keys(holders)
        self.make_permissions(holders[: len(roles)], guests)

    def guests(self) -> list[Cardholder]:
        """Guests staying now, arriving soon, and one who has checked out."""
        rng = self.rng
        today = timezone.localdate(self.now)
        tz = timezone.get_current_timezone()
        guests = []
        for index, arrival_offset in enumerate([-3, -2, -2, -1, -1, 0, 0, 0, 1, 2, 5, -6]):
            arrival = today + dt.timedelta(days=arrival_offset)
            departure = arrival + dt.timedelta(days=rng.randint(2, 5))
            if index == 11:
                departure = today - dt.timedelta(days=1)
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            guests.append(
                Cardholder(
                    kind=CardholderKind.GUEST,
                    partition=self.partitions[HOTEL],
                    title=rng.choice(["Mr", "Ms", "Dr", ""]),
                    first_name=first,
                    last_name=last,
                    ext_id=f"RES-{7000 + index}",
                    activation=dt.datetime.combine(arrival, dt.time(14, 0), tz),
                    expiration=dt.datetime.combine(departure, dt.time(12, 0), tz),
                    notes=f"Room {self.guest_room(index)}",
                )
            )
        return guests

    @staticmethod
    def guest_room(index: int) -> str:
        return f"{1 + index % 2}{1 + index // 2:02d}"

    def make_keys(self, holders: list[Cardholder]) -> None:
        rng = self.rng
        keys = []
        for holder in holders:
            expired = holder.expiration is not None and holder.expiration < self.now
            kind = KeyKind.MOBILE if holder.kind == CardholderKind.STAFF and rng.random() < 0.04 else KeyKind.CARD
            status = KeyStatus.EXPIRED if expired else KeyStatus.ISSUED
            keys.append((holder.pk, self.new_uid(), kind, status, holder.activation, holder.expiration, None))
        # Lost cards: cancelled, and blacklisted until they would have expired.
        staff = [h for h in holders if h.kind == CardholderKind.STAFF and h.expiration is None]
        for holder in rng.sample(staff, 6):
            until = self.now + dt.timedelta(days=rng.randint(30, 300))
            cancelled = self.now - dt.timedelta(days=rng.randint(1, 30))
            keys.append((holder.pk, self.new_uid(), KeyKind.CARD, KeyStatus.CANCELLED, None, until, cancelled))
        self.plan.counts["keys"] = sitegen.make_keys(keys)
        self.plan.counts["  of which cancelled"] = 6

    def make_permissions(self, staff: list[Cardholder], guests: list[Cardholder]) -> None:
        rng = self.rng
        permissions = [
            CardholderPermission(cardholder=guest, access_point=self.points[f"Room {self.guest_room(index)}"])
            for index, guest in enumerate(guests)
        ]
        # A few people with a door of their own beyond their access levels.
        office_staff = [h for h in staff if h.partition == self.partitions[OFFICE] and h.kind == CardholderKind.STAFF]
        for holder in rng.sample(office_staff, 4):
            permissions.append(
                CardholderPermission(
                    cardholder=holder, access_point=self.points["Electrical room"], time_period=self.periods["Always"]
                )
            )
        for holder in rng.sample(office_staff, 6):
            permissions.append(CardholderPermission(cardholder=holder, access_point=self.points["Parking gate"]))
            permissions.append(CardholderPermission(cardholder=holder, access_point=self.points["Parking exit"]))
        CardholderPermission.objects.bulk_create(permissions)
        self.plan.counts["individual permissions"] = len(permissions)

    # --- devices ---

    def make_devices(self) -> None:
        sitegen.make_devices(
            [
                (device_id, name, kind, description, STATIONS.get(device_id), kind in KEYED_KINDS)
                for device_id, name, kind, description in DEVICES
            ],
            {device_id: [self.points[name] for name in names] for device_id, names in DEVICE_DOORS.items()},
        )
        self.plan.counts["devices"] = len(DEVICES)
        self.plan.counts["  doors driven by devices"] = sum(len(names) for names in DEVICE_DOORS.values())

    # --- the hotel ---

    def make_hotel(self) -> None:
        """Rooms for the hotel's room doors (number, floor, suites, connecting doors), the guest areas,
        and a stay for each guest: in house, or checked out for the one who has left."""
        rooms = sitegen.make_rooms(
            {
                point.name.removeprefix("Room "): point
                for point in self.points.values()
                if point.kind == AccessPointKind.ROOM
            },
            SUITES,
            CONNECTING,
        )
        for name, (point, period) in GUEST_AREAS.items():
            GuestArea.objects.create(
                name=name, access_point=self.points[point], time_period=self.periods[period] if period else None
            )
        stays = []
        for guest in Cardholder.objects.filter(kind=CardholderKind.GUEST).order_by("id"):
            gone = guest.expiration < self.now
            stays.append(
                Stay(
                    room=rooms[guest.notes.removeprefix("Room ")],
                    cardholder=guest,
                    reservation=guest.ext_id,
                    guest_name=str(guest),
                    arrival=guest.activation,
                    departure=guest.expiration,
                    status=StayStatus.OUT if gone else StayStatus.IN,
                    checked_out_at=guest.expiration if gone else None,
                )
            )
        Stay.objects.bulk_create(stays)
        self.plan.counts["hotel rooms"] = len(rooms)
        self.plan.counts["  guests in house"] = sum(stay.status == StayStatus.IN for stay in stays)
