"""The REST tests' clients live in tests/support/api.py, their fixtures in tests/support/fixtures.py."""

import pytest

from tests.support.api import client_for, client_with, grant

__all__ = ["client_for", "client_with", "grant"]  # still importable from here, as older tests do


@pytest.fixture
def admin_client(api_admin):
    """Here, pytest-django's admin_client is the REST client of a superuser."""
    return api_admin
