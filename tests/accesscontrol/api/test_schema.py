"""The OpenAPI schema is generated and served, and the Swagger UI finds it."""

import pytest
from django.core.management import call_command
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
