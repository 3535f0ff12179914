"""Settings for the whole test suite."""

import os

import pytest
from hypothesis import settings

from tests.support.caches import reset_process_caches

pytest_plugins = ["tests.support.fixtures"]

# CI runs must be reproducible: the same examples every run, none remembered between runs,
# and a failure prints the blob that replays it.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default"))


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """Each test starts with the process's caches empty, whatever the test before it left in them."""
    reset_process_caches()
    yield
    reset_process_caches()


DATABASE_FIXTURES = frozenset({"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback"})


def uses_the_database(item) -> bool:
    """A test that may touch the database: marked for it, or needing (maybe through other fixtures) a db fixture."""
    return item.get_closest_marker("django_db") is not None or not DATABASE_FIXTURES.isdisjoint(
        getattr(item, "fixturenames", ())
    )


def pytest_collection_modifyitems(config, items):
    # The second pass of the test command (PostgreSQL) runs only what can differ there: tests that never touch
    # the database (pytest-django refuses them any access) ran in the first pass already.
    if os.environ.get("SPACE_TEST_DATABASE_ONLY") != "1":
        return
    kept = [item for item in items if uses_the_database(item)]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if not uses_the_database(item)])
        items[:] = kept
