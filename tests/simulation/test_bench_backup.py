"""``manage.py bench_backup`` on a tiny site: every part runs, in a throwaway database, and reports its figures."""

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from simulation.benchmarks import backup as benchmark


def run(*arguments) -> dict:
    out = io.StringIO()
    call_command("bench_backup", "--cardholders=50", "--events=500", *arguments, stdout=out)
    return json.loads(out.getvalue().strip().splitlines()[-1])


@pytest.mark.slow
def test_bench_backup_backs_up_verifies_and_restores_a_generated_site_in_a_throwaway_database():
    result = run("--purge-rate=40", "--purge-devices=2", "--purge-baseline-seconds=1")

    assert result["throwaway"] is True and result["database"] == "sqlite"
    assert (result["cardholders"], result["audit_events"]) == (50, 500)
    assert result["backup"]["bytes"] > 0 and result["backup"]["seconds"] > 0
    assert result["backup"]["rows"] >= 50 + 500
    assert result["verify"]["seconds"] > 0
    assert result["restore"]["rows"] == result["backup"]["rows"]
    assert list(benchmark.PARTS) == ["backup", "verify", "restore", "purge"]
    purge = result["purge"]
    assert purge["decisions_without_purge"] > 0  # the bridge decided for the simulated devices
    assert purge["events_archived"] == purge["events_deleted"] > 0
    assert purge["events_after"] < purge["events_before"]


@pytest.mark.slow
def test_bench_backup_runs_the_parts_asked_for_and_makes_a_backup_for_them(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("the PostgreSQL server of the test run")
    settings_dict = connection.settings_dict
    server = f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:{settings_dict['PORT']}"

    result = run("--only=restore", f"--postgres={server}")

    assert result["database"] == "postgresql"
    assert "backup" not in result and "verify" not in result
    assert result["restore"]["rows"] >= 550


def test_bench_backup_refuses_sizes_that_mean_nothing():
    with pytest.raises(CommandError, match="--cardholders"):
        call_command("bench_backup", "--cardholders=0")
