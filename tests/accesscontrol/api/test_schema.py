"""The OpenAPI schema is generated and served, and the Swagger UI finds it."""

import re

import pytest
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_the_schema_generates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))

    schema = (tmp_path / "schema.yml").read_text()
    assert "/api/v1/access-points/{id}/who-may-open/" in schema
    assert "/api/v1/keys/{id}/cancel/" in schema


def test_the_schema_and_the_docs_are_served():
    client = APIClient()

    schema = client.get("/api/schema/")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    assert b"/api/v1/cardholders/" in schema.content
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def test_a_nested_item_written_in_a_request_names_its_required_fields(schema):
    components = schema["components"]["schemas"]

    assert components["CalendarDayRequest"]["required"] == ["date"]
    assert components["DeviceDoorRequest"]["required"] == ["access_point", "number"]
    assert "id" not in components["DeviceDoorRequest"]["properties"]


def test_every_operation_documents_its_error_answers(schema):
    item = schema["paths"]["/api/v1/calendars/{id}/"]

    assert sorted(item["patch"]["responses"]) == ["200", "400", "401", "403", "404", "415"]
    assert sorted(item["get"]["responses"]) == ["200", "401", "403", "404"]
    assert sorted(item["delete"]["responses"]) == ["204", "401", "403", "404", "409"]


def test_a_time_of_day_is_documented_as_the_api_writes_it(schema):
    start = schema["components"]["schemas"]["TimeInterval"]["properties"]["start"]

    assert "format" not in start
    assert re.fullmatch(start["pattern"], "08:00:00")
    assert re.fullmatch(start["pattern"], "08:00")
    assert not re.fullmatch(start["pattern"], "24:00:00")


def test_id_filters_and_pages_are_bounded_integers(schema):
    parameters = {p["name"]: p["schema"] for p in schema["paths"]["/api/v1/locations/"]["get"]["parameters"]}

    assert parameters["parent"] == {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
    assert parameters["page"] == {"type": "integer", "minimum": 1}
    assert parameters["page_size"] == {"type": "integer", "minimum": 1, "maximum": 1000}


def test_the_offline_lock_list_is_documented_as_a_page(schema):
    answer = schema["paths"]["/api/v1/ppd/locks/"]["get"]["responses"]["200"]["content"]["application/json"]

    assert answer["schema"] == {"$ref": "#/components/schemas/PaginatedLockReportList"}


def test_an_unknown_api_url_is_a_json_404():
    response = APIClient().get("/api/v1/devices/0.5/")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
