"""The one site generator: ``seed_demo`` and every benchmark build their sites here.

:func:`generate` fills a database with a site of the shape a :class:`SiteSpec`
asks for: partitions, time periods, a holiday calendar, zones, access points
(doors, and hotel rooms with their ``Room`` rows), access levels and their
grants, cardholders with names, keys, level memberships and individual
permissions, devices (offline locks on doors, encoders at hotel stations) and
audit events spread over the past year. Every size is a parameter; the same
spec and seed give the same site. It returns a :class:`Site`: counts for a
benchmark's JSON line and the rows a command needs afterwards.

The many rows (cardholders, keys, memberships, events) go in through
:func:`insert_rows`: SQLite's ``executemany``, PostgreSQL's ``COPY``, multi-row
INSERTs elsewhere, in large transactions and not through the ORM one by one;
every column the generator does not choose gets its model default, so fields
added later need no change here.

The writers below :func:`generate` (:func:`make_time_periods`,
:func:`make_calendar_days`, :func:`make_devices`, :func:`make_rooms`, ...)
also take content given row by row: ``seed_demo`` gives them its named office
building and hotel.
"""

import contextlib
import datetime as dt
import random
import time
import unicodedata
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from accesscontrol.choices import AccessPointKind, AuditKind, CardholderKind, Connection, Decision, KeyKind, KeyStatus
from accesscontrol.models import (
    AccessLevel,
    AccessLevelEntry,
    AccessPoint,
    AuditEvent,
    Calendar,
    CalendarDay,
    Cardholder,
    CardholderPermission,
    Key,
    Location,
    Partition,
    Room,
    SiteSettings,
    TimeInterval,
    TimePeriod,
    Zone,
)
from accesscontrol.pins import DIGEST_PURPOSE, hash_pin
from accesscontrol.rulechanges import record_everything
from core import vault
from devices.choices import DeviceKind
from devices.models import Device, DeviceDoor, DeviceReader

DAY = 86400
YEAR = 365 * DAY
ROWS_PER_STATEMENT = 500  # multi-row INSERT: 500 rows x 14 columns stays far below any parameter limit
ROWS_PER_TRANSACTION = 100_000
BULK_CACHE_KIB = 256 * 1024  # SQLite's page cache while generating
BATCH = 5000  # bulk_create batches for the rows that need their primary keys back
WIDE_UID = "04FFFFFFFFFFFF"  # the key of the wide cardholder (SiteSpec.wide_cardholder)
FIRST_ROOM = 10_001

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
WEEKEND = ("saturday", "sunday")
EVERY_DAY = (*WEEKDAYS, *WEEKEND)
EVERY_DAY_TYPE = (*EVERY_DAY, "holiday", "special1", "special2")

# Generated time periods take these shapes in turn: (start hour, end hour, day fields...) per interval. Office
# hours, shifts (two crossing midnight), weekends, holidays, always open.
PERIOD_SHAPES = [
    [(8, 18, *WEEKDAYS)],
    [(7, 15, *WEEKDAYS), (9, 13, "saturday")],
    [(14, 22, *WEEKDAYS)],
    [(22, 6, *WEEKDAYS, "sunday")],
    [(20, 8, "saturday", "sunday", "holiday")],
    [(0, 0, "saturday", "sunday")],
    [(9, 14, "holiday", "special1")],
    [(6, 23, *EVERY_DAY)],
]
# A generated calendar: recurring holidays, a one-off Easter and a fortnight of special days (dates of 2025).
CALENDAR_DAYS = [
    *((dt.date(2020, m, d), "holiday", True) for m, d in ((1, 1), (1, 6), (5, 1), (8, 15), (10, 12), (11, 1))),
    *((dt.date(2020, 12, d), "holiday", True) for d in (8, 25)),
    *((dt.date(2025, 4, d), "holiday", False) for d in (17, 18)),
    *((dt.date(2025, 7, d), "special1", False) for d in range(1, 15)),
]  # fmt: skip
LEVEL_NAMES = ("Staff", "Visitors", "Cleaning", "Security", "Management", "Contractors", "IT", "Facilities")
ZONE_NAMES = ("perimeter", "offices", "technical")


def _words(text: str) -> list[str]:
    """Names separated by spaces; "_" stands for a space inside one ("de_Vries")."""
    return [word.replace("_", " ") for word in text.split()]


FIRST_NAMES = _words(
    "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara Richard Susan Joseph "
    "Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa Anthony Betty Mark Margaret Donald Sandra Steven "
    "Ashley Paul Kimberly Andrew Emily Joshua Donna Kenneth Michelle Kevin Carol Brian Amanda George Melissa Timothy "
    "Deborah Ronald Stephanie Jason Rebecca Edward Sharon Jeffrey Laura Ryan Cynthia Jacob Amy Gary Kathleen Nicholas "
    "Angela Eric Shirley Jonathan Brenda Stephen Emma Larry Anna Justin Pamela Scott Nicole Brandon Samantha Benjamin "
    "Katherine Samuel Christine Gregory Helen Alexander Debra Patrick Rachel Frank Carolyn Raymond Janet Jack Maria "
    "Dennis Olivia Jerry Heather Tyler Diane Aaron Julie José Sofía Lucía Mateo Chloé Léa Lukas Jürgen Zoë Björn "
    "Ngozi Chidi Aisha Omar Fatima Yusuf Mei Wei Hiroshi Yuki Priya Arjun Ananya Rahul Olga Dmitri Ana João Inês"
)
LAST_NAMES = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson "
    "Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis "
    "Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera "
    "Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart "
    "Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim "
    "Cox Ward Richardson Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo "
    "Sanders Patel Myers Long Ross Foster Jimenez Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz "
    "Hoffmann Dubois Durand Lefèvre Moreau Laurent Rossi Russo Ferrari Esposito Bianchi Romano Novak Kowalski Nowak "
    "Wiśniewski Jansen de_Vries van_Dijk Bakker Okafor Adeyemi Mensah Tanaka Suzuki Sato Wang Li Zhang Chen Liu "
    "Singh Kumar Sharma Ivanov Petrov Silva Santos Oliveira Pereira Costa Andersson Johansson Nielsen Hansen "
    "O'Brien Murphy-Quinn"
)
# Audit event kinds and their shares; access events carry a cardholder (granted) or a refusal reason (denied).
EVENT_KINDS = (
    (AuditKind.ACCESS_GRANTED, 0.62),
    (AuditKind.ACCESS_DENIED, 0.08),
    (AuditKind.DOOR_OPENED, 0.1),
    (AuditKind.DOOR_CLOSED, 0.1),
    (AuditKind.DOOR_LEFT_OPEN, 0.04),
    (AuditKind.DOOR_FORCED, 0.01),
    (AuditKind.REMOTE_OPEN, 0.01),
    (AuditKind.DEVICE_ONLINE, 0.01),
    (AuditKind.DEVICE_OFFLINE, 0.01),
    (AuditKind.TAMPER, 0.005),
    (AuditKind.BATTERY_LOW, 0.005),
    (AuditKind.MODE_CHANGED, 0.01),
)
DENIALS = (
    (Decision.NO_PERMISSION, 0.45),
    (Decision.OUTSIDE_SCHEDULE, 0.25),
    (Decision.UNKNOWN_KEY, 0.15),
    (Decision.EXPIRED, 0.06),
    (Decision.BLACKLISTED, 0.04),
    (Decision.WRONG_PIN, 0.03),
    (Decision.LOCKDOWN, 0.02),
)


@dataclass
class SiteSpec:
    """What to generate. Counts are totals over the site; shares are probabilities per row."""

    seed: int = 1
    # (name, share of the cardholders) of partitions besides the general one, which gets the rest. Zones,
    # access points and levels are spread evenly over all of them; a cardholder's levels come from their own.
    partitions: tuple[tuple[str, float], ...] = ()
    prefix: str = "bench"  # names: "<prefix> door 7", "<prefix> level 3", ...
    locations: bool = False  # a location per partition, holding its access points
    time_periods: int = 0
    calendar: bool = False  # the site's default calendar: holidays and special days
    zones: int = 0
    anti_passback_zone_share: float = 0.0
    access_points: int = 0
    online_share: float = 0.0
    pin_share: float = 0.0
    one_way_share: float = 0.0  # doors for entry or exit only
    zones_per_point: tuple[int, ...] = (1,)  # drawn per access point
    levels: int = 0
    entries_per_level: tuple[int, int] = (5, 20)
    entry_point_share: float = 0.7  # an entry grants an access point, else a zone
    entry_period_share: float = 0.0  # an entry has a time period (of the partition's), else any time
    cardholders: int = 0
    realistic_names: bool = False  # Zipf-drawn first and last names with e-mail addresses, else "Holder <n>"
    kinds: tuple[int, int, int] = (100, 0, 0)  # weights of staff, visitors, guests
    banned_share: float = 0.0
    expired_share: float = 0.0
    pin_share_cardholders: float = 0.0
    anti_passback_share: float = 0.0
    levels_per_cardholder: tuple[int, ...] = (1,)  # drawn per cardholder
    common_level: bool = False  # one level every cardholder holds, granting the doors with an offline lock
    permission_share: float = 0.0  # cardholders with an individual permission
    keys_per_cardholder: int = 1
    keyless_share: float = 0.0
    mobile_share: float = 0.0
    cancelled_share: float = 0.0  # cardholders with a cancelled key besides
    wide_cardholder: bool = False  # one more cardholder granted every door (half by a level, half individually)
    rooms: int = 0  # hotel rooms, numbered from FIRST_ROOM, each its own access point
    offline_locks: int = 0  # on the first access points, one each
    encoders: tuple[str, ...] = ()  # station codes, an encoder each
    device_key: bytes | None = None  # the encoders' key (None: a random one)
    first_device_id: int = 10_000
    events: int = 0  # audit events over the past year
    now: dt.datetime = field(default_factory=timezone.now)


@dataclass
class Site:
    """What :func:`generate` made."""

    partitions: list = field(default_factory=list)
    periods: list = field(default_factory=list)
    zones: list = field(default_factory=list)
    points: list = field(default_factory=list)
    levels: list = field(default_factory=list)
    rooms: list = field(default_factory=list)
    devices: list = field(default_factory=list)
    counts: dict = field(default_factory=dict)


# --- writing many rows ---------------------------------------------------------


def fold(text: str) -> str:
    """ASCII letters for an e-mail address: "Lefèvre" -> "lefevre", "O'Brien" -> "obrien"."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


def timestamp_formatter():
    """Seconds since the epoch -> the database's datetime parameter, fast (a million of them are written)."""
    if connection.vendor == "sqlite":  # Django keeps naive UTC text in SQLite
        return lambda seconds: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
    return lambda seconds: time.strftime("%Y-%m-%d %H:%M:%S+00:00", time.gmtime(seconds))


def _defaults(model, chosen: list[str]) -> tuple[list[str], list]:
    """The columns of ``model`` the generator does not choose (but the pk), with their defaults as parameters."""
    now = timezone.now()
    columns, values = [], []
    for model_field in model._meta.concrete_fields:
        if model_field.primary_key or model_field.attname in chosen:
            continue
        if getattr(model_field, "auto_now", False) or getattr(model_field, "auto_now_add", False):
            value = now
        else:
            value = model_field.get_default()
        columns.append(model_field.column)
        values.append(model_field.get_db_prep_save(value, connection))
    return columns, values


def insert_rows(model, chosen: list[str], rows) -> int:
    """Insert ``rows`` (tuples of the ``chosen`` attnames' values, as database parameters) into ``model``'s
    table; the other columns get their defaults. Large transactions: the SQLite driver's executemany,
    PostgreSQL's COPY, else multi-row INSERTs. Returns the number of rows."""
    other_columns, other_values = _defaults(model, chosen)
    columns = [model._meta.get_field(name).column for name in chosen] + other_columns
    table = connection.ops.quote_name(model._meta.db_table)
    column_list = ", ".join(connection.ops.quote_name(column) for column in columns)
    tail = tuple(other_values)
    count = 0
    batch: list[tuple] = []

    def flush():
        nonlocal count
        with transaction.atomic():
            if connection.vendor == "sqlite":
                placeholders = ", ".join("?" * len(columns))
                connection.connection.executemany(
                    f"INSERT INTO {table} ({column_list}) VALUES ({placeholders})",  # noqa: S608 (our own names)
                    [row + tail for row in batch],
                )
            elif connection.vendor == "postgresql":
                with (
                    connection.connection.cursor() as cursor,
                    cursor.copy(f"COPY {table} ({column_list}) FROM STDIN") as copy,
                ):
                    for row in batch:
                        copy.write_row(row + tail)
            else:
                row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
                with connection.cursor() as cursor:
                    for start in range(0, len(batch), ROWS_PER_STATEMENT):
                        chunk = batch[start : start + ROWS_PER_STATEMENT]
                        cursor.execute(
                            f"INSERT INTO {table} ({column_list}) VALUES " + ", ".join([row_sql] * len(chunk)),  # noqa: S608
                            [value for row in chunk for value in row + tail],
                        )
        count += len(batch)
        batch.clear()

    connection.ensure_connection()
    for row in rows:
        batch.append(row)
        if len(batch) >= ROWS_PER_TRANSACTION:
            flush()
    if batch:
        flush()
    return count


@contextlib.contextmanager
def bulk_loading():
    """SQLite: a large page cache while the indexes of a million rows are built (the default 2 MB makes every
    insert into a random spot of an index a read from disk), and no syncing to disk until done (outside a
    transaction only: SQLite refuses to change that inside one)."""
    if connection.vendor != "sqlite":
        yield
        return
    unsynced = not connection.in_atomic_block
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        cache_size = int(cursor.fetchone()[0])
        cursor.execute(f"PRAGMA cache_size = {-BULK_CACHE_KIB}")
        if unsynced:
            cursor.execute("PRAGMA synchronous = OFF")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA cache_size = {cache_size}")
            if unsynced:
                cursor.execute("PRAGMA synchronous = NORMAL")


def weights(count: int, exponent: float = 1.0) -> list[float]:
    """Zipf-like shares: a few names are common, most are rare."""
    return [1 / (rank + 1) ** exponent for rank in range(count)]


def key_uid(number: int, prefix: str = "04") -> str:
    """A 7-byte UID (NXP's manufacturer byte first), distinct for every ``number`` below 2**48: the multiplier
    is odd, so the product is a permutation modulo 2**48."""
    return f"{prefix}{(number * 2654435761) % 2**48:012X}"


# --- writers, for generated and for given content ---------------------------------


def make_time_periods(periods: dict[str, tuple[str, list[tuple]]], partition: Partition | None = None) -> dict:
    """``{name: (description, [(start, end, day fields...)])}`` (start and end "HH:MM" or hours) ->
    ``{name: TimePeriod}``."""
    made = TimePeriod.objects.bulk_create(
        [
            TimePeriod(name=name, description=description, **({"partition": partition} if partition else {}))
            for name, (description, _rows) in periods.items()
        ]
    )
    by_name = {period.name: period for period in made}

    def moment(value) -> dt.time:
        return dt.time.fromisoformat(value) if isinstance(value, str) else dt.time(value % 24)

    TimeInterval.objects.bulk_create(
        TimeInterval(time_period=by_name[name], start=moment(start), end=moment(end), **dict.fromkeys(days, True))
        for name, (_description, rows) in periods.items()
        for start, end, *days in rows
    )
    return by_name


def make_calendar_days(calendar: Calendar, days) -> int:
    """``days``: (date, day type, recurring, name) rows for ``calendar``; returns how many."""
    return len(
        CalendarDay.objects.bulk_create(
            CalendarDay(calendar=calendar, date=date, day_type=day_type, recurring=recurring, name=name)
            for date, day_type, recurring, name in days
        )
    )


def use_calendar(calendar: Calendar, site_name: str | None = None) -> None:
    site = SiteSettings.load()
    site.default_calendar = calendar
    if site_name:
        site.name = site_name
    site.save()


def make_devices(devices, doors: dict[int, list[AccessPoint]] | None = None, key: bytes | None = None) -> list:
    """``devices``: (device id, name, kind, description, station, keyed) rows; ``doors``: device id -> the access
    points its doors 1, 2, ... drive, reader n reading for door n. A keyed device gets ``key`` (None: a random one,
    never shown)."""
    made = []
    for device_id, name, kind, description, station, keyed in devices:
        device = Device(device_id=device_id, name=name, kind=kind, description=description, station=station)
        if keyed:
            device.set_key(key)
        made.append(device)
    made = Device.objects.bulk_create(made, batch_size=BATCH)
    by_id = {device.device_id: device for device in made}
    driven = [
        (by_id[device_id], number, point)
        for device_id, points in (doors or {}).items()
        for number, point in enumerate(points, start=1)
    ]
    DeviceDoor.objects.bulk_create(
        [DeviceDoor(device=device, number=number, access_point=point) for device, number, point in driven],
        batch_size=BATCH,
    )
    DeviceReader.objects.bulk_create(
        [DeviceReader(device=device, number=number, access_point=point) for device, number, point in driven
         if device.kind != DeviceKind.OFFLINE_LOCK],
        batch_size=BATCH,
    )  # fmt: skip
    return made


def make_rooms(points: dict[str, AccessPoint], suites=None, connecting=()) -> dict[str, Room]:
    """A ``Room`` for each room number's access point; ``suites``: suite -> the rooms it joins; ``connecting``:
    pairs of rooms with a door between them."""
    suites = suites or {}
    rooms = Room.objects.bulk_create(
        [
            Room(number=number, access_point=point, floor=_floor(number), suite=number in suites)
            for number, point in points.items()
        ],
        batch_size=BATCH,
    )
    by_number = {room.number: room for room in rooms}
    Joined = Room.connects.through
    pairs = [*connecting, *((suite, joined) for suite, joined_rooms in suites.items() for joined in joined_rooms)]
    Joined.objects.bulk_create(
        Joined(from_room=by_number[a], to_room=by_number[b])
        for one, other in pairs
        for a, b in ((one, other), (other, one))
    )
    return by_number


def _floor(number: str) -> int:
    # "101" is on floor 1, "10001" (generated rooms, a hundred a floor) on floor 1 + 1 // 100.
    value = int(number)
    return 1 + (value - FIRST_ROOM) // 100 if value >= FIRST_ROOM else value // 100


def make_keys(rows) -> int:
    """``rows``: (cardholder id, uid, kind, status, valid from, valid until, cancelled at) as model values."""
    return len(
        Key.objects.bulk_create(
            (
                Key(
                    cardholder_id=holder_id, uid=uid, kind=kind, status=status,
                    valid_from=valid_from, valid_until=valid_until, cancelled_at=cancelled_at,
                )
                for holder_id, uid, kind, status, valid_from, valid_until, cancelled_at in rows
            ),
            batch_size=BATCH,
        )
    )  # fmt: skip


# --- generating -------------------------------------------------------------------


def generate(spec: SiteSpec) -> Site:
    """Fill a database that holds no cardholders with the site ``spec`` describes; see the module's text."""
    if Cardholder.objects.exists():
        raise ValueError("The database already holds cardholders; generate into an empty one.")
    with bulk_loading():
        site = _Generator(spec).run()
    # Rows written in bulk send no signals: tell running rules snapshots to reload everything.
    record_everything()
    return site


class _Generator:
    def __init__(self, spec: SiteSpec):
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.site = Site()
        self.stamp = timestamp_formatter()

    def run(self) -> Site:
        spec, site = self.spec, self.site
        with transaction.atomic():
            general = Partition.objects.get_or_create(name=Partition.GENERAL)[0]
            site.partitions = [general] + [Partition.objects.create(name=name) for name, _ in spec.partitions]
            self.places()
            self.access_levels()
        if spec.cardholders or spec.wide_cardholder:
            self.cardholders()
        if spec.rooms or spec.offline_locks or spec.encoders:
            with transaction.atomic():
                self.hotel_and_devices()
        if spec.events:
            self.events()
        site.counts.update(
            partitions=len(site.partitions),
            time_periods=len(site.periods),
            zones=len(site.zones),
            access_points=len(site.points),
            access_levels=len(site.levels),
            rooms=len(site.rooms),
            devices=len(site.devices),
        )
        return site

    def _spread(self, count: int) -> list[Partition]:
        """``count`` things over the partitions, evenly, in partition order."""
        partitions = self.site.partitions if self.spec.partitions else self.site.partitions[:1]
        return [partitions[i * len(partitions) // count] for i in range(count)] if count else []

    def _short(self, partition: Partition) -> str:
        return self.spec.prefix if partition.name == Partition.GENERAL else partition.name.split()[0]

    def places(self) -> None:
        spec, site, rng = self.spec, self.site, self.rng
        shapes = {
            f"{spec.prefix} period {i}": ("", PERIOD_SHAPES[i % len(PERIOD_SHAPES)]) for i in range(spec.time_periods)
        }
        site.periods = list(make_time_periods(shapes, site.partitions[0]).values())
        if spec.calendar:
            calendar = Calendar.objects.create(name=f"{spec.prefix} calendar")
            make_calendar_days(calendar, [(date, kind, recurring, "") for date, kind, recurring in CALENDAR_DAYS])
            use_calendar(calendar)
        locations = {}
        if spec.locations:
            locations = {
                partition.pk: Location.objects.create(name=partition.name, partition=partition)
                for partition in site.partitions
            }
        zone_partitions = self._spread(spec.zones)
        site.zones = Zone.objects.bulk_create(
            [
                Zone(
                    name=f"{self._short(partition)} {ZONE_NAMES[i % 3] if spec.partitions else 'zone'} {i}",
                    partition=partition,
                    anti_passback=rng.random() < spec.anti_passback_zone_share,
                )
                for i, partition in enumerate(zone_partitions)
            ],
            batch_size=BATCH,
        )
        point_partitions = self._spread(spec.access_points)
        site.points = AccessPoint.objects.bulk_create(
            [
                AccessPoint(
                    name=f"{self._short(partition)} door {i}",
                    partition=partition,
                    location=locations.get(partition.pk),
                    connection=Connection.ONLINE if rng.random() < spec.online_share else Connection.OFFLINE,
                    pin_required=rng.random() < spec.pin_share,
                    direction=rng.choice(("entry", "exit")) if rng.random() < spec.one_way_share else "both",
                )
                for i, partition in enumerate(point_partitions)
            ],
            batch_size=BATCH,
        )
        self.zones_of = {}
        for zone in site.zones:
            self.zones_of.setdefault(zone.partition_id, []).append(zone)
        self.points_of = {}
        for point in site.points:
            self.points_of.setdefault(point.partition_id, []).append(point)
        memberships = [
            AccessPoint.zones.through(accesspoint_id=point.pk, zone_id=zone.pk)
            for point in site.points
            for zones in [self.zones_of.get(point.partition_id, [])]
            for zone in rng.sample(zones, min(len(zones), rng.choice(spec.zones_per_point)))
        ]
        AccessPoint.zones.through.objects.bulk_create(memberships, batch_size=BATCH)

    def _grant(self, partition_id: int, **owner) -> dict:
        spec, rng = self.spec, self.rng
        period = rng.choice(self.site.periods) if self.site.periods and rng.random() < spec.entry_period_share else None
        zones, points = self.zones_of.get(partition_id), self.points_of.get(partition_id) or self.site.points
        if not zones or rng.random() < spec.entry_point_share:
            return {**owner, "access_point": rng.choice(points), "time_period": period}
        return {**owner, "zone": rng.choice(zones), "time_period": period}

    def access_levels(self) -> None:
        spec, site, rng = self.spec, self.site, self.rng
        level_partitions = self._spread(spec.levels)
        site.levels = AccessLevel.objects.bulk_create(
            [
                AccessLevel(
                    name=(
                        f"{self._short(partition)} {LEVEL_NAMES[i % len(LEVEL_NAMES)]} {i}"
                        if spec.partitions
                        else f"{spec.prefix} level {i}"
                    ),
                    partition=partition,
                )
                for i, partition in enumerate(level_partitions)
            ],
            batch_size=BATCH,
        )
        if site.points:
            AccessLevelEntry.objects.bulk_create(
                [
                    AccessLevelEntry(**self._grant(level.partition_id, access_level=level))
                    for level in site.levels
                    for _ in range(rng.randint(*spec.entries_per_level))
                ],
                batch_size=BATCH,
            )
        self.common = None
        if spec.common_level:
            self.common = AccessLevel.objects.create(name=f"{spec.prefix} everyone", partition=site.partitions[0])
            AccessLevelEntry.objects.bulk_create(
                [
                    AccessLevelEntry(access_level=self.common, access_point=door)
                    for door in site.points[: spec.offline_locks]
                ]
            )

    def cardholders(self) -> None:
        spec, site, rng, stamp = self.spec, self.site, self.rng, self.stamp
        count = spec.cardholders
        now = int(spec.now.timestamp())
        if spec.realistic_names:
            firsts = rng.choices(FIRST_NAMES, weights(len(FIRST_NAMES), 0.7), k=count)
            lasts = rng.choices(LAST_NAMES, weights(len(LAST_NAMES), 0.9), k=count)
        else:
            firsts, lasts = [""] * count, [f"Holder {i}" for i in range(count)]
        shares = [1 - sum(share for _, share in spec.partitions)] + [share for _, share in spec.partitions]
        partitions = rng.choices(site.partitions, shares[: len(site.partitions)], k=count)
        kinds = rng.choices((CardholderKind.STAFF, CardholderKind.VISITOR, CardholderKind.GUEST), spec.kinds, k=count)
        pin_hash = hash_pin(vault.derive(DIGEST_PURPOSE), "1234") if spec.pin_share_cardholders else ""

        def holder_rows():
            for i in range(count):
                first, last, kind = firsts[i], lasts[i], kinds[i]
                created = stamp(now - rng.randrange(3 * YEAR))
                expiration = None
                if rng.random() < spec.expired_share:
                    expiration = stamp(now - DAY)
                elif kind != CardholderKind.STAFF:
                    expiration = stamp(now + rng.randrange(30 * DAY))
                yield (
                    partitions[i].pk,
                    f"EMP{i + 1:07d}" if kind == CardholderKind.STAFF and spec.realistic_names else None,
                    kind,
                    first,
                    last,
                    f"{fold(first)}.{fold(last)}{i + 1}@example.com" if spec.realistic_names else "",
                    expiration,
                    rng.random() < spec.banned_share,
                    pin_hash if rng.random() < spec.pin_share_cardholders else "",
                    rng.random() < spec.anti_passback_share,
                    created,
                    created,
                )

        chosen = [
            "partition_id", "ext_id", "kind", "first_name", "last_name", "email", "expiration", "banned", "pin_hash",
            "use_anti_passback", "created_at", "updated_at",
        ]  # fmt: skip
        insert_rows(Cardholder, chosen, holder_rows())
        holders = list(Cardholder.objects.order_by("id").values_list("id", "partition_id")[:count])

        def key_rows():
            number = 0
            for holder_id, _partition in holders:
                issued = stamp(now - rng.randrange(2 * YEAR))
                if rng.random() >= spec.keyless_share:
                    for _ in range(spec.keys_per_cardholder):
                        number += 1
                        kind = KeyKind.MOBILE if rng.random() < spec.mobile_share else KeyKind.CARD
                        yield (holder_id, key_uid(number), kind, KeyStatus.ISSUED, issued)
                if rng.random() < spec.cancelled_share:
                    number += 1
                    yield (holder_id, key_uid(number, "05"), KeyKind.CARD, KeyStatus.CANCELLED, issued)

        keys = insert_rows(Key, ["cardholder_id", "uid", "kind", "status", "issued_at"], key_rows())
        levels_of: dict[int, list[int]] = {}
        for level in site.levels:
            levels_of.setdefault(level.partition_id, []).append(level.pk)

        def membership_rows():
            for holder_id, partition_id in holders:
                own = levels_of.get(partition_id, [])
                for level_id in rng.sample(own, min(len(own), rng.choice(spec.levels_per_cardholder))):
                    yield (holder_id, level_id)
                if self.common is not None:
                    yield (holder_id, self.common.pk)

        memberships = insert_rows(
            Cardholder.access_levels.through, ["cardholder_id", "accesslevel_id"], membership_rows()
        )
        permissions = 0
        if site.points:
            permissions = len(
                CardholderPermission.objects.bulk_create(
                    [
                        CardholderPermission(**self._grant(partition_id, cardholder_id=holder_id))
                        for holder_id, partition_id in holders
                        if rng.random() < spec.permission_share
                    ],
                    batch_size=BATCH,
                )
            )
        self.holders = holders
        if spec.wide_cardholder:
            self.wide()
        site.counts.update(
            cardholders=len(holders), keys=keys, access_level_memberships=memberships, permissions=permissions
        )

    def wide(self) -> None:
        """A cardholder granted every door, each at the times of a period in turn: half through a level of their
        own, half individually (the largest card a site writes)."""
        spec, site = self.spec, self.site
        partition = site.partitions[0]
        periods = site.periods or [None]
        wide = Cardholder.objects.create(last_name="Wide", first_name="Many-Doors", partition=partition)
        level = AccessLevel.objects.create(name=f"{spec.prefix} wide", partition=partition)
        half = len(site.points) // 2
        AccessLevelEntry.objects.bulk_create(
            AccessLevelEntry(access_level=level, access_point=door, time_period=periods[i % len(periods)])
            for i, door in enumerate(site.points[:half])
        )
        CardholderPermission.objects.bulk_create(
            CardholderPermission(cardholder=wide, access_point=door, time_period=periods[i % len(periods)])
            for i, door in enumerate(site.points[half:])
        )
        wide.access_levels.add(level)
        Key.objects.create(cardholder=wide, uid=WIDE_UID)

    def hotel_and_devices(self) -> None:
        spec, site = self.spec, self.site
        partition = site.partitions[0]
        numbers = [str(FIRST_ROOM + i) for i in range(spec.rooms)]
        doors = AccessPoint.objects.bulk_create(
            [AccessPoint(name=f"Room {number}", kind=AccessPointKind.ROOM, partition=partition) for number in numbers],
            batch_size=BATCH,
        )
        site.rooms = list(make_rooms(dict(zip(numbers, doors, strict=True))).values())
        device_id = spec.first_device_id
        locks, lock_doors = [], {}
        for i, door in enumerate(site.points[: spec.offline_locks]):
            locks.append((device_id, f"{spec.prefix} lock {i}", DeviceKind.OFFLINE_LOCK, "", None, False))
            lock_doors[device_id] = [door]
            device_id += 1
        site.devices = make_devices(locks, lock_doors)
        encoders = []
        for station in spec.encoders:
            encoders.append((device_id, f"Encoder {station}", DeviceKind.ENCODER, "", station, True))
            device_id += 1
        site.devices += make_devices(encoders, key=spec.device_key)

    def events(self) -> None:
        """Audit events over the past year, in time order, mostly on weekdays in office hours."""
        spec, rng, stamp = self.spec, self.rng, self.stamp
        count, now = spec.events, int(spec.now.timestamp())
        holders = list(
            Cardholder.objects.order_by("id").values_list("id", "first_name", "last_name")[: max(1, spec.cardholders)]
        )
        issued = dict(Key.objects.filter(status=KeyStatus.ISSUED).values_list("cardholder_id", "uid"))
        kinds, kind_weights = zip(*EVENT_KINDS, strict=True)
        reasons, reason_weights = zip(*DENIALS, strict=True)
        point_list = [(point.pk, point.name) for point in self.site.points]
        point_weights = weights(len(point_list), 0.5)
        start = now - YEAR

        def moment() -> int:
            day = rng.randrange(365)
            if rng.random() < 0.85:
                return start + day * DAY + rng.randrange(7 * 3600, 19 * 3600)
            return start + day * DAY + rng.randrange(DAY)

        moments = sorted(moment() for _ in range(count))
        event_kinds = rng.choices(kinds, kind_weights, k=count)
        event_points = rng.choices(point_list, point_weights, k=count)

        def event_rows():
            for at, kind, (point_id, point_name) in zip(moments, event_kinds, event_points, strict=True):
                holder_id, holder_name, uid, reason = None, "", "", ""
                if kind in (AuditKind.ACCESS_GRANTED, AuditKind.ACCESS_DENIED):
                    reason = (
                        Decision.GRANTED
                        if kind == AuditKind.ACCESS_GRANTED
                        else rng.choices(reasons, reason_weights)[0]
                    )
                    if reason == Decision.UNKNOWN_KEY or not holders:
                        uid = f"{rng.getrandbits(56):014X}"
                    else:
                        holder_id, first, last = holders[rng.randrange(len(holders))]
                        holder_name, uid = f"{first} {last}".strip(), issued.get(holder_id, "")
                yield (stamp(at), stamp(at + 1), kind, reason, point_id, point_name, holder_id, holder_name, uid)

        self.site.counts["audit_events"] = insert_rows(
            AuditEvent,
            [
                "at", "recorded_at", "kind", "reason", "access_point_id", "access_point_name", "cardholder_id",
                "cardholder_name", "key_uid",
            ],
            event_rows(),
        )  # fmt: skip
