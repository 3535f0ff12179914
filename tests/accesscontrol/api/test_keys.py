"""Keys: issued, cancelled (then blacklisted until they expire), never handed to someone else."""

import pytest

from accesscontrol.models import Key, SystemAuditEntry
from tests.factories import make_cardholder, make_key
from tests.support.api import client_with

pytestmark = pytest.mark.django_db


def test_issuing_a_key_stores_its_uid_in_canonical_form(admin_client):
    holder = make_cardholder()

    response = admin_client.post("/api/v1/keys/", {"cardholder": holder.pk, "uid": "04:a1:b2 c3"}, format="json")

    assert response.status_code == 201
    assert response.json()["uid"] == "04A1B2C3"
    assert response.json()["status"] == "issued"
    assert Key.objects.get().uid == "04A1B2C3"


def test_cancelling_a_key_marks_it_cancelled_and_records_it(partition):
    key = make_key(make_cardholder(partition=partition))
    client = client_with("accesscontrol.change_key", "accesscontrol.view_key", partitions=[partition])

    response = client.post(f"/api/v1/keys/{key.pk}/cancel/")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    key.refresh_from_db()
    assert key.status == "cancelled"
    assert key.cancelled_at is not None
    assert SystemAuditEntry.objects.get().action == "cancel_key"


def test_cancelling_twice_changes_nothing_the_second_time(admin_client):
    key = make_key(make_cardholder())
    admin_client.post(f"/api/v1/keys/{key.pk}/cancel/")
    key.refresh_from_db()

    again = admin_client.post(f"/api/v1/keys/{key.pk}/cancel/")

    assert again.status_code == 200
    assert Key.objects.get().cancelled_at == key.cancelled_at
    assert SystemAuditEntry.objects.count() == 1


def test_cancelling_needs_the_change_permission(partition):
    key = make_key(make_cardholder(partition=partition))
    client = client_with("accesscontrol.add_key", "accesscontrol.view_key", partitions=[partition])

    response = client.post(f"/api/v1/keys/{key.pk}/cancel/")

    assert response.status_code == 403
    assert Key.objects.get().status == "issued"


def test_a_key_in_another_partition_cannot_be_cancelled(partition, other_partition):
    key = make_key(make_cardholder(partition=partition))
    client = client_with("accesscontrol.change_key", "accesscontrol.view_key", partitions=[other_partition])

    response = client.post(f"/api/v1/keys/{key.pk}/cancel/")

    assert response.status_code == 404
    assert Key.objects.get().status == "issued"


def test_the_uid_of_a_cancelled_key_can_be_issued_again(admin_client):
    key = make_key(make_cardholder(), uid="0A0B0C0D")
    admin_client.post(f"/api/v1/keys/{key.pk}/cancel/")

    response = admin_client.post(
        "/api/v1/keys/", {"cardholder": make_cardholder().pk, "uid": "0A0B0C0D"}, format="json"
    )

    assert response.status_code == 201


@pytest.mark.parametrize("field", ["cardholder", "uid"])
def test_a_keys_cardholder_and_uid_cannot_change(admin_client, field):
    key = make_key(make_cardholder(), uid="0A0B0C0D")
    value = {"cardholder": make_cardholder().pk, "uid": "0A0B0C0E"}[field]

    response = admin_client.patch(f"/api/v1/keys/{key.pk}/", {field: value}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert Key.objects.filter(pk=key.pk, uid="0A0B0C0D", cardholder=key.cardholder).exists()


def test_the_status_is_changed_only_by_cancelling(admin_client):
    key = make_key(make_cardholder())

    response = admin_client.patch(f"/api/v1/keys/{key.pk}/", {"status": "cancelled"}, format="json")

    assert response.status_code == 200
    assert Key.objects.get().status == "issued"
