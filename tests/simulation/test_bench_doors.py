"""``manage.py bench_doors`` on small buses: one JSON line, Space's share and the bus's adding up."""

import io
import json

import pytest
from django.core.management import CommandError, call_command


def test_the_command_prints_every_figure_from_a_throwaway_database():
    out = io.StringIO()
    call_command("bench_doors", "--readers=1,2", "--samples=6", "--rounds=2", stdout=out)
    (line,) = out.getvalue().splitlines()
    result = json.loads(line)
    assert (result["baud"], result["secure_channel"], result["throwaway"]) == (115200, True, True)
    assert [bus["readers"] for bus in result["buses"]] == [1, 2]
    for bus in result["buses"]:
        assert bus["samples"] == 6
        total, own, line_share = bus["card_to_relay_ms"], bus["space_ms"], bus["bus_ms"]
        assert 0 < own["p50"] <= own["p99"] <= own["max"]
        # Space's share is part of the whole, and the bus's is what is left.
        assert own["p50"] < total["p50"] and 0 < line_share["p50"] <= total["p50"]
        assert bus["burst_decisions_per_s"] > 0 and bus["burst_last_relay_ms"]["max"] > 0


@pytest.mark.parametrize("arguments", [["--readers=0"], ["--readers=40"], ["--readers=a"], ["--samples=0"]])
def test_bad_arguments_are_refused(arguments):
    with pytest.raises(CommandError):
        call_command("bench_doors", *arguments, stdout=io.StringIO())
