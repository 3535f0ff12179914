"""The server's side of data-on-card: the site card key, card data built from the database, updaters.

devices/carddata.py is the format (pure); this module knows the models.

The site card key authenticates every card of the site. It is made on first
use (with a random non-zero site code, written in clear on cards so a card of
another site is told apart), sealed under the master key like device keys
(core/vault.py) and cached per process. Rotation is not offered: every card
and every lock holds the key, so a new one means re-encoding every card and
re-initialising every lock with a PPD.

A card carries its key's validity (bounded by the cardholder's activation and
expiration, and by the revalidation window when the cardholder has one), the
cardholder's flags, the access list (individual permissions and access levels,
merged per access point or zone) and the newest blacklist entries. The same
rights always make the same access list, so an updater can tell an unchanged
card from one to rewrite.
"""

import datetime as dt
import logging
import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from accesscontrol import actions, blacklist, events
from accesscontrol.choices import AuditKind, KeyStatus
from accesscontrol.models import (
    AccessLevelEntry,
    CardholderPermission,
    Key,
    SiteSettings,
    normalize_uid,
)
from accesscontrol.snapshot import compile_grants
from core import vault
from devices import carddata
from devices.carddata import POINT, SITE_KEY_SIZE, ZONE, BlacklistItem, CardData, CardError, CardGrant, LockStatus
from devices.choices import DeviceKind
from devices.models import Device, LockState

logger = logging.getLogger("space.cards")

CARD_KEY_PURPOSE = "site-card-key"
# The newest blacklist entries a card is given; the codec drops the oldest of them when they do not fit.
BLACKLIST_ON_CARD = 64
# An updater revalidates a key only when that moves its end at least this much, so a card presented
# again soon after is left as it is instead of being rewritten (and audited) at every presentation.
REVALIDATE_STEP = dt.timedelta(hours=1)
# The cardholder's flags as the card names them.
FLAGS = {
    "office": "office",
    "override_privacy": "override_privacy",
    "override_lockdown": "override_lockdown",
    "audit_openings": "audit_openings",
    "anti_passback": "use_anti_passback",
    "extended_open_time": "extended_open_time",
}

# update_card outcomes besides the carddata reasons (CardError.reason).
UPDATED = "updated"
UNCHANGED = "unchanged"
UNKNOWN_KEY = "unknown_key"  # no such key, or the card's UID is not the key's: a copy onto another card
CANCELLED = "cancelled"
EXPIRED = "expired"
BANNED = "banned"
TOO_BIG = "too_big"  # the key's rights no longer fit on a card: the card is left as it was

# --- the site card key -------------------------------------------------------------------

_cached_key: tuple[tuple[int, bytes], bytes] | None = None  # ((site code, sealed key), card key)


def site_card_key() -> tuple[int, bytes]:
    """(site code, card key): made on first use, sealed under the master key, cached in the process.

    One query per call: the cache is keyed on the sealed bytes, so a key stored by
    another process (or a restored database) is picked up at once.
    """
    global _cached_key
    row = SiteSettings.objects.filter(pk=1).values_list("site_code", "card_key_sealed").first()
    if row is None or row[0] is None or not row[1]:
        row = _make_site_card_key()
    stored = (row[0], bytes(row[1]))
    cached = _cached_key
    if cached is None or cached[0] != stored:
        cached = (stored, vault.unseal(stored[1], CARD_KEY_PURPOSE))
        _cached_key = cached
    return stored[0], cached[1]


def _make_site_card_key() -> tuple[int, bytes]:
    # Conditional updates, not read-then-write: when two processes race, the second
    # update matches no row (both databases re-check the condition after the first
    # commits) and both read back the one key that was stored.
    SiteSettings.load()
    SiteSettings.objects.filter(pk=1, site_code__isnull=True).update(site_code=_new_site_code())
    sealed = vault.seal(secrets.token_bytes(SITE_KEY_SIZE), CARD_KEY_PURPOSE)
    SiteSettings.objects.filter(pk=1, card_key_sealed=b"").update(card_key_sealed=sealed)
    return SiteSettings.objects.filter(pk=1).values_list("site_code", "card_key_sealed").get()


def _new_site_code() -> int:
    return 1 + secrets.randbelow(2**32 - 1)  # 1 to 2**32 - 1: zero is no site


# --- card data ---------------------------------------------------------------------------


def card_data_for_key(key: Key, now: dt.datetime) -> CardData:
    """What ``key``'s card carries now: its validity, the cardholder's flags, the access list (levels
    and individual grants, expanded to access points and zones with their time periods) and the
    newest blacklist entries."""
    return _card_data(key, now, site_card_key()[0])


def card_bytes_for_key(key: Key, now: dt.datetime | None = None) -> bytes:
    """The card file for ``key``; raises carddata.CardTooBig with a message naming what to reduce."""
    site, card_key = site_card_key()
    return carddata.encode(_card_data(key, now or timezone.now(), site), card_key)


def _card_data(key: Key, now: dt.datetime, site: int) -> CardData:
    holder = key.cardholder
    return CardData(
        site=site,
        key_id=key.pk,
        uid=key.uid,
        cardholder_id=holder.pk,
        revision=key.revision,
        issued_at=_seconds(now),
        valid_from=_seconds(blacklist.validity_start(key)),
        valid_until=_seconds(blacklist.validity_end(key)),
        **{name: getattr(holder, field) for name, field in FLAGS.items()},
        grants=card_grants(holder.pk),
        blacklist=tuple(
            BlacklistItem(number, key_number, _seconds(until))
            for number, key_number, until in blacklist.newest(now, BLACKLIST_ON_CARD)
        ),
    )


def card_grants(cardholder_id: int) -> tuple[CardGrant, ...]:
    """The cardholder's access list: one grant per access point or zone, sorted, periods merged.

    One query for individual permissions and access level entries together.
    """
    columns = ("access_point_id", "zone_id", "time_period_id")
    own = CardholderPermission.objects.filter(cardholder_id=cardholder_id).values_list(*columns)
    levels = AccessLevelEntry.objects.filter(access_level__cardholders=cardholder_id).values_list(*columns)
    points, zones = compile_grants(own.union(levels, all=True))
    return (
        *(CardGrant(POINT, point, points[point]) for point in sorted(points)),
        *(CardGrant(ZONE, zone, zones[zone]) for zone in sorted(zones)),
    )


def _seconds(moment: dt.datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


# --- updaters ----------------------------------------------------------------------------


@dataclass(frozen=True)
class UpdateResult:
    outcome: str  # "updated", "unchanged", or a refusal: a carddata reason, "unknown_key", "cancelled", "expired"
    raw: bytes | None = None  # the new card file to write; None when nothing is to be written
    key_id: int | None = None
    lock_statuses: int = 0  # lock statuses the card carried from locks the server knows (stored when newest)
    unknown_lock_statuses: int = 0  # ... from lock ids that are no offline lock here: ignored


def update_card(raw: bytes, *, uid: str, updater_id: int | None, now: dt.datetime) -> UpdateResult:
    """What an updater does with a card presented to it.

    ``uid`` is the UID the updater read from the card itself; ``updater_id`` the
    updater's Device primary key (recorded on the audit event). The card is
    authenticated (a refusal's outcome is the CardError reason); the lock
    statuses it carries are stored whatever happens next; then the key is
    checked: unknown, copied onto another card (its UID is not the key's),
    cancelled (the blacklist keeps refusing it), banned or expired keys are
    refused and nothing is written. Otherwise the key is revalidated when the
    cardholder has a revalidation period and that moves its end by at least
    REVALIDATE_STEP, and the card is rewritten when its validity, flags, access
    list or blacklist (entries it lacks) are not current: outcome "updated"
    with the new card file, with no lock statuses on it (they were read), and
    its key's revision one higher. Else "unchanged".

    A revalidation here is recorded as an audit event (``key_updated``, naming
    the updater and what changed), not in the system auditor: no operator acted,
    and an updater revalidates at every presentation after REVALIDATE_STEP,
    which would drown the operators' own actions there.
    """
    site, card_key = site_card_key()
    try:
        card = carddata.decode(raw, card_key, site)
    except CardError as error:
        return UpdateResult(error.reason)
    known, unknown = record_lock_statuses(card.statuses, now)
    counts = {"key_id": card.key_id, "lock_statuses": known, "unknown_lock_statuses": unknown}
    try:
        with transaction.atomic():
            outcome, new_raw = _update(card, normalize_uid(uid), updater_id, now, site, card_key)
    except carddata.CardTooBig as error:
        logger.warning("Key %s: its card cannot be updated: %s", card.key_id, error)
        return UpdateResult(TOO_BIG, **counts)
    return UpdateResult(outcome, new_raw, **counts)


def _update(card: CardData, uid: str, updater_id, now, site: int, card_key: bytes) -> tuple[str, bytes | None]:
    key = Key.objects.select_for_update(of=("self",)).select_related("cardholder").filter(pk=card.key_id).first()
    refusal = _refusal(key, card, uid, now)
    if refusal:
        return refusal, None
    end = _revalidated_end(key, now)
    changes = actions.renew_key(key, end, now) if end else {}
    if not changes:
        key.revision += 1  # kept only if the card is rewritten
    fresh = _card_data(key, now, site)
    new_raw = carddata.encode(fresh, card_key)
    # What the codec kept of the blacklist (it drops the oldest entries that do not fit).
    written = carddata.decode(new_raw, card_key, site)
    differences = card_differences(card, written)
    if not changes and not differences:
        return UNCHANGED, None
    key.save(update_fields=["valid_until", "status", "revision", "last_revalidated_at"])
    holder = key.cardholder
    events.record(
        at=now,
        kind=AuditKind.KEY_UPDATED,
        cardholder=holder,
        cardholder_name=str(holder)[:201],
        key_uid=key.uid,
        device_id=updater_id,
        detail={"revision": key.revision, "revalidated": changes, **differences},
    )
    return UPDATED, new_raw


def _refusal(key: Key | None, card: CardData, uid: str, now: dt.datetime) -> str | None:
    if key is None or not (key.uid == card.uid == uid):
        return UNKNOWN_KEY
    if key.status == KeyStatus.CANCELLED:
        return CANCELLED
    holder = key.cardholder
    if holder.banned:
        return BANNED
    if key.status == KeyStatus.EXPIRED or (holder.expiration is not None and holder.expiration <= now):
        return EXPIRED
    if key.valid_until is not None and key.valid_until <= now and not holder.key_revalidation_days:
        return EXPIRED  # an end of its own, and no revalidation to move it
    return None


def _revalidated_end(key: Key, now: dt.datetime) -> dt.datetime | None:
    """The end a revalidation now gives the key, when the cardholder has a period and it is worth it."""
    if not key.cardholder.key_revalidation_days:
        return None
    end = actions.revalidation_end(key, now)
    current = blacklist.validity_end(key)
    if current is not None and end - current < REVALIDATE_STEP:
        return None
    if key.valid_from is not None and end <= key.valid_from:
        return None  # not valid yet, and a revalidation now would end before it starts
    return end


def card_differences(old: CardData, new: CardData) -> dict:
    """What ``new`` changes on a card holding ``old``: empty when the card is current.

    Entries ``old`` holds that ``new`` no longer does (purged) are no reason to rewrite a card.
    """
    differences = {}
    if (old.valid_from, old.valid_until) != (new.valid_from, new.valid_until):
        differences["validity"] = {"from": [old.valid_from, old.valid_until], "to": [new.valid_from, new.valid_until]}
    if old.grants != new.grants:
        differences["access_list"] = {"from": len(old.grants), "to": len(new.grants)}
    if flags := sorted(name for name in FLAGS if getattr(old, name) != getattr(new, name)):
        differences["flags"] = flags
    if old.cardholder_id != new.cardholder_id:
        differences["cardholder"] = {"from": old.cardholder_id, "to": new.cardholder_id}
    if added := sorted({item.number for item in new.blacklist} - {item.number for item in old.blacklist}):
        differences["blacklist_added"] = added
    return differences


# --- lock statuses -----------------------------------------------------------------------


def record_lock_statuses(statuses: tuple[LockStatus, ...], now: dt.datetime) -> tuple[int, int]:
    """Store what locks wrote on a card into their LockState, keeping each lock's newest report.

    Returns (statuses of offline locks known here, statuses of unknown lock ids, ignored).
    A lock's clock may run ahead: a report is never dated after ``now``.
    """
    if not statuses:
        return 0, 0
    locks = dict(
        Device.objects.filter(kind=DeviceKind.OFFLINE_LOCK, device_id__in={s.lock_id for s in statuses}).values_list(
            "device_id", "pk"
        )
    )
    known = [status for status in statuses if status.lock_id in locks]
    for status in known:
        _store_status(locks[status.lock_id], status, min(dt.datetime.fromtimestamp(status.at, dt.UTC), now))
    return len(known), len(statuses) - len(known)


def _store_status(device_pk: int, status: LockStatus, at: dt.datetime) -> None:
    with transaction.atomic():
        state, _ = LockState.objects.select_for_update().get_or_create(device_id=device_pk)
        if state.reported_at is not None and state.reported_at >= at:
            return
        state.battery = status.battery
        state.blacklist_number = status.blacklist_number
        state.events_pending = status.events_pending
        state.reported_at = at
        state.save(update_fields=["battery", "blacklist_number", "events_pending", "reported_at"])
