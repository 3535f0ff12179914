"""Small functions that make domain objects for tests, with sensible defaults."""

import datetime as dt
import itertools

from django.contrib.auth.models import Permission

from accesscontrol.models import (
    AccessLevel,
    AccessLevelEntry,
    AccessPoint,
    Calendar,
    CalendarDay,
    Cardholder,
    CardholderPermission,
    Key,
    Operator,
    OperatorGroup,
    Partition,
    TimeInterval,
    TimePeriod,
    Zone,
)

_counter = itertools.count(1)

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")


def unique(prefix: str) -> str:
    return f"{prefix} {next(_counter)}"


def make_partition(name=None) -> Partition:
    return Partition.objects.create(name=name or unique("Partition"))


def make_access_point(**fields) -> AccessPoint:
    zones = fields.pop("zones", ())
    fields.setdefault("name", unique("Door"))
    point = AccessPoint.objects.create(**fields)
    point.zones.set(zones)
    return point


def make_zone(**fields) -> Zone:
    fields.setdefault("name", unique("Zone"))
    return Zone.objects.create(**fields)


def make_time_period(*intervals, name=None, **fields) -> TimePeriod:
    """``intervals``: (start "HH:MM", end "HH:MM", day names...) tuples; default office hours Mon-Fri."""
    period = TimePeriod.objects.create(name=name or unique("Period"), **fields)
    for start, end, *days in intervals or [("08:00", "18:00", *WEEKDAYS)]:
        TimeInterval.objects.create(
            time_period=period,
            start=dt.time.fromisoformat(start),
            end=dt.time.fromisoformat(end),
            **dict.fromkeys(days, True),
        )
    return period


def make_calendar(*days, name=None) -> Calendar:
    """``days``: (date, day_type) or (date, day_type, recurring) tuples."""
    calendar = Calendar.objects.create(name=name or unique("Calendar"))
    for date, day_type, *rest in days:
        CalendarDay.objects.create(calendar=calendar, date=date, day_type=day_type, recurring=bool(rest and rest[0]))
    return calendar


def make_access_level(*grants, name=None, **fields) -> AccessLevel:
    """``grants``: access points or zones, or (target, time_period) pairs."""
    level = AccessLevel.objects.create(name=name or unique("Level"), **fields)
    for grant in grants:
        target, period = grant if isinstance(grant, tuple) else (grant, None)
        kind = "zone" if isinstance(target, Zone) else "access_point"
        AccessLevelEntry.objects.create(access_level=level, time_period=period, **{kind: target})
    return level


def make_cardholder(*levels, pin=None, **fields) -> Cardholder:
    fields.setdefault("last_name", unique("Holder"))
    fields.setdefault("first_name", "Alex")
    cardholder = Cardholder(**fields)
    cardholder.set_pin(pin)
    cardholder.save()
    cardholder.access_levels.set(levels)
    return cardholder


def give_permission(cardholder, target, time_period=None) -> CardholderPermission:
    kind = "zone" if isinstance(target, Zone) else "access_point"
    return CardholderPermission.objects.create(cardholder=cardholder, time_period=time_period, **{kind: target})


def make_key(cardholder, uid=None, **fields) -> Key:
    return Key.objects.create(cardholder=cardholder, uid=uid or f"{next(_counter):08X}", **fields)


def make_operator(*permissions, partitions=(), all_partitions=False, **fields) -> Operator:
    """An operator in a group of its own holding ``permissions`` ("app.codename") in ``partitions``."""
    fields.setdefault("username", unique("operator").replace(" ", ""))
    operator = Operator.objects.create_user(password=fields.pop("password", "correct horse battery"), **fields)
    if permissions:
        group = OperatorGroup.objects.create(name=unique("Group"), all_partitions=all_partitions)
        for permission in permissions:
            app_label, codename = permission.split(".")
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.partitions.set(partitions)
        group.members.add(operator)
    return operator
