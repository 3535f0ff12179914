import json
from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.slow
def test_the_benchmark_prints_one_line_of_positive_figures():
    out = StringIO()

    call_command("bench_decisions", cardholders=60, access_points=30, levels=5, decisions=2000, refreshes=3, stdout=out)

    lines = out.getvalue().strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["cardholders"] == 60
    assert result["access_points"] == 30
    assert result["levels"] == 5
    assert result["database"] == "throwaway sqlite"
    for figure in (
        "generate_seconds",
        "build_seconds",
        "decisions_per_second",
        "refresh_ms_median",
        "idle_refresh_ms_median",
        "maxrss_mb",
        "snapshot_mb",
    ):
        assert result[figure] > 0, figure
    assert 0 < result["granted_share"] < 1
    assert sum(result["reasons"].values()) == 2000
