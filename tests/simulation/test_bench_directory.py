"""``manage.py bench_directory`` (simulation.benchmarks.directory), on a small directory of its own."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from accesscontrol import sync
from integrations.ldap import cardholders
from simulation.benchmarks import directory as benchmark


def test_it_times_a_first_and_an_incremental_sync_and_finds_every_leaver_blacklisted(db):
    result = benchmark.measure(2000)

    first, later = result["first_sync"], result["incremental_sync"]
    assert (first["full"], first["counts"]["added"], first["counts"]["read"]) == (True, 2000, 2000)
    assert result["keys_given"] == 2000
    assert result["modify"] | {"seconds": 0} == {"modified": 20, "deleted": 2, "seconds": 0}
    assert (later["full"], later["counts"]["read"], later["counts"]["changed"], later["counts"]["left"]) == (
        False,
        20,
        20,
        2,
    )
    assert result["leavers"] == {
        "leavers": 2,
        "leaver_keys": 2,
        "cancelled": 2,
        "blacklisted": 2,
        "all_blacklisted": True,
    }
    assert result["goal_met"]["leavers_blacklisted"] is True
    assert set(result["goal_met"]) == {"first_sync", "incremental_sync", "leavers_blacklisted"}
    assert result["database"] in ("sqlite", "postgresql") and result["cores"] >= 1
    # The product's reader is registered again afterwards.
    assert sync.kinds()["ldap"].read is cardholders.read_directory


def test_the_command_prints_one_json_line(db):
    out = io.StringIO()
    call_command("bench_directory", "--keep", "--entries=1000", stdout=out)
    (line,) = out.getvalue().splitlines()
    assert json.loads(line)["entries"] == 1000


def test_the_command_refuses_a_directory_too_small_to_have_leavers():
    with pytest.raises(CommandError, match="at least 1,000"):
        call_command("bench_directory", "--entries=10")
