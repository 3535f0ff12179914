"""A software offline lock honours the opening modes of its configuration with no network: its clock releases and
locks the door on its schedule (timed), office cards hold it open, and the PPD brings the trail back.

The site is built in the database, and the lock loads its configuration the way a PPD does: the API's JSON
document, read back with ``config_from_json``.
"""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from accesscontrol.choices import OpeningMode
from accesscontrol.models import AuditEvent, ModeSchedule
from devices import cards, locks
from simulation.offline_lock import OfflineLock
from tests.devices.test_locks import make_lock
from tests.factories import give_permission, make_access_point, make_cardholder, make_key, make_time_period
from tests.support.api import client_with

pytestmark = pytest.mark.django_db

ZURICH = ZoneInfo("Europe/Zurich")
EVERY_DAY = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKDAYS = EVERY_DAY[:5]
SPRING_FORWARD = dt.date(2026, 3, 29)  # 02:00 becomes 03:00
FALL_BACK = dt.date(2026, 10, 25)  # 03:00 becomes 02:00: 02:00-03:00 twice
WEDNESDAY = dt.date(2026, 11, 18)


@pytest.fixture(autouse=True)
def zurich(settings):
    settings.TIME_ZONE = "Europe/Zurich"


def local(day: dt.date, hour: int, minute: int = 0, fold: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZURICH, fold=fold)


def wall(moment: dt.datetime) -> str:
    return moment.astimezone(ZURICH).strftime("%H:%M %Z")


def make_mode_schedule(*changes) -> ModeSchedule:
    """``changes``: ("HH:MM", mode, day names...) tuples."""
    schedule = ModeSchedule.objects.create(name=f"Schedule {ModeSchedule.objects.count() + 1}")
    for at, mode, *days in changes:
        schedule.changes.create(at=dt.time.fromisoformat(at), mode=mode, **dict.fromkeys(days, True))
    return schedule


def loaded_by_ppd(ppd, device) -> OfflineLock:
    """The lock, loaded as the PPD loads it: the configuration document over the API, read back."""
    answer = ppd.get(f"/api/v1/ppd/locks/{device.pk}/config/")
    assert answer.status_code == 200
    return OfflineLock(locks.config_from_json(answer.json()))


def upload(ppd, device, lock: OfflineLock) -> dict:
    """The PPD collects the lock's buffer and uploads it; the lock forgets what the server stored."""
    events = [
        {"id": e.id, "at": e.at.isoformat(), "kind": e.kind, "key_id": e.key_id, "uid": e.uid, "reason": e.reason}
        for e in lock.collect_audit()
    ]
    answer = ppd.post(f"/api/v1/ppd/locks/{device.pk}/audit/", {"events": events}, format="json")
    assert answer.status_code == 200, answer.json()
    lock.acknowledge_audit(answer.json()["stored_up_to"])
    return answer.json()


def card_of(holder, issued: dt.date) -> tuple[object, bytes]:
    key = make_key(holder)
    return key, cards.card_bytes_for_key(key, local(issued, 0) - dt.timedelta(days=1))


def trail(lock: OfflineLock) -> list[tuple[str, str, str]]:
    return [(wall(e.at), e.kind, e.reason) for e in lock.collect_audit()]


@pytest.fixture
def ppd():
    return client_with("devices.use_ppd")


# --- timed: released within its period, on its schedule ------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "locked_from"),
    [
        (WEDNESDAY, "02:30 CET"),
        # 02:30 does not exist that night: the change happens at the transition, 03:00 summer time.
        (SPRING_FORWARD, "03:00 CEST"),
        # 02:30 comes twice that night: the change happens once, the first time (summer time).
        (FALL_BACK, "02:30 CEST"),
    ],
)
def test_a_software_offline_lock_opens_and_locks_on_its_timed_schedule_with_no_network(ppd, day, locked_from):
    # Given: a door locked at night, timed by day (held open 08:00-18:00), standard in the evening.
    office_hours = make_time_period(("08:00", "18:00", *EVERY_DAY))
    schedule = make_mode_schedule(
        ("02:30", OpeningMode.LOCKED, *EVERY_DAY),
        ("07:00", OpeningMode.TIMED, *EVERY_DAY),
        ("22:00", OpeningMode.STANDARD, *EVERY_DAY),
    )
    door = make_access_point(name="Archive", mode_schedule=schedule, timed_period=office_hours)
    device = make_lock(door)
    clerk, guard, stranger = make_cardholder(), make_cardholder(override_lockdown=True), make_cardholder()
    for holder in (clerk, guard):
        give_permission(holder, door)
    clerk_key, clerk_card = card_of(clerk, day)
    guard_key, guard_card = card_of(guard, day)
    _, stranger_card = card_of(stranger, day)
    lock = loaded_by_ppd(ppd, device)

    # When: its clock runs across the day, waking every five minutes (true instants: DST days are 23 or 25 hours),
    # and cards come at night (locked) and at noon (held open).
    start, end = local(day, 0).astimezone(dt.UTC), local(day + dt.timedelta(days=1), 0).astimezone(dt.UTC)
    moment, seen = start, []
    cards_at = {local(day, 4): (clerk_card, guard_card), local(day, 12): (clerk_card, stranger_card)}
    while moment < end:
        lock.tick(moment)
        if not seen or seen[-1][1:] != (lock.mode_at(moment), lock.released):
            seen.append((wall(moment), lock.mode_at(moment), lock.released))
        for raw in cards_at.get(moment, ()):
            lock.present(raw, moment)
            assert lock.released == (
                moment.astimezone(ZURICH).hour == 12
            )  # a card decided while the door is held open holds it
        moment += dt.timedelta(minutes=5)

    # Then: the door was locked at night, released in the timed period only, and the trail says when, once each.
    standard, locked, timed = OpeningMode.STANDARD, OpeningMode.LOCKED, OpeningMode.TIMED
    assert seen == [
        (wall(start), standard, False),
        (locked_from, locked, False),
        (wall(local(day, 7)), timed, False),
        (wall(local(day, 8)), timed, True),
        (wall(local(day, 18)), timed, False),
        (wall(local(day, 22)), standard, False),
    ]
    four, eight, noon, six = (wall(local(day, hour)) for hour in (4, 8, 12, 18))
    assert trail(lock) == [
        (four, "access_denied", "door_locked"),
        (four, "access_granted", "granted"),  # override_lockdown opens a locked door
        (eight, "door_released", ""),
        (noon, "access_granted", "granted"),
        (noon, "access_denied", "no_permission"),
        (six, "door_locked", ""),
    ]

    # When: the PPD brings the trail back.
    stored = upload(ppd, device, lock)

    # Then: the door's releases are in the audit trail at their instants, at the door, and the lock's buffer is empty.
    assert stored["new"] == 6
    rows = AuditEvent.objects.filter(device=device, kind__in=["door_released", "door_locked"]).order_by("at")
    assert [(row.kind, row.at, row.access_point_id) for row in rows] == [
        ("door_released", local(day, 8), door.pk),
        ("door_locked", local(day, 18), door.pk),
    ]
    assert set(AuditEvent.objects.filter(device=device, kind="access_granted").values_list("key_uid", flat=True)) == {
        clerk_key.uid,
        guard_key.uid,
    }
    assert lock.collect_audit() == []


# --- office: an office card holds the door open until the next mode change -----------------------------------


def test_an_office_card_holds_the_door_open_in_office_mode_and_the_next_change_locks_it(ppd):
    schedule = make_mode_schedule(
        ("08:00", OpeningMode.OFFICE, *WEEKDAYS),
        ("17:00", OpeningMode.STANDARD, *WEEKDAYS),
    )
    door = make_access_point(name="Reception", mode_schedule=schedule)
    device = make_lock(door)
    manager, clerk = make_cardholder(office=True), make_cardholder()
    for holder in (manager, clerk):
        give_permission(holder, door)
    manager_key, manager_card = card_of(manager, WEDNESDAY)
    _, clerk_card = card_of(clerk, WEDNESDAY)
    lock = loaded_by_ppd(ppd, device)

    def present(raw, hour, minute=0) -> bool:
        outcome, _ = lock.present(raw, local(WEDNESDAY, hour, minute))
        assert outcome.granted
        return lock.released

    def tick(hour) -> bool:
        lock.tick(local(WEDNESDAY, hour))
        return lock.released

    # Before office mode, an office card opens for a moment only; in office mode a plain card too.
    assert present(manager_card, 7) is False
    assert tick(8) is False
    assert present(clerk_card, 9) is False
    # The office card holds it open; plain cards are still decided and recorded; the office card toggles it back.
    assert present(manager_card, 9, 30) is True
    assert tick(12) is True
    assert present(clerk_card, 12) is True
    assert present(manager_card, 13) is False
    assert present(manager_card, 14) is True
    # The next mode change locks it, and after it the office card holds nothing.
    assert tick(17) is False
    assert present(manager_card, 18) is False
    # Office mode again the next morning: the door stays locked until an office card comes.
    lock.tick(local(WEDNESDAY + dt.timedelta(days=1), 8))
    assert lock.released is False

    door_events = [(wall(e.at), e.kind, e.key_id) for e in lock.collect_audit() if e.kind.startswith("door_")]
    assert door_events == [
        ("09:30 CET", "door_released", manager_key.pk),
        ("13:00 CET", "door_locked", manager_key.pk),
        ("14:00 CET", "door_released", manager_key.pk),
        ("17:00 CET", "door_locked", None),
    ]
    assert [e.kind for e in lock.collect_audit()].count("access_granted") == 7

    upload(ppd, device, lock)
    released = AuditEvent.objects.filter(device=device, kind="door_released").order_by("at")
    assert [(row.at, row.cardholder_id) for row in released] == [
        (local(WEDNESDAY, 9, 30), manager.pk),
        (local(WEDNESDAY, 14), manager.pk),
    ]


def test_a_non_office_card_never_holds_the_door_in_office_mode(ppd):
    door = make_access_point(opening_mode=OpeningMode.OFFICE)
    device = make_lock(door)
    clerk = make_cardholder()
    give_permission(clerk, door)
    _, clerk_card = card_of(clerk, WEDNESDAY)
    lock = loaded_by_ppd(ppd, device)

    for hour in (9, 10, 11):
        outcome, _ = lock.present(clerk_card, local(WEDNESDAY, hour))
        assert outcome.granted and outcome.open_ms == 4000
        assert lock.released is False
    assert [e.kind for e in lock.collect_audit()] == ["access_granted"] * 3


# --- toggle, open, locked --------------------------------------------------------------------------------------


def test_in_toggle_mode_each_granted_card_toggles_the_door_and_a_refused_one_does_not(ppd):
    door = make_access_point(opening_mode=OpeningMode.TOGGLE)
    device = make_lock(door)
    clerk, stranger = make_cardholder(), make_cardholder()
    give_permission(clerk, door)
    _, clerk_card = card_of(clerk, WEDNESDAY)
    _, stranger_card = card_of(stranger, WEDNESDAY)
    lock = loaded_by_ppd(ppd, device)

    states = []
    for raw, hour in ((clerk_card, 8), (stranger_card, 9), (clerk_card, 10), (clerk_card, 11)):
        lock.present(raw, local(WEDNESDAY, hour))
        states.append(lock.released)

    assert states == [True, True, False, True]
    assert [e.kind for e in lock.collect_audit() if e.kind.startswith("door_")] == [
        "door_released",
        "door_locked",
        "door_released",
    ]


def test_an_open_door_is_released_by_its_clock_and_a_locked_one_refuses_all_but_override_lockdown(ppd):
    open_device = make_lock(make_access_point(opening_mode=OpeningMode.OPEN), device_id=7201)
    locked_door = make_access_point(opening_mode=OpeningMode.LOCKED)
    locked_device = make_lock(locked_door, device_id=7202)
    clerk, guard = make_cardholder(), make_cardholder(override_lockdown=True)
    for holder in (clerk, guard):
        give_permission(holder, locked_door)
    _, clerk_card = card_of(clerk, WEDNESDAY)
    _, guard_card = card_of(guard, WEDNESDAY)
    open_lock, locked_lock = loaded_by_ppd(ppd, open_device), loaded_by_ppd(ppd, locked_device)

    open_lock.tick(local(WEDNESDAY, 9))
    open_lock.tick(local(WEDNESDAY, 10))

    assert open_lock.released is True
    assert [(wall(e.at), e.kind) for e in open_lock.collect_audit()] == [("09:00 CET", "door_released")]
    clerk_outcome, _ = locked_lock.present(clerk_card, local(WEDNESDAY, 9))
    guard_outcome, _ = locked_lock.present(guard_card, local(WEDNESDAY, 9))
    assert (clerk_outcome.granted, clerk_outcome.reason) == (False, "door_locked")
    assert (guard_outcome.granted, guard_outcome.reason) == (True, "granted")
    assert locked_lock.released is False


def test_a_new_schedule_sends_a_visit_and_the_lock_runs_it_once_loaded(ppd):
    door = make_access_point()
    device = make_lock(door)
    lock = loaded_by_ppd(ppd, device)
    locks.record_loaded(
        device,
        config_revision=lock.config.revision,
        blacklist_number=0,
        battery=90,
        at=local(WEDNESDAY, 6),
        operator=None,
    )
    lock.tick(local(WEDNESDAY, 9))
    assert lock.released is False

    door.mode_schedule = make_mode_schedule(("08:00", OpeningMode.OPEN, *WEEKDAYS))
    door.save()

    (report,) = locks.lock_reports([device], local(WEDNESDAY, 7))
    assert report.reasons == ["configuration_changed"]
    lock.load(loaded_by_ppd(ppd, device).config)
    lock.tick(local(WEDNESDAY, 9))
    assert lock.released is True
