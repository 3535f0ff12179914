"""Business operations on the access control domain.

The API, the web app, management commands and consumers call these instead of
changing rows themselves: each owns its transaction and leaves its trace in the
system auditor, so an action is recorded the same way whoever asked for it.
"""

import datetime as dt
from functools import partial

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accesscontrol import blacklist, extensions
from accesscontrol.choices import KeyKind, KeyStatus, ModeSource
from accesscontrol.forms.schedules import DAY_COLUMNS
from accesscontrol.models import (
    AccessLevel,
    AccessLevelEntry,
    AccessPoint,
    ApiKey,
    BlacklistEntry,
    Calendar,
    CalendarDay,
    Cardholder,
    CardholderPermission,
    FaceTemplate,
    Key,
    ModeChange,
    ModeSchedule,
    Operator,
    SystemAuditEntry,
    TimeInterval,
    TimePeriod,
    Zone,
)
from accesscontrol.models.schedules import MAX_MODE_CHANGES
from accesscontrol.permissions import may_use_partition, permission_name, restrict
from accesscontrol.photofiles import delete_photo_files
from accesscontrol.pins import PIN_TAKEN
from accesscontrol.rulechanges import record_rule_changes


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


FACE_TEMPLATE_CHANGE = "facetemplate"  # RuleChange rows naming a cardholder whose face templates changed


def erase_face_templates(cardholder: Cardholder) -> int:
    """Erase every face template of ``cardholder`` (the one place they are erased); returns how many.

    A RuleChange row tells every face gallery (accesscontrol/facematch.py) to drop them.
    """
    erased, _ = FaceTemplate.objects.filter(cardholder_id=cardholder.pk).delete()
    if erased:
        record_rule_changes(FACE_TEMPLATE_CHANGE, [cardholder.pk])
    return erased


def deactivate_cardholder(
    cardholder: Cardholder, *, operator, via: str, at: dt.datetime | None = None, address: str | None = None
) -> Cardholder:
    """End ``cardholder``'s access now: their keys are cancelled and blacklisted, their expiration is now.

    The cardholder stays, with their history and their keys' blacklist entries.
    An expiration alone would not reach offline locks: the cards carry the end
    they were written with.
    Their face templates are erased (:func:`erase_face_templates`).
    """
    now = at or timezone.now()
    with transaction.atomic():
        cardholder = Cardholder.objects.select_for_update().get(pk=cardholder.pk)
        cancelled = cancel_live_keys(cardholder, operator=operator, via=via, at=now, address=address)
        faces_erased = erase_face_templates(cardholder)
        before = _iso(cardholder.expiration)
        cardholder.expiration = now
        if cardholder.activation and cardholder.activation >= now:
            cardholder.activation = None
        cardholder.save(update_fields=["expiration", "activation", "updated_at"])
        detail = {
            "changes": {"expiration": {"from": before, "to": _iso(now)}},
            "keys_cancelled": [key.pk for key in cancelled],
        }
        if faces_erased:
            detail["face_templates_erased"] = faces_erased
        record_operator_action(operator, "deactivate", cardholder, via=via, detail=detail, address=address)
    return cardholder


def delete_cardholder(
    cardholder: Cardholder, *, operator, via: str, at: dt.datetime | None = None, address: str | None = None
) -> None:
    """Delete ``cardholder`` and their keys, each cancelled and blacklisted first (:func:`cancel_live_keys`).

    The blacklist entries outlive the keys (they keep the key's number, UID and
    end); the photo's files are removed after the commit. Raises ProtectedError,
    changing nothing, while something else still needs the cardholder (a hotel stay). Their face
    templates are erased (:func:`erase_face_templates`).
    """
    with transaction.atomic():
        cardholder = Cardholder.objects.select_for_update().get(pk=cardholder.pk)
        cancel_live_keys(cardholder, operator=operator, via=via, at=at, address=address)
        faces_erased = erase_face_templates(cardholder)
        keys = list(cardholder.keys.order_by("id"))
        detail = {
            "fields": {name: getattr(cardholder, name) for name in ("last_name", "first_name", "ext_id")},
            "keys": [{"id": key.pk, "uid": key.uid, "status": key.status} for key in keys],
            "blacklist_entries": list(
                BlacklistEntry.objects.filter(key__in=keys).order_by("id").values_list("id", flat=True)
            ),
        }
        if faces_erased:
            detail["face_templates_erased"] = faces_erased
        record_operator_action(operator, "delete", cardholder, via=via, detail=detail, address=address)
        # Keys one by one, as the rules snapshot hears of each (accesscontrol/rulechanges.py); Key -> Cardholder
        # is PROTECT so that no other path deletes a cardholder's keys without cancelling them.
        for key in keys:
            key.delete()
        cardholder.delete()
        # The photo's files go once the row has (a rollback leaves the cardholder with their photo).
        transaction.on_commit(partial(delete_photo_files, cardholder.photo.name))


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
    """Set (or, with None or "", remove) a cardholder's PIN. The PIN itself is never recorded.

    A PIN held by another cardholder is refused (ValidationError on ``pin``): a PIN alone opens PIN-only doors,
    so it must name one person."""
    if pin and cardholder.pin_taken(pin):
        raise ValidationError({"pin": PIN_TAKEN})
    with transaction.atomic():
        cardholder.set_pin(pin or None)
        cardholder.save(update_fields=["pin_hash", "pin_index", "updated_at"])
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


# --- who may grant what ------------------------------------------------------------------------------


def _is_operator(operator) -> bool:
    return operator is not None and getattr(operator, "is_authenticated", False)


def _require(operator, obj, action: str, refusal: str) -> None:
    """Refuse an operator who may not ``action`` ``obj``: nobody grants what they do not hold.

    Work the server does itself (``operator`` None: a PMS connector, a directory sync)
    is checked where it is configured, not here.
    """
    if obj is None or not _is_operator(operator):
        return
    if not restrict(type(obj).objects.filter(pk=obj.pk), operator, action).exists():
        raise PermissionDenied(refusal)


def _require_targets(operator, *, access_point=None, zone=None, time_period=None) -> None:
    for obj in (access_point, zone, time_period):
        _require(operator, obj, "view", f"You may not grant access with {obj}.")


def _require_partition(operator, model, action: str, partition_id: int | None, refusal: str) -> None:
    if _is_operator(operator) and not may_use_partition(operator, permission_name(model, action), partition_id):
        raise PermissionDenied(refusal)


def _values(obj, names) -> dict:
    """``obj``'s fields ``names`` as the system auditor stores them: related objects by id, times as text."""
    values = {}
    for name in names:
        field = obj._meta.get_field(name)
        value = getattr(obj, field.attname)
        values[name] = value.isoformat() if isinstance(value, dt.datetime | dt.date | dt.time) else value
    return values


def _columns(model) -> list[str]:
    """The fields an operator writes: not the id, nor what the server sets itself (timestamps)."""
    return [
        field.name
        for field in model._meta.concrete_fields
        if not field.primary_key and field.editable and not getattr(field, "auto_now", False)
    ]


# --- access levels granted to cardholders -----------------------------------------------------------


def grant_access_level(
    cardholder: Cardholder, level: AccessLevel, *, operator, via: str, address: str | None = None
) -> bool:
    """Give ``cardholder`` the access level ``level``; False when they held it already (nothing recorded)."""
    _require(operator, cardholder, "change", "You may not change this cardholder.")
    _require(operator, level, "view", "You may not grant this access level.")
    with transaction.atomic():
        if cardholder.access_levels.filter(pk=level.pk).exists():
            return False
        cardholder.access_levels.add(level)  # the m2m receiver notes the rule change
        detail = {"access_level": level.pk, "name": level.name}
        record_operator_action(operator, "grant_access_level", cardholder, via=via, detail=detail, address=address)
    return True


def revoke_access_level(
    cardholder: Cardholder, level: AccessLevel, *, operator, via: str, address: str | None = None
) -> bool:
    """Take the access level ``level`` from ``cardholder``; False when they did not hold it."""
    _require(operator, cardholder, "change", "You may not change this cardholder.")
    with transaction.atomic():
        if not cardholder.access_levels.filter(pk=level.pk).exists():
            return False
        cardholder.access_levels.remove(level)
        detail = {"access_level": level.pk, "name": level.name}
        record_operator_action(operator, "remove_access_level", cardholder, via=via, detail=detail, address=address)
    return True


def grant_access_level_to_many(
    level: AccessLevel, cardholder_ids: list[int], *, operator, via: str, detail: dict | None = None
) -> list[int]:
    """Give ``level`` to the cardholders ``cardholder_ids`` in one transaction and one auditor row naming them.

    For bulk work (a job's batch): rows are inserted together, so the snapshot is told
    here. Returns the ids that did not hold the level before.
    """
    _require(operator, level, "view", "You may not grant this access level.")
    through = Cardholder.access_levels.through
    with transaction.atomic():
        visible = Cardholder.objects.filter(pk__in=cardholder_ids)
        if _is_operator(operator):
            visible = restrict(visible, operator, "change")
        holding = through.objects.filter(accesslevel_id=level.pk, cardholder_id__in=cardholder_ids)
        ids = sorted(set(visible.values_list("pk", flat=True)) - set(holding.values_list("cardholder_id", flat=True)))
        if not ids:
            return []
        through.objects.bulk_create([through(cardholder_id=pk, accesslevel_id=level.pk) for pk in ids])
        record_rule_changes("cardholder", ids)
        record_operator_action(
            operator, "grant_access_level", level, via=via, detail={**(detail or {}), "cardholders": ids}
        )
    return ids


# --- individual permissions (an access point or a zone, at the times of a time period) ----------------

PERMISSION_FIELDS = ["access_point", "zone", "time_period"]


def add_cardholder_permission(
    cardholder: Cardholder,
    *,
    access_point: AccessPoint | None = None,
    zone: Zone | None = None,
    time_period: TimePeriod | None = None,
    operator,
    via: str,
    address: str | None = None,
) -> CardholderPermission:
    """Let ``cardholder`` through ``access_point`` or ``zone`` at the times of ``time_period`` (always when None)."""
    _require_partition(
        operator, CardholderPermission, "add", cardholder.partition_id, "You may not give this cardholder permissions."
    )
    _require_targets(operator, access_point=access_point, zone=zone, time_period=time_period)
    permission = CardholderPermission(
        cardholder=cardholder, access_point=access_point, zone=zone, time_period=time_period
    )
    permission.full_clean(validate_unique=False, validate_constraints=False)
    with transaction.atomic():
        permission.save()
        detail = {"fields": _values(permission, ["cardholder", *PERMISSION_FIELDS])}
        record_operator_action(operator, "create", permission, via=via, detail=detail, address=address)
    return permission


def change_cardholder_permission(
    permission: CardholderPermission, changes: dict, *, operator, via: str, address: str | None = None
) -> CardholderPermission:
    """Change a permission's cardholder, target or time period (``changes``: field name to new value)."""
    unknown = set(changes) - {"cardholder", *PERMISSION_FIELDS}
    if unknown:
        raise ValueError(f"Not fields of a permission: {sorted(unknown)}")
    _require_partition(
        operator, CardholderPermission, "change", permission.cardholder.partition_id, "You may not change it."
    )
    _require_targets(operator, **{name: value for name, value in changes.items() if name != "cardholder"})
    names = ["cardholder", *PERMISSION_FIELDS]
    before = _values(permission, names)
    for name, value in changes.items():
        setattr(permission, name, value)
    _require_partition(
        operator, CardholderPermission, "change", permission.cardholder.partition_id, "You may not use this partition."
    )
    permission.full_clean(validate_unique=False, validate_constraints=False)
    with transaction.atomic():
        permission.save()
        after = _values(permission, names)
        detail = {
            "changes": {
                name: {"from": before[name], "to": after[name]} for name in names if before[name] != after[name]
            }
        }
        record_operator_action(operator, "update", permission, via=via, detail=detail, address=address)
    return permission


def remove_cardholder_permission(
    permission: CardholderPermission, *, operator, via: str, address: str | None = None
) -> None:
    _require_partition(
        operator,
        CardholderPermission,
        "delete",
        permission.cardholder.partition_id,
        "You may not remove this cardholder's permissions.",
    )
    with transaction.atomic():
        detail = {"fields": _values(permission, ["cardholder", *PERMISSION_FIELDS])}
        record_operator_action(operator, "delete", permission, via=via, detail=detail, address=address)
        permission.delete()


def set_cardholder_permissions(
    cardholder: Cardholder,
    kind: str,
    grants: list[tuple],
    *,
    operator,
    via: str,
    address: str | None = None,
) -> list[CardholderPermission]:
    """Replace ``cardholder``'s permissions of one ``kind`` ("access_point" or "zone") by ``grants``.

    ``grants`` are (target, time period or None) pairs. One auditor row says how many
    went and which came.
    """
    if kind not in ("access_point", "zone"):
        raise ValueError(f"A permission names an access point or a zone, not {kind!r}.")
    for action in ("add", "delete"):
        _require_partition(
            operator, CardholderPermission, action, cardholder.partition_id, "You may not set these permissions."
        )
    for target, period in grants:
        _require_targets(operator, **{kind: target, "time_period": period})
    with transaction.atomic():
        removed = list(cardholder.permissions.filter(**{f"{kind}__isnull": False}))
        for permission in removed:
            permission.delete()  # one by one: each delete tells the rules snapshot
        created = [
            CardholderPermission.objects.create(cardholder=cardholder, time_period=period, **{kind: target})
            for target, period in grants
        ]
        granted = [[target.pk, getattr(period, "pk", None)] for target, period in grants]
        detail = {"kind": kind, "removed": len(removed), "granted": granted}
        record_operator_action(operator, "set_permissions", cardholder, via=via, detail=detail, address=address)
    return created


# --- access level entries --------------------------------------------------------------------------


def describe_entry(entry: AccessLevelEntry) -> str:
    target = f"access point {entry.access_point}" if entry.access_point_id else f"zone {entry.zone}"
    return f"{target}, {entry.time_period or 'at any time'}"


def entry_detail(entry: AccessLevelEntry) -> dict:
    return {"id": entry.pk, **_values(entry, PERMISSION_FIELDS), "text": describe_entry(entry)}


def add_access_level_entry(
    level: AccessLevel,
    *,
    access_point: AccessPoint | None = None,
    zone: Zone | None = None,
    time_period: TimePeriod | None = None,
    operator,
    via: str,
    address: str | None = None,
) -> AccessLevelEntry:
    """Let the level's members through ``access_point`` or ``zone`` at the times of ``time_period``."""
    _require(operator, level, "change", "You may not change this access level.")
    _require_targets(operator, access_point=access_point, zone=zone, time_period=time_period)
    entry = AccessLevelEntry(access_level=level, access_point=access_point, zone=zone, time_period=time_period)
    entry.full_clean(validate_unique=False, validate_constraints=False)
    with transaction.atomic():
        entry.save()
        record_operator_action(
            operator, "add_entry", level, via=via, detail={"entry": entry_detail(entry)}, address=address
        )
    return entry


def remove_access_level_entry(entry: AccessLevelEntry, *, operator, via: str, address: str | None = None) -> None:
    level = entry.access_level
    _require(operator, level, "change", "You may not change this access level.")
    with transaction.atomic():
        record_operator_action(
            operator, "remove_entry", level, via=via, detail={"entry": entry_detail(entry)}, address=address
        )
        entry.delete()


def save_access_level(
    level: AccessLevel, *, entries: list[dict] | None = None, operator, via: str, address: str | None = None
) -> AccessLevel:
    """Create or update ``level`` (its fields set by the caller) and, when ``entries`` is given, replace its entries.

    ``entries`` are dicts of access_point, zone and time_period. The operator must see
    every access point, zone and time period they grant.
    """
    for item in entries or ():
        _require_targets(operator, **item)
    return _save_with_children(
        level, "entries", entries, describe=describe_entry, order=("pk",), operator=operator, via=via, address=address
    )


# --- time periods and calendars --------------------------------------------------------------------


def describe_interval(interval: TimeInterval) -> str:
    """An interval as the system auditor and the pages show it: "22:00-06:00 Mon Tue Hol"."""
    days = " ".join(short for name, short, _ in DAY_COLUMNS if getattr(interval, name))
    return f"{interval.start:%H:%M}-{interval.end:%H:%M} {days}".strip()


def describe_day(day: CalendarDay) -> dict:
    return {"date": day.date.isoformat(), "day_type": day.day_type, "name": day.name, "recurring": day.recurring}


def save_time_period(
    period: TimePeriod, *, intervals: list[dict] | None = None, operator, via: str, address: str | None = None
) -> TimePeriod:
    """Create or update ``period`` (its fields set by the caller) and, when ``intervals`` is given, replace them.

    ``intervals`` are dicts of TimeInterval fields (start, end, the days). The whole
    change is one auditor row ("create" or "update" with what changed).
    """
    return _save_with_children(
        period,
        "intervals",
        intervals,
        describe=describe_interval,
        order=("start", "pk"),
        operator=operator,
        via=via,
        address=address,
    )


def save_calendar(
    calendar: Calendar, *, days: list[dict] | None = None, operator, via: str, address: str | None = None
) -> Calendar:
    """Create or update ``calendar`` and, when ``days`` is given, replace its special days."""
    dates = [day["date"] for day in days or ()]
    if len(dates) != len(set(dates)):
        raise ValidationError({"days": "Each date may appear only once."})
    return _save_with_children(
        calendar, "days", days, describe=describe_day, order=("date",), operator=operator, via=via, address=address
    )


def add_calendar_day(
    calendar: Calendar,
    date: dt.date,
    *,
    day_type: str = CalendarDay._meta.get_field("day_type").default,
    name: str = "",
    recurring: bool = False,
    operator,
    via: str,
    address: str | None = None,
) -> CalendarDay:
    _require(operator, calendar, "change", "You may not change this calendar.")
    day = CalendarDay(calendar=calendar, date=date, day_type=day_type, name=name, recurring=recurring)
    day.full_clean(exclude=["calendar"])
    with transaction.atomic():
        day.save()
        record_operator_action(
            operator, "add_day", calendar, via=via, detail={"day": describe_day(day)}, address=address
        )
    return day


def remove_calendar_day(day: CalendarDay, *, operator, via: str, address: str | None = None) -> None:
    calendar = day.calendar
    _require(operator, calendar, "change", "You may not change this calendar.")
    with transaction.atomic():
        record_operator_action(
            operator, "remove_day", calendar, via=via, detail={"day": describe_day(day)}, address=address
        )
        day.delete()


def add_public_holidays(
    calendar: Calendar,
    holidays,
    *,
    year: int,
    country: str,
    operator,
    via: str,
    address: str | None = None,
) -> list[dt.date]:
    """Add ``holidays`` ((date, name) pairs) as holidays of ``calendar``; dates it has already stay as they are.

    Returns the dates added; one auditor row names them (none when nothing was added).
    """
    _require(operator, calendar, "change", "You may not change this calendar.")
    with transaction.atomic():
        taken = set(calendar.days.values_list("date", flat=True))
        added = []
        for date, name in holidays:
            if date not in taken:
                # One by one, not bulk_create: the save signal tells the rules snapshot.
                CalendarDay.objects.create(calendar=calendar, date=date, name=name[:100])
                added.append(date)
                taken.add(date)
        if added:
            detail = {"year": year, "country": country, "added": [date.isoformat() for date in added]}
            record_operator_action(operator, "add_holidays", calendar, via=via, detail=detail, address=address)
    return added


# --- mode schedules --------------------------------------------------------------------------------


def describe_mode_change(change: ModeChange) -> str:
    """A change as the system auditor and the pages show it: "07:30 office Mon Tue Hol"."""
    days = " ".join(short for name, short, _ in DAY_COLUMNS if getattr(change, name))
    return f"{change.at:%H:%M} {change.mode} {days}".strip()


def save_mode_schedule(
    schedule: ModeSchedule, *, changes: list[dict] | None = None, operator, via: str, address: str | None = None
) -> ModeSchedule:
    """Create or update ``schedule`` (its fields set by the caller) and, when ``changes`` is given, replace them.

    ``changes`` are dicts of ModeChange fields (at, mode, the days); each is checked as the model
    checks it (a known mode, a day marked). Two changes at the same time on the same day type would
    contradict each other: refused. The whole change is one auditor row.
    """
    if changes is not None and len(changes) > MAX_MODE_CHANGES:
        raise ValidationError({"changes": f"A mode schedule holds at most {MAX_MODE_CHANGES} changes."})
    seen: dict[tuple, str] = {}
    for item in changes or ():
        for name, _, _ in DAY_COLUMNS:
            if item.get(name):
                key = (item.get("at"), name)
                if key in seen and seen[key] != item.get("mode"):
                    at = item["at"].strftime("%H:%M") if hasattr(item.get("at"), "strftime") else item.get("at")
                    raise ValidationError({"changes": f"Two changes at {at} on {name} name different modes."})
                seen[key] = item.get("mode")
    return _save_with_children(
        schedule,
        "changes",
        changes,
        describe=describe_mode_change,
        order=("at", "pk"),
        operator=operator,
        via=via,
        address=address,
    )


def _save_with_children(
    owner, relation: str, children: list[dict] | None, *, describe, order: tuple, operator, via: str, address
):
    """Save ``owner`` and, when ``children`` is given, replace its ``relation`` by them; one auditor row.

    A create is recorded with the fields written; an update with what changed, the
    children as their descriptions ("from" and "to"). An update that changes nothing
    leaves no row.
    """
    model = type(owner)
    creating = owner._state.adding
    names = _columns(model)
    related = model._meta.get_field(relation)
    fk_name = related.field.name
    child_model = related.related_model
    if not creating:
        _require(operator, owner, "change", f"You may not change this {model._meta.verbose_name}.")
    with transaction.atomic():
        if creating:
            before = {}
        else:
            stored = model.objects.get(pk=owner.pk)
            before = _values(stored, names)
            if children is not None:
                before[relation] = [describe(child) for child in getattr(stored, relation).order_by(*order)]
        owner.save()
        _require_partition_of(operator, owner, "add" if creating else "change")
        if children is not None:
            getattr(owner, relation).all().delete()
            for item in children:
                child = child_model(**{fk_name: owner}, **item)
                child.full_clean(exclude=[fk_name], validate_unique=False, validate_constraints=False)
                child.save()
            # A prefetched list would otherwise still show the old children.
            getattr(owner, "_prefetched_objects_cache", {}).pop(relation, None)
        if creating:
            given = [name for name in names if getattr(owner, model._meta.get_field(name).attname) not in (None, "")]
            fields = sorted([*given, *([relation] if children else [])])
            record_operator_action(operator, "create", owner, via=via, detail={"fields": fields}, address=address)
        else:
            after = _values(owner, names)
            if children is not None:
                after[relation] = [describe(child) for child in getattr(owner, relation).order_by(*order)]
            changes = {
                name: {"from": before[name], "to": value} for name, value in after.items() if before[name] != value
            }
            if changes:
                record_operator_action(operator, "update", owner, via=via, detail={"changes": changes}, address=address)
    return owner


def _require_partition_of(operator, obj, action: str) -> None:
    if hasattr(obj, "partition_id"):
        _require_partition(operator, type(obj), action, obj.partition_id, "You may not use this partition.")


def opening_mode_edited(point: AccessPoint, *, operator, via: str, address: str | None = None) -> None:
    """An operator gave an access point a new opening mode by editing it (web form, API, admin): it is the
    operator's mode, holding until the next scheduled change, and its doors are told, as by the set_mode command
    (the devices app registers how: accesscontrol.extensions)."""
    hook = extensions.registry.mode_commands
    if hook is not None:
        hook(point, point.opening_mode, operator=operator, via=via, address=address)
        return
    AccessPoint.objects.filter(pk=point.pk).update(mode_source=ModeSource.OPERATOR, mode_changed_at=timezone.now())
