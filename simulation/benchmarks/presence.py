"""The roll-call pages with a crowd inside: the measurement behind ``manage.py bench_presence``.

:func:`measure_roll_call` puts ``people`` cardholders inside one roll-call area (bulk-created, as passages
would have left them: entered over the past twelve hours through one of four doors), logs in an operator
who may muster every partition, and times in-process with ``django.test.Client``:

- ``roll_call``: the list of areas with their live counts (``/roll-call/``);
- ``area``: the first page of one area's people, newest first (``/roll-call/<id>/``);
- ``area_search``: the same, searched by a surname.

Each figure is the server time's p50/p95 over ``runs`` requests after ``warmups``, and the SQL queries one
request makes. The goal is a p95 of at most :data:`GOAL_P95_MS` for the area page.
"""

import datetime as dt
import itertools
import random
import statistics
import time

from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from accesscontrol.choices import PresenceSource
from accesscontrol.models import AccessPoint, Cardholder, Operator, OperatorGroup, Partition, Presence, Zone

GOAL_P95_MS = 150
OPERATOR = "bench-presence"
SURNAMES = ("Smith", "Jones", "Garcia", "Müller", "Rossi", "Dubois", "Nowak", "Silva", "Tanaka", "Kowalski")
FIRST_NAMES = ("Alex", "Sam", "Maria", "Jan", "Anna", "Luca", "Yuki", "Omar", "Eva", "Noah", "Ines", "Piotr")
BATCH = 5000
_runs = itertools.count(1)


def populate(people: int, seed: int = 1) -> Zone:
    """A roll-call area with ``people`` cardholders inside it (and their presences), in a partition of its own."""
    rng = random.Random(seed)
    run = f"{next(_runs)}-{time.time_ns() % 10**9}"
    now = timezone.now()
    with transaction.atomic():
        partition = Partition.objects.create(name=f"Bench presence {run}")
        zone = Zone.objects.create(name=f"Assembly area {run}", partition=partition, roll_call=True)
        doors = [
            AccessPoint.objects.create(name=f"Assembly door {run}-{number}", partition=partition, direction="entry")
            for number in range(1, 5)
        ]
        for door in doors:
            door.zones.add(zone)
        for start in range(0, people, BATCH):
            holders = Cardholder.objects.bulk_create(
                [
                    Cardholder(
                        partition=partition,
                        first_name=rng.choice(FIRST_NAMES),
                        last_name=f"{rng.choice(SURNAMES)}{'' if rng.random() < 0.7 else rng.randint(1, 999)}",
                        phone_number=f"+4420{rng.randint(10**7, 10**8 - 1)}",
                    )
                    for _ in range(start, min(people, start + BATCH))
                ],
                batch_size=BATCH,
            )
            if not all(holder.pk for holder in holders):  # a backend that returns no ids: read them back
                holders = list(Cardholder.objects.filter(partition=partition).order_by("-id")[: len(holders)])
            rows = []
            for holder in holders:
                since = now - dt.timedelta(seconds=rng.randint(0, 12 * 3600))
                rows.append(
                    Presence(
                        cardholder=holder,
                        zone=zone,
                        inside=True,
                        since=since,
                        last_at=since,
                        source=PresenceSource.ONLINE,
                        access_point=rng.choice(doors),
                    )
                )
            Presence.objects.bulk_create(rows, batch_size=BATCH)
    return zone


def operator() -> Operator:
    """An operator (not a superuser) who may muster every partition."""
    found = Operator.objects.filter(username=OPERATOR).first()
    if found is not None:
        return found
    found = Operator.objects.create_user(OPERATOR, password=None, first_name="Bench", last_name="Presence")
    group = OperatorGroup.objects.create(name="bench_presence: muster, all partitions", all_partitions=True)
    group.permissions.set(
        Permission.objects.filter(content_type__app_label="accesscontrol", codename__in=["view_muster", "view_zone"])
    )
    group.members.add(found)
    return found


def _client(user) -> Client:
    host = next((h for h in settings.ALLOWED_HOSTS if h != "*" and not h.startswith(".")), "localhost")
    client = Client(HTTP_HOST=host, secure=bool(getattr(settings, "SECURE_SSL_REDIRECT", False)))
    client.force_login(user)
    return client


def _time(client: Client, url: str, runs: int, warmups: int) -> dict:
    queries = []

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}, not 200.")
    for _ in range(warmups):
        client.get(url)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
    ordered = sorted(samples)
    return {
        "p50": round(statistics.median(ordered), 2),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
        "queries": len(queries),
    }


def measure_roll_call(people: int = 100_000, runs: int = 50, warmups: int = 5, seed: int = 1) -> dict:
    """Fill a roll-call area with ``people`` and time its pages; see the module's docstring."""
    started = time.perf_counter()
    zone = populate(people, seed)
    populated = round(time.perf_counter() - started, 2)
    client = _client(operator())
    area = _time(client, f"/roll-call/{zone.pk}/", runs, warmups)
    return {
        "people": Presence.objects.filter(zone=zone, inside=True).count(),
        "populate_seconds": populated,
        "roll_call_ms": _time(client, "/roll-call/", runs, warmups),
        "area_ms": area,
        "area_search_ms": _time(client, f"/roll-call/{zone.pk}/?q=Rossi", runs, warmups),
        "goal_p95_ms": GOAL_P95_MS,
        "goal_met": area["p95"] <= GOAL_P95_MS,
    }
