"""The operator web app under a large site: a data generator and the page measurements of ``manage.py bench_web``.

:func:`generate` fills an empty database with a site of realistic shape:
partitions, zones, access points, access levels, ``cardholders`` people with
names, e-mail addresses and about one key each, and ``events`` audit events
spread over the past year. The many rows go in with multi-row INSERTs (SQLite:
``executemany`` on the driver) in large transactions, not through the ORM one
by one; every column the generator does not choose gets its model default, so
fields added later need no change here.

:func:`measure` logs in an operator of all partitions with every view
permission and times the pages in-process with ``django.test.Client``: server
time p50/p95 over ``requests`` requests after ``warmups``, and the SQL queries
one request makes at ``per_page=10`` and ``per_page=100``. A page whose URL
name no view defines yet is reported as ``{"missing": true}``.
"""

import contextlib
import os
import random
import statistics
import sys
import time
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlencode

import django
from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.db.models import Count
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from accesscontrol.choices import AuditKind, CardholderKind, Decision, KeyKind, KeyStatus
from accesscontrol.models import (
    AccessLevel,
    AccessLevelEntry,
    AccessPoint,
    AuditEvent,
    Cardholder,
    CardholderPermission,
    Key,
    Location,
    Operator,
    OperatorGroup,
    Partition,
    Zone,
)

GOAL_P95_MS = 150
DAY = 86400
YEAR = 365 * DAY
ROWS_PER_STATEMENT = 500  # multi-row INSERT (PostgreSQL): 500 rows x 14 columns stays far below any parameter limit
ROWS_PER_TRANSACTION = 100_000
BULK_CACHE_KIB = 256 * 1024  # SQLite's page cache while generating
OPERATOR = "bench-web"


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
PARTITIONS = (("North building", 0.35), ("South building", 0.3), ("Hotel wing", 0.15), ("Laboratories", 0.1))
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


# --- writing many rows ---------------------------------------------------------


def _fold(text: str) -> str:
    """ASCII letters for an e-mail address: "Lefèvre" -> "lefevre", "O'Brien" -> "obrien"."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


def _timestamp_formatter():
    """Seconds since the epoch -> the database's datetime parameter, fast (a million of them are written)."""
    if connection.vendor == "sqlite":  # Django keeps naive UTC text in SQLite
        return lambda seconds: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
    return lambda seconds: time.strftime("%Y-%m-%d %H:%M:%S+00:00", time.gmtime(seconds))


def _defaults(model, chosen: list[str]) -> tuple[list[str], list]:
    """The columns of ``model`` the generator does not choose (but the pk), with their defaults as parameters."""
    now = timezone.now()
    columns, values = [], []
    for field in model._meta.concrete_fields:
        if field.primary_key or field.attname in chosen:
            continue
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value = now
        else:
            value = field.get_default()
        columns.append(field.column)
        values.append(field.get_db_prep_save(value, connection))
    return columns, values


def insert_rows(model, chosen: list[str], rows) -> int:
    """Insert ``rows`` (tuples of the ``chosen`` attnames' values) into ``model``'s table; the other columns get
    their defaults. Large transactions: the SQLite driver's executemany, PostgreSQL's COPY, else multi-row INSERTs."""
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


# --- generating -------------------------------------------------------------------


def _weights(count: int, exponent: float = 1.0) -> list[float]:
    """Zipf-like shares: a few names are common, most are rare."""
    return [1 / (rank + 1) ** exponent for rank in range(count)]


def _place(rng: random.Random, partitions: list[Partition]):
    """Locations, zones, access points and access levels in each partition."""
    points, levels = [], []
    for partition in partitions:
        short = partition.name.split()[0]
        location = Location.objects.create(name=f"{partition.name}", partition=partition)
        zones = Zone.objects.bulk_create(
            [Zone(name=f"{short} {what}", partition=partition) for what in ("perimeter", "offices", "technical")]
        )
        made = AccessPoint.objects.bulk_create(
            [
                AccessPoint(
                    name=f"{short} door {floor}.{number:02d}",
                    partition=partition,
                    location=location,
                    connection="online" if number % 3 else "offline",
                )
                for floor in range(4)
                for number in range(1, 11)
            ]
        )
        AccessPoint.zones.through.objects.bulk_create(
            [
                AccessPoint.zones.through(accesspoint_id=point.pk, zone_id=zones[i % len(zones)].pk)
                for i, point in enumerate(made)
            ]
        )
        for what in ("Staff", "Visitors", "Cleaning", "Security", "Management", "Contractors", "IT", "Facilities"):
            level = AccessLevel.objects.create(name=f"{short} {what}", partition=partition)
            AccessLevelEntry.objects.bulk_create(
                [AccessLevelEntry(access_level=level, zone=zone) for zone in rng.sample(zones, rng.randint(1, 2))]
                + [AccessLevelEntry(access_level=level, access_point=p) for p in rng.sample(made, rng.randint(2, 8))]
            )
            levels.append(level)
        points.extend(made)
    return points, levels


def generate(cardholders: int = 100_000, events: int = 1_000_000, seed: int = 1) -> dict:
    """Fill an empty database with a site of ``cardholders`` people and ``events`` audit events over a year."""
    if Cardholder.objects.exists() or AuditEvent.objects.exists():
        raise ValueError("The database already holds cardholders or audit events; generate into an empty one.")
    rng = random.Random(seed)
    started = time.perf_counter()
    with _bulk_loading():
        result = _generate(rng, cardholders, events)
    result["generate_seconds"] = round(time.perf_counter() - started, 2)
    return result


@contextlib.contextmanager
def _bulk_loading():
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


def _generate(rng: random.Random, cardholders: int, events: int) -> dict:
    stamp = _timestamp_formatter()
    now = int(time.time())
    with transaction.atomic():
        general = Partition.objects.get_or_create(name=Partition.GENERAL)[0]
        partitions = [general] + [Partition.objects.create(name=name) for name, _ in PARTITIONS]
        points, levels = _place(rng, partitions)
    partition_weights = [1 - sum(share for _, share in PARTITIONS)] + [share for _, share in PARTITIONS]

    # Cardholders: names drawn Zipf-like (so a common surname has thousands of matches), e-mail, partition, kind.
    first_weights, last_weights = _weights(len(FIRST_NAMES), 0.7), _weights(len(LAST_NAMES), 0.9)
    firsts = rng.choices(FIRST_NAMES, first_weights, k=cardholders)
    lasts = rng.choices(LAST_NAMES, last_weights, k=cardholders)
    holder_partitions = rng.choices(partitions, partition_weights, k=cardholders)
    holder_kinds = rng.choices(
        (CardholderKind.STAFF, CardholderKind.VISITOR, CardholderKind.GUEST), (85, 10, 5), k=cardholders
    )

    def holder_rows():
        for i in range(cardholders):
            first, last, kind = firsts[i], lasts[i], holder_kinds[i]
            created = stamp(now - rng.randrange(3 * YEAR))
            yield (
                holder_partitions[i].pk,
                f"EMP{i + 1:07d}" if kind == CardholderKind.STAFF else None,
                kind,
                first,
                last,
                f"{_fold(first)}.{_fold(last)}{i + 1}@example.com",
                stamp(now + rng.randrange(30 * DAY)) if kind != CardholderKind.STAFF else None,
                rng.random() < 0.005,
                created,
                created,
            )

    chosen = [
        "partition_id", "ext_id", "kind", "first_name", "last_name", "email", "expiration", "banned",
        "created_at", "updated_at",
    ]  # fmt: skip
    insert_rows(Cardholder, chosen, holder_rows())
    holders = list(
        Cardholder.objects.order_by("id").values_list("id", "first_name", "last_name", "partition_id")[:cardholders]
    )

    # About one key each (a few have none, a few a cancelled one besides), one or two access levels, a few
    # individual permissions.
    uids: list[str | None] = []

    def key_rows():
        for i, (holder_id, *_rest) in enumerate(holders):
            issued = stamp(now - rng.randrange(2 * YEAR))
            uid = f"04{(i * 2654435761) % 2**48:012X}"
            if rng.random() < 0.03:
                uids.append(None)
            else:
                uids.append(uid)
                kind = KeyKind.MOBILE if rng.random() < 0.05 else KeyKind.CARD
                yield (holder_id, uid, kind, KeyStatus.ISSUED, issued)
            if rng.random() < 0.03:
                yield (holder_id, f"05{(i * 2654435761) % 2**48:012X}", KeyKind.CARD, KeyStatus.CANCELLED, issued)

    keys = insert_rows(Key, ["cardholder_id", "uid", "kind", "status", "issued_at"], key_rows())
    levels_by_partition: dict[int, list[int]] = {}
    for level in levels:
        levels_by_partition.setdefault(level.partition_id, []).append(level.pk)
    through = Cardholder.access_levels.through
    memberships = insert_rows(
        through,
        ["cardholder_id", "accesslevel_id"],
        (
            (holder_id, level_id)
            for holder_id, _, _, partition_id in holders
            for level_id in rng.sample(levels_by_partition[partition_id], rng.choice((0, 1, 1, 1, 2, 2)))
        ),
    )
    insert_rows(
        CardholderPermission,
        ["cardholder_id", "access_point_id"],
        ((holder[0], rng.choice(points).pk) for holder in holders if rng.random() < 0.01),
    )

    # Audit events over the past year, in time order, mostly on weekdays in office hours.
    kinds, kind_weights = zip(*EVENT_KINDS, strict=True)
    reasons, reason_weights = zip(*DENIALS, strict=True)
    point_list = [(point.pk, point.name) for point in points]
    point_weights = _weights(len(point_list), 0.5)
    start = now - YEAR

    def moment() -> int:
        day = rng.randrange(365)
        if rng.random() < 0.85:
            return start + day * DAY + rng.randrange(7 * 3600, 19 * 3600)
        return start + day * DAY + rng.randrange(DAY)

    moments = sorted(moment() for _ in range(events))
    event_kinds = rng.choices(kinds, kind_weights, k=events)
    event_points = rng.choices(point_list, point_weights, k=events)

    def event_rows():
        for at, kind, (point_id, point_name) in zip(moments, event_kinds, event_points, strict=True):
            holder_id, holder_name, key_uid, reason = None, "", "", ""
            if kind in (AuditKind.ACCESS_GRANTED, AuditKind.ACCESS_DENIED):
                reason = (
                    Decision.GRANTED if kind == AuditKind.ACCESS_GRANTED else rng.choices(reasons, reason_weights)[0]
                )
                if reason == Decision.UNKNOWN_KEY:
                    key_uid = f"{rng.getrandbits(56):014X}"
                else:
                    index = rng.randrange(len(holders))
                    holder_id, first, last, _ = holders[index]
                    holder_name, key_uid = f"{first} {last}", uids[index] or ""
            yield (stamp(at), stamp(at + 1), kind, reason, point_id, point_name, holder_id, holder_name, key_uid)

    written = insert_rows(
        AuditEvent,
        [
            "at", "recorded_at", "kind", "reason", "access_point_id", "access_point_name", "cardholder_id",
            "cardholder_name", "key_uid",
        ],
        event_rows(),
    )  # fmt: skip
    return {
        "cardholders": len(holders),
        "keys": keys,
        "access_level_memberships": memberships,
        "access_points": len(points),
        "access_levels": len(levels),
        "partitions": len(partitions),
        "audit_events": written,
    }


def analyze() -> float:
    """Gather the planner's statistics (PostgreSQL's autovacuum would in time; SQLite only when asked); seconds."""
    started = time.perf_counter()
    if connection.vendor in ("sqlite", "postgresql"):
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return round(time.perf_counter() - started, 2)


# --- measuring ----------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    key: str  # the name in the JSON
    url_name: str
    query: str = ""  # the query string, without per_page
    detail: bool = False  # takes the pk of a cardholder


def pages(sample: dict) -> list[Page]:
    return [
        Page("cardholders", "cardholders"),
        Page("cardholder_search", "cardholders", urlencode({"q": sample["surname"]})),
        Page("cardholder", "cardholder", detail=True),
        Page("audit_trail", "audit_trail"),
        Page("audit_trail_filtered", "audit_trail", f"kind=access_denied&access_point={sample['access_point']}"),
    ]


def sample_objects() -> dict:
    """What the pages are asked about: the commonest surname, the busiest cardholder and access point."""
    surname = (
        Cardholder.objects.values("last_name").annotate(n=Count("id")).order_by("-n", "last_name").first() or {}
    ).get("last_name", "Smith")
    busiest = (
        AuditEvent.objects.filter(cardholder_id__isnull=False)
        .values("cardholder_id")
        .annotate(n=Count("id"))
        .order_by("-n", "cardholder_id")
        .first()
    )
    holder = busiest["cardholder_id"] if busiest else Cardholder.objects.order_by("id").values_list("id", flat=True)[0]
    point = (
        AuditEvent.objects.filter(kind=AuditKind.ACCESS_DENIED, access_point_id__isnull=False)
        .values("access_point_id")
        .annotate(n=Count("id"))
        .order_by("-n", "access_point_id")
        .first()
    )
    return {
        "surname": surname,
        "cardholder": holder,
        "access_point": point["access_point_id"] if point else AccessPoint.objects.values_list("id", flat=True)[0],
    }


def bench_operator() -> Operator:
    """An operator (not a superuser) in a group of all partitions holding every view permission."""
    operator = Operator.objects.filter(username=OPERATOR).first()
    if operator is None:
        operator = Operator.objects.create_user(OPERATOR, password=None, first_name="Bench", last_name="Operator")
        group = OperatorGroup.objects.create(name="bench_web: every view, all partitions", all_partitions=True)
        group.permissions.set(
            Permission.objects.filter(
                codename__startswith="view_", content_type__app_label__in=("accesscontrol", "devices", "integrations")
            )
        )
        group.members.add(operator)
    return operator


def _percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


class PageFailed(Exception):
    pass


def _client(operator) -> Client:
    host = next((h for h in settings.ALLOWED_HOSTS if h not in ("*",) and not h.startswith(".")), "localhost")
    client = Client(HTTP_HOST=host, secure=bool(getattr(settings, "SECURE_SSL_REDIRECT", False)))
    client.force_login(operator)
    return client


def _get(client: Client, url: str):
    response = client.get(url)
    if response.status_code != 200:
        raise PageFailed(f"GET {url} answered {response.status_code}, not 200.")
    return response


def measure_page(client: Client, url: str, requests: int, warmups: int) -> dict:
    separator = "&" if "?" in url else "?"
    counts = {}
    for size in (10, 100):
        with CaptureQueriesContext(connection) as queries:
            _get(client, f"{url}{separator}per_page={size}")
        counts[size] = len(queries)
    for _ in range(warmups):
        _get(client, url)
    times = []
    size = 0
    for _ in range(requests):
        started = time.perf_counter()
        response = _get(client, url)
        times.append((time.perf_counter() - started) * 1000)
        size = len(response.content)
    ordered = sorted(times)
    return {
        "url": url,
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(_percentile(ordered, 0.95), 1),
        "max_ms": round(ordered[-1], 1),
        "queries_per_page_10": counts[10],
        "queries_per_page_100": counts[100],
        "queries_constant": counts[10] == counts[100],
        "bytes": size,
    }


def measure(requests: int = 60, warmups: int = 5) -> dict:
    """Time each page; ``{"missing": true}`` for a page no view defines yet."""
    sample = sample_objects()
    client = _client(bench_operator())
    results = {}
    for page in pages(sample):
        try:
            path = reverse(page.url_name, args=[sample["cardholder"]] if page.detail else [])
        except NoReverseMatch:
            results[page.key] = {"missing": True}
            continue
        url = f"{path}?{page.query}" if page.query else path
        results[page.key] = measure_page(client, url, requests, warmups)
    measured = [result["p95_ms"] for result in results.values() if "p95_ms" in result]
    return {
        "requests_per_page": requests,
        "warmups": warmups,
        "sample": sample,
        "pages": results,
        "goal_p95_ms": GOAL_P95_MS,
        "all_within_goal": bool(measured) and all(p95 <= GOAL_P95_MS for p95 in measured),
        "missing_pages": [key for key, result in results.items() if result.get("missing")],
    }


def machine() -> dict:
    facts = {
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": sys.version.split()[0],
        "django": django.get_version(),
        "database": connection.vendor,
    }
    version = {"sqlite": "select sqlite_version()", "postgresql": "show server_version"}.get(connection.vendor)
    if version:
        with connection.cursor() as cursor:
            cursor.execute(version)
            facts["database_version"] = str(cursor.fetchone()[0])
    return facts
