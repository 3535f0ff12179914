"""The hotel API's tests use the REST API's clients (tests/accesscontrol/api/conftest.py)."""

from tests.accesscontrol.api.conftest import admin_client  # noqa: F401 (a fixture)
