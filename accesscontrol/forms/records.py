"""Filters of the audit trail and the system auditor pages: the API's filtersets, with web-friendly fields.

Dates are entered in the site's time zone (``datetime-local`` inputs, read as
the current time zone). Related objects are chosen from what the operator may
see; a filter naming something else is a field error, never a leak.
"""

import django_filters as filters
from django import forms
from django.db.models import Q

from accesscontrol.choices import AuditKind, Decision
from accesscontrol.filtersets import AuditEventFilterSet, SystemAuditFilterSet
from accesscontrol.models import AccessPoint, Cardholder, Operator, Partition, Zone
from accesscontrol.permissions import ALL, allowed_partitions, restrict

DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]
# A cardholder name matching more people than this narrows nothing worth the query; the operator is told.
CARDHOLDER_MATCHES = 200


class DateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)


def _datetime_filter(lookup: str, label: str) -> filters.DateTimeFilter:
    return filters.DateTimeFilter(
        field_name="at", lookup_expr=lookup, label=label, widget=DateTimeInput(), input_formats=DATETIME_FORMATS
    )


class AuditTrailFilterSet(AuditEventFilterSet):
    """The audit trail's filters. ``request`` (with the operator) is required: choices are what they may see."""

    at_from = _datetime_filter("gte", "From")
    at_to = _datetime_filter("lt", "To")
    kind = filters.MultipleChoiceFilter(
        choices=AuditKind.choices,
        widget=forms.SelectMultiple(attrs={"size": 4}),
    )
    reason = filters.MultipleChoiceFilter(
        choices=Decision.choices,
        widget=forms.SelectMultiple(attrs={"size": 4}),
    )
    access_point = filters.ModelChoiceFilter(
        queryset=AccessPoint.objects.none(), field_name="access_point", label="Access point", empty_label="Any"
    )
    zone = filters.ModelChoiceFilter(
        queryset=Zone.objects.none(), method="filter_zone", label="Zone", empty_label="Any"
    )
    partition = filters.ModelChoiceFilter(
        queryset=Partition.objects.none(), method="filter_partition", label="Partition", empty_label="Any"
    )
    cardholder_name = filters.CharFilter(method="filter_cardholder_name", label="Cardholder")
    key_uid = filters.CharFilter(method="filter_key_uid", label="Key UID")

    class Meta(AuditEventFilterSet.Meta):
        fields = ["access_point", "cardholder", "device", "kind", "reason", "key_uid"]

    def __init__(self, data=None, queryset=None, *, request=None, prefix=None):
        super().__init__(data, queryset, request=request, prefix=prefix)
        self.filters.pop("at", None)  # the API's ISO range; the page has From and To
        self.too_many_cardholders = False
        operator = request.user
        form = self.form
        form.fields["access_point"].queryset = restrict(AccessPoint.objects.only("id", "name"), operator, "view")
        form.fields["zone"].queryset = restrict(Zone.objects.only("id", "name"), operator, "view")
        partitions = allowed_partitions(operator, "accesscontrol.view_auditevent")
        visible = Partition.objects.all() if partitions is ALL else Partition.objects.filter(pk__in=partitions or ())
        form.fields["partition"].queryset = visible
        # The API's id filters stay usable in links (?cardholder=12) but have no box of their own.
        for name in ("cardholder", "device"):
            form.fields[name].widget = forms.HiddenInput()
        # Time first, then where and who; the tall lists of kinds and reasons last, beside the buttons.
        form.order_fields(
            ["at_from", "at_to", "access_point", "zone", "partition", "cardholder_name", "key_uid", "kind", "reason"]
        )

    def filter_zone(self, queryset, name, value):
        return queryset.filter(access_point_id__in=AccessPoint.objects.filter(zones=value).values("pk"))

    def filter_partition(self, queryset, name, value):
        return queryset.filter(access_point_id__in=AccessPoint.objects.filter(partition=value).values("pk"))

    def filter_cardholder_name(self, queryset, name, value):
        # Names are matched on the cardholders table (100,000 rows), then events by the cardholder index,
        # never by a LIKE over a million audit rows.
        people = restrict(Cardholder.objects.all(), self.request.user, "view")
        for word in value.split():
            people = people.filter(Q(last_name__icontains=word) | Q(first_name__icontains=word))
        ids = list(people.values_list("pk", flat=True)[: CARDHOLDER_MATCHES + 1])
        self.too_many_cardholders = len(ids) > CARDHOLDER_MATCHES
        return queryset.filter(cardholder_id__in=ids[:CARDHOLDER_MATCHES])

    def filter_key_uid(self, queryset, name, value):
        return queryset.filter(key_uid=value.replace(":", "").replace(" ", "").upper())


class SystemAuditWebFilterSet(SystemAuditFilterSet):
    at_from = _datetime_filter("gte", "From")
    at_to = _datetime_filter("lt", "To")
    operator = filters.ModelChoiceFilter(
        queryset=Operator.objects.only("id", "username"), field_name="operator", label="Operator", empty_label="Any"
    )
    action = filters.CharFilter(label="Action")
    object_type = filters.CharFilter(label="Object type", help_text="e.g. accesscontrol.cardholder")
    q = filters.CharFilter(method="filter_text", label="Text")

    class Meta(SystemAuditFilterSet.Meta):
        fields = ["operator", "action", "object_type", "object_id", "via"]

    def __init__(self, data=None, queryset=None, *, request=None, prefix=None):
        super().__init__(data, queryset, request=request, prefix=prefix)
        self.filters.pop("at", None)
        self.form.fields["object_id"].widget = forms.HiddenInput()

    def filter_text(self, queryset, name, value):
        return queryset.filter(Q(operator_name__icontains=value) | Q(object_repr__icontains=value) | Q(object_id=value))
