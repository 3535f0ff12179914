"""simulation/knee.py: the paced load against the real bridge, the search, and how an answer names its request."""

import pytest

from devices.sdp import codec as sdp1
from simulation.knee import PacedLoad, Step, decision_req, find_knee

UID = "04A1B2C3D4E5F6"


def outcome(rate: float, p99_ms: float | None, answered_share: float = 1.0) -> Step:
    """A step as PacedLoad.run_step reports one, reduced to what the search reads."""
    return Step(
        offered=rate,
        seconds=1.0,
        requests=round(rate),
        sent_per_second=rate,
        decisions=round(rate * answered_share),
        decisions_per_second=rate * answered_share,
        granted=0,
        p50_ms=p99_ms,
        p95_ms=p99_ms,
        p99_ms=p99_ms,
        max_ms=p99_ms,
    )


def bridge_that_keeps_up_to(limit: float):
    """A p99 of 5 ms up to ``limit`` decisions per second, 500 ms above it."""
    return lambda rate: outcome(rate, 5.0 if rate <= limit else 500.0)


# --- the search ------------------------------------------------------------------------------------------


def test_the_search_doubles_until_a_step_fails_then_bisects():
    knee = find_knee(bridge_that_keeps_up_to(5000), start=1000)

    # Bisection rounds to hundreds and stops after four steps: 6000 fails, 5000 passes, 5500 and 5200 fail.
    assert [step.offered for step in knee.steps] == [1000, 2000, 4000, 8000, 6000, 5000, 5500, 5200]
    assert knee.rate == 5000
    assert knee.step.offered == 5000


def test_the_search_halves_when_the_first_step_fails():
    knee = find_knee(bridge_that_keeps_up_to(700), start=2000)

    assert [step.offered for step in knee.steps][:3] == [2000, 1000, 500]
    assert 500 <= knee.rate <= 700


def test_the_search_stops_at_the_ceiling():
    knee = find_knee(bridge_that_keeps_up_to(10**9), start=1000, ceiling=4000)

    assert [step.offered for step in knee.steps] == [1000, 2000, 4000]
    assert knee.rate == 4000


def test_no_knee_when_even_the_floor_fails():
    knee = find_knee(bridge_that_keeps_up_to(10), start=400, floor=100)

    assert [step.offered for step in knee.steps] == [400, 200, 100]
    assert knee.rate is None and knee.step is None


def test_settle_runs_after_every_step():
    settled = []

    knee = find_knee(bridge_that_keeps_up_to(1500), start=1000, settle=settled.append)

    assert settled == knee.steps
    assert len(settled) >= 3


@pytest.mark.parametrize(
    ("step", "passes"),
    [
        (outcome(1000, 20.0), True),
        (outcome(1000, 20.1), False),
        (outcome(1000, None), False),  # the p99 fell on a request that got no decision
        (outcome(1000, 2.0, answered_share=0.94), False),
        (outcome(1000, 2.0, answered_share=0.95), True),
    ],
)
def test_a_step_passes_with_p99_within_the_bound_and_enough_answered(step, passes):
    assert step.passed(20.0) is passes


# --- reading an answer --------------------------------------------------------------------------------------


def test_the_req_of_a_decision_is_read_in_the_bridges_order_and_any_other():
    bridge_order = sdp1.encode({"t": "decision", "req": 4242, "grant": True, "reason": "granted", "open_ms": 5000})
    other_order = sdp1.encode({"grant": False, "t": "decision", "reason": "unknown_key", "req": 17, "open_ms": 0})

    assert decision_req(bridge_order) == 4242
    assert decision_req(other_order) == 17


@pytest.mark.parametrize(
    "plaintext",
    [
        sdp1.encode({"t": "ack", "seq": 3}),
        sdp1.encode({"t": "decision", "req": "7"}),
        sdp1.encode({"t": "decision"}),
        b'{"t":"decision","req":12',
        b"\xff",
    ],
)
def test_anything_but_a_decision_with_an_integer_req_names_no_request(plaintext):
    assert decision_req(plaintext) == -1


# --- against the real bridge -----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_step_times_every_decision_of_every_device(bridge, make_device):
    devices = [make_device(device_id=5000 + i, key=bytes([i + 1]) * 16) for i in range(3)]
    bridge.reload()
    load = PacedLoad(("127.0.0.1", bridge.port), [(d.device_id, d.key()) for d in devices], [UID])
    try:
        load.handshake()
        step = load.run_step(200, 0.5)
    finally:
        load.close()

    assert step.requests == 100
    assert step.decisions == 100
    assert step.drops == {}
    assert 0 < step.p50_ms <= step.p99_ms <= step.max_ms
    assert step.load_cpu > 0
    assert bridge.counters["decisions"] == 100
    assert bridge.counters["sessions"] == 3
    assert bridge.counters["dropped"] == 0
