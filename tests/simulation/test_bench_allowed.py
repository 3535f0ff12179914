"""``manage.py bench_allowed`` on a small generated site: one JSON line with every figure."""

import io
import json

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.django_db
def test_the_command_prints_every_figure():
    out = io.StringIO()
    call_command("bench_allowed", "--cardholders=2000", "--access-points=50", "--levels=10", "--calls=50", stdout=out)
    (line,) = out.getvalue().splitlines()
    result = json.loads(line)
    assert (result["cardholders"], result["access_points"], result["levels"], result["calls"]) == (2000, 50, 10, 50)
    for figures in (result["first_call_ms"], result["allowed_ms"], result["cache_hit_ms"]):
        assert 0 < figures["p50"] <= figures["p99"]
    assert 0 < result["allowed_mean"] < 2000
    assert result["index_build_s"] > 0 and result["until_median_s"] > 0 and len(result["load_average"]) == 3


@pytest.mark.parametrize("arguments", [["--cardholders=0"], ["--access-points=0"], ["--levels=0"], ["--calls=0"]])
def test_bad_arguments_are_refused(arguments):
    with pytest.raises(CommandError):
        call_command("bench_allowed", *arguments, stdout=io.StringIO())
