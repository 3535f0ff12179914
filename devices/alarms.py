"""Which alarms an operator sees and may acknowledge, and which are open.

An alarm belongs to its access point's partition, as a command does; one with
no access point (a reader's tamper or a device offline) only to operators whose
permission covers every partition. The runtime raises and clears alarms
(devices/recorder.py); operators acknowledge them (devices.actions.acknowledge_alarm).
"""

from django.db.models import QuerySet

from accesscontrol.permissions import ALL, allowed_partitions, permission_name, restrict
from devices.models import Alarm

VIEW = permission_name(Alarm, "view")
ACKNOWLEDGE = permission_name(Alarm, "acknowledge")


def visible_alarms(queryset: QuerySet, operator, action: str = "view") -> QuerySet:
    """``queryset`` narrowed to the alarms ``operator`` may ``action`` (view, acknowledge), by partition."""
    queryset = restrict(queryset, operator, action)
    if not operator or not operator.is_authenticated:
        return queryset
    partitions = allowed_partitions(operator, permission_name(Alarm, action))
    return queryset if partitions is ALL else queryset.filter(access_point__partition__in=partitions)


def open_alarms(queryset: QuerySet | None = None) -> QuerySet:
    """Alarms nobody has acknowledged yet, newest first: what the monitor keeps showing."""
    queryset = Alarm.objects.all() if queryset is None else queryset
    return queryset.filter(acknowledged_at=None).order_by("-raised_at", "-id")


def may_acknowledge(operator, alarm: Alarm) -> bool:
    return visible_alarms(Alarm.objects.filter(pk=alarm.pk), operator, "acknowledge").exists()
