"""The blacklist of cancelled keys that offline locks must refuse, and when a key stops opening anyway.

Offline locks cannot be told that a key was cancelled; the cards of other
cardholders carry the newest entries to them (devices/cards.py, updaters). So
an entry must last exactly as long as the cancelled card could still open a
lock by itself: until the end of the validity written on it
(:func:`validity_end`). After that the card is refused as expired and the entry
is purged (:func:`purge_expired`, hourly), which keeps the list, and the part of
every card it fills, small.

A key with no end at all is blacklisted for ``SPACE_BLACKLIST_DEFAULT_DAYS``
(365 by default): after that, a lock that never learned of the cancellation
would open for it again. Give keys an end or a revalidation period where that
matters. Entries are numbered by their primary key, which never goes back
(PostgreSQL sequences; SQLite's AUTOINCREMENT), so "entries above N" is what a
card or lock holding up to N lacks.
"""

import datetime as dt

from django.conf import settings
from django.db.models import Count, Max, QuerySet
from django.utils import timezone

from accesscontrol.models import BlacklistEntry, Key


def validity_start(key: Key) -> dt.datetime | None:
    """When the key starts opening offline locks: the latest of its own start and the cardholder's activation."""
    starts = [moment for moment in (key.valid_from, key.cardholder.activation) if moment is not None]
    return max(starts, default=None)


def validity_end(key: Key) -> dt.datetime | None:
    """When the key stops opening offline locks by itself (None: never).

    The earliest of its own end, the cardholder's expiration, and, when the
    cardholder's keys must be revalidated, the end of the revalidation window
    (the last revalidation, or the issue, plus ``key_revalidation_days``): the
    end an updater moves forward. This is the end written on the card.
    """
    holder = key.cardholder
    ends = [moment for moment in (key.valid_until, holder.expiration) if moment is not None]
    if holder.key_revalidation_days:
        renewed = key.last_revalidated_at or key.issued_at
        ends.append(renewed + dt.timedelta(days=holder.key_revalidation_days))
    return min(ends, default=None)


def blacklisted_until(key: Key, now: dt.datetime) -> dt.datetime:
    """How long a key cancelled at ``now`` must stay on the blacklist."""
    return validity_end(key) or now + dt.timedelta(days=settings.SPACE_BLACKLIST_DEFAULT_DAYS)


def blacklist_key(key: Key, now: dt.datetime) -> BlacklistEntry | None:
    """Put the cancelled ``key`` on the blacklist; call inside the cancellation's transaction.

    Nothing is added when the cardholder's keys are not cancellable through the
    blacklist, when the key has expired already (its card opens nothing), or
    when the key is on the list already (cancelling twice makes one entry).
    """
    if not key.cardholder.key_cancellable_through_blacklist:
        return None
    until = blacklisted_until(key, now)
    if until <= now or BlacklistEntry.objects.filter(key=key).exists():
        return None
    return BlacklistEntry.objects.create(key=key, key_number=key.pk, uid=key.uid, until=until)


def in_force(now: dt.datetime | None = None) -> QuerySet:
    """The entries locks must still honour."""
    return BlacklistEntry.objects.filter(until__gt=now or timezone.now())


def summary(now: dt.datetime | None = None) -> tuple[int, int]:
    """(how many entries are in force, the newest one's number or 0): what a lock holding all of them holds."""
    totals = in_force(now).aggregate(count=Count("id"), newest=Max("id"))
    return totals["count"], totals["newest"] or 0


def newest(now: dt.datetime, limit: int) -> list[tuple[int, int, dt.datetime]]:
    """The ``limit`` newest entries in force as (number, key number, until), ascending by number."""
    rows = in_force(now).order_by("-id").values_list("id", "key_number", "until")[:limit]
    return sorted(rows)


def purge_expired(now: dt.datetime | None = None) -> int:
    """Delete the entries whose keys would have expired by now; returns how many."""
    deleted, _ = BlacklistEntry.objects.filter(until__lte=now or timezone.now()).delete()
    return deleted
