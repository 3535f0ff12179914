"""Business operations on the access control domain.

The API, the web app, management commands and consumers call these instead of
changing rows themselves: each owns its transaction and leaves its trace in the
system auditor, so an action is recorded the same way whoever asked for it.
"""

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accesscontrol import blacklist
from accesscontrol.choices import KeyKind, KeyStatus
from accesscontrol.models import ApiKey, BlacklistEntry, Cardholder, Key, Operator, SystemAuditEntry


def _text(value, limit: int) -> str:
    return str(value)[:limit]


def record_operator_action(
    operator, action: str, obj=None, *, via: str, detail: dict | None = None, address: str | None = None
) -> SystemAuditEntry:
    """Write one system auditor row: who did ``action`` to ``obj``, through what, and from which address."""
    is_operator = operator is not None and getattr(operator, "is_authenticated", False)
    return SystemAuditEntry.objects.create(
        operator=operator if is_operator else None,
        operator_name=_text(operator.get_username(), 150) if is_operator else "",
        action=_text(action, 32),
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=_text(obj.pk, 64) if obj is not None else "",
        object_repr=_text(obj, 200) if obj is not None else "",
        via=via,
        address=address or None,
        detail=detail or {},
    )


def issue_key(
    cardholder: Cardholder,
    uid: str,
    *,
    operator,
    via: str,
    kind: str = KeyKind.CARD,
    valid_from: dt.datetime | None = None,
    valid_until: dt.datetime | None = None,
    address: str | None = None,
) -> Key:
    """Give ``cardholder`` a new key. Raises ValidationError for a bad UID or validity window."""
    key = Key(cardholder=cardholder, uid=uid, kind=kind, valid_from=valid_from, valid_until=valid_until)
    key.full_clean(validate_unique=False, validate_constraints=False)
    with transaction.atomic():
        key.save()
        record_operator_action(
            operator, "issue_key", key, via=via, detail={"cardholder": cardholder.pk}, address=address
        )
    return key


def cancel_key(key: Key, *, operator, via: str, at: dt.datetime | None = None, address: str | None = None) -> Key:
    """Cancel ``key``: it is refused from now on and blacklisted until its validity ends.

    Online doors refuse it at once (the rules snapshot); offline locks learn it from
    the blacklist entry (accesscontrol/blacklist.py), which other cards carry to them.
    Cancelling a key twice changes nothing the second time, so a caller may retry.
    """
    with transaction.atomic():
        key = Key.objects.select_for_update().get(pk=key.pk)
        if key.status == KeyStatus.CANCELLED:
            return key
        key.status = KeyStatus.CANCELLED
        key.cancelled_at = at or timezone.now()
        key.save(update_fields=["status", "cancelled_at"])
        entry = blacklist.blacklist_key(key, key.cancelled_at)
        detail = {"cardholder": key.cardholder_id, "blacklist_entry": entry.pk if entry else None}
        record_operator_action(operator, "cancel_key", key, via=via, detail=detail, address=address)
    return key


def delete_key(key: Key, *, operator, via: str, at: dt.datetime | None = None, address: str | None = None) -> None:
    """Delete ``key``: cancelled (and blacklisted) first, as :func:`cancel_key` does, then its row goes.

    The blacklist entry stays: it keeps the key's number, UID and end, all that
    cards and locks use, and only loses its link to the row. The system auditor
    keeps the cancellation (naming the entry) and the deletion.
    """
    with transaction.atomic():
        key = cancel_key(key, operator=operator, via=via, at=at, address=address)
        detail = {
            "cardholder": key.cardholder_id,
            "uid": key.uid,
            "blacklist_entries": list(key.blacklist_entries.order_by("id").values_list("id", flat=True)),
        }
        record_operator_action(operator, "delete", key, via=via, detail=detail, address=address)
        key.delete()


def cancel_live_keys(
    cardholder: Cardholder, *, operator, via: str, at: dt.datetime | None = None, address: str | None = None
) -> list[Key]:
    """Cancel every key of ``cardholder`` not cancelled yet, each blacklisted until the end written on its card.

    An expired key is cancelled too: its card may carry a later end than its
    status says, and a cancelled key is never issued again. Called inside the
    caller's transaction, before it changes the cardholder: the blacklist lasts
    until the validity end the cards carry, which a new expiration would shorten.
    """
    with transaction.atomic():
        keys = list(cardholder.keys.select_for_update().exclude(status=KeyStatus.CANCELLED).order_by("id"))
        return [cancel_key(key, operator=operator, via=via, at=at, address=address) for key in keys]


def deactivate_cardholder(
    cardholder: Cardholder, *, operator, via: str, at: dt.datetime | None = None, address: str | None = None
) -> Cardholder:
    """End ``cardholder``'s access now: their keys are cancelled and blacklisted, their expiration is now.

    The cardholder stays, with their history and their keys' blacklist entries.
    An expiration alone would not reach offline locks: the cards carry the end
    they were written with.
    """
    now = at or timezone.now()
    with transaction.atomic():
        cardholder = Cardholder.objects.select_for_update().get(pk=cardholder.pk)
        cancelled = cancel_live_keys(cardholder, operator=operator, via=via, at=now, address=address)
        before = _iso(cardholder.expiration)
        cardholder.expiration = now
        if cardholder.activation and cardholder.activation >= now:
            cardholder.activation = None
        cardholder.save(update_fields=["expiration", "activation", "updated_at"])
        detail = {
            "changes": {"expiration": {"from": before, "to": _iso(now)}},
            "keys_cancelled": [key.pk for key in cancelled],
        }
        record_operator_action(operator, "deactivate", cardholder, via=via, detail=detail, address=address)
    return cardholder


def delete_cardholder(
    cardholder: Cardholder, *, operator, via: str, at: dt.datetime | None = None, address: str | None = None
) -> None:
    """Delete ``cardholder`` and their keys, each cancelled and blacklisted first (:func:`cancel_live_keys`).

    The blacklist entries outlive the keys (they keep the key's number, UID and
    end). Raises ProtectedError, changing nothing, while something else still
    needs the cardholder (a hotel stay).
    """
    with transaction.atomic():
        cardholder = Cardholder.objects.select_for_update().get(pk=cardholder.pk)
        cancel_live_keys(cardholder, operator=operator, via=via, at=at, address=address)
        keys = list(cardholder.keys.order_by("id"))
        detail = {
            "fields": {name: getattr(cardholder, name) for name in ("last_name", "first_name", "ext_id")},
            "keys": [{"id": key.pk, "uid": key.uid, "status": key.status} for key in keys],
            "blacklist_entries": list(
                BlacklistEntry.objects.filter(key__in=keys).order_by("id").values_list("id", flat=True)
            ),
        }
        record_operator_action(operator, "delete", cardholder, via=via, detail=detail, address=address)
        # Keys one by one, as the rules snapshot hears of each (accesscontrol/rulechanges.py); Key -> Cardholder
        # is PROTECT so that no other path deletes a cardholder's keys without cancelling them.
        for key in keys:
            key.delete()
        cardholder.delete()


def revalidation_end(key: Key, now: dt.datetime) -> dt.datetime | None:
    """Where a revalidation done at ``now`` moves the key's end of validity when no end is asked for.

    The cardholder's revalidation period (``key_revalidation_days``) says how long a
    revalidated key stays valid; without one the key is valid with no end of its own.
    Never past the cardholder's own expiration, beyond which the key opens nothing anyway.
    """
    holder = key.cardholder
    end = now + dt.timedelta(days=holder.key_revalidation_days) if holder.key_revalidation_days else None
    if holder.expiration and (end is None or end > holder.expiration):
        end = holder.expiration
    return end


def revalidate_key(
    key: Key,
    *,
    operator,
    via: str,
    valid_until: dt.datetime | None = None,
    at: dt.datetime | None = None,
    address: str | None = None,
) -> Key:
    """Revalidate ``key``: renew its validity (to ``valid_until``, or by the cardholder's revalidation period).

    As an updater does when the card is presented: the key's data is rewritten (its
    revision rises) and the time of revalidation is noted. A cancelled key stays
    cancelled (it is on the blacklist); an expired one is issued again. Raises
    ValidationError when the key cannot be revalidated or the new end is not in the future.
    """
    now = at or timezone.now()
    with transaction.atomic():
        key = Key.objects.select_for_update().select_related("cardholder").get(pk=key.pk)
        if key.status == KeyStatus.CANCELLED:
            raise ValidationError("A cancelled key cannot be revalidated: issue a new key.")
        end = valid_until if valid_until is not None else revalidation_end(key, now)
        if end is not None and end <= now:
            raise ValidationError({"valid_until": "The new end of validity must be in the future."})
        if end is not None and key.valid_from and end <= key.valid_from:
            raise ValidationError({"valid_until": "The end of validity must come after its start."})
        if (
            key.status == KeyStatus.EXPIRED
            and Key.objects.filter(uid=key.uid, status=KeyStatus.ISSUED).exclude(pk=key.pk).exists()
        ):
            raise ValidationError("Another issued key has this UID.")
        changes = renew_key(key, end, now)
        key.save(update_fields=["valid_until", "status", "revision", "last_revalidated_at"])
        record_operator_action(
            operator,
            "revalidate_key",
            key,
            via=via,
            detail={"cardholder": key.cardholder_id, "changes": changes},
            address=address,
        )
    return key


def renew_key(key: Key, end: dt.datetime | None, now: dt.datetime) -> dict:
    """Give the locked ``key`` (not saved) its revalidated validity: ``end``, issued, a new revision.

    Returns what changed, field by field, for the caller's record (the system
    auditor for an operator, an audit event for an updater).
    """
    before = {"valid_until": _iso(key.valid_until), "status": key.status, "revision": key.revision}
    key.valid_until = end
    key.status = KeyStatus.ISSUED
    key.revision += 1
    key.last_revalidated_at = now
    after = {"valid_until": _iso(key.valid_until), "status": key.status, "revision": key.revision}
    return {name: {"from": before[name], "to": after[name]} for name in after if before[name] != after[name]}


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def set_cardholder_pin(
    cardholder: Cardholder, pin: str | None, *, operator, via: str, address: str | None = None
) -> Cardholder:
    """Set (or, with None or "", remove) a cardholder's PIN. The PIN itself is never recorded."""
    with transaction.atomic():
        cardholder.set_pin(pin or None)
        cardholder.save(update_fields=["pin_hash", "updated_at"])
        record_operator_action(
            operator,
            "set_pin" if pin else "clear_pin",
            cardholder,
            via=via,
            detail={"has_pin": bool(pin)},
            address=address,
        )
    return cardholder


def issue_api_key(
    owner: Operator, name: str, *, operator, via: str, expires_at: dt.datetime | None = None
) -> tuple[ApiKey, str]:
    """A new API key acting as ``owner``, with its token: the only time the token exists outside a hash."""
    with transaction.atomic():
        key, token = ApiKey.issue(owner, name, expires_at=expires_at)
        record_operator_action(operator, "issue_api_key", key, via=via, detail={"owner": owner.pk})
    return key, token


def revoke_api_key(key: ApiKey, *, operator, via: str, at: dt.datetime | None = None) -> ApiKey:
    with transaction.atomic():
        key = ApiKey.objects.select_for_update().get(pk=key.pk)
        if key.revoked_at is None:
            key.revoked_at = at or timezone.now()
            key.save(update_fields=["revoked_at"])
            record_operator_action(operator, "revoke_api_key", key, via=via)
    return key
