"""The hotel operations (hotel/actions.py): check-in, copy and one-shot keys, check-out, moves,
departure changes, key reads and staff keys, with their HotelError codes.

Encoder cases run the real device bridge on 127.0.0.1 with a simulated Ethernet encoder
(simulation/encoders.py) and decode the card written with the site card key.
"""

import datetime as dt

import pytest
from django.utils import timezone

from accesscontrol.choices import CardholderKind, KeyKind, KeyStatus, StayStatus
from accesscontrol.models import BlacklistEntry, CardholderPermission, Key, Stay, SystemAuditEntry
from devices import cards
from hotel import actions as hotel
from tests.factories import make_cardholder, make_key
from tests.hotel.support import days, make_hotel

pytestmark = pytest.mark.django_db

VIA = "test"


def check_in(room="101", departure=None, **options):
    options.setdefault("encoder", None)
    return hotel.check_in(room=room, departure=departure or days(2), via=VIA, **options)


def points_of(stay_id: int) -> set[str]:
    """The names of the access points (and zones) the stay's guest may open."""
    stay = Stay.objects.get(pk=stay_id)
    names = set()
    for grant in CardholderPermission.objects.filter(cardholder=stay.cardholder):
        names.add(grant.target.name)
    return names


def issued(stay_id: int) -> list[Key]:
    return list(Key.objects.filter(cardholder__stay=stay_id, status=KeyStatus.ISSUED).order_by("id"))


def code_of(call) -> str:
    with pytest.raises(hotel.HotelError) as caught:
        call()
    assert caught.value.code in hotel.CODES
    return caught.value.code


# --- check-in -----------------------------------------------------------------------------------------


def test_check_in_makes_a_guest_with_the_room_and_default_areas_and_a_key_until_departure(hotel_site):
    departure = days(3)
    issued_key = check_in(
        "201", departure, guest_name="Ada Lovelace", reservation="R1", operator=None, arrival=timezone.now()
    )

    stay = Stay.objects.get(pk=issued_key.stay_id)
    assert (stay.room.number, stay.status, stay.reservation, stay.guest_name) == ("201", "in", "R1", "Ada Lovelace")
    assert stay.cardholder.kind == CardholderKind.GUEST
    assert stay.cardholder.expiration == departure
    assert points_of(stay.pk) == {"Room 201", "Guest lifts", "Gym"}
    key = Key.objects.get(pk=issued_key.key_id)
    assert (key.status, key.valid_until, key.kind) == (KeyStatus.ISSUED, departure, KeyKind.CARD)
    assert issued_key.rooms == ("201",)
    assert issued_key.departure == departure
    assert issued_key.job_id is None
    assert SystemAuditEntry.objects.filter(action="check_in", via=VIA, object_id=str(stay.pk)).count() == 1


def test_a_check_in_naming_areas_gets_those_instead_of_the_defaults(hotel_site):
    issued_key = check_in("101", common_areas=("PARKING",))
    assert points_of(issued_key.stay_id) == {"Room 101", "Parking gate"}


def test_a_suite_gives_its_connected_rooms_and_they_become_occupied(hotel_site):
    issued_key = check_in("301", common_areas=())
    assert issued_key.rooms == ("301", "302")
    assert points_of(issued_key.stay_id) == {"Room 301", "Room 302"}
    assert code_of(lambda: check_in("302", reservation="other")) == hotel.ROOM_OCCUPIED


def test_extra_rooms_join_the_stay(hotel_site):
    issued_key = check_in("101", extra_rooms=("102",), common_areas=())
    assert issued_key.rooms == ("101", "102")
    assert points_of(issued_key.stay_id) == {"Room 101", "Room 102"}


def test_a_new_key_cancels_the_earlier_keys_of_the_stay_and_blacklists_written_ones(hotel_site):
    first = check_in("101", reservation="R1")
    Key.objects.filter(pk=first.key_id).update(uid="04A1B2C3D4E5F6")  # as if written on a card
    second = check_in("101", reservation="R1")

    assert second.stay_id == first.stay_id
    assert [key.pk for key in issued(first.stay_id)] == [second.key_id]
    assert Key.objects.get(pk=first.key_id).status == KeyStatus.CANCELLED
    assert BlacklistEntry.objects.filter(key_id=first.key_id).count() == 1


def test_a_new_key_of_another_reservation_checks_the_earlier_guest_out(hotel_site):
    first = check_in("101", reservation="R1")
    second = check_in("101", reservation="R2")

    assert second.stay_id != first.stay_id
    assert Stay.objects.get(pk=first.stay_id).status == StayStatus.OUT
    assert issued(first.stay_id) == []


def test_a_copy_adds_a_key_and_keeps_the_others(hotel_site):
    first = check_in("101")
    copy = check_in("101", kind=hotel.COPY, departure=Stay.objects.get(pk=first.stay_id).departure)

    assert copy.stay_id == first.stay_id
    assert [key.pk for key in issued(first.stay_id)] == [first.key_id, copy.key_id]


def test_a_copy_or_one_shot_without_a_guest_is_guest_not_found(hotel_site):
    assert code_of(lambda: check_in("101", kind=hotel.COPY)) == hotel.GUEST_NOT_FOUND
    assert code_of(lambda: check_in("101", kind=hotel.ONE_SHOT)) == hotel.GUEST_NOT_FOUND


def test_a_copy_with_another_departure_moves_every_key(hotel_site):
    first = check_in("101", days(2))
    later = days(4)
    check_in("101", later, kind=hotel.COPY)
    assert {key.valid_until for key in issued(first.stay_id)} == {later}


def test_a_one_shot_key_is_valid_for_a_short_window_only(hotel_site):
    first = check_in("101", days(2))
    before = timezone.now()
    one_shot = check_in("101", days(2), kind=hotel.ONE_SHOT)

    key = Key.objects.get(pk=one_shot.key_id)
    assert before + hotel.ONE_SHOT_VALIDITY <= key.valid_until <= timezone.now() + hotel.ONE_SHOT_VALIDITY
    assert Key.objects.get(pk=first.key_id).status == KeyStatus.ISSUED


def test_a_phone_number_issues_a_mobile_key(hotel_site):
    issued_key = check_in("101", phone_number="+34600111222")
    key = Key.objects.get(pk=issued_key.key_id)
    assert key.kind == KeyKind.MOBILE
    assert key.cardholder.phone_number == "+34600111222"


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"room": "999"}, hotel.UNKNOWN_ROOM),
        ({"extra_rooms": ("998",)}, hotel.UNKNOWN_ROOM),
        ({"departure": timezone.now() - dt.timedelta(hours=1)}, hotel.BAD_REQUEST),
        ({"departure": dt.datetime(2030, 1, 1)}, hotel.BAD_REQUEST),  # no time zone
        ({"kind": "twice"}, hotel.BAD_REQUEST),
        ({"common_areas": ("SPA",)}, hotel.BAD_REQUEST),
        ({"arrival": days(5)}, hotel.BAD_REQUEST),
        ({"encoder": "NOPE"}, hotel.UNKNOWN_ENCODER),
    ],
)
def test_bad_check_ins_raise_their_code_and_change_nothing(hotel_site, options, code):
    assert code_of(lambda: check_in(**options)) == code
    assert Stay.objects.count() == 0
    assert Key.objects.count() == 0


def test_too_many_rooms_is_a_bad_request(hotel_site, monkeypatch):
    monkeypatch.setattr(hotel, "MAX_ROOMS", 2)
    assert code_of(lambda: check_in("101", extra_rooms=("102", "201"))) == hotel.BAD_REQUEST


def test_an_extra_room_of_another_stay_is_occupied(hotel_site):
    check_in("102")
    assert code_of(lambda: check_in("101", extra_rooms=("102",))) == hotel.ROOM_OCCUPIED
    assert Stay.objects.count() == 1


# --- check-out ----------------------------------------------------------------------------------------


def test_check_out_cancels_every_key_blacklists_them_and_closes_the_stay(hotel_site):
    first = check_in("101", reservation="R1")
    copy = check_in("101", kind=hotel.COPY)
    Key.objects.filter(pk=first.key_id).update(uid="04A1B2C3D4E5F6")
    Key.objects.filter(pk=copy.key_id).update(uid="04A1B2C3D4E5F7")

    assert hotel.check_out(room="101", reservation="R1", via=VIA) == 2

    stay = Stay.objects.get(pk=first.stay_id)
    assert (stay.status, stay.checked_out_at is not None) == (StayStatus.OUT, True)
    assert issued(stay.pk) == []
    assert set(BlacklistEntry.objects.values_list("key_id", flat=True)) == {first.key_id, copy.key_id}
    assert SystemAuditEntry.objects.filter(action="check_out", via=VIA).count() == 1
    # The room is free again.
    assert check_in("101").stay_id != stay.pk


def test_check_out_of_an_empty_room_or_another_reservation_is_guest_not_found(hotel_site):
    assert code_of(lambda: hotel.check_out(room="101", via=VIA)) == hotel.GUEST_NOT_FOUND
    check_in("101", reservation="R1")
    assert code_of(lambda: hotel.check_out(room="101", reservation="R9", via=VIA)) == hotel.GUEST_NOT_FOUND
    assert code_of(lambda: hotel.check_out(room="999", via=VIA)) == hotel.UNKNOWN_ROOM


def test_check_out_through_an_extra_room_ends_the_whole_stay(hotel_site):
    issued_key = check_in("101", extra_rooms=("102",))
    assert hotel.check_out(room="102", via=VIA) == 1
    assert Stay.objects.get(pk=issued_key.stay_id).status == StayStatus.OUT


# --- modify -------------------------------------------------------------------------------------------


def test_a_move_takes_the_rights_along_and_rewrites_the_keys(hotel_site):
    issued_key = check_in("101", common_areas=("GYM",))
    revision = Key.objects.get(pk=issued_key.key_id).revision

    assert hotel.modify(room="101", new_room="201", via=VIA) == issued_key.stay_id

    assert Stay.objects.get(pk=issued_key.stay_id).room.number == "201"
    assert points_of(issued_key.stay_id) == {"Room 201", "Gym"}
    assert Key.objects.get(pk=issued_key.key_id).revision == revision + 1
    assert check_in("101").stay_id != issued_key.stay_id  # 101 is free
    entry = SystemAuditEntry.objects.get(action="modify_stay")
    assert entry.detail["changes"]["room"] == {"from": "101", "to": "201"}


def test_a_move_into_an_occupied_room_is_refused_and_changes_nothing(hotel_site):
    first = check_in("101")
    check_in("201")
    assert code_of(lambda: hotel.modify(room="101", new_room="201", via=VIA)) == hotel.ROOM_OCCUPIED
    assert Stay.objects.get(pk=first.stay_id).room.number == "101"


def test_a_departure_change_moves_the_keys_validity_and_their_revision(hotel_site):
    issued_key = check_in("101", days(1))
    later = days(5)
    hotel.modify(room="101", departure=later, guest_name="Grace Hopper", via=VIA)

    stay = Stay.objects.get(pk=issued_key.stay_id)
    key = Key.objects.get(pk=issued_key.key_id)
    assert (stay.departure, stay.guest_name, stay.cardholder.expiration) == (later, "Grace Hopper", later)
    assert (key.valid_until, key.revision) == (later, 2)
    card = cards.card_data_for_key(key, timezone.now())
    assert card.valid_until == int(later.timestamp())


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"room": "999"}, hotel.UNKNOWN_ROOM),
        ({"room": "102"}, hotel.GUEST_NOT_FOUND),
        ({"new_room": "999"}, hotel.UNKNOWN_ROOM),
        ({"reservation": "R9"}, hotel.GUEST_NOT_FOUND),
        ({"departure": timezone.now() - dt.timedelta(minutes=1)}, hotel.BAD_REQUEST),
    ],
)
def test_bad_modifications_raise_their_code(hotel_site, options, code):
    check_in("101", reservation="R1")
    options.setdefault("room", "101")
    assert code_of(lambda: hotel.modify(via=VIA, **options)) == code


# --- staff keys ---------------------------------------------------------------------------------------


def test_housekeeping_gets_the_rooms_of_its_floors_during_its_shift(hotel_site):

    maid = make_cardholder(last_name="Housekeeper")
    key = make_key(maid)
    grants = hotel.staff_access(maid, floors=[1, 3], shift="morning", via=VIA)

    assert {(grant.zone.name, grant.time_period.name) for grant in grants} == {
        ("Hotel floor 1 rooms", "Hotel shift morning"),
        ("Hotel floor 3 rooms", "Hotel shift morning"),
    }
    floor_1 = grants[0].zone
    assert set(floor_1.access_points.values_list("name", flat=True)) == {"Room 101", "Room 102"}
    interval = grants[0].time_period.intervals.get()
    assert (str(interval), interval.sunday) == ("06:00-14:00", True)
    key.refresh_from_db()
    assert key.revision == 2

    # Again for another shift and floor: it replaces the first.
    hotel.staff_access(maid, floors=[2], shift="night", via=VIA)
    names = set(CardholderPermission.objects.filter(cardholder=maid).values_list("zone__name", "time_period__name"))
    assert names == {("Hotel floor 2 rooms", "Hotel shift night")}
    assert str(maid.permissions.get().time_period.intervals.get()) == "22:00-06:00"
    assert SystemAuditEntry.objects.filter(action="staff_access").count() == 2


def test_staff_access_refuses_an_unknown_shift_or_a_floor_without_rooms(hotel_site):

    maid = make_cardholder()
    assert code_of(lambda: hotel.staff_access(maid, floors=[1], shift="lunch", via=VIA)) == hotel.BAD_REQUEST
    assert code_of(lambda: hotel.staff_access(maid, floors=[9], shift="morning", via=VIA)) == hotel.BAD_REQUEST
    assert not CardholderPermission.objects.filter(cardholder=maid).exists()


def test_describe_card_of_data_from_another_site_is_not_valid(hotel_site):
    read = hotel.describe_card("04AA", b"\x01" * 64, timezone.now())
    assert (read.valid, read.rooms, read.extra["reason"] != "") == (False, (), True)


def test_in_house_maps_every_room_of_a_stay_to_it(hotel_site):
    first = check_in("101", extra_rooms=("102",))
    check_in("201")
    hotel.check_out(room="201", via=VIA)

    by_room = hotel.in_house()

    rooms = hotel_site["rooms"]
    assert {room_id: stay.pk for room_id, stay in by_room.items()} == {
        rooms["101"].pk: first.stay_id,
        rooms["102"].pk: first.stay_id,
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("same_reservation", [True, False])
def test_concurrent_check_ins_of_one_room_leave_one_stay_with_one_key(same_reservation):
    import threading

    from django.db import connection

    make_hotel()
    departure = days(2)
    errors, start = [], threading.Barrier(6)

    def desk(number: int):
        try:
            start.wait()
            check_in("101", departure, reservation="R1" if same_reservation else f"R{number}")
        except Exception as error:  # any escape is the failure under test
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=desk, args=(number,)) for number in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert Stay.objects.filter(status=StayStatus.IN).count() == 1
    assert Key.objects.filter(status=KeyStatus.ISSUED).count() == 1
    assert Key.objects.count() == 6
