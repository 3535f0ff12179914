"""Change tracking for the rules snapshot: a RuleChange row whenever rule data changes.

The receivers write the row in the same transaction as the change, so a rolled-back
change leaves no row and a committed one always has one. Rows name the object to
reload by the snapshot's kinds: a child row (a key, a level entry, an interval, a
calendar day, a permission) names what the snapshot keeps it in.

Signals are used here only to keep a cache in step, never for business flow.
``QuerySet.update()`` and ``bulk_create()`` send no signals: code that uses them on
rule data calls :func:`record_rule_changes` (or :func:`record_everything`).
"""

from collections.abc import Iterable

from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save

from accesscontrol.models import (
    AccessLevel,
    AccessLevelEntry,
    AccessPoint,
    Calendar,
    CalendarDay,
    Cardholder,
    CardholderPermission,
    Key,
    RuleChange,
    SiteSettings,
    TimeInterval,
    TimePeriod,
    Zone,
)

# A row with this model tells every store to rebuild in full.
EVERYTHING = "*"
# More objects than this in one change are cheaper to rebuild than to reload one by one.
BULK_LIMIT = 1000


def record_rule_changes(model: str, ids: Iterable[int]) -> None:
    """Note that the snapshot's ``model`` ("cardholder", "key", "accesspoint", ...) objects ``ids`` changed."""
    ids = {object_id for object_id in ids if object_id is not None}
    if len(ids) > BULK_LIMIT:
        record_everything()
    elif ids:
        RuleChange.objects.bulk_create([RuleChange(model=model, object_id=object_id) for object_id in sorted(ids)])


def record_everything() -> None:
    RuleChange.objects.create(model=EVERYTHING, object_id=0)


# Each tracked model, and which snapshot object a row of it belongs to.
_OWNERS = {
    Cardholder: ("cardholder", "pk"),
    Key: ("key", "pk"),
    AccessPoint: ("accesspoint", "pk"),
    Zone: ("zone", "pk"),
    AccessLevel: ("accesslevel", "pk"),
    AccessLevelEntry: ("accesslevel", "access_level_id"),
    CardholderPermission: ("cardholder", "cardholder_id"),
    TimePeriod: ("timeperiod", "pk"),
    TimeInterval: ("timeperiod", "time_period_id"),
    Calendar: ("calendar", "pk"),
    CalendarDay: ("calendar", "calendar_id"),
    SiteSettings: ("sitesettings", "pk"),
}


def _saved_or_deleted(sender, instance, **kwargs):
    model, attribute = _OWNERS[sender]
    record_rule_changes(model, [getattr(instance, attribute)])


def _moving(sender, instance, **kwargs):
    """A child moved to another owner (say, an entry to another level) leaves its old owner changed too."""
    if instance._state.adding or instance.pk is None:
        return
    model, attribute = _OWNERS[sender]
    old_owner = sender.objects.filter(pk=instance.pk).values_list(attribute, flat=True).first()
    if old_owner is not None and old_owner != getattr(instance, attribute):
        record_rule_changes(model, [old_owner])


# Deleting these removes m2m rows or sets foreign keys to NULL without any signal; record the objects affected.
def _zone_deleting(sender, instance, **kwargs):
    record_rule_changes("accesspoint", instance.access_points.values_list("pk", flat=True))


def _level_deleting(sender, instance, **kwargs):
    record_rule_changes("cardholder", instance.cardholders.values_list("pk", flat=True))


def _calendar_deleting(sender, instance, **kwargs):
    record_rule_changes("accesspoint", AccessPoint.objects.filter(calendar=instance).values_list("pk", flat=True))
    sites = SiteSettings.objects.filter(default_calendar=instance).values_list("pk", flat=True)
    record_rule_changes("sitesettings", sites)


def _m2m_receiver(model: str, reverse_accessor: str):
    """A receiver recording the forward side (``model``) of an m2m whose reverse accessor is ``reverse_accessor``."""

    def changed(sender, instance, action, reverse, pk_set, **kwargs):
        if action in ("post_add", "post_remove"):
            record_rule_changes(model, pk_set if reverse else [instance.pk])
        elif action == "pre_clear" and reverse:
            record_rule_changes(model, getattr(instance, reverse_accessor).values_list("pk", flat=True))
        elif action == "post_clear" and not reverse:
            record_rule_changes(model, [instance.pk])

    return changed


_levels_changed = _m2m_receiver("cardholder", "cardholders")
_zones_changed = _m2m_receiver("accesspoint", "access_points")


def connect() -> None:
    """Connect the receivers (from AccessControlConfig.ready()); connecting twice is harmless."""
    for model in _OWNERS:
        uid = f"rulechanges.{model.__name__}"
        post_save.connect(_saved_or_deleted, sender=model, dispatch_uid=f"{uid}.saved")
        post_delete.connect(_saved_or_deleted, sender=model, dispatch_uid=f"{uid}.deleted")
    for child in (AccessLevelEntry, CardholderPermission, TimeInterval, CalendarDay):
        pre_save.connect(_moving, sender=child, dispatch_uid=f"rulechanges.{child.__name__}.moving")
    pre_delete.connect(_zone_deleting, sender=Zone, dispatch_uid="rulechanges.Zone.deleting")
    pre_delete.connect(_level_deleting, sender=AccessLevel, dispatch_uid="rulechanges.AccessLevel.deleting")
    pre_delete.connect(_calendar_deleting, sender=Calendar, dispatch_uid="rulechanges.Calendar.deleting")
    m2m_changed.connect(_levels_changed, sender=Cardholder.access_levels.through, dispatch_uid="rulechanges.levels")
    m2m_changed.connect(_zones_changed, sender=AccessPoint.zones.through, dispatch_uid="rulechanges.zones")
