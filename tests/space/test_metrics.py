"""/metrics' part that processes keep themselves (core/metrics.py): summed over processes, gauges of what is open."""

import asyncio
import os
import subprocess
import sys
import uuid

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import transaction
from django.test import Client
from django.utils import timezone
from prometheus_client import values

from accesscontrol import events
from accesscontrol.choices import AuditKind
from accesscontrol.models import ApiKey, AuditEvent
from core import metrics
from space.asgi import application
from tests.factories import make_operator
from tests.support.metrics import files_of, own_sample, sample, scrape
from tests.support.processes import BASE_DIR

# A process of the site other than this one: it counts through the app's metric objects, as the bridge does.
DECIDE = """
import os, sys, time
import django
django.setup()
from devices import metrics
metrics.decided(metrics.SDP, True, sys.argv[1], time.perf_counter() - 0.003)
print(os.getpid(), flush=True)
sys.stdin.readline()  # alive until scraped: a sweep (core/metrics.py) elsewhere cannot take its files meanwhile
"""

# One that holds a link open until told to end, then ends cleanly.
LINK = """
import os, sys
import django
django.setup()
from integrations import metrics
metrics.SHIP_LINKS.inc()
print(os.getpid(), flush=True)
sys.stdin.readline()
"""


def python(code: str, *args: str, **options) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "space.settings",
        "SPACE_METRICS_DIR": str(settings.SPACE_METRICS_DIR),
    }
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, text=True, **options
    )


@pytest.fixture
def key(db) -> str:
    return ApiKey.issue(make_operator(), "prometheus")[1]


def test_the_metrics_directory_is_the_settings(settings):
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(settings.SPACE_METRICS_DIR)
    assert settings.SPACE_METRICS_DIR.is_dir()
    # prometheus_client was first imported after the settings: its values are the multiprocess ones.
    assert values.ValueClass.__qualname__.startswith("MultiProcessValue")


@pytest.mark.django_db
def test_a_decision_of_another_process_is_summed_into_metrics(key):
    reason = f"test_{uuid.uuid4().hex[:12]}"  # a label of its own: nothing else counts it
    process = python(DECIDE, reason, stdin=subprocess.PIPE)
    try:
        pid = int(process.stdout.readline())
        assert own_sample("space_decision_seconds", "space_decision_seconds_count", pid=pid, driver="sdp") == 1
        families = scrape(Client(), HTTP_AUTHORIZATION=f"Api-Key {key}")
    finally:
        process.communicate("\n", timeout=60)
    assert process.returncode == 0
    labels = {"result": "granted", "reason": reason, "driver": "sdp"}
    assert sample(families, "space_decisions", "space_decisions_total", **labels) == 1
    # Its 3 ms are in the 5 ms bucket of the sum of all processes.
    mine = own_sample("space_decision_seconds", "space_decision_seconds_count", driver="sdp")
    assert sample(families, "space_decision_seconds", "space_decision_seconds_count", driver="sdp") >= mine + 1
    assert sample(families, "space_decision_seconds", "space_decision_seconds_bucket", driver="sdp", le="0.005") >= 1


@pytest.mark.django_db
def test_a_live_gauge_of_another_process_counts_while_it_lives(key):
    process = python(LINK, stdin=subprocess.PIPE)
    try:
        pid = int(process.stdout.readline())
        assert own_sample("space_connector_links", pid=pid, connector="ship") == 1
        families = scrape(Client(), HTTP_AUTHORIZATION=f"Api-Key {key}")
        assert sample(families, "space_connector_links", connector="ship") >= 1
    finally:
        process.communicate("\n", timeout=60)
    assert process.returncode == 0
    # A clean exit takes its live gauges out (atexit: core.metrics.process_exited).
    assert not [name for name in files_of(pid) if "livesum" in name]


def test_a_websocket_client_raises_the_gauge_and_leaving_lowers_it(transactional_db):
    token = ApiKey.issue(make_operator("accesscontrol.view_auditevent", all_partitions=True), "monitor")[1]

    def clients() -> float:
        return own_sample("space_websocket_clients", endpoint="monitor")

    async def scenario():
        before = clients()
        ws = WebsocketCommunicator(
            application, "/ws/monitor/", headers=[(b"authorization", f"Api-Key {token}".encode())]
        )
        assert (await ws.connect())[0] is True
        during = clients()
        await ws.disconnect()
        return before, during, clients()

    before, during, after = asyncio.run(scenario())
    assert (during, after) == (before + 1, before)


def test_an_encoder_bridge_is_counted_from_its_challenge_to_its_leaving(transactional_db):
    def clients() -> float:
        return own_sample("space_websocket_clients", endpoint="encoder")

    async def scenario():
        before = clients()
        ws = WebsocketCommunicator(application, "/ws/encoder/")
        assert (await ws.connect())[0] is True
        assert (await ws.receive_json_from(5))["type"] == "challenge"
        during = clients()
        await ws.disconnect()
        return before, during, clients()

    before, during, after = asyncio.run(scenario())
    assert (during, after) == (before + 1, before)


def test_a_refused_websocket_client_is_not_counted(transactional_db):
    async def scenario():
        before = own_sample("space_websocket_clients", endpoint="monitor")
        ws = WebsocketCommunicator(application, "/ws/monitor/")
        assert (await ws.connect())[0] is False
        return before, own_sample("space_websocket_clients", endpoint="monitor")

    before, after = asyncio.run(scenario())
    assert after == before


def test_events_stored_count_when_they_commit(transactional_db, key):
    before = own_sample("space_events_stored", "space_events_stored_total")
    now = timezone.now()
    events.record(at=now, kind=AuditKind.DOOR_OPENED)
    events.record_many([AuditEvent(at=now, kind=AuditKind.DOOR_OPENED) for _ in range(3)])
    assert own_sample("space_events_stored", "space_events_stored_total") == before + 4
    with pytest.raises(RuntimeError), transaction.atomic():
        events.record(at=now, kind=AuditKind.DOOR_OPENED)
        raise RuntimeError("rolled back")
    assert own_sample("space_events_stored", "space_events_stored_total") == before + 4
    families = scrape(Client(), HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert sample(families, "space_events_stored", "space_events_stored_total") >= before + 4


def test_sweep_removes_the_files_of_processes_that_are_gone():
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = int(process.stdout)
    directory = settings.SPACE_METRICS_DIR
    left = directory / f"counter_{gone}.db"
    left.write_bytes(b"")
    mine = files_of(os.getpid())
    assert mine  # this process counts (its counters are made at import)
    assert metrics.sweep() >= 1
    assert not left.exists()
    assert files_of(os.getpid()) == mine
