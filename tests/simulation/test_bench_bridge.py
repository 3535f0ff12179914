"""bench_bridge end to end, short: its processes run, and its JSON line holds the knee beside the echo."""

import json
from io import StringIO

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.slow

SHORT = {
    "devices": 4,
    "processes": 1,
    "seconds": 1.0,
    "rate": 40.0,
    "backlog": 5,
    "echo_seconds": 0.5,
    "step_seconds": 0.5,
    "knee_start": 100.0,
    "knee_ceiling": 200.0,
    # Any machine keeps this p99 at 200 decisions per second, so the search's outcome is known.
    "p99_ms": 2000.0,
}


def test_the_benchmark_prints_the_knee_beside_the_echo():
    out = StringIO()

    call_command("bench_bridge", **SHORT, stdout=out)

    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["database"] == "sqlite"
    assert result["events_lost"] == 0 and result["events_duplicated"] == 0
    assert result["echo_round_trips_per_second"] > 0
    # Doubling from 100 reaches the ceiling, 200, and stops there: two steps, both passed.
    assert [step["offered"] for step in result["knee_steps"]] == [100, 200]
    knee = result["knee"]
    assert knee["offered"] == 200
    assert knee["decisions_per_second"] >= 0.95 * 200
    assert 0 < knee["p50_ms"] <= knee["p99_ms"] <= 2000
    assert knee["bridge_cpu"] > 0 and knee["load_cpu"] > 0
    assert "machine_cpu" in knee and "stored_after_s" in knee
    echo = result["echo_round_trips_per_second"]
    assert result["knee_share_of_echo"] == round(knee["decisions_per_second"] / echo, 3)
    assert result["knee_rule"] == {
        "p99_ms_at_most": 2000.0,
        "answered_share_at_least": 0.95,
        "step_seconds": 0.5,
        "devices": 4,
        "load_processes": 1,
    }
    for step in result["knee_steps"]:
        assert step["lost"] == 0
        assert step["stored_after_s"] is not None  # the audit trail caught up with every decision
