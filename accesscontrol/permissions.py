"""Who may do what, and where: operator groups give permissions and partitions.

``restrict(queryset, operator, action)`` is the one place that limits what an
operator sees or changes; the API, the admin and the web app all go through it.
"""

from django.db.models import Model, Q, QuerySet

from accesscontrol.models import OperatorGroup

ALL = None  # partitions: not limited


def permission_name(model: type[Model], action: str) -> str:
    return f"{model._meta.app_label}.{action}_{model._meta.model_name}"


def allowed_partitions(operator, permission: str) -> set[int] | None:
    """The partitions where ``operator`` holds ``permission``: a set of ids, or ALL."""
    if operator.is_superuser:
        return ALL
    app_label, codename = permission.split(".", 1)
    groups = OperatorGroup.objects.filter(
        members=operator, permissions__codename=codename, permissions__content_type__app_label=app_label
    ).distinct()
    if groups.filter(all_partitions=True).exists():
        return ALL
    return set(groups.values_list("partitions", flat=True)) - {None}


# Models that belong to a partition through another object. Calendars, site
# settings, partitions and operator data have none: they are site-wide.
PARTITION_PATHS = {
    "accesscontrol.key": "cardholder__partition",
    "accesscontrol.cardholderpermission": "cardholder__partition",
    "accesscontrol.accesslevelentry": "access_level__partition",
    "accesscontrol.timeinterval": "time_period__partition",
    "accesscontrol.modechange": "schedule__partition",
    # Who is inside a zone belongs to the zone's partition (whatever the cardholder's).
    "accesscontrol.presence": "zone__partition",
    # An event without an access point then matches no partition: only operators with all partitions see it.
    "accesscontrol.auditevent": "access_point__partition",
    "accesscontrol.room": "access_point__partition",
    "accesscontrol.stay": "cardholder__partition",
}


def partition_path(model: type[Model]) -> str | None:
    """How a model reaches its partition: a field path, or None where it has none (site-wide data)."""
    default = "partition" if hasattr(model, "partition_id") else None
    return getattr(model, "partition_path", PARTITION_PATHS.get(model._meta.label_lower, default))


def partition_of(obj: Model) -> int | None:
    """The id of the partition ``obj`` belongs to, following ``partition_path``; None for site-wide data."""
    path = partition_path(type(obj))
    if path is None:
        return None
    *hops, last = path.split("__")
    for hop in hops:
        obj = getattr(obj, hop, None)
        if obj is None:
            return None
    return getattr(obj, f"{last}_id", None)


def restrict(queryset: QuerySet, operator, action: str) -> QuerySet:
    """``queryset`` narrowed to the rows ``operator`` may ``action`` (view, add, change, delete)."""
    if not operator or not operator.is_authenticated or not operator.is_active:
        return queryset.none()
    permission = permission_name(queryset.model, action)
    if not operator.has_perm(permission):
        return queryset.none()
    path = partition_path(queryset.model)
    partitions = allowed_partitions(operator, permission)
    if partitions is ALL or path is None:
        return queryset
    return queryset.filter(Q(**{f"{path}__in": partitions}))


def may_use_partition(operator, permission: str, partition_id: int | None) -> bool:
    partitions = allowed_partitions(operator, permission)
    return partitions is ALL or partition_id in partitions
