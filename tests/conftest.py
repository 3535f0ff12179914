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
