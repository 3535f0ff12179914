"""Browser sessions: the API accepts them, but a write must carry the CSRF token."""

import pytest
from rest_framework.test import APIClient

from accesscontrol.models import Zone
from tests.factories import make_operator

pytestmark = pytest.mark.django_db


def logged_in() -> APIClient:
    make_operator("accesscontrol.view_zone", "accesscontrol.add_zone", all_partitions=True, username="ops")
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username="ops", password="correct horse battery")
    return client


def test_a_session_reads_without_a_csrf_token():
    client = logged_in()

    assert client.get("/api/v1/zones/").status_code == 200


def test_a_session_write_without_the_csrf_token_is_refused():
    client = logged_in()

    response = client.post("/api/v1/zones/", {"name": "Lobby"}, format="json")

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not Zone.objects.exists()


def test_a_session_write_with_the_csrf_token_is_accepted():
    client = logged_in()
    client.get("/login/")  # any page that sets the CSRF cookie
    token = client.cookies["csrftoken"].value

    response = client.post("/api/v1/zones/", {"name": "Lobby"}, format="json", HTTP_X_CSRFTOKEN=token)

    assert response.status_code == 201
    assert Zone.objects.get().name == "Lobby"
