"""API keys: issued with a token shown once, stored as a hash, refused once revoked or expired."""

import datetime as dt
import hashlib

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accesscontrol.models import ApiKey, SystemAuditEntry
from tests.factories import make_operator
from tests.support.api import client_for

pytestmark = pytest.mark.django_db

MANAGE_KEYS = ("accesscontrol.view_apikey", "accesscontrol.add_apikey", "accesscontrol.change_apikey")


def key_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {token}")
    return client


def test_it_shows_the_token_once_and_stores_only_its_hash():
    operator = make_operator(*MANAGE_KEYS)
    client = client_for(operator)

    created = client.post("/api/v1/api-keys/", {"name": "PMS"}, format="json")

    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("spk_")
    key = ApiKey.objects.get(pk=created.json()["id"])
    assert key.operator == operator
    assert key.digest == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(ApiKey.objects.filter(pk=key.pk).values().get())
    listed = client.get("/api/v1/api-keys/")
    shown = client.get(f"/api/v1/api-keys/{key.pk}/")
    assert "token" not in listed.json()["results"][0]
    assert "token" not in shown.json()
    assert token not in listed.content.decode() + shown.content.decode()
    assert token not in str(list(SystemAuditEntry.objects.values()))


def test_the_token_authenticates_as_its_operator():
    operator = make_operator("accesscontrol.view_zone", all_partitions=True)
    _, token = ApiKey.issue(operator, "integration")

    for header in (f"Api-Key {token}", f"Bearer {token}"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=header)
        assert client.get("/api/v1/zones/").status_code == 200
    assert ApiKey.objects.get().last_used_at is not None


def test_a_revoked_key_is_refused():
    operator = make_operator(*MANAGE_KEYS)
    key, token = ApiKey.issue(operator, "integration")
    client = client_for(operator)

    revoked = client.post(f"/api/v1/api-keys/{key.pk}/revoke/")

    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert key_client(token).get("/api/v1/api-keys/").status_code == 401
    assert SystemAuditEntry.objects.filter(action="revoke_api_key", object_id=str(key.pk)).count() == 1


def test_an_expired_key_is_refused():
    operator = make_operator(*MANAGE_KEYS)
    _, token = ApiKey.issue(operator, "old", expires_at=timezone.now() - dt.timedelta(seconds=1))

    response = key_client(token).get("/api/v1/api-keys/")

    assert response.status_code == 401


@pytest.mark.parametrize("token", ["spk_nope_nope", "garbage", "spk__", "spk_" + "a" * 5000])
def test_a_made_up_key_is_refused(token):
    ApiKey.issue(make_operator(*MANAGE_KEYS), "real")

    assert key_client(token).get("/api/v1/api-keys/").status_code == 401


def test_a_key_of_a_deactivated_operator_is_refused():
    operator = make_operator(*MANAGE_KEYS)
    _, token = ApiKey.issue(operator, "integration")
    operator.is_active = False
    operator.save()

    assert key_client(token).get("/api/v1/api-keys/").status_code == 401


def test_only_a_superuser_makes_keys_for_someone_else():
    other = make_operator()
    operator = make_operator(*MANAGE_KEYS, "accesscontrol.view_operator")
    superuser = make_operator(is_superuser=True)

    refused = client_for(operator).post("/api/v1/api-keys/", {"name": "x", "operator": other.pk}, format="json")
    allowed = client_for(superuser).post("/api/v1/api-keys/", {"name": "x", "operator": other.pk}, format="json")

    assert refused.status_code == 400
    assert list(refused.json()) == ["operator"]
    assert allowed.status_code == 201
    assert ApiKey.objects.get().operator == other


def test_a_keys_operator_cannot_change():
    operator = make_operator(*MANAGE_KEYS, "accesscontrol.view_operator")
    key, _ = ApiKey.issue(operator, "integration")

    response = client_for(operator).patch(
        f"/api/v1/api-keys/{key.pk}/", {"operator": make_operator().pk}, format="json"
    )

    assert response.status_code == 400
    key.refresh_from_db()
    assert key.operator == operator
