"""Cardholders from a large directory: the measurement behind ``manage.py bench_directory``.

:func:`measure` starts its own slapd in a temporary folder, filled offline (slapadd) with
``entries`` Active-Directory-like users (simulation/ldap/directory.py: binary objectGUID,
userAccountControl, accountExpires, uSNChanged; a size limit of 1,000, so only paged reads go
through), a scope group holding everyone and two mapped groups (an access level for every fifth, a
partition for every fiftieth). Then, through the product's own path (``accesscontrol.sync.run``):

1. ``first_sync``: a full read and the creation of every cardholder (goal: :data:`GOAL_FIRST_SECONDS`);
2. every synced cardholder is given a card key (untimed: a site's cards are issued over months);
3. ``modify``: 1% of the entries changed (title, phone) and 0.1% deleted over LDAP, each change
   raising uSNChanged as a domain controller does;
4. ``incremental_sync``: the changed entries read whole, every key and the groups read again, the
   changes applied, the leavers deactivated through ``deactivate_cardholder`` (goal:
   :data:`GOAL_INCREMENTAL_SECONDS`); then every leaver's keys are checked to be on the blacklist.

Each sync's time is split into reading the directory and the rest (plan and apply).
"""

import datetime as dt
import os
import tempfile
import time

from django.db import connection

from accesscontrol import sync
from accesscontrol.choices import KeyKind, KeyStatus
from accesscontrol.models import AccessLevel, BlacklistEntry, CardholderSource, Key, Partition, SourcedCardholder
from integrations.ldap import cardholders
from simulation.benchmarks.web import machine
from simulation.ldap import directory as corp

GOAL_FIRST_SECONDS = 300
GOAL_INCREMENTAL_SECONDS = 10
STAFF, ENGINEERING, LAB = corp.group_dn("Staff"), corp.group_dn("Engineering"), corp.group_dn("Lab")


class TimedReader:
    """The ldap kind's reader, timed: how much of a run is reading the directory."""

    def __init__(self):
        self.seconds = 0.0

    def __call__(self, source, *, full, progress):
        started = time.perf_counter()
        try:
            return cardholders.read_directory(source, full=full, progress=progress)
        finally:
            self.seconds = time.perf_counter() - started


def directory_entries(entries: int) -> list[corp.Entry]:
    users = [
        corp.ad_user(n, expires=corp.filetime(dt.datetime(2030, 1, 1, tzinfo=dt.UTC)) if n % 97 == 0 else corp.NEVER)
        for n in range(entries)
    ]
    return [
        *users,
        corp.ad_group("Staff", [dn for dn, _ in users]),
        corp.ad_group("Engineering", [corp.user_dn(n) for n in range(0, entries, 5)]),
        corp.ad_group("Lab", [corp.user_dn(n) for n in range(0, entries, 50)]),
    ]


def make_source(server: corp.Directory) -> CardholderSource:
    main = Partition.objects.get_or_create(name="Bench main")[0]
    Partition.objects.get_or_create(name="Bench lab")
    AccessLevel.objects.get_or_create(name="Bench engineering")
    source = CardholderSource.objects.create(
        name="Bench directory",
        kind="ldap",
        settings=cardholders.validate_settings(
            {
                "url": server.ldap_uri,
                "bind_dn": corp.SERVICE_DN,
                "bases": [corp.USERS],
                "flavour": "active_directory",
                "filter": "(objectClass=user)",
                "page_size": 1000,
            }
        ),
        group_map={
            ENGINEERING: {"access_levels": ["Bench engineering"], "partition": ""},
            LAB: {"access_levels": [], "partition": "Bench lab"},
        },
        scope_groups=[STAFF],
        default_partition=main,
        sync_minutes=0,
    )
    source.set_secret(corp.SERVICE_PASSWORD)
    source.save()
    return source


def timed_run(source: CardholderSource, reader: TimedReader) -> dict:
    source.refresh_from_db()
    started = time.perf_counter()
    row = sync.run(source)
    seconds = time.perf_counter() - started
    if row.status != "applied":
        raise RuntimeError(f"The sync ended {row.status}: {row.message}")
    return {
        "seconds": round(seconds, 2),
        "read_seconds": round(reader.seconds, 2),
        "full": row.full,
        "counts": row.counts,
    }


def give_keys() -> int:
    holders = list(SourcedCardholder.objects.values_list("cardholder_id", flat=True))
    Key.objects.bulk_create(
        (Key(cardholder_id=pk, uid=f"0B{pk:010X}", kind=KeyKind.CARD) for pk in holders), batch_size=2000
    )
    return len(holders)


def change_directory(server: corp.Directory, entries: int) -> tuple[dict, list[str]]:
    """1% of the entries modified, 0.1% deleted (spread over the directory); the deleted entries' keys."""
    modified = list(range(3, entries, 100))
    deleted = list(range(7, entries, 1000))
    started = time.perf_counter()
    with server.writer() as writer:
        for n in modified:
            writer.modify(corp.user_dn(n), {"title": [b"Promoted"], "telephoneNumber": [f"+4940{n:07d}".encode()]})
        for n in deleted:
            writer.delete(corp.user_dn(n))
    facts = {"modified": len(modified), "deleted": len(deleted), "seconds": round(time.perf_counter() - started, 2)}
    return facts, [str(corp.guid(n)) for n in deleted]


def leavers_blacklisted(keys: list[str]) -> dict:
    holders = list(SourcedCardholder.objects.filter(key__in=keys).values_list("cardholder_id", flat=True))
    leaver_keys = list(Key.objects.filter(cardholder_id__in=holders).values_list("id", "status"))
    listed = set(
        BlacklistEntry.objects.filter(key_id__in=[pk for pk, _ in leaver_keys]).values_list("key_id", flat=True)
    )
    return {
        "leavers": len(holders),
        "leaver_keys": len(leaver_keys),
        "cancelled": sum(1 for _, status in leaver_keys if status == KeyStatus.CANCELLED),
        "blacklisted": len(listed),
        "all_blacklisted": bool(leaver_keys) and len(listed) == len(leaver_keys) == len(keys),
    }


def measure(entries: int = 100_000) -> dict:
    if SourcedCardholder.objects.exists():
        raise ValueError("The database already holds synced cardholders; measure in an empty one.")
    result = {"entries": entries, "load_before": [round(x, 2) for x in os.getloadavg()]}
    reader = TimedReader()
    sync.register_kind("ldap", label="LDAP / Active Directory", read=reader, validate=cardholders.validate_settings)
    try:
        with tempfile.TemporaryDirectory(prefix="space-bench-directory-") as folder:
            started = time.perf_counter()
            with corp.Directory(directory_entries(entries), size_limit=1000, folder=folder) as server:
                result["directory_load_seconds"] = round(time.perf_counter() - started, 2)
                source = make_source(server)
                result["first_sync"] = timed_run(source, reader)
                result["keys_given"] = give_keys()
                if connection.vendor in ("sqlite", "postgresql"):
                    with connection.cursor() as cursor:
                        cursor.execute("ANALYZE")
                result["modify"], deleted = change_directory(server, entries)
                result["incremental_sync"] = timed_run(source, reader)
                result["leavers"] = leavers_blacklisted(deleted)
    finally:
        cardholders.register()  # the product's reader again
    result["goals"] = {"first_sync_seconds": GOAL_FIRST_SECONDS, "incremental_sync_seconds": GOAL_INCREMENTAL_SECONDS}
    result["goal_met"] = {
        "first_sync": result["first_sync"]["seconds"] <= GOAL_FIRST_SECONDS,
        "incremental_sync": result["incremental_sync"]["seconds"] <= GOAL_INCREMENTAL_SECONDS,
        "leavers_blacklisted": result["leavers"]["all_blacklisted"],
    }
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return result | machine()
