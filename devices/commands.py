"""Operator commands to doors: the one place they are issued.

An operator names an operation and a target: an access point, a zone (all its
access points) or the whole site (``SiteSettings``). :func:`issue` then, in one
transaction,

- changes what the server itself decides from: an emergency close sets the
  target's ``lockdown`` flag, so online decisions are refused at once (reason
  ``lockdown``); ending the emergency clears that flag; a new opening mode is
  stored on the access points;
- queues one :class:`DeviceCommand` per device door driving a targeted access
  point, which the device bridge sends as an SDP/1 ``cmd``;
- records the operator's action in the system auditor and an audit event for
  each access point.

Access points that no enabled, keyed device drives still get their flags; the
result says which they are. Emergency open changes no flag: the doors are held
open by their devices, and the rules in force are unchanged.
"""

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accesscontrol import events
from accesscontrol.actions import record_operator_action
from accesscontrol.choices import AuditKind, OpeningMode
from accesscontrol.models import AccessPoint, AuditEvent, SiteSettings, Zone
from accesscontrol.permissions import ALL, allowed_partitions, permission_name
from accesscontrol.rulechanges import record_rule_changes
from devices.choices import CommandOp
from devices.models import DeviceCommand, DeviceDoor

# The operations an operator issues to doors, and the audit event each leaves.
AUDIT_KINDS = {
    CommandOp.OPEN: AuditKind.REMOTE_OPEN,
    CommandOp.SET_MODE: AuditKind.MODE_CHANGED,
    CommandOp.EMERGENCY_OPEN: AuditKind.EMERGENCY_OPEN,
    CommandOp.EMERGENCY_CLOSE: AuditKind.EMERGENCY_CLOSE,
    CommandOp.END_EMERGENCY: AuditKind.EMERGENCY_END,
}
DOOR_OPS = tuple(AUDIT_KINDS)

Target = AccessPoint | Zone | SiteSettings


@dataclass
class Issued:
    """What one operator command did."""

    op: str
    target: Target
    mode: str | None
    access_points: list[int]
    commands: list[DeviceCommand]
    # Access points no enabled, keyed device drives: only their flags changed.
    without_device: list[int] = field(default_factory=list)
    # end_emergency: access points still under another lockdown (the site's, a zone's, their own).
    still_in_lockdown: list[int] = field(default_factory=list)

    @property
    def queued(self) -> int:
        return len(self.commands)


def access_points_of(target: Target) -> QuerySet:
    """The access points a target reaches."""
    if isinstance(target, AccessPoint):
        return AccessPoint.objects.filter(pk=target.pk)
    if isinstance(target, Zone):
        return AccessPoint.objects.filter(zones=target)
    if isinstance(target, SiteSettings):
        return AccessPoint.objects.all()
    raise TypeError(f"A command targets an access point, a zone or the site, not {type(target).__name__}.")


def remote_open(target: Target, *, operator, via: str, address: str | None = None) -> Issued:
    return issue(CommandOp.OPEN, target, operator=operator, via=via, address=address)


def set_opening_mode(target: Target, mode: str, *, operator, via: str, address: str | None = None) -> Issued:
    return issue(CommandOp.SET_MODE, target, mode=mode, operator=operator, via=via, address=address)


def emergency_open(target: Target, *, operator, via: str, address: str | None = None) -> Issued:
    return issue(CommandOp.EMERGENCY_OPEN, target, operator=operator, via=via, address=address)


def emergency_close(target: Target, *, operator, via: str, address: str | None = None) -> Issued:
    return issue(CommandOp.EMERGENCY_CLOSE, target, operator=operator, via=via, address=address)


def end_emergency(target: Target, *, operator, via: str, address: str | None = None) -> Issued:
    return issue(CommandOp.END_EMERGENCY, target, operator=operator, via=via, address=address)


def issue(
    op: str, target: Target, *, operator, via: str, mode: str | None = None, address: str | None = None
) -> Issued:
    """Carry out ``op`` on ``target``. Raises ValidationError for a mode the access points cannot take.

    ``address``: where the operator's request came from, for the system auditor.
    """
    if op not in AUDIT_KINDS:
        raise ValueError(f"{op!r} is not a command an operator issues to doors.")
    if (op == CommandOp.SET_MODE) != (mode is not None):
        raise ValueError("A mode goes with set_mode, and only with it.")
    if mode is not None and mode not in OpeningMode.values:
        raise ValidationError({"mode": f"{mode!r} is not an opening mode."})
    with transaction.atomic():
        points = list(access_points_of(target).order_by("pk"))
        issued = Issued(op, target, mode, [point.pk for point in points], [])
        if op == CommandOp.SET_MODE:
            _store_mode(target, points, mode)
        elif op == CommandOp.EMERGENCY_CLOSE:
            _set_lockdown(target, True)
        elif op == CommandOp.END_EMERGENCY:
            _set_lockdown(target, False)
            issued.still_in_lockdown = _in_lockdown([point.pk for point in points])
            # Their devices stay in emergency close with them, until the other lockdown ends too.
            locked = set(issued.still_in_lockdown)
            points = [point for point in points if point.pk not in locked]
        doors = _doors_of(points)
        issued.without_device = [point.pk for point in points if point.pk not in doors]
        operator = operator if getattr(operator, "is_authenticated", False) else None
        for point in points:
            door = doors.get(point.pk)
            if door is not None:
                issued.commands.append(_queue(op, door, mode, operator))
        _record(issued, points, doors, operator, via, address)
    return issued


def _store_mode(target: Target, points: list[AccessPoint], mode: str) -> None:
    if mode == OpeningMode.TIMED:
        unscheduled = [point.name for point in points if point.timed_period_id is None]
        if unscheduled:
            names = ", ".join(unscheduled[:5]) + (" and others" if len(unscheduled) > 5 else "")
            raise ValidationError({"mode": f"Timed opening mode needs a time period, which {names} lack."})
    changing = [point.pk for point in points if point.opening_mode != mode]
    AccessPoint.objects.filter(pk__in=changing).update(opening_mode=mode)
    record_rule_changes("accesspoint", changing)
    for point in points:
        point.opening_mode = mode
    if isinstance(target, AccessPoint):
        target.opening_mode = mode


def _set_lockdown(target: Target, lockdown: bool) -> None:
    # save() rather than update(): the rules snapshot learns of the change through its signals.
    if target.lockdown != lockdown:
        target.lockdown = lockdown
        target.save(update_fields=["lockdown"])


def _in_lockdown(point_ids: list[int]) -> list[int]:
    """Those of ``point_ids`` the decision engine refuses for lockdown: the site's, a zone's or their own."""
    if SiteSettings.load().lockdown:
        return list(point_ids)
    locked = AccessPoint.objects.filter(Q(lockdown=True) | Q(zones__lockdown=True), pk__in=point_ids)
    return sorted(set(locked.values_list("pk", flat=True)))


def _doors_of(points: list[AccessPoint]) -> dict[int, DeviceDoor]:
    """The device door driving each access point, on devices that can take a command.

    A disabled device or one without a key never connects: its command could only
    expire, or, worse, run late when the device comes back.
    """
    doors = (
        DeviceDoor.objects.filter(access_point__in=[point.pk for point in points], device__enabled=True)
        .exclude(device__key_sealed=b"")
        .select_related("device")
    )
    return {door.access_point_id: door for door in doors}


def _queue(op: str, door: DeviceDoor, mode: str | None, operator) -> DeviceCommand:
    args = {"door": door.number} if mode is None else {"door": door.number, "mode": mode}
    return DeviceCommand.objects.create(
        device=door.device, op=op, args=args, access_point_id=door.access_point_id, operator=operator
    )


def _describe(target: Target) -> dict:
    if isinstance(target, AccessPoint):
        return {"access_point": target.pk}
    if isinstance(target, Zone):
        return {"zone": target.pk}
    return {"site": True}


def _record(
    issued: Issued, points: list[AccessPoint], doors: dict[int, DeviceDoor], operator, via: str, address: str | None
) -> None:
    scope = _describe(issued.target)
    extra = {"mode": issued.mode} if issued.mode else {}
    record_operator_action(
        operator,
        issued.op,
        issued.target,
        via=via,
        detail={
            **scope,
            **extra,
            "access_points": len(issued.access_points),
            "commands": [command.pk for command in issued.commands],
            "without_device": len(issued.without_device),
            "still_in_lockdown": len(issued.still_in_lockdown),
        },
        address=address,
    )
    commands = {command.access_point_id: command for command in issued.commands}
    now = timezone.now()
    events.record_many(
        [
            AuditEvent(
                at=now,
                kind=AUDIT_KINDS[issued.op],
                access_point=point,
                access_point_name=point.name,
                device_id=doors[point.pk].device_id if point.pk in doors else None,
                operator=operator,
                detail={
                    **scope,
                    **extra,
                    "via": via,
                    "command": commands[point.pk].pk if point.pk in commands else None,
                },
            )
            for point in points
        ],
        now,
    )


# --- who sees which commands -------------------------------------------------------------------------


def visible_commands(queryset: QuerySet, operator, action: str = "view") -> QuerySet:
    """``queryset`` (already ``restrict``-ed) narrowed to the partitions where the operator may ``action`` commands.

    A command belongs to its access point's partition; one on no access point only to
    operators of all partitions.
    """
    partitions = allowed_partitions(operator, permission_name(DeviceCommand, action))
    return queryset if partitions is ALL else queryset.filter(access_point__partition__in=partitions)
