"""Operator commands to doors: the one place they are issued.

An operator names an operation and a target: an access point, a zone (all its
access points) or the whole site (``SiteSettings``). :func:`issue` then, in one
transaction,

- changes what the server itself decides from: an emergency close sets the
  target's ``lockdown`` flag, so online decisions are refused at once (reason
  ``lockdown``); ending the emergency clears that flag and sends each door its
  mode in force again (a schedule kept changing it meanwhile); a new opening
  mode is stored on the access points as the operator's (it holds until the
  next scheduled change, docs/modes.md);
- queues one :class:`DeviceCommand` per device door driving a targeted access
  point, which the device bridge sends as an SDP/1 ``cmd``;
- records the operator's action in the system auditor and an audit event for
  each access point.

The mode scheduler (devices/scheduler.py) queues its set_mode commands in bulk
through :func:`push_modes`.

Access points that no enabled, keyed device drives still get their flags; the
result says which they are. Emergency open changes no flag: the doors are held
open by their devices, and the rules in force are unchanged.
"""

import datetime as dt
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accesscontrol import events
from accesscontrol.actions import record_operator_action
from accesscontrol.choices import AuditKind, ModeSource, OpeningMode
from accesscontrol.models import AccessPoint, AuditEvent, SiteSettings, Zone
from accesscontrol.permissions import ALL, allowed_partitions, permission_name
from accesscontrol.rulechanges import record_rule_changes
from devices import jobwake, modeplan
from devices.choices import CommandOp, CommandStatus
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
    # end_emergency: the set_mode commands that give the doors back their mode in force (and its schedule).
    resumed: list[DeviceCommand] = field(default_factory=list)

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
        now = timezone.now()
        points = list(access_points_of(target).order_by("pk"))
        issued = Issued(op, target, mode, [point.pk for point in points], [])
        if op == CommandOp.SET_MODE:
            _store_mode(target, points, mode, now)
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
        modal = op in (CommandOp.SET_MODE, CommandOp.END_EMERGENCY)
        plan = modeplan.load_plan([point.pk for point in points]) if modal else None
        for point in points:
            door = doors.get(point.pk)
            if door is not None:
                extra = _timed_args(plan, point, mode, now) if op == CommandOp.SET_MODE else {}
                issued.commands.append(_queue(op, door, mode, operator, extra))
        if op == CommandOp.END_EMERGENCY:
            issued.resumed = _resume_modes(plan, points, doors, operator, now)
        _record(issued, points, doors, operator, via, address, plan, now)
        if issued.commands:
            transaction.on_commit(jobwake.job_queued)
    return issued


def _timed_args(plan: modeplan.Plan, point: AccessPoint, mode: str, now: dt.datetime) -> dict:
    """set_mode to timed tells the door whether its period holds it open now (SDP/1 devices know no periods)."""
    state = plan.points.get(point.pk)
    is_open = modeplan.timed_open(plan, state, mode, now) if state is not None else None
    return {} if is_open is None else {"open": is_open}


def _resume_modes(
    plan: modeplan.Plan, points: list[AccessPoint], doors: dict[int, DeviceDoor], operator, now: dt.datetime
) -> list[DeviceCommand]:
    """After an emergency, each door takes its mode in force again (stored meanwhile by the schedule)."""
    commands = []
    for point in points:
        door = doors.get(point.pk)
        if door is None or (point.opening_mode == OpeningMode.STANDARD and point.mode_source == ModeSource.CONFIGURED):
            continue
        extra = _timed_args(plan, point, point.opening_mode, now)
        commands.append(_queue(CommandOp.SET_MODE, door, point.opening_mode, operator, extra))
    return commands


def _store_mode(target: Target, points: list[AccessPoint], mode: str, now: dt.datetime) -> None:
    if mode == OpeningMode.TIMED:
        unscheduled = [point.name for point in points if point.timed_period_id is None]
        if unscheduled:
            names = ", ".join(unscheduled[:5]) + (" and others" if len(unscheduled) > 5 else "")
            raise ValidationError({"mode": f"Timed opening mode needs a time period, which {names} lack."})
    changing = [point.pk for point in points if point.opening_mode != mode]
    # The operator's mode: it holds until the next scheduled change (devices/modeplan.py).
    AccessPoint.objects.filter(pk__in=[point.pk for point in points]).update(
        opening_mode=mode, mode_source=ModeSource.OPERATOR, mode_changed_at=now
    )
    record_rule_changes("accesspoint", changing)
    for point in [*points, target] if isinstance(target, AccessPoint) else points:
        point.opening_mode, point.mode_source, point.mode_changed_at = mode, ModeSource.OPERATOR, now


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


def _queue(op: str, door: DeviceDoor, mode: str | None, operator, extra: dict | None = None) -> DeviceCommand:
    args = {"door": door.number} if mode is None else {"door": door.number, "mode": mode, **(extra or {})}
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
    issued: Issued,
    points: list[AccessPoint],
    doors: dict[int, DeviceDoor],
    operator,
    via: str,
    address: str | None,
    plan: modeplan.Plan | None,
    now: dt.datetime,
) -> None:
    scope = _describe(issued.target)
    extra = {"mode": issued.mode, "by": "operator"} if issued.mode else {}
    following = _next_changes(plan, now) if issued.mode else {}
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
            **({"resumed": [command.pk for command in issued.resumed]} if issued.resumed else {}),
        },
        address=address,
    )
    commands = {command.access_point_id: command for command in issued.commands}
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
                    **({"next_change": following.get(point.pk)} if issued.mode else {}),
                    "via": via,
                    "command": commands[point.pk].pk if point.pk in commands else None,
                },
            )
            for point in points
        ],
        now,
    )


def _next_changes(plan: modeplan.Plan, at: dt.datetime) -> dict[int, dict]:
    """{point id: {"at", "mode"}} of the next scheduled change, for the events' detail."""
    if plan is None:
        return {}
    found = {}
    for point in plan.points.values():
        following = modeplan.next_change_of(plan, point, at)
        if following is not None:
            found[point.id] = {"at": following[0].isoformat(), "mode": following[1]}
    return found


# --- the mode scheduler's bulk path ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModePush:
    """One access point's mode as the scheduler gives it: stored, sent to its door, or both."""

    point_id: int
    name: str
    mode: str
    store: bool  # a scheduled change the point takes now: stored, with a mode_changed event
    send: bool  # queue set_mode to its door (not while a lockdown holds it)
    open: bool | None = None  # timed mode: whether its period holds the door open now
    since: dt.datetime | None = None  # the scheduled change's instant (stored as mode_changed_at)
    next_change: tuple[dt.datetime, str] | None = None  # (instant, mode), for the event's detail


@dataclass
class Pushed:
    stored: list[int]  # access point ids whose mode was stored
    commands: list[int]  # the DeviceCommand ids queued
    queued_at: float = 0.0  # time.perf_counter() when they were committed


def push_modes(pushes: list[ModePush], *, now: dt.datetime | None = None) -> Pushed:
    """Store the scheduled modes and queue set_mode to the doors, in one transaction and a few statements; then
    record a mode_changed event for each mode stored."""
    now = now or timezone.now()
    pushed = Pushed([], [])
    if not pushes:
        return pushed
    with transaction.atomic():
        storing = defaultdict(list)
        for push in pushes:
            if push.store:
                storing[(push.mode, push.since)].append(push.point_id)
        for (mode, since), ids in storing.items():
            _store_scheduled(ids, mode, since or now)
            pushed.stored += ids
        record_rule_changes("accesspoint", pushed.stored)
        sending = [push for push in pushes if push.send]
        doors = _door_rows([push.point_id for push in sending])
        rows = []
        for push in sending:
            door = doors.get(push.point_id)
            if door is not None:
                device_id, number = door
                args = {"door": number, "mode": push.mode}
                if push.open is not None:
                    args["open"] = push.open
                rows.append((device_id, args, push.point_id))
        pushed.commands = _insert_set_modes(rows, now)
        if pushed.commands:
            transaction.on_commit(jobwake.job_queued)
    pushed.queued_at = time.perf_counter()
    # The audit trail right after, in a transaction of its own: the doors are told first (at ten thousand
    # doors the events take longer than everything else).
    events.record_many([_schedule_event(push, doors, now) for push in pushes if push.store], now)
    return pushed


INSERT_CHUNK = 500


def _store_scheduled(ids: list[int], mode: str, since: dt.datetime) -> None:
    fields = {"opening_mode": mode, "mode_source": ModeSource.SCHEDULE, "mode_changed_at": since}
    if connection.vendor != "postgresql":
        AccessPoint.objects.filter(pk__in=ids).update(**fields)
        return
    # One array parameter rather than ten thousand placeholders (psycopg parses a long query's every one).
    ops = connection.ops
    table = ops.quote_name(AccessPoint._meta.db_table)
    columns = ", ".join(f"{ops.quote_name(name)} = %s" for name in fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {columns} WHERE id = ANY(%s)",  # noqa: S608 (no input in it)
            [mode, ModeSource.SCHEDULE.value, since, ids],
        )


_COMMAND_COLUMNS = ("device_id", "op", "args", "access_point_id", "status", "error", "created_at")


def _insert_set_modes(rows: list[tuple[int, dict, int]], now: dt.datetime) -> list[int]:
    """Queue set_mode commands, (device id, args, access point id) each; their ids.

    bulk_create by hand where the database has RETURNING: the ORM's per-object work would be most of a boundary's
    time at ten thousand doors (as for audit events, accesscontrol/events.py).
    """
    if not rows:
        return []
    if connection.vendor not in ("sqlite", "postgresql"):
        made = DeviceCommand.objects.bulk_create(
            [DeviceCommand(device_id=d, op=CommandOp.SET_MODE, args=a, access_point_id=p) for d, a, p in rows]
        )
        return [command.pk for command in made]
    ops = connection.ops
    created = ops.adapt_datetimefield_value(now)
    table = ops.quote_name(DeviceCommand._meta.db_table)
    columns = ", ".join(ops.quote_name(column) for column in _COMMAND_COLUMNS)
    if connection.vendor == "postgresql":
        # The rows as one JSON parameter: a long query's placeholders are what psycopg spends its time on.
        records = json.dumps([{"d": device_id, "a": args, "p": point_id} for device_id, args, point_id in rows])
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT r.d, %s, r.a, r.p, %s, '', %s "  # noqa: S608
                "FROM jsonb_to_recordset(%s::jsonb) AS r(d bigint, a jsonb, p bigint) RETURNING id",
                [CommandOp.SET_MODE.value, CommandStatus.QUEUED.value, created, records],
            )
            return [command_id for (command_id,) in cursor.fetchall()]
    row = "(" + ", ".join(["%s"] * len(_COMMAND_COLUMNS)) + ")"
    ids = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[start : start + INSERT_CHUNK]
            params = []
            for device_id, args, point_id in chunk:
                params += (
                    device_id,
                    CommandOp.SET_MODE.value,
                    json.dumps(args),
                    point_id,
                    CommandStatus.QUEUED.value,
                    "",
                    created,
                )
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * len(chunk))} RETURNING id",  # noqa: S608
                params,
            )
            ids += [command_id for (command_id,) in cursor.fetchall()]
    return ids


def _door_rows(point_ids: list[int]) -> dict[int, tuple[int, int]]:
    """{access point id: (device id, door number)} of the doors that can take a command (see _doors_of)."""
    if not point_ids:
        return {}
    rows = DeviceDoor.objects.filter(device__enabled=True).exclude(device__key_sealed=b"")
    if len(point_ids) <= INSERT_CHUNK:
        rows = rows.filter(access_point__in=point_ids)
    wanted = set(point_ids)  # many: every door read, those wanted kept (cheaper than a parameter each)
    return {
        point_id: (device_id, number)
        for point_id, device_id, number in rows.values_list("access_point_id", "device_id", "number")
        if point_id in wanted
    }


def _schedule_event(push: ModePush, doors: dict[int, tuple[int, int]], now: dt.datetime) -> AuditEvent:
    following = push.next_change
    return AuditEvent(
        at=now,
        kind=AuditKind.MODE_CHANGED,
        access_point_id=push.point_id,
        access_point_name=push.name,
        device_id=doors[push.point_id][0] if push.point_id in doors else None,
        detail={
            "access_point": push.point_id,
            "mode": push.mode,
            "by": "schedule",
            "since": (push.since or now).isoformat(),
            "sent": push.send and push.point_id in doors,
            "next_change": None if following is None else {"at": following[0].isoformat(), "mode": following[1]},
        },
    )


# --- who sees which commands -------------------------------------------------------------------------


def visible_commands(queryset: QuerySet, operator, action: str = "view") -> QuerySet:
    """``queryset`` (already ``restrict``-ed) narrowed to the partitions where the operator may ``action`` commands.

    A command belongs to its access point's partition; one on no access point only to
    operators of all partitions.
    """
    partitions = allowed_partitions(operator, permission_name(DeviceCommand, action))
    return queryset if partitions is ALL else queryset.filter(access_point__partition__in=partitions)
