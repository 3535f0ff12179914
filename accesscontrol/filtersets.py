"""Filters for lists of domain objects, shared by the API and the web app.

Related objects are filtered by id with plain number filters: a filter never
says whether an id the operator may not see exists.
"""

import datetime as dt

import django_filters as filters
from django import forms
from django.db.models import Q
from django.utils import timezone
from django_filters.fields import DateRangeWidget, IsoDateTimeField, RangeField
from drf_spectacular.utils import extend_schema_field

from accesscontrol import search
from accesscontrol.choices import AccessPointKind, AuditKind, CardholderKind, Decision, KeyKind, KeyStatus
from accesscontrol.models import (
    AccessLevel,
    AccessPoint,
    ApiKey,
    AuditEvent,
    BlacklistEntry,
    Calendar,
    Cardholder,
    CardholderPermission,
    Key,
    Location,
    ModeSchedule,
    Operator,
    OperatorGroup,
    Partition,
    Presence,
    SystemAuditEntry,
    TimePeriod,
    Zone,
    normalize_uid,
)


class IdField(forms.IntegerField):
    def __init__(self, **kwargs):
        # Bounded so an absurd id is a form error, not a database overflow.
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(**kwargs)


@extend_schema_field({"type": "integer", "minimum": 0, "maximum": 2**63 - 1})
class IdFilter(filters.NumberFilter):
    field_class = IdField


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 date and time, in UTC for the database: PostgreSQL refuses an offset beyond ±15:59, which
    ISO 8601 allows, and a time near year 1 or 9999 may not move to UTC at all (a form error, not a 500)."""

    default_error_messages = {"overflow": "This date and time is out of range."}

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(dt.UTC)
        except OverflowError:
            raise forms.ValidationError(self.error_messages["overflow"], code="overflow") from None


class UtcDateTimeRangeField(RangeField):
    widget = DateRangeWidget

    def __init__(self, *args, **kwargs):
        super().__init__((UtcDateTimeField(), UtcDateTimeField()), *args, **kwargs)


class UtcDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class UtcDateTimeFromToRangeFilter(filters.IsoDateTimeFromToRangeFilter):
    field_class = UtcDateTimeRangeField


class PartitionFilterSet(filters.FilterSet):
    name = filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Partition
        fields = ["name"]


class PartitionedFilterSet(filters.FilterSet):
    partition = IdFilter(field_name="partition_id")
    name = filters.CharFilter(lookup_expr="icontains")


class LocationFilterSet(PartitionedFilterSet):
    parent = IdFilter(field_name="parent_id")

    class Meta:
        model = Location
        fields = ["partition", "name", "parent"]


class ZoneFilterSet(PartitionedFilterSet):
    mode_schedule = IdFilter(field_name="mode_schedule_id")

    class Meta:
        model = Zone
        fields = ["partition", "name", "anti_passback", "lockdown", "roll_call", "mode_schedule"]


class AccessPointFilterSet(PartitionedFilterSet):
    kind = filters.ChoiceFilter(choices=AccessPointKind.choices)
    location = IdFilter(field_name="location_id")
    zone = IdFilter(field_name="zones__id", distinct=True)
    held_open_time = IdFilter(label="Held-open time (s); 0: never an alarm")
    mode_schedule = IdFilter(field_name="mode_schedule_id")

    class Meta:
        model = AccessPoint
        fields = [
            "partition",
            "name",
            "kind",
            "connection",
            "opening_mode",
            "location",
            "zone",
            "lockdown",
            "pin_required",
            "pin_only",
            "held_open_time",
            "mode_schedule",
        ]


class ModeScheduleFilterSet(PartitionedFilterSet):
    class Meta:
        model = ModeSchedule
        fields = ["partition", "name"]


class PresenceFilterSet(filters.FilterSet):
    zone = IdFilter(field_name="zone_id")
    cardholder = IdFilter(field_name="cardholder_id")

    class Meta:
        model = Presence
        fields = ["zone", "cardholder", "inside"]


class TimePeriodFilterSet(PartitionedFilterSet):
    class Meta:
        model = TimePeriod
        fields = ["partition", "name"]


class CalendarFilterSet(filters.FilterSet):
    name = filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Calendar
        fields = ["name"]


class AccessLevelFilterSet(PartitionedFilterSet):
    access_point = IdFilter(field_name="entries__access_point_id", distinct=True)
    zone = IdFilter(field_name="entries__zone_id", distinct=True)

    class Meta:
        model = AccessLevel
        fields = ["partition", "name", "access_point", "zone"]


class CardholderFilterSet(filters.FilterSet):
    partition = IdFilter(field_name="partition_id")
    kind = filters.ChoiceFilter(choices=CardholderKind.choices)
    name = filters.CharFilter(method="filter_name", label="Name contains")
    q = filters.CharFilter(
        method="filter_q",
        label="Search",
        help_text="Every word in the last or first name, or the start of the e-mail address, or the external id, "
        "or a key's UID: the web app's search.",
    )
    access_level = IdFilter(field_name="access_levels__id", distinct=True)
    expiration_after = UtcDateTimeFilter(field_name="expiration", lookup_expr="gte")
    expiration_before = UtcDateTimeFilter(field_name="expiration", lookup_expr="lt")

    class Meta:
        model = Cardholder
        fields = ["partition", "kind", "ext_id", "banned", "access_level", "q"]

    def filter_name(self, queryset, name, value):
        return search.search_names(queryset, value)

    def filter_q(self, queryset, name, value):
        """Names (every word), e-mail, external id, or a key's UID (accesscontrol/search.py)."""
        return search.search(queryset, value)


def valid_keys(now):
    """Keys that open doors at ``now``: issued, and inside their validity window."""
    return Key.objects.filter(status=KeyStatus.ISSUED).filter(
        Q(valid_from__isnull=True) | Q(valid_from__lte=now), Q(valid_until__isnull=True) | Q(valid_until__gt=now)
    )


def active_cardholders(now) -> Q:
    """Cardholders who may open doors at ``now``: not banned, inside their activation window."""
    return (
        Q(banned=False)
        & (Q(activation__isnull=True) | Q(activation__lte=now))
        & (Q(expiration__isnull=True) | Q(expiration__gt=now))
    )


class CardholderSearchFilterSet(CardholderFilterSet):
    """The web app's cardholder list: one search box and the filters an operator asks for.

    Every filter is an indexed lookup or a subquery on an indexed column (no DISTINCT
    over a join), so it stays fast with a hundred thousand cardholders.
    """

    SORTS = {
        "name": ("last_name", "first_name", "id"),
        "-name": ("-last_name", "-first_name", "-id"),
        "ext_id": ("ext_id", "id"),
        "-ext_id": ("-ext_id", "-id"),
        "created": ("created_at", "id"),
        "-created": ("-created_at", "-id"),
        "expiration": ("expiration", "id"),
        "-expiration": ("-expiration", "-id"),
    }

    access_level = IdFilter(method="filter_access_level")
    active = filters.BooleanFilter(method="filter_active")
    has_valid_key = filters.BooleanFilter(method="filter_has_valid_key", label="Has a valid key")
    sort = filters.ChoiceFilter(
        method="filter_sort", choices=[(name, name) for name in SORTS], empty_label=None, label="Sort by"
    )

    class Meta(CardholderFilterSet.Meta):
        fields = [*CardholderFilterSet.Meta.fields, "active", "has_valid_key", "sort"]

    def filter_access_level(self, queryset, name, value):
        return queryset.filter(
            pk__in=Cardholder.access_levels.through.objects.filter(accesslevel_id=value).values("cardholder_id")
        )

    def filter_active(self, queryset, name, value):
        condition = active_cardholders(timezone.now())
        return queryset.filter(condition) if value else queryset.exclude(condition)

    def filter_has_valid_key(self, queryset, name, value):
        holders = valid_keys(timezone.now()).values("cardholder_id")
        return queryset.filter(pk__in=holders) if value else queryset.exclude(pk__in=holders)

    def filter_sort(self, queryset, name, value):
        return queryset.order_by(*self.SORTS.get(value, self.SORTS["name"]))


class CardholderPermissionFilterSet(filters.FilterSet):
    cardholder = IdFilter(field_name="cardholder_id")
    access_point = IdFilter(field_name="access_point_id")
    zone = IdFilter(field_name="zone_id")
    time_period = IdFilter(field_name="time_period_id")

    class Meta:
        model = CardholderPermission
        fields = ["cardholder", "access_point", "zone", "time_period"]


class KeyFilterSet(filters.FilterSet):
    cardholder = IdFilter(field_name="cardholder_id")
    uid = filters.CharFilter(method="filter_uid")
    kind = filters.ChoiceFilter(choices=KeyKind.choices)
    status = filters.ChoiceFilter(choices=KeyStatus.choices)
    issued_after = UtcDateTimeFilter(field_name="issued_at", lookup_expr="gte")
    issued_before = UtcDateTimeFilter(field_name="issued_at", lookup_expr="lt")

    class Meta:
        model = Key
        fields = ["cardholder", "uid", "kind", "status"]

    def filter_uid(self, queryset, name, value):
        return queryset.filter(uid=value.replace(":", "").replace(" ", "").upper())


class AuditEventFilterSet(filters.FilterSet):
    at = UtcDateTimeFromToRangeFilter(help_text="at_after and at_before, ISO 8601.")
    access_point = IdFilter(field_name="access_point_id")
    cardholder = IdFilter(field_name="cardholder_id")
    device = IdFilter(field_name="device_id")
    kind = filters.MultipleChoiceFilter(choices=AuditKind.choices)
    reason = filters.MultipleChoiceFilter(choices=Decision.choices)
    key_uid = filters.CharFilter()

    class Meta:
        model = AuditEvent
        fields = ["at", "access_point", "cardholder", "device", "kind", "reason", "key_uid"]


class SystemAuditFilterSet(filters.FilterSet):
    at = UtcDateTimeFromToRangeFilter(help_text="at_after and at_before, ISO 8601.")
    operator = IdFilter(field_name="operator_id")
    action = filters.CharFilter()
    object_type = filters.CharFilter()
    object_id = filters.CharFilter()
    via = filters.CharFilter()

    class Meta:
        model = SystemAuditEntry
        fields = ["at", "operator", "action", "object_type", "object_id", "via"]


class OperatorFilterSet(filters.FilterSet):
    username = filters.CharFilter(lookup_expr="icontains")
    group = IdFilter(field_name="operator_groups__id", distinct=True)

    class Meta:
        model = Operator
        fields = ["username", "is_active", "is_superuser", "group"]


class OperatorGroupFilterSet(filters.FilterSet):
    name = filters.CharFilter(lookup_expr="icontains")
    member = IdFilter(field_name="members__id", distinct=True)
    partition = IdFilter(field_name="partitions__id", distinct=True)

    class Meta:
        model = OperatorGroup
        fields = ["name", "member", "partition", "all_partitions"]


class ApiKeyFilterSet(filters.FilterSet):
    operator = IdFilter(field_name="operator_id")
    revoked = filters.BooleanFilter(field_name="revoked_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = ApiKey
        fields = ["operator", "revoked"]


class BlacklistFilterSet(filters.FilterSet):
    key = IdFilter(field_name="key_id")
    uid = filters.CharFilter(method="filter_uid")
    after = filters.NumberFilter(
        field_name="id", lookup_expr="gt", help_text="Entries numbered above this: what a lock holding it lacks."
    )

    class Meta:
        model = BlacklistEntry
        fields = ["key", "uid", "after"]

    def filter_uid(self, queryset, name, value):
        return queryset.filter(uid=normalize_uid(value))
