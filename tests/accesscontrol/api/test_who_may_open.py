"""Who may open an access point at a given time, and why a key was refused: the engine's answers through the API."""

import datetime as dt

import pytest

from accesscontrol.engine import decide, who_may_open
from accesscontrol.snapshot import build_snapshot
from tests.factories import make_access_level, make_access_point, make_cardholder, make_key, make_time_period
from tests.support.api import client_with

pytestmark = pytest.mark.django_db

MONDAY_10 = "2030-01-07T10:00:00Z"
SATURDAY_10 = "2030-01-05T10:00:00Z"
VIEW = ("accesscontrol.view_accesspoint", "accesscontrol.view_cardholder")


@pytest.fixture
def office(partition):
    """A door open to its level's holders in office hours (Mon-Fri 08-18), with one holder of each kind."""
    door = make_access_point(partition=partition)
    level = make_access_level((door, make_time_period(partition=partition)), partition=partition)
    return {
        "door": door,
        "staff": make_cardholder(level, partition=partition, first_name="Ana"),
        "stranger": make_cardholder(partition=partition),
        "keyless": make_cardholder(level, partition=partition),
    }


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_it_lists_who_may_open_as_the_engine_says(office, partition):
    make_key(office["staff"], uid="0A0B0C0D")
    make_key(office["stranger"], uid="0A0B0C0E")
    client = client_with(*VIEW, partitions=[partition])

    response = client.get(f"/api/v1/access-points/{office['door'].pk}/who-may-open/", {"at": MONDAY_10})

    assert response.status_code == 200
    assert response.json() == {
        "access_point": office["door"].pk,
        "at": MONDAY_10,
        "cardholders": [{"id": office["staff"].pk, "name": str(office["staff"])}],
    }
    assert who_may_open(build_snapshot(), office["door"].pk, at(MONDAY_10)) == [office["staff"].pk]


def test_nobody_may_open_outside_the_schedule(office, partition):
    make_key(office["staff"], uid="0A0B0C0D")
    client = client_with(*VIEW, partitions=[partition])

    response = client.get(f"/api/v1/access-points/{office['door'].pk}/who-may-open/", {"at": SATURDAY_10})

    assert response.json()["cardholders"] == []


def test_it_lists_only_cardholders_the_operator_may_see(office, partition, other_partition):
    door = office["door"]
    outsider = make_cardholder(*office["staff"].access_levels.all(), partition=other_partition)
    make_key(office["staff"], uid="0A0B0C0D")
    make_key(outsider, uid="0A0B0C0F")
    client = client_with(*VIEW, partitions=[partition])

    response = client.get(f"/api/v1/access-points/{door.pk}/who-may-open/", {"at": MONDAY_10})

    assert sorted(who_may_open(build_snapshot(), door.pk, at(MONDAY_10))) == sorted([office["staff"].pk, outsider.pk])
    assert [row["id"] for row in response.json()["cardholders"]] == [office["staff"].pk]


@pytest.mark.parametrize(
    ("uid", "when", "granted", "reason"),
    [
        ("0A0B0C0D", MONDAY_10, True, "granted"),
        ("0a:0b:0c:0d", MONDAY_10, True, "granted"),
        ("0A0B0C0D", SATURDAY_10, False, "outside_schedule"),
        ("0A0B0C0E", MONDAY_10, False, "no_permission"),
        ("FFFFFFFF", MONDAY_10, False, "unknown_key"),
    ],
)
def test_check_gives_the_engines_decision(office, partition, uid, when, granted, reason):
    make_key(office["staff"], uid="0A0B0C0D")
    make_key(office["stranger"], uid="0A0B0C0E")
    client = client_with(*VIEW, partitions=[partition])
    door = office["door"]

    response = client.get(f"/api/v1/access-points/{door.pk}/check/", {"uid": uid, "at": when})

    decision = decide(build_snapshot(), uid, door.pk, at(when))
    assert response.status_code == 200
    body = response.json()
    assert (body["granted"], body["reason"]) == (granted, reason) == (decision.granted, decision.reason)
    assert body["key_uid"] == decision.key_uid
    assert body["open_time"] == (4 if granted else None)


def test_check_names_the_cardholder_only_to_those_who_may_see_them(office, partition):
    make_key(office["staff"], uid="0A0B0C0D")
    door = office["door"]
    sees_people = client_with(*VIEW, partitions=[partition])
    sees_doors = client_with("accesscontrol.view_accesspoint", partitions=[partition])

    with_name = sees_people.get(f"/api/v1/access-points/{door.pk}/check/", {"uid": "0A0B0C0D", "at": MONDAY_10})
    without = sees_doors.get(f"/api/v1/access-points/{door.pk}/check/", {"uid": "0A0B0C0D", "at": MONDAY_10})

    assert with_name.json()["cardholder"] == {"id": office["staff"].pk, "name": str(office["staff"])}
    assert without.json()["cardholder"] is None
    assert without.json()["granted"] is True


def test_a_key_cancelled_through_the_api_is_refused_as_blacklisted(office, partition):
    key = make_key(office["staff"], uid="0A0B0C0D", valid_until=dt.datetime(2031, 1, 1, tzinfo=dt.UTC))
    client = client_with(*VIEW, "accesscontrol.change_key", "accesscontrol.view_key", partitions=[partition])
    door = office["door"]
    before = client.get(f"/api/v1/access-points/{door.pk}/check/", {"uid": key.uid, "at": MONDAY_10})

    assert client.post(f"/api/v1/keys/{key.pk}/cancel/").status_code == 200
    after = client.get(f"/api/v1/access-points/{door.pk}/check/", {"uid": key.uid, "at": MONDAY_10})

    assert before.json()["granted"] is True
    assert (after.json()["granted"], after.json()["reason"]) == (False, "blacklisted")


def test_check_asks_for_the_pin_where_the_door_needs_one(partition):
    door = make_access_point(partition=partition, pin_required=True)
    holder = make_cardholder(make_access_level(door, partition=partition), partition=partition, pin="2468")
    make_key(holder, uid="0A0B0C0D")
    client = client_with(*VIEW, partitions=[partition])
    url = f"/api/v1/access-points/{door.pk}/check/"

    replies = [client.get(url, {"uid": "0A0B0C0D", "at": MONDAY_10, **pin}).json() for pin in ({}, {"pin": "1111"})]
    right = client.get(url, {"uid": "0A0B0C0D", "at": MONDAY_10, "pin": "2468"}).json()

    assert [reply["reason"] for reply in replies] == ["pin_required", "wrong_pin"]
    assert right["granted"] is True


def test_the_time_defaults_to_now(office, partition):
    client = client_with(*VIEW, partitions=[partition])

    response = client.get(f"/api/v1/access-points/{office['door'].pk}/who-may-open/")

    assert response.status_code == 200
    moment = dt.datetime.fromisoformat(response.json()["at"])
    assert abs((moment - dt.datetime.now(dt.UTC)).total_seconds()) < 60


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"uid": "0A0B", "at": "yesterday"}, "at"),
        ({"uid": "0A0B", "at": "2030-02-30T10:00:00Z"}, "at"),
        ({"uid": "not hex!"}, "uid"),
        ({"uid": "0A" * 100}, "uid"),
        ({}, "uid"),
        ({"uid": "0A0B", "pin": "12ab"}, "pin"),
    ],
)
def test_check_refuses_bad_parameters_with_field_errors(office, partition, params, field):
    client = client_with(*VIEW, partitions=[partition])

    response = client.get(f"/api/v1/access-points/{office['door'].pk}/check/", params)

    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_an_access_point_in_another_partition_is_not_found(office, other_partition):
    client = client_with(*VIEW, partitions=[other_partition])

    for endpoint in ("who-may-open", "check"):
        response = client.get(f"/api/v1/access-points/{office['door'].pk}/{endpoint}/", {"uid": "0A0B"})
        assert response.status_code == 404


def test_without_permission_to_see_doors_it_refuses(office, partition):
    client = client_with("accesscontrol.view_cardholder", partitions=[partition])

    response = client.get(f"/api/v1/access-points/{office['door'].pk}/who-may-open/")

    assert response.status_code == 403
