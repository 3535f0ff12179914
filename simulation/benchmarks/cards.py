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

from accesscontrol.actions import cancel_key
from accesscontrol.models import (
    AccessLevelEntry,
    BlacklistEntry,
    CardholderPermission,
    Key,
)
from devices import cards, locks
from devices.choices import DeviceKind
from devices.models import Device
from simulation import sitegen
from simulation.offline_lock import OfflineLock


def _percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {
        "p50": round(statistics.median(ordered) * 1000, 3),
        "p95": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 3),
    }


def generate(points: int, locks_count: int, cardholders: int) -> dict:
    """The site: ``points`` offline doors (the first ``locks_count`` with a lock, granted to everyone by a common
    level), ``cardholders`` with a card, and the wide cardholder: every door, each at the times of a shift."""
    spec = sitegen.SiteSpec(
        time_periods=4,
        access_points=points,
        offline_locks=locks_count,
        common_level=True,
        cardholders=cardholders,
        wide_cardholder=True,
    )
    started = time.perf_counter()
    sitegen.generate(spec)
    return {"generate_seconds": round(time.perf_counter() - started, 3)}


def measure_build(runs: int) -> dict:
    key = Key.objects.get(uid=sitegen.WIDE_UID)
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
    key = Key.objects.get(uid=sitegen.WIDE_UID)
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
    keys = list(Key.objects.select_related("cardholder").exclude(uid=sitegen.WIDE_UID).order_by("pk"))
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
