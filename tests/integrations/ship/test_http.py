"""POST /ship/ through the Django test client: content type, the API key, bad XML, permissions and partitions."""

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accesscontrol.models import ApiKey, Cardholder, SystemAuditEntry
from integrations.ship import operations
from integrations.ship import xml as ship
from tests.factories import make_cardholder, make_partition
from tests.integrations.ship.conftest import api_key, integrator

pytestmark = pytest.mark.django_db

URL = "/ship/"
READ = ship.build_request("SaltoDBUserList.Read", [("MaxCount", "10")])


def post(client, body: bytes, token: str | None = None, content_type=ship.CONTENT_TYPE, header="HTTP_SALTO_SHIP_KEY"):
    extra = {header: token if header == "HTTP_SALTO_SHIP_KEY" else f"Api-Key {token}"} if token else {}
    return client.post(URL, body, content_type=content_type, **extra)


def answer(response) -> ship.Response:
    assert response["Content-Type"] == ship.CONTENT_TYPE
    return ship.parse_response(response.content)


def test_it_answers_a_request_with_the_key_in_the_ship_header(client):
    make_cardholder(ext_id="U1")

    response = post(client, READ, api_key(integrator()))

    assert response.status_code == 200
    users = answer(response).params.findall("SaltoDBUserList/SaltoDBUser")
    assert [ship.text(user, "ExtUserID") for user in users] == ["U1"]


def test_it_takes_the_key_in_the_rest_apis_header_too(client):
    response = post(client, READ, api_key(integrator()), header="HTTP_AUTHORIZATION")

    assert response.status_code == 200
    assert answer(response).error is None


@pytest.mark.parametrize("content_type", ["application/xml", "text/plain", "application/json"])
def test_a_wrong_content_type_is_415(client, content_type):
    response = post(client, READ, api_key(integrator()), content_type=content_type)

    assert response.status_code == 415
    assert answer(response).error.code == ship.BAD_REQUEST


def test_the_content_type_may_name_its_charset(client):
    response = post(client, READ, api_key(integrator()), content_type=f"{ship.CONTENT_TYPE}; charset=utf-8")

    assert response.status_code == 200


@pytest.mark.parametrize("token", [None, "spk_nope_nope", "not a key"])
def test_no_key_or_a_bad_one_is_401(client, token):
    response = post(client, READ, token)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Api-Key"
    assert answer(response).error.code == ship.NOT_AUTHENTICATED


def test_a_revoked_key_is_401(client):
    token = api_key(integrator())
    ApiKey.objects.update(revoked_at=timezone.now())

    assert post(client, READ, token).status_code == 401


def test_get_is_not_allowed(client):
    assert client.get(URL).status_code == 405


@pytest.mark.parametrize(
    "body",
    [b" ", b"<not xml", b"<RequestResponse><RequestName>X</RequestName></RequestResponse>", bytes(range(256))],
)
def test_bad_xml_is_400_with_a_ship_exception(client, body):
    response = post(client, body, api_key(integrator()))

    assert response.status_code == 400
    assert answer(response).error.code == ship.BAD_REQUEST


def test_an_xxe_attempt_is_400(client):
    body = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><RequestCall><RequestName>&x;</RequestName></RequestCall>'

    response = post(client, body, api_key(integrator()))

    assert response.status_code == 400
    assert b"root:" not in response.content


def test_a_large_request_is_413(client):
    body = b"<RequestCall>" + b" " * ship.MAX_XML_BYTES + b"</RequestCall>"

    response = post(client, body, api_key(integrator()))

    assert response.status_code == 413
    assert answer(response).error.code == ship.TOO_LARGE


def test_a_refused_request_is_answered_200_with_the_exception(client):
    viewer = integrator(permissions=("accesscontrol.view_cardholder",))
    body = ship.build_request("SaltoDBUser.Insert", [("SaltoDBUser", [("ExtUserID", "U1"), ("LastName", "X")])])

    response = post(client, body, api_key(viewer))

    assert response.status_code == 200
    assert answer(response).error.code == ship.PERMISSION_DENIED
    assert not Cardholder.objects.exists()


def test_the_key_acts_within_its_operators_partitions(client):
    mine, theirs = make_partition(), make_partition()
    make_cardholder(ext_id="MINE", partition=mine)
    make_cardholder(ext_id="THEIRS", partition=theirs)
    token = api_key(integrator(partitions=[mine]))
    delete_theirs = ship.build_request("SaltoDBUser.Delete", [("ExtUserID", "THEIRS")])

    listed = answer(post(client, READ, token)).params.findall("SaltoDBUserList/SaltoDBUser")
    deleted = answer(post(client, delete_theirs, token))

    assert [ship.text(user, "ExtUserID") for user in listed] == ["MINE"]
    assert deleted.error.code == ship.NOT_FOUND
    assert Cardholder.objects.filter(ext_id="THEIRS").exists()


def test_the_auditor_records_the_callers_address(client):
    body = ship.build_request("SaltoDBUser.Insert", [("SaltoDBUser", [("ExtUserID", "U1"), ("LastName", "X")])])

    client.post(
        URL, body, content_type=ship.CONTENT_TYPE, HTTP_SALTO_SHIP_KEY=api_key(integrator()), REMOTE_ADDR="198.51.100.4"
    )

    assert list(SystemAuditEntry.objects.filter(via="ship").values_list("action", "address")) == [
        ("create", "198.51.100.4")
    ]


def test_a_request_that_fails_unexpectedly_is_answered_with_exception_500_not_an_http_500(client, monkeypatch):
    def broken(params, operator, address):
        raise RuntimeError("a bug")

    monkeypatch.setitem(operations.HANDLERS, "GetInfo", broken)

    response = post(client, ship.build_request("GetInfo", []), api_key(integrator()))

    assert response.status_code == 200
    assert answer(response).error.code == ship.INTERNAL_ERROR
    assert "a bug" not in response.content.decode()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(body=st.one_of(st.binary(min_size=1, max_size=200), st.text(min_size=1, max_size=200).map(str.encode)))
def test_random_bodies_are_answered_400_or_200_never_500(client, body):
    token = ApiKey.issue(integrator(), "fuzz")[1]

    response = post(client, b"<RequestCall><RequestName>" + body + b"</RequestName></RequestCall>", token)
    raw = post(client, body, token)

    for each in (response, raw):
        assert each.status_code in (200, 400)
        assert answer(each).error is not None  # a SHIP exception: no random request is one Space carries out
