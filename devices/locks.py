"""Offline locks on the server's side: the configuration a PPD loads into each, and which locks need a visit.

An offline lock (a Device of kind ``offline_lock``) is one access point: the one
its door number 1 drives (or its first door). Its configuration
(devices/lockconfig.py ``LockConfig``) is built here from the same loaders the
decision engine's snapshot uses (accesscontrol/snapshot.py), so the lock and the
online engine read the rules alike.

Time periods: a lock holds only those that a grant naming its access point, or
one of its zones, refers to. Those are the only ones a card can ask it about (a
card names periods only in grants for points and zones), so nothing is lost, the
configuration stays small (a lock's memory is small; a site may have hundreds of
periods), and a change to a period no grant here uses does not send a PPD round.

Revision: a digest (32 bits, never 0) of everything in the configuration but the
blacklist (which moves on its own, through cards and PPD visits). It identifies a
configuration rather than counting them: equal content, equal revision, so the
server stores nothing to know it, and the lock runs whatever the PPD loaded.
The site card key is in the digest, so a new card key sends every lock a visit.

A lock needs a visit (``reasons``) when:
- ``never_initialised``: no PPD has loaded it yet;
- ``configuration_changed``: the revision it runs is not the one wanted now;
- ``blacklist_behind``: it lacks more blacklist entries than a card carries
  (BLACKLIST_CARD_ENTRIES: cards cannot catch it up any more), or it has lacked
  one for longer than BLACKLIST_MAX_AGE (cards do not visit it often enough);
- ``battery_low``: its last report said under BATTERY_LOW percent;
- ``audit_pending``: more than AUDIT_PENDING_LIMIT events wait in its buffer;
- ``clock_not_set``: no PPD has set its clock, or not for CLOCK_MAX_AGE (it drifts).
"""

import dataclasses
import datetime as dt
import hashlib
import json
from collections import defaultdict

from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from accesscontrol import events, presence
from accesscontrol.choices import AccessPointKind, AuditKind, OpeningMode
from accesscontrol.models import (
    AccessLevelEntry,
    AccessPoint,
    AuditEvent,
    BlacklistEntry,
    CardholderPermission,
    Key,
    Zone,
)
from accesscontrol.snapshot import load_access_points, load_calendars, load_periods, load_site, site_time_zone
from devices import cards, modeplan, recorder
from devices.choices import DeviceKind
from devices.lockconfig import LockConfig, LockPeriod
from devices.models import Device, DeviceDoor, LockState

# A lock further behind than the entries a card carries cannot be caught up by cards alone.
BLACKLIST_CARD_ENTRIES = cards.BLACKLIST_ON_CARD
BLACKLIST_MAX_AGE = dt.timedelta(days=7)
BATTERY_LOW = 20  # percent
AUDIT_PENDING_LIMIT = 500  # events; the lock's buffer is bounded and drops its oldest when full
CLOCK_MAX_AGE = dt.timedelta(days=180)

NEVER_INITIALISED = "never_initialised"
CONFIGURATION_CHANGED = "configuration_changed"
BLACKLIST_BEHIND = "blacklist_behind"
BATTERY_LOW_REASON = "battery_low"
AUDIT_PENDING = "audit_pending"
CLOCK_NOT_SET = "clock_not_set"
REASONS = (NEVER_INITIALISED, CONFIGURATION_CHANGED, BLACKLIST_BEHIND, BATTERY_LOW_REASON, AUDIT_PENDING, CLOCK_NOT_SET)
# What an operator reads for each reason (the web app's offline lock pages).
REASON_TEXT = {
    NEVER_INITIALISED: "Never initialised: no PPD has loaded it yet",
    CONFIGURATION_CHANGED: "Its configuration changed: load the new one",
    BLACKLIST_BEHIND: "Blacklist behind: cards cannot catch it up",
    BATTERY_LOW_REASON: "Battery low: replace it",
    AUDIT_PENDING: "Audit trail to collect: its buffer is filling up",
    CLOCK_NOT_SET: "Clock not set, or not for a long time",
}


class LockNotMapped(Exception):
    """The lock drives no door, so it is no access point and has nothing to load."""


def offline_locks():
    return Device.objects.filter(kind=DeviceKind.OFFLINE_LOCK)


def access_point_ids(devices: list[Device]) -> dict[int, int]:
    """device pk -> access point id: its door number 1's, else its lowest-numbered door's."""
    points = {}
    rows = DeviceDoor.objects.filter(device__in=devices).order_by("device_id", "number")
    for device_pk, number, point_id in rows.values_list("device_id", "number", "access_point_id"):
        if device_pk not in points or number == 1:
            points[device_pk] = point_id
    return points


def _grant_periods(point_ids: list[int], zones_of: dict[int, frozenset]) -> dict[int, set[int]]:
    """access point id -> the time periods grants naming it or its zones refer to."""
    zone_ids = {zone for zones in zones_of.values() for zone in zones}
    by_point, by_zone = defaultdict(set), defaultdict(set)
    for model in (AccessLevelEntry, CardholderPermission):
        rows = model.objects.filter(
            Q(access_point__in=point_ids) | Q(zone__in=zone_ids), time_period__isnull=False
        ).values_list("access_point_id", "zone_id", "time_period_id")
        for point_id, zone_id, period_id in rows:
            (by_point[point_id] if point_id is not None else by_zone[zone_id]).add(period_id)
    return {
        point_id: by_point[point_id].union(*(by_zone[zone] for zone in zones_of.get(point_id, ())))
        for point_id in point_ids
    }


def blacklist_in_force(now: dt.datetime) -> tuple[tuple[int, int, int], ...]:
    """(number, key id, until) of every entry still in force, ascending by number."""
    rows = BlacklistEntry.objects.filter(until__gt=now).order_by("id").values_list("id", "key_number", "until")
    return tuple((number, key_id, int(until.timestamp())) for number, key_id, until in rows)


@dataclasses.dataclass(frozen=True)
class _Rules:
    """What the configurations of some locks are made of, loaded once for all of them."""

    points: dict  # access point id -> engine.AccessPointRule
    kinds: dict[int, str]
    periods_of: dict[int, set[int]]  # access point id -> the period ids its grants use
    periods: dict  # period id -> engine.TimePeriodRule
    schedule_of: dict[int, int | None]  # access point id -> the mode schedule it follows
    mode_changes: dict[int, tuple[tuple[int, int, str], ...]]  # mode schedule id -> its changes
    calendars: dict  # calendar id -> engine.CalendarRule
    default_calendar: int | None
    site: int
    card_key: bytes
    blacklist: tuple[tuple[int, int, int], ...]


def mode_schedules(points: dict, own: dict[int, int | None]) -> dict[int, int | None]:
    """access point id -> the mode schedule it follows: its own (``own``), else its zones' (the lowest zone id
    with one wins).

    The rule of the mode scheduler (devices/modeplan.py), so an offline lock changes mode when online doors do.
    """
    zone_ids = {zone for point_id, rule in points.items() if own.get(point_id) is None for zone in rule.zone_ids}
    zones = Zone.objects.filter(pk__in=zone_ids, mode_schedule__isnull=False)
    of_zone = dict(zones.values_list("id", "mode_schedule_id")) if zone_ids else {}
    return {
        point_id: modeplan.followed_schedule(own.get(point_id), rule.zone_ids, of_zone)
        for point_id, rule in points.items()
    }


def load_mode_changes(schedule_ids: set[int]) -> dict[int, tuple[tuple[int, int, str], ...]]:
    """mode schedule id -> its changes as (second after local midnight, day mask, mode), ascending by time."""
    return {
        schedule_id: tuple((change.seconds, change.days, change.mode) for change in changes)
        for schedule_id, changes in modeplan.load_schedules(schedule_ids).items()
    }


def _load_rules(point_ids: set[int], now: dt.datetime) -> _Rules:
    points = load_access_points(point_ids)
    periods_of = _grant_periods(list(points), {pk: rule.zone_ids for pk, rule in points.items()})
    timed = {rule.timed_period_id for rule in points.values() if rule.timed_period_id is not None}
    rows = list(AccessPoint.objects.filter(pk__in=list(points)).values_list("id", "kind", "mode_schedule_id"))
    kinds = {point_id: kind for point_id, kind, _ in rows}
    schedule_of = mode_schedules(points, {point_id: schedule for point_id, _, schedule in rows})
    _, default_calendar = load_site()
    site, card_key = cards.site_card_key()
    return _Rules(
        points=points,
        kinds=kinds,
        periods_of=periods_of,
        periods=load_periods(timed.union(*periods_of.values())),
        schedule_of=schedule_of,
        mode_changes=load_mode_changes({schedule for schedule in schedule_of.values() if schedule is not None}),
        calendars=load_calendars({rule.calendar_id or default_calendar for rule in points.values()} - {None}),
        default_calendar=default_calendar,
        site=site,
        card_key=card_key,
        blacklist=blacklist_in_force(now),
    )


def _lock_period(period_id: int, rules: _Rules) -> LockPeriod:
    return LockPeriod(period_id, tuple(tuple(interval) for interval in rules.periods[period_id].intervals))


def _config(device: Device, point, rules: _Rules) -> LockConfig:
    calendar = rules.calendars.get(point.calendar_id or rules.default_calendar)
    schedule = rules.schedule_of.get(point.id)
    timed = point.timed_period_id if point.timed_period_id in rules.periods else None
    config = LockConfig(
        lock_id=device.device_id,
        access_point_id=point.id,
        site=rules.site,
        card_key=rules.card_key,
        revision=0,
        zone_ids=tuple(sorted(point.zone_ids)),
        periods=tuple(
            _lock_period(period, rules) for period in sorted(rules.periods_of[point.id]) if period in rules.periods
        ),
        calendar_dates=dict(calendar.dates) if calendar else {},
        calendar_recurring=dict(calendar.recurring) if calendar else {},
        time_zone=site_time_zone().key,
        open_time=point.open_time,
        extended_open_time=point.extended_open_time,
        is_room=rules.kinds.get(point.id) == AccessPointKind.ROOM,
        blacklist=rules.blacklist,
        # With a schedule the lock runs its changes; the mode the scheduler last set (opening_mode) is left out,
        # or each change would make a new revision and send a PPD round.
        mode=point.mode if schedule is None else OpeningMode.STANDARD.value,
        mode_changes=rules.mode_changes[schedule] if schedule is not None else (),
        timed_period=_lock_period(timed, rules) if timed is not None else None,
    )
    return _with_revision(config)


def build_configs(devices: list[Device], now: dt.datetime | None = None) -> dict[int, LockConfig]:
    """device pk -> its LockConfig, for the locks among ``devices`` that drive a door; a few queries in all."""
    point_of = access_point_ids(devices)
    if not point_of:
        return {}
    rules = _load_rules(set(point_of.values()), now or timezone.now())
    return {
        device.pk: _config(device, rules.points[point_of[device.pk]], rules)
        for device in devices
        if point_of.get(device.pk) in rules.points
    }


def lock_config(device: Device, now: dt.datetime | None = None) -> LockConfig:
    """What a PPD loads into ``device`` now; raises LockNotMapped when it drives no door."""
    config = build_configs([device], now).get(device.pk)
    if config is None:
        raise LockNotMapped(f"{device} drives no door: map it to its access point first.")
    return config


def _with_revision(config: LockConfig) -> LockConfig:
    content = config_json(config)
    del content["revision"], content["blacklist"]
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).digest()
    return dataclasses.replace(config, revision=int.from_bytes(digest[:4], "big") or 1)


# --- the configuration as JSON (the PPD API's document) --------------------------------------------


def config_json(config: LockConfig) -> dict:
    """The JSON document of a configuration (docs/ppd.md); :func:`config_from_json` reads it back."""
    return {
        "lock_id": config.lock_id,
        "access_point_id": config.access_point_id,
        "site": config.site,
        "card_key": config.card_key.hex(),
        "revision": config.revision,
        "zone_ids": list(config.zone_ids),
        "periods": [_period_json(period) for period in config.periods],
        "calendar_dates": {str(ordinal): bit for ordinal, bit in sorted(config.calendar_dates.items())},
        "calendar_recurring": [[month, day, bit] for (month, day), bit in sorted(config.calendar_recurring.items())],
        "time_zone": config.time_zone,
        "open_time": config.open_time,
        "extended_open_time": config.extended_open_time,
        "is_room": config.is_room,
        "blacklist": [list(entry) for entry in config.blacklist],
        "mode": config.mode,
        "mode_changes": [list(change) for change in config.mode_changes],
        "timed_period": _period_json(config.timed_period) if config.timed_period else None,
    }


def _period_json(period: LockPeriod) -> dict:
    return {"id": period.id, "intervals": [list(i) for i in period.intervals]}


def _period_from_json(data: dict) -> LockPeriod:
    return LockPeriod(data["id"], tuple(tuple(i) for i in data["intervals"]))


def config_from_json(data: dict) -> LockConfig:
    return LockConfig(
        lock_id=data["lock_id"],
        access_point_id=data["access_point_id"],
        site=data["site"],
        card_key=bytes.fromhex(data["card_key"]),
        revision=data["revision"],
        zone_ids=tuple(data["zone_ids"]),
        periods=tuple(_period_from_json(period) for period in data["periods"]),
        calendar_dates={int(ordinal): bit for ordinal, bit in data["calendar_dates"].items()},
        calendar_recurring={(month, day): bit for month, day, bit in data["calendar_recurring"]},
        time_zone=data["time_zone"],
        open_time=data["open_time"],
        extended_open_time=data["extended_open_time"],
        is_room=data["is_room"],
        blacklist=tuple(tuple(entry) for entry in data["blacklist"]),
        # A document from before opening modes reached locks: standard, no changes.
        mode=data.get("mode", OpeningMode.STANDARD.value),
        mode_changes=tuple(tuple(change) for change in data.get("mode_changes", ())),
        timed_period=_period_from_json(data["timed_period"]) if data.get("timed_period") else None,
    )


# --- which locks need a visit ----------------------------------------------------------------------


@dataclasses.dataclass
class LockReport:
    device: Device
    state: LockState | None
    config: LockConfig | None  # None: the lock drives no door
    reasons: list[str] = dataclasses.field(default_factory=list)

    @property
    def needs_update(self) -> bool:
        return bool(self.reasons)


def update_reasons(
    state: LockState | None, config: LockConfig, now: dt.datetime, blacklist_since: dict[int, dt.datetime]
) -> list[str]:
    """Why a lock in ``state`` needs a PPD visit (empty: it does not), given the configuration wanted now
    and the blacklist entries in force (number -> when it was made)."""
    if state is None or state.initialised_at is None:
        return [NEVER_INITIALISED]
    reasons = []
    if state.config_revision != config.revision:
        reasons.append(CONFIGURATION_CHANGED)
    if _blacklist_behind(state.blacklist_number, blacklist_since, now):
        reasons.append(BLACKLIST_BEHIND)
    if state.battery is not None and state.battery < BATTERY_LOW:
        reasons.append(BATTERY_LOW_REASON)
    if state.events_pending > AUDIT_PENDING_LIMIT:
        reasons.append(AUDIT_PENDING)
    if state.clock_set_at is None or now - state.clock_set_at > CLOCK_MAX_AGE:
        reasons.append(CLOCK_NOT_SET)
    return reasons


def _blacklist_behind(held: int, blacklist_since: dict[int, dt.datetime], now: dt.datetime) -> bool:
    lacking = [made for number, made in blacklist_since.items() if number > held]
    return len(lacking) > BLACKLIST_CARD_ENTRIES or any(now - made > BLACKLIST_MAX_AGE for made in lacking)


def lock_reports(devices=None, now: dt.datetime | None = None) -> list[LockReport]:
    """Every offline lock (or those in ``devices``) with what it runs and why it needs a visit."""
    now = now or timezone.now()
    devices = list(offline_locks() if devices is None else devices)
    configs = build_configs(devices, now)
    states = {state.device_id: state for state in LockState.objects.filter(device__in=devices)}
    since = dict(BlacklistEntry.objects.filter(until__gt=now).values_list("id", "created_at"))
    reports = []
    for device in devices:
        config, state = configs.get(device.pk), states.get(device.pk)
        reasons = update_reasons(state, config, now, since) if config else []
        reports.append(LockReport(device, state, config, reasons))
    return reports


# --- what a PPD reports --------------------------------------------------------------------------


def access_point_of(device: Device) -> AccessPoint | None:
    point_id = access_point_ids([device]).get(device.pk)
    return AccessPoint.objects.filter(pk=point_id).first() if point_id else None


def record_loaded(
    device: Device, *, config_revision: int, blacklist_number: int, battery: int, at: dt.datetime, operator
) -> LockState:
    """A PPD loaded ``device`` (and set its clock) at ``at``: its state, and a ``lock_updated`` audit event."""
    point = access_point_of(device)
    with transaction.atomic():
        state, _ = LockState.objects.select_for_update().get_or_create(device=device)
        first = state.initialised_at is None
        state.initialised_at = state.initialised_at or at
        state.config_revision = config_revision
        state.blacklist_number = blacklist_number
        state.battery = battery
        state.reported_at = state.clock_set_at = at
        state.save()
        Device.objects.filter(pk=device.pk).update(battery=battery)
        events.record(
            at=at,
            kind=AuditKind.LOCK_UPDATED,
            access_point=point,
            access_point_name=point.name if point else "",
            device=device,
            operator=operator,
            detail={
                "config_revision": config_revision,
                "blacklist_number": blacklist_number,
                "battery": battery,
                "initialised": first,
            },
        )
    return state


@dataclasses.dataclass(frozen=True)
class UploadedEvent:
    """One event from a lock's audit buffer, as a PPD collected it."""

    id: int  # the lock's own event number: rises by one per event, never reused
    at: dt.datetime
    kind: str
    key_id: int | None = None
    uid: str = ""
    reason: str = ""
    door: int | None = None


@dataclasses.dataclass(frozen=True)
class Stored:
    received: int
    new: int
    stored_up_to: int  # every event of this lock up to this id is stored: the lock may forget them


def store_audit(device: Device, events: list[UploadedEvent], now: dt.datetime | None = None) -> Stored:
    """Store a lock's collected events in the audit trail, each once however often it is uploaded.

    The granted passages among the events stored for the first time are merged into presence in the same
    transaction (an upload repeated changes nothing; an older trail never undoes a newer passage).
    """
    now = now or timezone.now()
    point = access_point_of(device)
    keys = {
        pk: (holder, uid)
        for pk, holder, uid in Key.objects.filter(pk__in={e.key_id for e in events if e.key_id}).values_list(
            "pk", "cardholder_id", "uid"
        )
    }
    rows = [_audit_row(device, point, event, keys.get(event.key_id)) for event in events]
    with transaction.atomic():
        new = recorder.store(rows, [], {}, now)
        presence.record_passages(presence.passages_from_events(new))
        stored_up_to = max((e.id for e in events), default=0) or _highest_stored(device)
        LockState.objects.get_or_create(device=device)
        LockState.objects.filter(device=device).update(collected_at=now, events_pending=0)
    return Stored(received=len(events), new=len(new), stored_up_to=stored_up_to)


def _audit_row(device: Device, point: AccessPoint | None, event: UploadedEvent, key: tuple | None) -> AuditEvent:
    holder_id, key_uid = key or (None, "")
    detail = {"key_id": event.key_id} if event.key_id else {}
    if event.door is not None:
        detail["door"] = event.door
    return AuditEvent(
        at=event.at,
        kind=event.kind,
        reason=event.reason,
        access_point_id=point.pk if point else None,
        access_point_name=point.name if point else "",
        cardholder_id=holder_id,
        key_uid=event.uid or key_uid,
        device_id=device.pk,
        device_event_id=event.id,
        detail=detail,
    )


def _highest_stored(device: Device) -> int:
    highest = AuditEvent.objects.filter(device=device).aggregate(highest=Max("device_event_id"))["highest"]
    return highest or 0
