"""``manage.py bench_facematch`` on a small gallery: one JSON line, every figure, the synthetic faces separated."""

import io
import json

import pytest
from django.core.management import CommandError, call_command


def test_the_command_prints_every_figure():
    out = io.StringIO()
    arguments = ["--people=3000", "--allowed=300", "--searches=30", "--batches=3", "--trials=200"]
    call_command("bench_facematch", *arguments, stdout=out)
    (line,) = out.getvalue().splitlines()
    result = json.loads(line)
    assert (result["templates"], result["dimension"], result["blas_threads"]) == (3000, 512, 1)
    for figures in (*result["search_ms"].values(), result["batch"]["everyone_ms"], result["batch"]["allowed_300_ms"]):
        assert 0 < figures["p50"] <= figures["p99"]
    assert result["batch"]["everyone_probes_per_s"] > 0 and result["batch"]["allowed_300_probes_per_s"] > 0
    accuracy = result["accuracy"]
    assert accuracy["false_reject_rate"] == accuracy["false_accept_rate_1_n"] == accuracy["false_accept_rate_1_1"] == 0
    assert accuracy["impostor_best_of_n"]["max"] < result["threshold"] < accuracy["genuine_score"]["min"]


@pytest.mark.parametrize(
    "arguments", [["--people=0"], ["--batch=0"], ["--threshold=1.5"], ["--threshold=0"], ["--blas-threads=0"]]
)
def test_bad_arguments_are_refused(arguments):
    with pytest.raises(CommandError):
        call_command("bench_facematch", *arguments, stdout=io.StringIO())
