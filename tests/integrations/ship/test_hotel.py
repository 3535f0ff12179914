"""Hotel.CheckIn and Hotel.CheckOut through SHIP, on the real hotel operations (hotel.actions)."""

import pytest

from accesscontrol.choices import KeyStatus
from accesscontrol.models import AccessPoint, Key, Stay
from integrations.ship import xml as ship
from integrations.ship.operations import format_time
from tests.factories import make_partition
from tests.hotel.support import days, make_hotel
from tests.integrations.ship.conftest import call, integrator

pytestmark = pytest.mark.django_db


@pytest.fixture
def desk(db):
    make_hotel()
    return integrator()


def check_in(operator, room="101", **params):
    fields = {"Room": room, "Departure": format_time(days(2)), "GuestName": "Ana Ruiz", **params}
    return call(operator, "Hotel.CheckIn", list(fields.items()))


def test_check_in_issues_a_guest_key_for_the_room(desk):
    response = check_in(desk, Reservation="R-1")

    assert response.error is None
    stay = Stay.objects.get()
    key = Key.objects.get(cardholder=stay.cardholder)
    assert (stay.room.number, stay.reservation, stay.guest_name) == ("101", "R-1", "Ana Ruiz")
    assert ship.text(response.params, "KeyID") == str(key.pk)
    assert ship.text(response.params, "ROMCode") == key.uid
    assert [room.text for room in response.params.findall("RoomList/Room")] == ["101"]


def test_a_copy_key_adds_a_key_to_the_stay(desk):
    check_in(desk)

    response = check_in(desk, KeyType="copy")

    assert response.error is None
    assert Key.objects.filter(status=KeyStatus.ISSUED).count() == 2


def test_check_out_cancels_the_stays_keys(desk):
    check_in(desk)

    response = call(desk, "Hotel.CheckOut", [("Room", "101")])

    assert ship.text(response.params, "KeysCancelled") == "1"
    assert list(Key.objects.values_list("status", flat=True)) == [KeyStatus.CANCELLED]


@pytest.mark.parametrize(
    ("request_name", "params", "code", "words"),
    [
        ("Hotel.CheckIn", {"Room": "999"}, ship.NOT_FOUND, "unknown_room"),
        ("Hotel.CheckIn", {"Departure": "2001-01-01T00:00:00"}, ship.BAD_REQUEST, "bad_request"),
        ("Hotel.CheckIn", {"KeyType": "gold"}, ship.BAD_REQUEST, "KeyType"),
        ("Hotel.CheckIn", {"KeyType": "copy"}, ship.NOT_FOUND, "guest_not_found"),
        ("Hotel.CheckIn", {"Encoder": "NOPE"}, ship.NOT_FOUND, "unknown_encoder"),
        ("Hotel.CheckOut", {"Room": "102"}, ship.NOT_FOUND, "guest_not_found"),
    ],
)
def test_hotel_refusals_are_ship_exceptions_naming_the_hotel_code(desk, request_name, params, code, words):
    fields = {"Room": "101", "Departure": format_time(days(2)), **params}

    response = call(desk, request_name, list(fields.items()))

    assert response.error.code == code
    assert words in response.error.message
    assert not Key.objects.exists()


def test_check_in_needs_the_right_to_issue_keys(db):
    make_hotel()

    response = check_in(integrator(permissions=("accesscontrol.view_key", "accesscontrol.change_key")))

    assert response.error.code == ship.PERMISSION_DENIED
    assert not Stay.objects.exists()


def test_check_in_and_out_need_the_key_permissions_in_the_rooms_partition(db):
    hotel = make_hotel()
    mine, theirs = make_partition(), make_partition()
    AccessPoint.objects.filter(pk=hotel["rooms"]["101"].access_point_id).update(partition=theirs)
    AccessPoint.objects.filter(pk=hotel["rooms"]["201"].access_point_id).update(partition=mine)
    operator = integrator(partitions=[mine])

    refused = check_in(operator)
    allowed = check_in(operator, room="201")

    assert refused.error.code == ship.PERMISSION_DENIED
    assert allowed.error is None
    assert call(operator, "Hotel.CheckOut", [("Room", "101")]).error.code == ship.PERMISSION_DENIED
    assert list(Stay.objects.values_list("room__number", flat=True)) == ["201"]
