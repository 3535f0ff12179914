"""Partitions limit where an operator may write: moving an object, and the objects a write names."""

import pytest

from accesscontrol.models import Cardholder, CardholderPermission, SystemAuditEntry, Zone
from tests.factories import make_access_level, make_access_point, make_cardholder, make_operator, make_zone
from tests.support.api import client_for, client_with, grant

pytestmark = pytest.mark.django_db


def test_an_object_cannot_be_moved_into_a_partition_the_operator_may_not_use(partition, other_partition):
    zone = make_zone(partition=partition)
    client = client_with("accesscontrol.view_zone", "accesscontrol.change_zone", partitions=[partition])

    response = client.patch(f"/api/v1/zones/{zone.pk}/", {"partition": other_partition.pk}, format="json")

    assert response.status_code == 403
    assert Zone.objects.get().partition == partition
    assert not SystemAuditEntry.objects.exists()


def test_an_object_can_be_moved_between_partitions_the_operator_may_use(partition, other_partition):
    zone = make_zone(partition=partition)
    client = client_with(
        "accesscontrol.view_zone", "accesscontrol.change_zone", partitions=[partition, other_partition]
    )

    response = client.patch(f"/api/v1/zones/{zone.pk}/", {"partition": other_partition.pk}, format="json")

    assert response.status_code == 200
    assert Zone.objects.get().partition == other_partition


def test_an_object_seen_but_not_changeable_is_a_403_not_a_404(partition, other_partition):
    zone = make_zone(partition=partition, name="Lobby")
    operator = make_operator("accesscontrol.view_zone", partitions=[partition])
    grant(operator, "accesscontrol.change_zone", partitions=[other_partition])

    response = client_for(operator).patch(f"/api/v1/zones/{zone.pk}/", {"name": "Hall"}, format="json")

    assert response.status_code == 403
    assert Zone.objects.get().name == "Lobby"


def test_a_write_may_name_only_objects_the_operator_can_see(partition, other_partition):
    holder = make_cardholder(partition=partition)
    hidden_level = make_access_level(partition=other_partition)
    client = client_with("accesscontrol.view_cardholder", "accesscontrol.change_cardholder", partitions=[partition])

    response = client.patch(f"/api/v1/cardholders/{holder.pk}/", {"access_levels": [hidden_level.pk]}, format="json")

    assert response.status_code == 400
    assert response.json() == {"access_levels": [f'Invalid pk "{hidden_level.pk}" - object does not exist.']}
    assert list(Cardholder.objects.get().access_levels.all()) == []


def test_replacing_levels_keeps_those_the_operator_cannot_see(partition, other_partition):
    hidden_level = make_access_level(partition=other_partition)
    old_level = make_access_level(partition=partition)
    new_level = make_access_level(partition=partition)
    holder = make_cardholder(hidden_level, old_level, partition=partition)
    client = client_with(
        "accesscontrol.view_cardholder",
        "accesscontrol.change_cardholder",
        "accesscontrol.view_accesslevel",
        partitions=[partition],
    )

    response = client.patch(f"/api/v1/cardholders/{holder.pk}/", {"access_levels": [new_level.pk]}, format="json")

    assert response.status_code == 200
    assert set(Cardholder.objects.get().access_levels.all()) == {hidden_level, new_level}


def test_a_permission_for_a_cardholder_elsewhere_is_refused(partition, other_partition):
    outsider = make_cardholder(partition=other_partition)
    door = make_access_point(partition=partition)
    client = client_with(
        "accesscontrol.add_cardholderpermission",
        "accesscontrol.view_cardholder",
        "accesscontrol.view_accesspoint",
        partitions=[partition],
    )

    response = client.post(
        "/api/v1/cardholder-permissions/", {"cardholder": outsider.pk, "access_point": door.pk}, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()) == ["cardholder"]
    assert not CardholderPermission.objects.exists()


def test_a_cardholder_seen_but_not_changeable_gets_no_permission(partition, other_partition):
    holder = make_cardholder(partition=other_partition)
    door = make_access_point(partition=partition)
    operator = make_operator(
        "accesscontrol.view_cardholder", "accesscontrol.view_accesspoint", partitions=[partition, other_partition]
    )
    grant(operator, "accesscontrol.add_cardholderpermission", partitions=[partition])

    response = client_for(operator).post(
        "/api/v1/cardholder-permissions/", {"cardholder": holder.pk, "access_point": door.pk}, format="json"
    )

    assert response.status_code == 403
    assert not CardholderPermission.objects.exists()
    assert not SystemAuditEntry.objects.exists()
