"""``manage.py bench_cards`` on a tiny site: one JSON line with every figure, from a throwaway database."""

import io
import json

import pytest
from django.core.management import CommandError, call_command


def test_the_command_prints_every_figure_from_a_throwaway_database():
    out = io.StringIO()
    call_command(
        "bench_cards", "--access-points=40", "--locks=10", "--cardholders=60", "--runs=5", "--seed=2", stdout=out
    )
    (line,) = out.getvalue().splitlines()
    result = json.loads(line)
    assert (result["access_points"], result["locks"], result["cardholders"], result["throwaway"]) == (40, 10, 60, True)
    assert result["decide_outcome"] == "granted"
    assert 0 < result["build_ms"]["p50"] <= result["build_ms"]["p95"]
    assert 0 < result["decide_ms"]["p50"] <= result["decide_ms"]["p95"]
    assert 40 * 2 < result["card_bytes"] < 4096
    # The entry reached (at least) 95% of the locks, and only through cards that passed the updater first.
    assert result["locks_holding_entry"] >= 0.95 * 10
    assert result["presentations_to_50pct_locks"] <= result["presentations_to_95pct_locks"]
    assert result["updater_visits"] >= 1


@pytest.mark.parametrize(
    "arguments",
    [["--locks=0"], ["--locks=30", "--access-points=20"], ["--updater-share=1.5"]],
)
def test_bad_arguments_are_refused(arguments):
    with pytest.raises(CommandError):
        call_command("bench_cards", *arguments, stdout=io.StringIO())
