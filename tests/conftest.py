"""Settings for the whole test suite."""

import os

from hypothesis import settings

# CI runs must be reproducible: the same examples every run, none remembered between runs,
# and a failure prints the blob that replays it.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default"))
