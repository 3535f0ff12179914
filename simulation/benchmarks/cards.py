"""``manage.py bench_cards``: data-on-card measured on a generated site.

Three figures, each through the code a site runs:

- **build**: ``devices.cards.card_bytes_for_key`` for a cardholder granted 500
  access points (each with a time period) through individual permissions and
  an access level: the database reads, the access list, the blacklist and the
  authenticated encoding. Also the bytes the card file uses.
- **decide**: ``OfflineLock.present`` on one of those doors: authenticating
  and parsing the card, the decision, and writing the lock's status slot.
- **propagation**: a site of 200 offline locks (each loaded through
  ``devices.locks.lock_config``, as a PPD loads it) and 2,000 cardholders with
  a card each. One key is cancelled; then, one presentation at a time, a random
  cardholder presents their card: with probability ``--updater-share`` at an
  updater (the server's ``update_card``, which adds the blacklist entries a card
  lacks), otherwise at one of the locks, chosen at random. The figure is the
  number of presentations until 95% of the locks hold the entry (and 50%, for
  the shape). Nothing else spreads it: locks learn the blacklist only from cards.
"""

import datetime as dt
import random
import statistics
import time

from django.db import transaction

from accesscontrol.actions import cancel_key
from accesscontrol.models import (
    AccessLevel,
    AccessLevelEntry,
    AccessPoint,
    BlacklistEntry,
    Cardholder,
    CardholderPermission,
    Key,
    TimeInterval,
    TimePeriod,
    default_partition_id,
)
from devices import cards, locks
from devices.choices import DeviceKind
from devices.models import Device, DeviceDoor
from simulation.offline_lock import OfflineLock

BATCH = 2000
WEEKDAYS = {name: True for name in ("monday", "tuesday", "wednesday", "thursday", "friday")}


def _percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "p50": round(statistics.median(ordered) * 1000, 3),
        "p95": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 3),
    }


def generate(points: int, locks_count: int, cardholders: int) -> dict:
    """The site: ``points`` offline doors (the first ``locks_count`` with a lock), ``cardholders`` with a card."""
    if Cardholder.objects.exists():
        raise ValueError("The database already holds cardholders; generate into an empty one.")
    partition = default_partition_id()
    started = time.perf_counter()
    with transaction.atomic():
        periods = []
        for i, (start, end) in enumerate(((7, 19), (6, 14), (14, 22), (22, 6))):
            period = TimePeriod.objects.create(name=f"bench shift {i}", partition_id=partition)
            TimeInterval.objects.create(time_period=period, start=dt.time(start), end=dt.time(end), **WEEKDAYS)
            periods.append(period)
        doors = AccessPoint.objects.bulk_create(
            [AccessPoint(name=f"bench door {i}", partition_id=partition) for i in range(points)], batch_size=BATCH
        )
        everyone = AccessLevel.objects.create(name="bench everyone", partition_id=partition)
        AccessLevelEntry.objects.bulk_create(
            [AccessLevelEntry(access_level=everyone, access_point=door) for door in doors[:locks_count]]
        )
        devices = Device.objects.bulk_create(
            [
                Device(device_id=10_000 + i, name=f"bench lock {i}", kind=DeviceKind.OFFLINE_LOCK)
                for i in range(locks_count)
            ]
        )
        DeviceDoor.objects.bulk_create(
            [
                DeviceDoor(device=device, number=1, access_point=door)
                for device, door in zip(devices, doors, strict=False)
            ]
        )
        holders = Cardholder.objects.bulk_create(
            [Cardholder(last_name=f"Holder {i}", partition_id=partition) for i in range(cardholders)],
            batch_size=BATCH,
        )
        Cardholder.access_levels.through.objects.bulk_create(
            [Cardholder.access_levels.through(cardholder_id=h.pk, accesslevel_id=everyone.pk) for h in holders],
            batch_size=BATCH,
        )
        Key.objects.bulk_create([Key(cardholder=h, uid=f"04{h.pk:012X}") for h in holders], batch_size=BATCH)
        # The cardholder of the build figure: 500 doors, each at the times of a shift, half of them
        # through a level of their own, half individually.
        wide = Cardholder.objects.create(last_name="Wide", first_name="Many-Doors", partition_id=partition)
        wide_level = AccessLevel.objects.create(name="bench wide", partition_id=partition)
        half = len(doors) // 2
        AccessLevelEntry.objects.bulk_create(
            [
                AccessLevelEntry(access_level=wide_level, access_point=door, time_period=periods[i % len(periods)])
                for i, door in enumerate(doors[:half])
            ]
        )
        CardholderPermission.objects.bulk_create(
            [
                CardholderPermission(cardholder=wide, access_point=door, time_period=periods[i % len(periods)])
                for i, door in enumerate(doors[half:])
            ]
        )
        wide.access_levels.add(wide_level)
        Key.objects.create(cardholder=wide, uid="04FFFFFFFFFFFF")
    return {"generate_seconds": round(time.perf_counter() - started, 3)}


def measure_build(runs: int) -> dict:
    key = Key.objects.get(uid="04FFFFFFFFFFFF")
    now = dt.datetime.now(dt.UTC)
    raw = cards.card_bytes_for_key(key, now)
    samples = []
    for _ in range(runs):
        key = Key.objects.get(pk=key.pk)  # nothing cached on the instance between runs
        started = time.perf_counter()
        cards.card_bytes_for_key(key, now)
        samples.append(time.perf_counter() - started)
    grants = AccessLevelEntry.objects.filter(access_level__cardholders=key.cardholder).count()
    grants += CardholderPermission.objects.filter(cardholder=key.cardholder).count()
    return {"build_ms": _percentiles(samples), "access_points": grants, "card_bytes": len(raw)}


def measure_decide(runs: int) -> dict:
    key = Key.objects.get(uid="04FFFFFFFFFFFF")
    device = Device.objects.filter(kind=DeviceKind.OFFLINE_LOCK).order_by("device_id").first()
    lock = OfflineLock(locks.lock_config(device))
    # A Tuesday at 10:00 in the site's zone: inside the morning and day shifts.
    at = dt.datetime.now(dt.UTC)
    at = at + dt.timedelta(days=(1 - at.weekday()) % 7)
    at = at.replace(hour=10, minute=0, second=0, microsecond=0)
    raw = cards.card_bytes_for_key(key, at)
    samples = []
    outcome = None
    for _ in range(runs):
        started = time.perf_counter()
        outcome, _written = lock.present(raw, at)
        samples.append(time.perf_counter() - started)
    return {"decide_ms": _percentiles(samples), "decide_outcome": outcome.reason}


def measure_propagation(updater_share: float, seed: int, limit: int) -> dict:
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    devices = list(Device.objects.filter(kind=DeviceKind.OFFLINE_LOCK).order_by("device_id"))
    lock_list = [OfflineLock(locks.lock_config(device)) for device in devices]
    keys = list(Key.objects.select_related("cardholder").exclude(uid="04FFFFFFFFFFFF").order_by("pk"))
    card_files = {key.pk: cards.card_bytes_for_key(key, now) for key in keys}
    lost = keys.pop(rng.randrange(len(keys)))
    cancel_key(lost, operator=None, via="benchmark")
    entry = BlacklistEntry.objects.get(key=lost)
    reached: dict[float, int | None] = {0.5: None, 0.95: None}
    holding = 0
    presentations = updater_visits = 0
    at = now
    while presentations < limit and reached[0.95] is None:
        presentations += 1
        at += dt.timedelta(seconds=1)
        key = keys[rng.randrange(len(keys))]
        if rng.random() < updater_share:
            updater_visits += 1
            result = cards.update_card(card_files[key.pk], uid=key.uid, updater_id=None, now=at)
            if result.raw is not None:
                card_files[key.pk] = result.raw
            continue
        lock = lock_list[rng.randrange(len(lock_list))]
        before = lock.blacklist_number >= entry.pk
        _outcome, written = lock.present(card_files[key.pk], at)
        if written is not None:
            card_files[key.pk] = written
        if not before and lock.blacklist_number >= entry.pk:
            holding += 1
            for share in reached:
                if reached[share] is None and holding >= share * len(lock_list):
                    reached[share] = presentations
    return {
        "locks": len(lock_list),
        "cardholders": len(keys) + 1,
        "updater_share": updater_share,
        "presentations_to_50pct_locks": reached[0.5],
        "presentations_to_95pct_locks": reached[0.95],
        "updater_visits": updater_visits,
        "locks_holding_entry": holding,
    }
