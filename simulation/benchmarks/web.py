"""The operator web app under a large site: a data generator and the page measurements of ``manage.py bench_web``.

:func:`generate` fills an empty database, through the site generator
(simulation/sitegen.py), with a site of realistic shape: partitions, zones,
access points, access levels, ``cardholders`` people with names, e-mail
addresses and about one key each, and ``events`` audit events spread over the
past year.

:func:`measure` logs in an operator of all partitions with every view
permission and times the pages in-process with ``django.test.Client``: server
time p50/p95 over ``requests`` requests after ``warmups``, and the SQL queries
one request makes at ``per_page=10`` and ``per_page=100``. A page whose URL
name no view defines yet is reported as ``{"missing": true}``.
"""

import os
import statistics
import sys
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import django
from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse

from accesscontrol.choices import AuditKind
from accesscontrol.models import (
    AccessPoint,
    AuditEvent,
    Cardholder,
    Operator,
    OperatorGroup,
)
from simulation import sitegen

GOAL_P95_MS = 150
OPERATOR = "bench-web"
PARTITIONS = (("North building", 0.35), ("South building", 0.3), ("Hotel wing", 0.15), ("Laboratories", 0.1))


def spec(cardholders: int, events: int, seed: int) -> sitegen.SiteSpec:
    """Five partitions of 40 doors (two in three online), 3 zones and 8 access levels each; cardholders with
    Zipf-drawn names, e-mail addresses, about one key each and up to two levels of their partition; ``events``
    audit events over the past year."""
    return sitegen.SiteSpec(
        seed=seed,
        partitions=PARTITIONS,
        locations=True,
        zones=15,
        access_points=200,
        online_share=2 / 3,
        levels=40,
        entries_per_level=(3, 10),
        entry_point_share=0.7,
        cardholders=cardholders,
        realistic_names=True,
        kinds=(85, 10, 5),
        banned_share=0.005,
        levels_per_cardholder=(0, 1, 1, 1, 2, 2),
        permission_share=0.01,
        keyless_share=0.03,
        mobile_share=0.05,
        cancelled_share=0.03,
        events=events,
    )


def generate(cardholders: int = 100_000, events: int = 1_000_000, seed: int = 1) -> dict:
    """Fill an empty database with a site of ``cardholders`` people and ``events`` audit events over a year."""
    if AuditEvent.objects.exists():
        raise ValueError("The database already holds cardholders or audit events; generate into an empty one.")
    started = time.perf_counter()
    counts = sitegen.generate(spec(cardholders, events, seed)).counts
    return {
        "cardholders": counts["cardholders"],
        "keys": counts["keys"],
        "access_level_memberships": counts["access_level_memberships"],
        "access_points": counts["access_points"],
        "access_levels": counts["access_levels"],
        "partitions": counts["partitions"],
        "audit_events": counts["audit_events"],
        "generate_seconds": round(time.perf_counter() - started, 2),
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
