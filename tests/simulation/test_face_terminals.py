"""Simulated face terminals (simulation/face_terminals.py) against a real Mosquitto and Space's real FaceService on
a generated face site (simulation/face_site.py), and ``manage.py bench_face`` on a tiny site. Synthetic captures of
an enrolled person score about 0.6 against their template, anyone else's about 0, either side of the 0.40
threshold by a wide margin: every genuine request is granted and every impostor refused."""

import asyncio
import io
import json

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from accesscontrol.models import AccessLevel, Cardholder, FaceConsent, FaceTemplate, Key
from devices.face import messages
from devices.face.connector import FaceConnector
from devices.models import FaceTerminal
from simulation import face_site
from simulation.face_terminals import Fleet, FleetSpec, run
from tests.support.mosquitto import HOST, face_service, running_broker
from tests.support.services import RunningService
from tests.support.waiting import wait_until

WAIT = 15
SPEC = face_site.FaceSiteSpec(people=200, terminals=4, groups=3, seed=5)


@pytest.fixture
def site(transactional_db):
    return face_site.generate(SPEC)


@pytest.fixture
def broker(tmp_path):
    with running_broker(tmp_path / "device-ca") as broker:
        yield broker


@pytest.fixture
def space(broker, site):
    running = face_service(broker)
    yield running
    running.stop()


def fleet_spec(broker, site, **changes) -> FleetSpec:
    values = {
        "host": HOST,
        "port": broker.port,
        "folder": str(broker.folder),
        "terminals": site.terminals,
        "people": SPEC.people,
        "cards": site.cards,
        "seed": SPEC.seed,
        "rate": 5.0,
        "seconds": 2.0,
        "grace": WAIT,
        "impostor_share": 0.3,
        "enrol_names": site.names,
    }
    return FleetSpec(**{**values, **changes})


def test_the_site_holds_a_consent_a_template_and_a_card_per_person_and_a_terminal_per_door(site):
    assert Cardholder.objects.count() == FaceConsent.objects.count() == FaceTemplate.objects.count() == 200
    assert Key.objects.count() == 200 and FaceTerminal.objects.count() == 4
    # Three doors for a group of 200 / 3 people each, the last door for everyone.
    assert [plan.allowed for plan in site.terminals] == [(0, 67), (67, 134), (134, 200), None]
    assert site.allowed_per_door == (67 + 67 + 66 + 200) / 4
    assert AccessLevel.objects.count() == 4 and site.counts["access_level_memberships"] == 400
    assert site.cards[0] == Key.objects.get(cardholder_id=site.holders[0]).uid


def test_genuine_faces_are_granted_and_impostors_refused_and_every_request_is_answered(broker, site, space):
    result = asyncio.run(run(fleet_spec(broker, site)))
    assert result.sent >= 4 * 5 * 2 - 4 and result.answered == result.sent and result.lost == 0
    assert len(result.latencies) == result.sent and result.errors == 0
    genuine = {key: value for key, value in result.outcomes.items() if key.startswith("genuine")}
    impostor = {key: value for key, value in result.outcomes.items() if key.startswith("impostor")}
    assert set(genuine) == {"genuine face", "genuine card_face"} and set(impostor) == {
        "impostor face",
        "impostor card_face",
    }
    assert all(set(counts) == {"granted"} for counts in genuine.values()), (genuine, result.refusals)
    assert all(set(counts) == {"refused"} for counts in impostor.values()), impostor
    # Space decided each request once: what it counts is what the terminals saw.
    counters = space.service.counters
    assert counters["granted"] == sum(counts["granted"] for counts in genuine.values())
    assert counters["refused"] == sum(counts["refused"] for counts in impostor.values())


def test_an_enrol_command_is_answered_with_a_capture_of_the_person_it_names(broker, site):
    # Space's side is its bare connector here: what the terminal sends back is looked at, not stored.
    received = []
    connector = FaceConnector(HOST, broker.port, broker.paths.space, on_message=received.append)
    link = RunningService(connector)
    terminal_id = site.terminals[0].terminal_id

    async def enrol(fleet: Fleet) -> None:
        await fleet.connect()
        for name in ("Holder 3", "Nobody Known"):
            command = messages.enrol_command(7, name, "2099-01-01T00:00:00Z")
            await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(connector.command(terminal_id, command), link.loop)
            )
        await until_async(lambda: len(received) == 2)
        await fleet.close()

    try:
        wait_until(lambda: connector.connected, WAIT, broker.output)
        asyncio.run(enrol(Fleet(fleet_spec(broker, site, terminals=site.terminals[:1]))))
    finally:
        link.stop()
    capture, failure = (message.payload for message in received)
    assert {message.terminal_id for message in received} == {terminal_id}
    assert (capture["type"], capture["enrolment"], failure["type"], failure["enrolment"]) == (
        "enrol", 7, "enrol_failed", 7
    )  # fmt: skip
    # A fresh capture of person 3: near their identity, far from anyone else's.
    vector = messages.decode_template(capture, capture["model"])
    identities = face_site.probes(SPEC).identities
    scores = identities @ (vector / np.linalg.norm(vector))
    assert int(np.argmax(scores)) == 3 and scores[3] > 0.6 > np.partition(scores, -2)[-2]


async def until_async(predicate) -> None:
    for _ in range(WAIT * 20):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{predicate.__qualname__} within {WAIT} s")


def test_bench_face_prints_every_figure_on_a_tiny_site(transactional_db, monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")  # as the command wants it: it runs here, in the test database
    out = io.StringIO()
    call_command("bench_face", "--keep", "--terminals=5", "--people=300", "--seconds=2", "--searches=50", stdout=out)
    (line,) = out.getvalue().splitlines()
    result = json.loads(line)
    assert (result["terminals"], result["people"], result["seconds"], result["blas_threads"]) == (5, 300, 2.0, 1)
    assert result["site"]["face_templates"] == 300 and result["site"]["allowed_per_door"] > 0
    assert result["requests"] >= 5 and result["answered"] == result["requests"] and result["lost"] == 0
    assert 0 < result["answer_ms"]["p50"] <= result["answer_ms"]["p99"] <= result["answer_ms"]["max"]
    assert result["offered_per_s"] > 0 and result["answered_per_s"] > 0
    for method in ("face", "card_face"):
        assert result["accuracy"][method]["false_reject_rate"] == 0
        assert result["accuracy"][method]["false_accept_rate"] in (0, None)
    search = result["search_ms"]
    assert search["templates"] == 300 and 0 < search["everyone"]["p50"] <= search["everyone"]["p99"]
    assert set(result["goals"]) == {
        "answer_p99_ms", "answer_rate_per_terminal", "answer_met", "search_p99_ms", "search_met"
    }  # fmt: skip
    assert len(result["load_average"]) == 3 and result["cores"] >= 1
    assert result["cpu_s"]["run_s"] > 0 and result["cpu_s"]["space"] > 0 and result["cpu_s"]["terminals"] > 0


@pytest.mark.parametrize(
    "arguments", [["--terminals=0"], ["--people=0"], ["--rate=0"], ["--seconds=0"], ["--impostor-share=2"]]
)
def test_bad_arguments_are_refused(arguments):
    with pytest.raises(CommandError):
        call_command("bench_face", *arguments, stdout=io.StringIO())
