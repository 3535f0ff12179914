"""Create, read, update and delete through every endpoint, and every way of being refused.

The cases are in ``endpoints.py``; each test runs once per endpoint.
"""

import pytest
from rest_framework.test import APIClient

from accesscontrol.models import SystemAuditEntry
from tests.accesscontrol.api.endpoints import (
    ENDPOINTS,
    PARTITIONED,
    PARTITIONED_WRITABLE,
    READ_ONLY,
    WRITABLE,
    Endpoint,
    stored,
)
from tests.support.api import client_with

pytestmark = pytest.mark.django_db

each_endpoint = pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
each_writable = pytest.mark.parametrize("endpoint", WRITABLE, ids=str)
each_read_only = pytest.mark.parametrize("endpoint", READ_ONLY, ids=str)
each_partitioned = pytest.mark.parametrize("endpoint", PARTITIONED, ids=str)
each_partitioned_writable = pytest.mark.parametrize("endpoint", PARTITIONED_WRITABLE, ids=str)


def operator_with(endpoint: Endpoint, *permissions, partition):
    """A client holding ``permissions`` in ``partition``, or in every partition where the endpoint asks for it."""
    if endpoint.everywhere:
        return client_with(*permissions, all_partitions=True)
    return client_with(*permissions, partitions=[partition])


def writer(endpoint: Endpoint, action: str, partition):
    return operator_with(
        endpoint, endpoint.permission(action), endpoint.permission("view"), *endpoint.needed(), partition=partition
    )


def audited(endpoint: Endpoint, action: str, object_id) -> list[SystemAuditEntry]:
    return list(
        SystemAuditEntry.objects.filter(
            action=action, object_type=endpoint.model._meta.label_lower, object_id=str(object_id), via="api"
        )
    )


# --- allowed ---------------------------------------------------------------------------


@each_endpoint
def test_it_lists_what_the_operator_may_view(endpoint, partition):
    obj = endpoint.make(partition)
    client = operator_with(endpoint, endpoint.permission("view"), partition=partition)

    response = client.get(endpoint.url())

    assert response.status_code == 200
    assert obj.pk in [row["id"] for row in response.json()["results"]]


@each_endpoint
def test_it_shows_one_object(endpoint, partition):
    obj = endpoint.make(partition)
    client = operator_with(endpoint, endpoint.permission("view"), partition=partition)

    response = client.get(endpoint.url(obj))

    assert response.status_code == 200
    assert response.json()["id"] == obj.pk


@each_writable
def test_it_creates_an_object_and_records_it(endpoint, partition):
    client = writer(endpoint, "add", partition)
    payload = endpoint.create(partition)
    count = endpoint.model.objects.count()

    response = client.post(endpoint.url(), payload, format="json")

    assert response.status_code == 201, response.json()
    assert endpoint.model.objects.count() == count + 1
    obj = endpoint.model.objects.get(pk=response.json()["id"])
    for name, value in payload.items():
        if name in {"pin", "intervals", "days", "entries", "permissions", "partitions", *endpoint.unchecked}:
            continue
        assert stored(obj, name) == value
    assert len(audited(endpoint, endpoint.create_action, obj.pk)) == 1


@each_writable
def test_it_updates_an_object_and_records_what_changed(endpoint, partition):
    obj = endpoint.make(partition)
    client = writer(endpoint, "change", partition)
    payload = endpoint.update(partition)

    response = client.patch(endpoint.url(obj), payload, format="json")

    assert response.status_code == 200, response.json()
    for name, value in payload.items():
        assert response.json()[name] == value
        assert stored(obj, name) == value
    [entry] = audited(endpoint, "update", obj.pk)
    assert sorted(entry.detail["changes"]) == sorted(payload)


@each_writable
def test_it_deletes_an_object_and_records_it(endpoint, partition):
    obj = endpoint.make(partition)
    client = writer(endpoint, "delete", partition)

    response = client.delete(endpoint.url(obj))

    assert response.status_code == 204
    assert not endpoint.model.objects.filter(pk=obj.pk).exists()
    assert len(audited(endpoint, "delete", obj.pk)) == 1


# --- refused: no permission ----------------------------------------------------------------


@each_endpoint
def test_without_permission_it_refuses_to_list(endpoint, partition):
    endpoint.make(partition)
    client = operator_with(endpoint, partition=partition)

    assert client.get(endpoint.url()).status_code == 403


@each_endpoint
def test_without_permission_it_refuses_to_show(endpoint, partition):
    obj = endpoint.make(partition)
    client = operator_with(endpoint, partition=partition)

    assert client.get(endpoint.url(obj)).status_code == 403


@each_writable
def test_without_permission_it_refuses_to_create_and_creates_nothing(endpoint, partition):
    client = operator_with(endpoint, endpoint.permission("view"), partition=partition)
    payload = endpoint.create(partition)
    count = endpoint.model.objects.count()

    response = client.post(endpoint.url(), payload, format="json")

    assert response.status_code == 403
    assert endpoint.model.objects.count() == count
    assert not SystemAuditEntry.objects.exists()


@each_writable
def test_without_permission_it_refuses_to_update_and_changes_nothing(endpoint, partition):
    obj = endpoint.make(partition)
    client = operator_with(endpoint, endpoint.permission("view"), partition=partition)
    payload = endpoint.update(partition)
    before = {name: stored(obj, name) for name in payload}

    response = client.patch(endpoint.url(obj), payload, format="json")

    assert response.status_code == 403
    assert {name: stored(obj, name) for name in payload} == before
    assert not SystemAuditEntry.objects.exists()


@each_writable
def test_without_permission_it_refuses_to_delete_and_keeps_the_object(endpoint, partition):
    obj = endpoint.make(partition)
    client = operator_with(endpoint, endpoint.permission("view"), endpoint.permission("change"), partition=partition)

    response = client.delete(endpoint.url(obj))

    assert response.status_code == 403
    assert endpoint.model.objects.filter(pk=obj.pk).exists()
    assert not SystemAuditEntry.objects.exists()


@each_endpoint
def test_it_refuses_anonymous_callers(endpoint, partition):
    obj = endpoint.make(partition)
    client = APIClient()

    assert client.get(endpoint.url()).status_code == 401
    assert client.get(endpoint.url(obj)).status_code == 401
    assert client.post(endpoint.url(), {}, format="json").status_code == 401
    assert client.delete(endpoint.url(obj)).status_code == 401
    assert endpoint.model.objects.filter(pk=obj.pk).exists()


# --- refused: permission in another partition ----------------------------------------------


def everything_in(endpoint: Endpoint, partition):
    actions = ("view", "add", "change", "delete")
    return client_with(*(endpoint.permission(action) for action in actions), *endpoint.needed(), partitions=[partition])


@each_partitioned
def test_objects_in_another_partition_are_not_listed(endpoint, partition, other_partition):
    endpoint.make(partition)
    client = everything_in(endpoint, other_partition)

    response = client.get(endpoint.url())

    assert response.status_code == 200
    assert response.json()["results"] == []


@each_partitioned
def test_an_object_in_another_partition_is_not_found(endpoint, partition, other_partition):
    obj = endpoint.make(partition)
    client = everything_in(endpoint, other_partition)

    assert client.get(endpoint.url(obj)).status_code == 404


@each_partitioned_writable
def test_an_object_in_another_partition_cannot_be_updated(endpoint, partition, other_partition):
    obj = endpoint.make(partition)
    client = everything_in(endpoint, other_partition)
    payload = endpoint.update(other_partition)
    before = {name: stored(obj, name) for name in payload}

    response = client.patch(endpoint.url(obj), payload, format="json")

    assert response.status_code == 404
    assert {name: stored(obj, name) for name in payload} == before
    assert not SystemAuditEntry.objects.exists()


@each_partitioned_writable
def test_an_object_in_another_partition_cannot_be_deleted(endpoint, partition, other_partition):
    obj = endpoint.make(partition)
    client = everything_in(endpoint, other_partition)

    response = client.delete(endpoint.url(obj))

    assert response.status_code == 404
    assert endpoint.model.objects.filter(pk=obj.pk).exists()
    assert not SystemAuditEntry.objects.exists()


@each_partitioned_writable
def test_nothing_can_be_created_in_another_partition(endpoint, partition, other_partition):
    payload = endpoint.create(partition)
    client = client_with(
        *(endpoint.permission(action) for action in ("view", "add")),
        *endpoint.needed(),
        partitions=[other_partition],
        all_partitions=False,
    )
    count = endpoint.model.objects.count()

    response = client.post(endpoint.url(), payload, format="json")

    # Refused either as a partition the operator may not use (403) or, where the payload
    # names objects in it, as objects the operator cannot see (400).
    assert response.status_code in (400, 403)
    assert endpoint.model.objects.count() == count
    assert not SystemAuditEntry.objects.exists()


# --- read-only endpoints --------------------------------------------------------------------


@each_read_only
def test_a_read_only_endpoint_refuses_every_write_with_405(endpoint, partition):
    obj = endpoint.make(partition)
    client = client_with(
        *(endpoint.permission(action) for action in ("view", "add", "change", "delete")), all_partitions=True
    )
    count = endpoint.model.objects.count()

    assert client.post(endpoint.url(), {"id": 1}, format="json").status_code == 405
    assert client.put(endpoint.url(obj), {"id": 1}, format="json").status_code == 405
    assert client.patch(endpoint.url(obj), {"id": 1}, format="json").status_code == 405
    assert client.delete(endpoint.url(obj)).status_code == 405
    assert endpoint.model.objects.count() == count
