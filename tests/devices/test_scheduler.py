"""The mode scheduler: each access point takes its schedule's mode at each change, and a restart pushes the mode
in force to every scheduled door; operators, lockdowns and timed periods have their say."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from accesscontrol.choices import ModeSource
from accesscontrol.models import AccessPoint, AuditEvent, ModeChange, ModeSchedule, SiteSettings
from devices import commands
from devices.models import Device, DeviceCommand, DeviceDoor
from devices.scheduler import ModeScheduler, next_changes
from tests.factories import make_access_point, make_calendar, make_operator, make_time_period, make_zone
from tests.integrations.running import RunningService
from tests.support.waiting import wait_until

MADRID = ZoneInfo("Europe/Madrid")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
KEY = bytes(range(16))


def local(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=MADRID)


def make_schedule(*changes, name="Office hours") -> ModeSchedule:
    """``changes``: ("HH:MM", mode, day names...)."""
    schedule = ModeSchedule.objects.create(name=name)
    for at, mode, *days in changes:
        ModeChange.objects.create(
            schedule=schedule, at=dt.time.fromisoformat(at), mode=mode, **dict.fromkeys(days, True)
        )
    return schedule


def make_device(device_id, *points) -> Device:
    device = Device(device_id=device_id, name=f"Device {device_id}", kind="control_unit")
    device.set_key(KEY)
    device.save()
    for number, point in enumerate(points, start=1):
        DeviceDoor.objects.create(device=device, number=number, access_point=point)
    return device


def update_site(**fields) -> None:
    site = SiteSettings.load()
    for name, value in fields.items():
        setattr(site, name, value)
    site.save()


def queued(step) -> list[DeviceCommand]:
    return list(DeviceCommand.objects.filter(pk__in=step.pushed.commands).order_by("id"))


def sent(point) -> list[tuple[str, dict]]:
    return [(c.op, c.args) for c in DeviceCommand.objects.filter(access_point=point).order_by("id")]


def stored(point) -> tuple[str, str, dt.datetime | None]:
    point = AccessPoint.objects.get(pk=point.pk)
    return point.opening_mode, point.mode_source, point.mode_changed_at


@pytest.fixture
def site(db, settings):
    """Weekdays open 07:00, locked 19:00, locked all day on holidays: a door with the schedule, a door in a zone
    with it, and a door with none; all on one control unit."""
    settings.TIME_ZONE = "Europe/Madrid"
    schedule = make_schedule(
        ("07:00", "open", *WEEKDAYS), ("19:00", "locked", *WEEKDAYS), ("00:00", "locked", "holiday")
    )
    own = make_access_point(name="Main entrance", mode_schedule=schedule)
    zone = make_zone(name="Lobby", mode_schedule=schedule)
    zoned = make_access_point(name="Lobby door", zones=[zone])
    plain = make_access_point(name="Store room")
    make_device(1001, own, zoned, plain)
    return {"schedule": schedule, "own": own, "zoned": zoned, "plain": plain, "zone": zone}


# --- a start, and each change ------------------------------------------------------------------------


def test_a_start_in_the_middle_of_a_period_pushes_the_mode_in_force_to_every_scheduled_door(site):
    # 2026-05-04 is a Monday.
    step = ModeScheduler().step(local("2026-05-04 12:00"))

    assert stored(site["own"]) == ("open", ModeSource.SCHEDULE, local("2026-05-04 07:00"))
    assert stored(site["zoned"]) == ("open", ModeSource.SCHEDULE, local("2026-05-04 07:00"))
    assert stored(site["plain"])[:2] == ("standard", ModeSource.CONFIGURED)
    assert sent(site["own"]) == [("set_mode", {"door": 1, "mode": "open"})]
    assert sent(site["zoned"]) == [("set_mode", {"door": 2, "mode": "open"})]
    assert sent(site["plain"]) == []
    assert step.next_at == local("2026-05-04 19:00")
    event = AuditEvent.objects.get(access_point=site["own"])
    assert (event.kind, event.detail["by"], event.detail["mode"]) == ("mode_changed", "schedule", "open")
    assert event.detail["next_change"] == {
        "at": local("2026-05-04 19:00").astimezone(dt.UTC).isoformat(),
        "mode": "locked",
    }


def test_a_restart_pushes_every_scheduled_door_again_even_unchanged_and_a_running_one_only_changes(site):
    ModeScheduler().step(local("2026-05-04 12:00"))
    restarted = ModeScheduler()

    restarted.step(local("2026-05-04 12:30"))
    again = restarted.step(local("2026-05-04 13:00"))

    assert sent(site["own"]) == [("set_mode", {"door": 1, "mode": "open"})] * 2
    assert again.pushed.commands == []
    assert AuditEvent.objects.filter(kind="mode_changed").count() == 2  # the first start's, one per door


def test_each_change_is_applied_at_its_instant(site):
    scheduler = ModeScheduler()
    scheduler.step(local("2026-05-04 12:00"))

    before = scheduler.step(local("2026-05-04 18:59:59"))
    at = scheduler.step(local("2026-05-04 19:00"))

    assert before.pushed.commands == []
    assert stored(site["own"]) == ("locked", ModeSource.SCHEDULE, local("2026-05-04 19:00"))
    assert sorted(c.args["door"] for c in queued(at)) == [1, 2]
    assert at.next_at == local("2026-05-05 07:00")


def test_a_late_scheduler_takes_the_last_change_only(site):
    scheduler = ModeScheduler()
    scheduler.step(local("2026-05-04 12:00"))

    scheduler.step(local("2026-05-05 08:00"))  # it missed 19:00 locked and 07:00 open

    assert stored(site["own"]) == ("open", ModeSource.SCHEDULE, local("2026-05-05 07:00"))
    assert sent(site["own"])[-1] == ("set_mode", {"door": 1, "mode": "open"})


def test_a_door_with_a_schedule_of_its_own_follows_it_rather_than_its_zones(site):
    night = make_schedule(("06:00", "office", *WEEKDAYS), name="Night")
    AccessPoint.objects.filter(pk=site["zoned"].pk).update(mode_schedule=night)

    ModeScheduler().step(local("2026-05-04 12:00"))

    assert stored(site["zoned"])[0] == "office"


def test_of_two_scheduled_zones_the_lowest_id_wins(site):
    other = make_zone(name="Annex", mode_schedule=make_schedule(("06:00", "office", *WEEKDAYS), name="Annex"))
    site["zoned"].zones.add(other)

    ModeScheduler().step(local("2026-05-04 12:00"))

    assert site["zone"].pk < other.pk
    assert stored(site["zoned"])[0] == "open"


# --- day types --------------------------------------------------------------------------------------------


def test_on_a_holiday_of_the_sites_calendar_the_holiday_changes_apply(site):
    update_site(default_calendar=make_calendar((dt.date(2026, 5, 1), "holiday")))

    ModeScheduler().step(local("2026-05-01 12:00"))  # a Friday

    assert stored(site["own"]) == ("locked", ModeSource.SCHEDULE, local("2026-05-01 00:00"))


def test_a_special_day_of_the_access_points_calendar_replaces_the_weekday(site):
    ModeChange.objects.create(schedule=site["schedule"], at=dt.time(10, 0), mode="office", special1=True)
    own_calendar = make_calendar((dt.date(2026, 5, 5), "special1"))
    AccessPoint.objects.filter(pk=site["own"].pk).update(calendar=own_calendar)

    ModeScheduler().step(local("2026-05-05 12:00"))

    assert stored(site["own"])[0] == "office"
    assert stored(site["zoned"])[0] == "open"  # the site's calendar: an ordinary Tuesday


def test_a_recurring_holiday_applies_every_year(site):
    update_site(default_calendar=make_calendar((dt.date(2000, 12, 24), "holiday", True)))

    ModeScheduler().step(local("2027-12-24 12:00"))  # a Friday

    assert stored(site["own"])[0] == "locked"


# --- operators ----------------------------------------------------------------------------------------


def test_an_operators_mode_holds_until_the_next_scheduled_change(site):
    scheduler = ModeScheduler()
    scheduler.step(local("2026-05-04 12:00"))
    AccessPoint.objects.filter(pk=site["own"].pk).update(
        opening_mode="standard", mode_source=ModeSource.OPERATOR, mode_changed_at=local("2026-05-04 13:00")
    )

    held = scheduler.step(local("2026-05-04 14:00"))
    restarted = ModeScheduler().step(local("2026-05-04 15:00"))
    ModeScheduler().step(local("2026-05-04 19:00"))

    assert held.pushed.stored == []
    assert ("set_mode", {"door": 1, "mode": "standard"}) in [(c.op, c.args) for c in queued(restarted)]
    assert stored(site["own"]) == ("locked", ModeSource.SCHEDULE, local("2026-05-04 19:00"))


def test_setting_a_mode_is_the_operators_and_says_when_the_schedule_takes_over(site):
    operator = make_operator(is_superuser=True)

    commands.set_opening_mode(site["own"], "office", operator=operator, via="api")

    point = AccessPoint.objects.get(pk=site["own"].pk)
    assert (point.opening_mode, point.mode_source) == ("office", ModeSource.OPERATOR)
    assert point.mode_changed_at is not None
    event = AuditEvent.objects.get(kind="mode_changed", access_point=point)
    assert event.detail["by"] == "operator"
    assert event.detail["next_change"]["mode"] in ("open", "locked")


# --- lockdown --------------------------------------------------------------------------------------------


def test_a_door_in_lockdown_keeps_its_mode_stored_but_hears_it_only_when_the_emergency_ends(site):
    operator = make_operator(is_superuser=True)
    scheduler = ModeScheduler()
    scheduler.step(local("2026-05-04 12:00"))
    commands.emergency_close(site["zone"], operator=operator, via="api")

    during = scheduler.step(local("2026-05-04 19:00"))
    ended = commands.end_emergency(site["zone"], operator=operator, via="api")

    assert stored(site["zoned"])[0] == "locked"
    assert [c.access_point_id for c in queued(during)] == [site["own"].pk]
    assert [(c.op, c.args) for c in ended.resumed] == [("set_mode", {"door": 2, "mode": "locked"})]
    assert sent(site["zoned"])[-2:] == [
        ("end_emergency", {"door": 2}),
        ("set_mode", {"door": 2, "mode": "locked"}),
    ]


def test_a_site_lockdown_holds_every_door(site):
    update_site(lockdown=True)

    step = ModeScheduler().step(local("2026-05-04 12:00"))

    assert step.pushed.commands == []
    assert sorted(step.pushed.stored) == sorted([site["own"].pk, site["zoned"].pk])


# --- timed mode ------------------------------------------------------------------------------------------


def test_a_timed_door_hears_its_period_open_and_close(site):
    period = make_time_period(("08:00", "18:00", *WEEKDAYS))
    schedule = make_schedule(("07:00", "timed", *WEEKDAYS), ("20:00", "standard", *WEEKDAYS), name="Timed")
    AccessPoint.objects.filter(pk=site["own"].pk).update(mode_schedule=schedule, timed_period=period)
    scheduler = ModeScheduler()

    first = scheduler.step(local("2026-05-04 07:30"))
    opened = scheduler.step(local("2026-05-04 08:00"))
    quiet = scheduler.step(local("2026-05-04 12:00"))
    closed = scheduler.step(local("2026-05-04 18:00"))

    assert first.next_at == local("2026-05-04 08:00")
    assert sent(site["own"]) == [
        ("set_mode", {"door": 1, "mode": "timed", "open": False}),
        ("set_mode", {"door": 1, "mode": "timed", "open": True}),
        ("set_mode", {"door": 1, "mode": "timed", "open": False}),
    ]
    assert opened.pushed.stored == [] and closed.pushed.stored == []
    assert quiet.pushed.commands == []
    assert stored(site["own"])[0] == "timed"


# --- for the monitor -----------------------------------------------------------------------------------


def test_next_changes_names_the_next_change_of_each_scheduled_point(site):
    found = next_changes([site["own"].pk, site["zoned"].pk, site["plain"].pk], local("2026-05-08 20:00"))

    # 2026-05-08 is a Friday: the next change is Monday's.
    assert found == {
        site["own"].pk: (local("2026-05-11 07:00"), "open"),
        site["zoned"].pk: (local("2026-05-11 07:00"), "open"),
    }


# --- the service ------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_running_service_resyncs_on_start_then_applies_the_next_change_at_its_instant(settings):
    settings.TIME_ZONE = "Europe/Madrid"
    schedule = make_schedule(("07:00", "open", *WEEKDAYS), ("19:00", "locked", *WEEKDAYS))
    door = make_access_point(name="Main entrance", mode_schedule=schedule)
    make_device(2001, door)
    # The service's clock reads a Monday, a second before 07:00.
    offset = local("2026-05-04 06:59:59") - dt.datetime.now(dt.UTC)
    service = ModeScheduler(clock=lambda: dt.datetime.now(dt.UTC) + offset)
    running = RunningService(service)
    try:
        wait_until(lambda: stored(door)[0] == "open", timeout=10, message="the 07:00 change")
    finally:
        running.stop()

    assert [args["mode"] for _, args in sent(door)] == ["locked", "open"]
    assert stored(door)[2] == local("2026-05-04 07:00")
