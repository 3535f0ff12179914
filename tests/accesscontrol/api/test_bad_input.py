"""Bad input gets a 400 naming what is wrong (or a 409 for a delete that would break references), never a 500."""

import pytest

from accesscontrol.models import AccessPoint, Cardholder, Key, Partition, TimePeriod, Zone
from tests.accesscontrol.api.endpoints import WRITABLE
from tests.factories import (
    make_access_level,
    make_access_point,
    make_cardholder,
    make_key,
    make_time_period,
    make_zone,
)

pytestmark = pytest.mark.django_db

each_writable = pytest.mark.parametrize("endpoint", WRITABLE, ids=str)


@each_writable
def test_a_body_that_is_not_an_object_is_refused(endpoint, admin_client):
    count = endpoint.model.objects.count()

    broken = admin_client.post(endpoint.url(), '{"name": ', content_type="application/json")
    listed = admin_client.post(endpoint.url(), "[1, 2]", content_type="application/json")
    scalar = admin_client.post(endpoint.url(), "42", content_type="application/json")

    assert broken.status_code == listed.status_code == scalar.status_code == 400
    assert "JSON parse error" in broken.json()["detail"]
    assert list(listed.json()) == ["non_field_errors"]
    assert endpoint.model.objects.count() == count


@each_writable
def test_a_field_of_the_wrong_type_is_named(endpoint, admin_client, partition):
    payload = endpoint.create(partition)
    count = endpoint.model.objects.count()

    for name in payload:
        response = admin_client.post(endpoint.url(), {**payload, name: {"not": "this"}}, format="json")
        assert response.status_code == 400, name
        assert name in response.json(), name
    assert endpoint.model.objects.count() == count


@each_writable
def test_a_huge_string_is_refused(endpoint, admin_client, partition):
    payload = endpoint.create(partition)
    strings = [name for name, value in payload.items() if isinstance(value, str)]
    count = endpoint.model.objects.count()

    for name in strings:
        response = admin_client.post(endpoint.url(), {**payload, name: "9" * 100_000}, format="json")
        assert response.status_code == 400, name
        assert name in response.json(), name
    assert endpoint.model.objects.count() == count


@each_writable
def test_unknown_related_ids_are_field_errors(endpoint, admin_client, partition):
    payload = endpoint.create(partition)
    ids = [name for name, value in payload.items() if isinstance(value, int) and not isinstance(value, bool)]

    for name in ids:
        for bad in (10**30, -1, "abc", [1]):
            response = admin_client.post(endpoint.url(), {**payload, name: bad}, format="json")
            assert response.status_code == 400, (name, bad)
            assert name in response.json(), (name, bad)


def test_a_body_too_big_is_refused(admin_client):
    response = admin_client.post(
        "/api/v1/zones/", '{"name": "' + "x" * 3_000_000 + '"}', content_type="application/json"
    )

    assert response.status_code == 400
    assert not Zone.objects.exists()


# --- the models' own rules ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"opening_mode": "timed"}, "timed_period"),
        ({"open_time": 20, "extended_open_time": 10}, "extended_open_time"),
        ({"open_time": 0}, "open_time"),
        ({"open_time": 256, "extended_open_time": 300}, "open_time"),
        ({"open_time": 10, "extended_open_time": 70000}, "extended_open_time"),
        ({"open_time": 10, "extended_open_time": 256}, "extended_open_time"),
        ({"kind": "spaceship"}, "kind"),
        ({"zones": "1,2"}, "zones"),
    ],
)
def test_an_access_point_breaking_a_rule_is_refused(admin_client, fields, error):
    response = admin_client.post("/api/v1/access-points/", {"name": "Door", **fields}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == [error]
    assert not AccessPoint.objects.exists()


def test_a_rule_is_checked_against_the_stored_object_on_patch(admin_client):
    door = make_access_point(open_time=4, extended_open_time=10)

    response = admin_client.patch(f"/api/v1/access-points/{door.pk}/", {"open_time": 30}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["extended_open_time"]
    door.refresh_from_db()
    assert door.open_time == 4


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"activation": "2030-01-02T00:00:00Z", "expiration": "2030-01-01T00:00:00Z"}, "expiration"),
        ({"activation": "2030-02-30T00:00:00Z"}, "activation"),
        ({"pin": "12"}, "pin"),
        ({"pin": "12ab"}, "pin"),
        ({"pin": "123456789"}, "pin"),
        ({"email": "not an email"}, "email"),
        ({"last_name": ""}, "last_name"),
        ({"access_levels": [10**12]}, "access_levels"),
        ({"banned": "maybe"}, "banned"),
    ],
)
def test_a_cardholder_breaking_a_rule_is_refused(admin_client, fields, error):
    response = admin_client.post("/api/v1/cardholders/", {"last_name": "Smith", **fields}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == [error]
    assert not Cardholder.objects.exists()


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"uid": "XYZ"}, "uid"),
        ({"uid": ""}, "uid"),
        ({"valid_from": "2030-01-02T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"}, "valid_until"),
        ({"kind": "rock"}, "kind"),
    ],
)
def test_a_key_breaking_a_rule_is_refused(admin_client, fields, error):
    holder = make_cardholder()

    response = admin_client.post("/api/v1/keys/", {"cardholder": holder.pk, "uid": "0A0B", **fields}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == [error]
    assert not Key.objects.exists()


def test_two_issued_keys_cannot_share_a_uid_whatever_its_spelling(admin_client):
    make_key(make_cardholder(), uid="04A1B2C3")

    response = admin_client.post(
        "/api/v1/keys/", {"cardholder": make_cardholder().pk, "uid": "04:a1:b2:c3"}, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()) == ["uid"]
    assert Key.objects.count() == 1


def test_a_duplicate_name_is_named(admin_client):
    make_zone(name="Lobby")

    response = admin_client.post("/api/v1/zones/", {"name": "Lobby"}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["name"]
    assert Zone.objects.count() == 1


def test_blank_external_ids_do_not_collide(admin_client):
    first = admin_client.post("/api/v1/cardholders/", {"last_name": "A", "ext_id": ""}, format="json")
    second = admin_client.post("/api/v1/cardholders/", {"last_name": "B", "ext_id": ""}, format="json")

    assert (first.status_code, second.status_code) == (201, 201)
    assert list(Cardholder.objects.values_list("ext_id", flat=True)) == [None, None]


def test_a_location_cannot_be_inside_itself(admin_client):
    outer = admin_client.post("/api/v1/locations/", {"name": "Building"}, format="json").json()
    inner = admin_client.post("/api/v1/locations/", {"name": "Floor", "parent": outer["id"]}, format="json").json()

    response = admin_client.patch(f"/api/v1/locations/{outer['id']}/", {"parent": inner["id"]}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["parent"]


# --- references ------------------------------------------------------------------------------


def test_deleting_a_time_period_still_in_use_is_a_conflict(admin_client):
    period = make_time_period()
    make_access_level((make_access_point(), period))

    response = admin_client.delete(f"/api/v1/time-periods/{period.pk}/")

    assert response.status_code == 409
    assert response.json()["detail"] == "It is still in use and cannot be deleted."
    assert TimePeriod.objects.filter(pk=period.pk).exists()


def test_deleting_a_partition_still_in_use_is_a_conflict(admin_client, partition):
    zone = make_zone(partition=partition)

    response = admin_client.delete(f"/api/v1/partitions/{partition.pk}/")

    assert response.status_code == 409
    assert response.json()["used_by"] == [str(zone)]
    assert Partition.objects.filter(pk=partition.pk).exists()


def test_a_nul_in_a_search_is_a_400_with_an_object_of_errors(admin_client):
    response = admin_client.get("/api/v1/api-keys/", {"search": "a\x00b"})

    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Null characters are not allowed."]}


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"issued_before": "0867-05-10T22:14:11.513-16:43"}, None),
        ({"issued_after": "0001-01-01T00:00:00+01:00"}, {"issued_after": ["This date and time is out of range."]}),
    ],
)
def test_a_time_filter_with_any_iso_offset_is_answered_not_a_server_error(admin_client, query, error):
    make_key(make_cardholder())

    response = admin_client.get("/api/v1/keys/", query)

    assert response.status_code == (200 if error is None else 400)
    if error is None:
        assert response.json()["count"] == 0
    else:
        assert response.json() == error
