"""Operator groups: permissions written as app.codename, and no way to give more than one holds."""

import pytest

from accesscontrol.models import OperatorGroup
from tests.factories import make_operator
from tests.support.api import client_for

pytestmark = pytest.mark.django_db

WRITE_GROUPS = ("accesscontrol.view_operatorgroup", "accesscontrol.add_operatorgroup", "accesscontrol.view_partition")


def test_a_group_shows_its_permissions_by_name(admin_client, partition):
    response = admin_client.post(
        "/api/v1/operator-groups/",
        {
            "name": "Desk",
            "permissions": ["accesscontrol.view_key", "accesscontrol.add_key"],
            "partitions": [partition.pk],
        },
        format="json",
    )

    assert response.status_code == 201
    assert sorted(response.json()["permissions"]) == ["accesscontrol.add_key", "accesscontrol.view_key"]
    assert response.json()["partitions"] == [partition.pk]


@pytest.mark.parametrize("permission", ["view_key", "accesscontrol.fly", "a.b.c", 7])
def test_an_unknown_permission_is_a_field_error(admin_client, permission):
    response = admin_client.post("/api/v1/operator-groups/", {"name": "X", "permissions": [permission]}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["permissions"]
    assert not OperatorGroup.objects.exists()


def test_an_operator_cannot_give_a_permission_they_do_not_hold(partition):
    operator = make_operator(*WRITE_GROUPS, partitions=[partition])

    response = client_for(operator).post(
        "/api/v1/operator-groups/", {"name": "Up", "permissions": ["accesscontrol.delete_cardholder"]}, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()) == ["permissions"]
    assert not OperatorGroup.objects.filter(name="Up").exists()


def test_an_operator_cannot_give_their_permission_beyond_their_partitions(partition, other_partition):
    operator = make_operator(*WRITE_GROUPS, "accesscontrol.view_key", partitions=[partition])
    client = client_for(operator)

    wider = client.post(
        "/api/v1/operator-groups/",
        {"name": "Wide", "permissions": ["accesscontrol.view_key"], "all_partitions": True},
        format="json",
    )
    elsewhere = client.post(
        "/api/v1/operator-groups/",
        {"name": "Else", "permissions": ["accesscontrol.view_key"], "partitions": [other_partition.pk]},
        format="json",
    )
    same = client.post(
        "/api/v1/operator-groups/",
        {"name": "Same", "permissions": ["accesscontrol.view_key"], "partitions": [partition.pk]},
        format="json",
    )

    assert (wider.status_code, elsewhere.status_code, same.status_code) == (400, 400, 201)
    assert list(OperatorGroup.objects.filter(name__in=["Wide", "Else", "Same"]).values_list("name", flat=True)) == [
        "Same"
    ]
