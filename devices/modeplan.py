"""Which opening mode each access point should be in: the reading side of the mode scheduler.

An access point follows its own mode schedule, else the schedule of one of its zones: the zone with the lowest
id that has one (a door in two scheduled zones takes that zone's; give the door a schedule of its own to
choose another). Its calendar is its own, else the site's default. What the schedule says is
``accesscontrol.modes``; this module loads the schedules and the access points, and says for each point the
mode in force, whether an operator's mode still holds, and when the next change comes.

An operator's mode (``mode_source`` operator) holds until the next scheduled change: it holds while it was
set at or after the last change (``mode_changed_at``).

Timed mode: the door is held open while the access point's timed period is active
(``engine.period_active``), so the period's boundaries are instants the door must hear of too.
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Q

from accesscontrol import engine, modes
from accesscontrol.choices import ModeSource, OpeningMode
from accesscontrol.models import AccessPoint, ModeChange, SiteSettings, Zone
from accesscontrol.snapshot import load_calendars, load_periods, site_time_zone

_DAY_FIELDS = ModeChange.ALL_DAY_FIELDS
ANY_DAY = sum(engine.DAY_BITS.values())


@dataclass(frozen=True, slots=True)
class PointState:
    """An access point as the scheduler sees it."""

    id: int
    name: str
    schedule_id: int | None  # its own, else its zone's
    calendar_id: int | None  # None: the site's default
    mode: str  # the mode in force, as stored
    source: str
    changed_at: dt.datetime | None
    timed_period_id: int | None
    lockdown: bool  # the site's, one of its zones' or its own


@dataclass(frozen=True, slots=True)
class Plan:
    snapshot: engine.Snapshot  # time zone, calendars, periods: what the changes are laid on
    schedules: dict[int, list[modes.Change]]
    points: dict[int, PointState]
    # (schedule id, calendar id, instant) -> mode_at's answer: points sharing a schedule are computed once.
    memo: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Wanted:
    """What an access point should be in at an instant."""

    mode: str
    since: dt.datetime | None  # the scheduled change it comes from; None: the stored mode (no change applies)
    scheduled: bool  # the schedule's mode (False: an operator's holds, or the point follows no schedule)


def followed_schedule(own: int | None, zone_ids: Iterable[int], zone_schedules: dict[int, int]) -> int | None:
    """The mode schedule an access point follows: its own, else that of its zone with the lowest id that has one
    (``zone_schedules``: zone id -> its schedule, for zones with one). The one rule, for online doors and for
    offline locks' configurations alike (devices/locks.py)."""
    if own is not None:
        return own
    return next((zone_schedules[zone] for zone in sorted(zone_ids) if zone in zone_schedules), None)


def load_plan(point_ids: Iterable[int] | None = None) -> Plan:
    """The access points that follow a schedule or are in timed mode (or just ``point_ids``), with their rules."""
    site = SiteSettings.objects.filter(pk=1).values_list("lockdown", "default_calendar_id").first()
    site_lockdown, default_calendar_id = site or (False, None)
    zones = {
        zone_id: (schedule_id, lockdown)
        for zone_id, schedule_id, lockdown in Zone.objects.values_list("id", "mode_schedule_id", "lockdown")
        if schedule_id is not None or lockdown
    }
    zone_of = defaultdict(list)
    memberships = AccessPoint.zones.through.objects.filter(zone_id__in=list(zones))
    if point_ids is not None:
        point_ids = list(point_ids)
        memberships = memberships.filter(accesspoint_id__in=point_ids)
    for point_id, zone_id in memberships.order_by("zone_id").values_list("accesspoint_id", "zone_id"):
        zone_of[point_id].append(zone_id)
    zone_schedules = {zone_id: schedule_id for zone_id, (schedule_id, _) in zones.items() if schedule_id is not None}
    scheduled_zones = list(zone_schedules)
    rows = AccessPoint.objects.all()
    if point_ids is not None:
        rows = rows.filter(pk__in=point_ids)
    else:
        rows = rows.filter(
            Q(mode_schedule__isnull=False) | Q(zones__in=scheduled_zones) | Q(opening_mode=OpeningMode.TIMED)
        ).distinct()
    points = {}
    for row in rows.values_list(
        "id",
        "name",
        "mode_schedule_id",
        "calendar_id",
        "opening_mode",
        "mode_source",
        "mode_changed_at",
        "timed_period_id",
        "lockdown",
    ):
        point_id, name, schedule_id, calendar_id, mode, source, changed_at, period_id, lockdown = row
        in_zones = zone_of.get(point_id, ())
        schedule_id = followed_schedule(schedule_id, in_zones, zone_schedules)
        lockdown = site_lockdown or lockdown or any(zones[z][1] for z in in_zones)
        points[point_id] = PointState(
            point_id, name, schedule_id, calendar_id, mode, source, changed_at, period_id, lockdown
        )
    snapshot = engine.Snapshot(
        tz=site_time_zone(),
        default_calendar_id=default_calendar_id,
        periods=load_periods({p.timed_period_id for p in points.values() if p.timed_period_id is not None}),
        calendars=load_calendars(),
    )
    return Plan(snapshot, load_schedules({p.schedule_id for p in points.values() if p.schedule_id}), points)


def load_schedules(ids: Iterable[int]) -> dict[int, list[modes.Change]]:
    schedules: dict[int, list[modes.Change]] = {schedule_id: [] for schedule_id in ids}
    rows = ModeChange.objects.filter(schedule_id__in=list(schedules)).order_by("schedule_id", "at", "id")
    for schedule_id, at, mode, *days in rows.values_list("schedule_id", "at", "mode", *_DAY_FIELDS):
        mask = sum(engine.DAY_BITS[name] for name, marked in zip(_DAY_FIELDS, days, strict=True) if marked)
        schedules[schedule_id].extend(modes.changes_of([(at, mask, mode)]))
    return schedules


def scheduled_mode(plan: Plan, point: PointState, at: dt.datetime) -> tuple[str, dt.datetime] | None:
    """The schedule's mode in force at ``at`` and when it began; None: no schedule, or no change in 8 days."""
    if point.schedule_id is None:
        return None
    memo_key = (point.schedule_id, point.calendar_id, at)
    if memo_key not in plan.memo:
        changes = plan.schedules.get(point.schedule_id, [])
        plan.memo[memo_key] = modes.mode_at(changes, plan.snapshot, point.calendar_id, at)
    return plan.memo[memo_key]


def operator_holds(point: PointState, since: dt.datetime) -> bool:
    """Whether an operator's mode was set after the scheduled change at ``since`` (so it holds until the next)."""
    return point.source == ModeSource.OPERATOR and point.changed_at is not None and point.changed_at >= since


def wanted(plan: Plan, point: PointState, at: dt.datetime) -> Wanted:
    in_force = scheduled_mode(plan, point, at)
    if in_force is None:
        return Wanted(point.mode, None, False)
    mode, since = in_force
    if operator_holds(point, since):
        return Wanted(point.mode, None, False)
    return Wanted(mode, since, True)


def is_stale(point: PointState, want: Wanted) -> bool:
    """Whether the stored mode must be replaced by the schedule's (a change the point has not taken yet)."""
    if not want.scheduled:
        return False
    return (
        point.mode != want.mode
        or point.source != ModeSource.SCHEDULE
        or point.changed_at is None
        or point.changed_at < want.since
    )


def timed_open(plan: Plan, point: PointState, mode: str, at: dt.datetime) -> bool | None:
    """Timed mode: whether its period holds the door open at ``at``; None for the other modes."""
    if mode != OpeningMode.TIMED:
        return None
    if point.timed_period_id is None:
        return False
    return engine.period_active(plan.snapshot, point.timed_period_id, point.calendar_id, at)


def next_instant(plan: Plan, after: dt.datetime) -> dt.datetime | None:
    """The first instant after ``after`` at which some point's mode changes or a timed door opens or locks."""
    found = []
    groups = {(p.schedule_id, p.calendar_id) for p in plan.points.values() if p.schedule_id is not None}
    for schedule_id, calendar_id in groups:
        following = modes.next_change(plan.schedules.get(schedule_id, []), plan.snapshot, calendar_id, after)
        if following is not None:
            found.append(following[1])
    periods = {
        (p.timed_period_id, p.calendar_id)
        for p in plan.points.values()
        if p.timed_period_id is not None and (p.mode == OpeningMode.TIMED or p.schedule_id is not None)
    }
    for period_id, calendar_id in periods:
        boundary = period_boundary(plan.snapshot, period_id, calendar_id, after)
        if boundary is not None:
            found.append(boundary)
    return min(found, default=None)


def period_boundary(
    snapshot: engine.Snapshot, period_id: int, calendar_id: int | None, after: dt.datetime
) -> dt.datetime | None:
    """The first instant after ``after`` at which the period turns active or inactive (within 8 days)."""
    period = snapshot.periods.get(period_id)
    if period is None or not period.intervals:
        return None
    # Every interval's start and end, on every day: the candidates where period_active may turn.
    candidates = sorted({second for interval in period.intervals for second in (interval.start, interval.end)})
    changes = [modes.Change(second, ANY_DAY, "") for second in candidates]
    active = engine.period_active(snapshot, period_id, calendar_id, after)
    moment = after
    for _ in range(len(changes) * modes.LOOK_AHEAD_DAYS):
        following = modes.next_change(changes, snapshot, calendar_id, moment)
        if following is None:
            return None
        moment = following[1]
        if engine.period_active(snapshot, period_id, calendar_id, moment) != active:
            return moment
    return None


def next_change_of(plan: Plan, point: PointState, at: dt.datetime) -> tuple[dt.datetime, str] | None:
    """The point's next scheduled change after ``at``: (instant, mode); None: no schedule, or none in 8 days."""
    if point.schedule_id is None:
        return None
    memo_key = ("next", point.schedule_id, point.calendar_id, at)
    if memo_key not in plan.memo:
        changes = plan.schedules.get(point.schedule_id, [])
        following = modes.next_change(changes, plan.snapshot, point.calendar_id, at)
        plan.memo[memo_key] = None if following is None else (following[1], following[0])
    return plan.memo[memo_key]


def next_changes(point_ids: Iterable[int], at: dt.datetime) -> dict[int, tuple[dt.datetime, str]]:
    """The next scheduled change of each of ``point_ids`` that follows a schedule: {point id: (instant, mode)}."""
    plan = load_plan(point_ids)
    found = {}
    for point in plan.points.values():
        following = next_change_of(plan, point, at)
        if following is not None:
            found[point.id] = following
    return found
