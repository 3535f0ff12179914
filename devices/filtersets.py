"""Filters of OSDP buses, OSDP readers and alarms, shared by the API and the web app's pages."""

import django_filters as filters
from django.db.models import Q

from accesscontrol.filtersets import IdFilter, UtcDateTimeFromToRangeFilter
from devices.choices import AlarmKind, CardFormat, DeviceKind
from devices.models import Alarm, DeviceDoor, DeviceReader, FaceEnrolment, FaceTerminal, OsdpBus, OsdpReader


class OsdpBusFilterSet(filters.FilterSet):
    name = filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = OsdpBus
        fields = ["name", "enabled", "online"]


class OsdpReaderFilterSet(filters.FilterSet):
    bus = IdFilter(field_name="bus_id")
    address = IdFilter()
    name = filters.CharFilter(field_name="device__name", lookup_expr="icontains")
    kind = filters.ChoiceFilter(field_name="device__kind", choices=[(kind, kind.label) for kind in DeviceKind.osdp()])
    card_format = filters.ChoiceFilter(choices=CardFormat.choices)
    online = filters.BooleanFilter(field_name="device__online")
    enabled = filters.BooleanFilter(field_name="device__enabled")
    key_set = filters.BooleanFilter(field_name="key_set_at", lookup_expr="isnull", exclude=True, label="Key set")
    access_point = IdFilter(method="filter_access_point", label="Drives or reads for this access point")

    class Meta:
        model = OsdpReader
        fields = ["bus", "address", "name", "kind", "card_format", "secure", "online", "enabled", "key_set"]

    def filter_access_point(self, queryset, name, value):
        doors = DeviceDoor.objects.filter(access_point_id=value).values("device_id")
        readers = DeviceReader.objects.filter(access_point_id=value).values("device_id")
        return queryset.filter(Q(pk__in=doors) | Q(pk__in=readers))


class AlarmFilterSet(filters.FilterSet):
    kind = filters.MultipleChoiceFilter(choices=AlarmKind.choices)
    access_point = IdFilter(field_name="access_point_id")
    device = IdFilter(field_name="device_id")
    open = filters.BooleanFilter(
        field_name="acknowledged_at",
        lookup_expr="isnull",
        help_text="true: not acknowledged yet, as the monitor shows them; false: acknowledged.",
    )
    acknowledged = filters.BooleanFilter(field_name="acknowledged_at", lookup_expr="isnull", exclude=True)
    cleared = filters.BooleanFilter(
        field_name="cleared_at", lookup_expr="isnull", exclude=True, help_text="true: its condition has ended."
    )
    raised = UtcDateTimeFromToRangeFilter(field_name="raised_at", help_text="raised_after and raised_before, ISO 8601.")

    class Meta:
        model = Alarm
        fields = ["kind", "access_point", "device", "open", "acknowledged", "cleared", "raised"]


class FaceTerminalFilterSet(filters.FilterSet):
    terminal_id = filters.CharFilter()
    name = filters.CharFilter(field_name="device__name", lookup_expr="icontains")
    access_point = IdFilter(field_name="access_point_id")
    enabled = filters.BooleanFilter(field_name="device__enabled")
    online = filters.BooleanFilter(field_name="device__online")

    class Meta:
        model = FaceTerminal
        fields = ["terminal_id", "name", "access_point", "enabled", "online"]


class FaceEnrolmentFilterSet(filters.FilterSet):
    cardholder = IdFilter(field_name="cardholder_id")
    terminal = IdFilter(field_name="terminal_id")
    status = filters.MultipleChoiceFilter(choices=FaceEnrolment.Status.choices)

    class Meta:
        model = FaceEnrolment
        fields = ["cardholder", "terminal", "status"]
