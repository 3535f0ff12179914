"""``manage.py bench_hotel`` on a tiny hotel: one JSON line with every figure, from a throwaway database,
and no check-in lost through any interface."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from hotel import actions as hotel
from simulation.benchmarks.hotel import verify
from tests.hotel.support import days, make_hotel

INTERFACES = ("fias", "industry", "ship", "rest")


def test_the_command_prints_every_figure_and_loses_no_check_in():
    out = io.StringIO()
    call_command("bench_hotel", "--round-trips=6", "--count=8", "--parallel=2", "--write-ms=5", stdout=out)
    (line,) = out.getvalue().splitlines()
    result = json.loads(line)
    assert (result["rooms"], result["throwaway"], result["database"]) == (6 + 4 * 8, True, "sqlite")
    round_trip = result["round_trip"]
    assert (round_trip["count"], round_trip["answered_ok"]) == (6, 6)
    assert 0 < round_trip["ms"]["p50"] <= round_trip["ms"]["p99"] <= round_trip["ms"]["max"]
    for interface in INTERFACES:
        figures = result[interface]
        assert (figures["requests"], figures["answered_ok"], figures["kept"]) == (8, 8, 8), interface
        assert (figures["lost"], figures["duplicates"], figures["cards_written"]) == (0, 0, 8), interface
        assert figures["parallel"] == 2
        assert figures["per_minute"] > 0 and 0 < figures["ms"]["p50"] <= figures["ms"]["p99"]
    assert result["bridge_encode_timeouts"] == 0


@pytest.mark.parametrize("arguments", [["--count=0"], ["--parallel=0"], ["--write-ms=-1"]])
def test_bad_arguments_are_refused(arguments):
    with pytest.raises(CommandError):
        call_command("bench_hotel", *arguments, stdout=io.StringIO())


@pytest.mark.django_db
def test_the_loss_check_counts_a_key_on_no_written_card_as_lost_and_a_second_key_as_a_duplicate():
    make_hotel()
    issued = hotel.check_in(room="101", departure=days(2), encoder=None, via="test")
    kept = verify(["101"], {issued.uid}, 1, 1)
    assert (kept["kept"], kept["lost"], kept["duplicates"]) == (1, 0, 0)
    assert verify(["101"], set(), 1, 1)["lost"] == 1  # its key is on no card an encoder wrote
    hotel.check_in(room="101", departure=days(2), encoder=None, kind=hotel.COPY, via="test")
    figures = verify(["101"], {issued.uid}, 1, 1)
    assert (figures["kept"], figures["lost"], figures["duplicates"]) == (0, 1, 1)
