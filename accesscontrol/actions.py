"""Business operations on the access control domain.

The API, the web app, management commands and consumers call these instead of
changing rows themselves: each owns its transaction and leaves its trace in the
system auditor, so an action is recorded the same way whoever asked for it.
"""

import datetime as dt

from django.db import transaction
from django.utils import timezone

from accesscontrol.choices import KeyKind, KeyStatus
from accesscontrol.models import ApiKey, Cardholder, Key, Operator, SystemAuditEntry


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
) -> Key:
    """Give ``cardholder`` a new key. Raises ValidationError for a bad UID or validity window."""
    key = Key(cardholder=cardholder, uid=uid, kind=kind, valid_from=valid_from, valid_until=valid_until)
    key.full_clean(validate_unique=False, validate_constraints=False)
    with transaction.atomic():
        key.save()
        record_operator_action(operator, "issue_key", key, via=via, detail={"cardholder": cardholder.pk})
    return key


def cancel_key(key: Key, *, operator, via: str, at: dt.datetime | None = None) -> Key:
    """Cancel ``key``: it is refused from now on and blacklisted until its validity ends.

    Cancelling a key twice changes nothing the second time, so a caller may retry.
    """
    with transaction.atomic():
        key = Key.objects.select_for_update().get(pk=key.pk)
        if key.status == KeyStatus.CANCELLED:
            return key
        key.status = KeyStatus.CANCELLED
        key.cancelled_at = at or timezone.now()
        key.save(update_fields=["status", "cancelled_at"])
        record_operator_action(operator, "cancel_key", key, via=via, detail={"cardholder": key.cardholder_id})
    return key


def set_cardholder_pin(cardholder: Cardholder, pin: str | None, *, operator, via: str) -> Cardholder:
    """Set (or, with None or "", remove) a cardholder's PIN. The PIN itself is never recorded."""
    with transaction.atomic():
        cardholder.set_pin(pin or None)
        cardholder.save(update_fields=["pin_hash", "updated_at"])
        record_operator_action(
            operator, "set_pin" if pin else "clear_pin", cardholder, via=via, detail={"has_pin": bool(pin)}
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
