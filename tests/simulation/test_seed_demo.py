import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.db.models import Count
from django.utils import timezone

from accesscontrol.choices import AccessPointKind, CardholderKind, KeyStatus
from accesscontrol.holidays import easter_sunday, public_holidays
from accesscontrol.models import (
    AccessLevel,
    AccessPoint,
    CalendarDay,
    Cardholder,
    CardholderPermission,
    Key,
    Partition,
    SiteSettings,
    TimePeriod,
)
from devices.models import Device

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_it_builds_an_office_building_and_a_hotel_of_about_sixty_doors():
    seed()
    by_partition = dict(AccessPoint.objects.values_list("partition__name").annotate(n=Count("id")))

    assert 55 <= AccessPoint.objects.count() <= 70
    assert AccessPoint.objects.filter(kind=AccessPointKind.ROOM).count() >= 20
    assert by_partition["Office building"] >= 30
    assert by_partition["Hotel"] >= 25
    assert AccessPoint.objects.get(name="Server room").pin_required
    assert AccessPoint.objects.get(name="Main entrance").connection == "online"
    assert {"Office building", "Hotel"} <= set(Partition.objects.values_list("name", flat=True))


def test_the_lobby_and_the_main_entrance_change_mode_on_schedule():
    seed()
    lobby = AccessPoint.objects.get(name="Hotel lobby entrance")
    entrance = AccessPoint.objects.get(name="Main entrance")
    holiday = CalendarDay.objects.filter(day_type="holiday").values_list("date", flat=True).first()

    assert [(c.at.strftime("%H:%M"), c.mode) for c in lobby.mode_schedule.changes.all()] == [
        ("07:00", "timed"),
        ("23:00", "standard"),
    ]
    assert entrance.mode_schedule.changes.filter(holiday=True).get().mode == "locked"
    assert entrance.mode_schedule.changes.filter(at="19:00", friday=True).get().mode == "locked"
    assert holiday is not None and lobby.timed_period is not None


def test_every_one_of_the_300_cardholders_has_a_key():
    seed()

    assert Cardholder.objects.count() == 300
    assert not Cardholder.objects.filter(keys__isnull=True).exists()
    assert (
        Key.objects.filter(status=KeyStatus.ISSUED).values("uid").distinct().count()
        == Key.objects.filter(status=KeyStatus.ISSUED).count()
    )


def test_it_has_a_blacklist_expired_cardholders_and_a_banned_one():
    seed()
    now = timezone.now()

    assert Key.objects.filter(status=KeyStatus.CANCELLED, valid_until__gt=now).count() >= 3
    assert Cardholder.objects.filter(expiration__lt=now).count() >= 3
    assert Cardholder.objects.filter(banned=True).count() == 1


def test_hotel_guests_hold_their_room_for_their_stay():
    seed()
    guests = Cardholder.objects.filter(kind=CardholderKind.GUEST)

    assert guests.count() >= 5
    for guest in guests:
        room = CardholderPermission.objects.get(cardholder=guest, access_point__kind=AccessPointKind.ROOM)
        key = guest.keys.get()
        assert guest.notes == f"Room {room.access_point.name.removeprefix('Room ')}"
        assert (key.valid_from, key.valid_until) == (guest.activation, guest.expiration)
        assert guest.activation < guest.expiration


def test_the_site_calendar_holds_this_and_next_years_holidays():
    seed()
    site = SiteSettings.load()
    year = timezone.localdate().year
    days = CalendarDay.objects.filter(calendar=site.default_calendar)

    assert site.default_calendar is not None
    for y in (year, year + 1):
        assert days.filter(date=dt.date(y, 1, 1)).exists()
        assert days.filter(date__year=y, day_type="holiday").count() == len(public_holidays("UTC", y))
        assert days.filter(date=easter_sunday(y) + dt.timedelta(days=1)).exists()  # Easter Monday


def test_it_makes_the_named_time_periods_access_levels_and_devices():
    seed()
    night = TimePeriod.objects.get(name="Night shift").intervals.get()

    assert {"Office hours", "Cleaning evenings", "Night shift", "Weekends", "Always"} <= set(
        TimePeriod.objects.values_list("name", flat=True)
    )
    assert night.end < night.start  # crosses midnight
    assert {"Staff", "IT", "Cleaning", "Security", "Management", "Hotel staff"} <= set(
        AccessLevel.objects.values_list("name", flat=True)
    )
    assert Device.objects.count() >= 2


def test_running_it_twice_adds_nothing():
    seed()
    counts = (AccessPoint.objects.count(), Cardholder.objects.count(), Key.objects.count(), CalendarDay.objects.count())

    second = seed()

    assert "adds nothing" in second
    assert (
        AccessPoint.objects.count(),
        Cardholder.objects.count(),
        Key.objects.count(),
        CalendarDay.objects.count(),
    ) == counts


def test_it_prints_a_summary():
    output = seed()

    assert "Demo site created" in output
    assert "cardholders" in output and "300" in output


def test_the_hotel_has_rooms_suites_guest_areas_stays_and_a_front_desk_station():
    from accesscontrol.models import GuestArea, Room, Stay
    from devices.models import Device

    seed()

    assert Room.objects.count() == AccessPoint.objects.filter(kind=AccessPointKind.ROOM).count()
    suite = Room.objects.get(number="110")
    assert (suite.suite, [room.number for room in suite.connects.all()]) == (True, ["109"])
    assert set(GuestArea.objects.values_list("name", flat=True)) == {"LOBBY", "GYM", "POOL"}
    guests = Cardholder.objects.filter(kind=CardholderKind.GUEST)
    assert Stay.objects.count() == guests.count()
    assert Stay.objects.filter(status="out").count() >= 1  # the one who left, and any gone at noon today
    for stay in Stay.objects.select_related("room", "cardholder"):
        assert stay.cardholder.notes == f"Room {stay.room.number}"
    encoder = Device.objects.get(station="FD1")
    assert (encoder.name, encoder.has_key) == ("Front desk encoder", True)


@pytest.mark.django_db
def test_the_demo_staff_with_pins_can_type_them_alone():
    from accesscontrol.models import Cardholder

    call_command("seed_demo", stdout=io.StringIO())
    with_pins = Cardholder.objects.exclude(pin_hash="")
    assert with_pins.count() > 10
    # Every PIN has its index, and no two are the same.
    assert not with_pins.filter(pin_index=None).exists()
    assert with_pins.values("pin_index").distinct().count() == with_pins.count()
