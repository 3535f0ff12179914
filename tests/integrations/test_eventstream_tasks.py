"""The event stream as the Celery task run_service: at most one sends, and a killed worker loses nothing.

The end-to-end test runs real ``celery worker`` processes (threads pool,
connectors queue) against a Redis database of its own and a migrated SQLite
file, and a real TCP receiver in this process.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from celery import Celery

from core.lease import KEY_PREFIX, Lease, redis_client
from integrations.eventstream.service import EventStreamService
from space import tasks
from space.celery import app as celery_app
from space.services import SERVICES, embedded_services
from tests.integrations.test_eventstream_service import Loop, TcpReceiver
from tests.support.processes import BASE_DIR, Worker, environment, migrated_var_dir, redis_database, stop
from tests.support.waiting import wait_until

EVENT_STREAM = "event-stream"
EVENT_STREAM_LEASE = SERVICES[EVENT_STREAM].lease
LEASE_KEY = KEY_PREFIX + EVENT_STREAM_LEASE
LEASE_SECONDS = 3.0
RUN = "space.tasks.run_service"
ENSURE = "space.tasks.ensure_services"

CREATE_STREAM = """
from integrations.eventstream.models import EventStream
EventStream.objects.create(name="Receiver", host="127.0.0.1", port={port})
"""

# As the device bridge does: a transaction per batch of new events, for a few seconds.
PRODUCE_EVENTS = """
import json, time
from django.db import transaction
from django.utils import timezone
from accesscontrol import events
from accesscontrol.models import AuditEvent
from integrations.eventstream import service as eventstream
keys = []
for _ in range({batches}):
    payloads = [
        events.event_payload(AuditEvent(at=timezone.now(), kind="access_granted", access_point_name="Door"), None)
        for _ in range(100)
    ]
    with transaction.atomic():
        eventstream.enqueue(payloads)
    keys += [payload["key"] for payload in payloads]
    time.sleep(0.1)
print(json.dumps(keys))
"""


def production_environment(var: Path, redis_url: str) -> dict:
    return environment(
        var,
        REDIS_URL=redis_url,
        SPACE_PROFILE="production",
        SPACE_SECRET_KEY="s" * 40,
        SPACE_MASTER_KEY="m" * 40,
        SPACE_ALLOWED_HOSTS="localhost",
        SPACE_EVENT_STREAM_IN_RUNSPACE="false",
        # Beat's check starts every service outside runspace: here the event stream only.
        SPACE_BRIDGE_IN_RUNSPACE="true",
        SPACE_MODE_SCHEDULER_IN_RUNSPACE="true",
    )


def shell(env: dict, code: str, **options) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,
    )


def test_a_killed_worker_loses_no_event_and_another_takes_over(tmp_path_factory, tmp_path):
    var = migrated_var_dir(tmp_path_factory)
    loop = Loop()
    receiver = TcpReceiver(loop)
    workers = []
    with redis_database() as redis_url:
        env = production_environment(var, redis_url)
        app = Celery("space-test", broker=redis_url)
        leases = redis_client(redis_url)
        try:
            created = shell(env, CREATE_STREAM.format(port=receiver.port))
            assert created.wait(60) == 0, created.stderr.read()
            workers.append(Worker(env, tmp_path / "worker1.log", queue="connectors"))
            workers[0].wait_ready()
            app.send_task(RUN, args=(EVENT_STREAM,), kwargs={"lease_seconds": LEASE_SECONDS}, queue="connectors")
            assert wait_until(lambda: f":{workers[0].process.pid}:" in (leases.get(LEASE_KEY) or "")), workers[0].log()

            producer = shell(env, PRODUCE_EVENTS.format(batches=40))
            assert wait_until(lambda: len(receiver.lines) >= 300), workers[0].log()
            workers[0].process.kill()  # in the middle of the stream: no goodbye, no lease released
            out, err = producer.communicate(timeout=120)
            assert producer.returncode == 0, err[-3000:]
            produced = json.loads(out.strip().splitlines()[-1])
            assert len(receiver.lines) < len(produced)

            workers.append(Worker(env, tmp_path / "worker2.log", queue="connectors"))
            workers[1].wait_ready()
            # Beat's check starts it again once the dead worker's lease has run out.
            assert wait_until(lambda: leases.get(LEASE_KEY) is None, timeout=LEASE_SECONDS + 10)
            app.send_task(ENSURE, queue="connectors")

            assert wait_until(lambda: set(receiver.keys()) >= set(produced), timeout=60), workers[1].log()
            assert len(set(receiver.keys())) == len(produced)
            assert f":{workers[1].process.pid}:" in leases.get(LEASE_KEY)
            assert stop(workers[1].process) == 0, workers[1].log()
            assert leases.get(LEASE_KEY) is None
        finally:
            for worker in workers:
                worker.close()
            app.close()
            leases.close()
            receiver.close()
            loop.close()


# --- the tasks' decisions, in this process ----------------------------------------------------


@pytest.fixture
def production(settings):
    """This process as a production site: Redis for the lease, the event stream left to the connectors worker."""
    with redis_database() as redis_url:
        settings.REDIS_URL = redis_url
        settings.SPACE_EVENT_STREAM_IN_RUNSPACE = False
        settings.SPACE_BRIDGE_IN_RUNSPACE = True  # beat's check has the event stream only to start
        settings.SPACE_MODE_SCHEDULER_IN_RUNSPACE = True
        yield redis_client(redis_url)


def test_a_redelivered_run_returns_at_once_while_the_service_runs_elsewhere(production):
    elsewhere = Lease(EVENT_STREAM_LEASE, client=production)
    assert elsewhere.acquire()

    assert tasks.run_service(EVENT_STREAM, lease_seconds=LEASE_SECONDS) == "already running"
    assert tasks.ensure_services()[EVENT_STREAM] == "running"
    assert production.get(LEASE_KEY) == elsewhere.token


def test_in_the_embedded_profile_both_tasks_leave_the_service_to_runspace(settings):
    settings.SPACE_EVENT_STREAM_IN_RUNSPACE = True
    settings.REDIS_URL = None

    assert tasks.run_service(EVENT_STREAM) == "runs in runspace"
    assert tasks.ensure_services()[EVENT_STREAM] == "runs in runspace"
    assert tasks.run_service.acks_late is True


# --- where it runs -----------------------------------------------------------------------------


def test_beat_checks_the_service_often_and_both_tasks_go_to_the_connectors_queue():
    entry = celery_app.conf.beat_schedule["ensure-services"]
    queues = {name: celery_app.amqp.router.route({}, name)["queue"].name for name in (RUN, ENSURE)}

    assert entry["task"] == ENSURE
    assert entry["schedule"] <= 15  # a dead service is back within its lease TTL plus this
    assert queues == {RUN: "connectors", ENSURE: "connectors"}


def test_runspace_runs_the_service_in_the_embedded_profile_only(settings):
    settings.SPACE_EVENT_STREAM_IN_RUNSPACE = True
    embedded = [service for service in embedded_services() if isinstance(service, EventStreamService)]
    settings.SPACE_EVENT_STREAM_IN_RUNSPACE = False
    elsewhere = [service for service in embedded_services() if isinstance(service, EventStreamService)]

    assert len(embedded) == 1
    assert elsewhere == []
