"""A Celery worker killed in the middle of a burst: every webhook still arrives, and is handled once.

The production profile for real: a migrated SQLite database, Redis (a database
of its own), ``celery worker`` processes on the default queue, and a separate
process storing audit events through the ORM as operators' actions do (its
commits kick delivery runs through the broker). The receiver is an HTTP server
in this process that de-duplicates by ``Space-Webhook-Id``, as docs/webhooks.md
asks receivers to.
"""

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from celery import Celery

from simulation.benchmarks.webhooks import Answer, Receiver
from tests.support.processes import BASE_DIR, Worker, environment, migrated_var_dir, redis_database, stop
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

EVENTS = 300

BURST = """
import json, os, time
from django.utils import timezone
from accesscontrol import events
from integrations.models import WebhookSubscription

subscription = WebhookSubscription(
    name="burst", url=os.environ["RECEIVER_URL"], all_partitions=True, allow_private_target=True
)
subscription.set_secret()
subscription.save()
for number in range(int(os.environ["EVENTS"])):
    events.record(at=timezone.now(), kind="access_granted", detail={"number": number})
    time.sleep(0.01)  # a burst over seconds, for the worker to be killed in the middle of
# The last kicks go out from a background thread; one lost with the process is the sweep's to make up.
time.sleep(0.5)
"""


def database_rows(var: Path, query: str) -> list:
    with sqlite3.connect(var / "space.sqlite3", timeout=20) as db:
        return db.execute(query).fetchall()


def test_a_worker_killed_mid_burst_loses_nothing_and_the_receiver_handles_each_event_once(tmp_path_factory, tmp_path):
    var = migrated_var_dir(tmp_path_factory)
    # Slow enough answers that a backlog of claimed rows builds up behind the burst.
    with redis_database() as redis_url, Receiver(lambda number, headers: Answer(200, delay=0.1)) as receiver:
        env = environment(var, REDIS_URL=redis_url, SPACE_BRIDGE_IN_RUNSPACE="false")
        beat = Celery("webhook-test-beat", broker=redis_url)
        workers = [Worker(env, tmp_path / "worker1.log")]
        try:
            workers[0].wait_ready()
            burst = subprocess.Popen(
                [sys.executable, "manage.py", "shell", "-c", BURST],
                cwd=BASE_DIR,
                env={**env, "RECEIVER_URL": receiver.url, "EVENTS": str(EVENTS)},
            )

            assert receiver.wait_for(lambda r: len(r.accepted) >= 50, timeout=60), workers[0].log()
            workers[0].process.send_signal(signal.SIGKILL)
            workers[0].process.wait(10)
            claimed_by_the_dead = database_rows(
                var, "SELECT count(*) FROM integrations_webhookdelivery WHERE status = 'delivering'"
            )[0][0]
            workers.append(Worker(env, tmp_path / "worker2.log"))
            workers[1].wait_ready()
            assert burst.wait(60) == 0

            # Beat's sweep, every second here: what the dead worker had claimed goes back to pending.
            def everything_arrived():
                beat.send_task(
                    "integrations.tasks.sweep_webhooks", kwargs={"stale_after_seconds": 2.0}, queue="default"
                )
                return receiver.wait_for(lambda r: len(r.accepted) == EVENTS, timeout=1.0)

            wait_until(everything_arrived, timeout=60, message=lambda: workers[1].log())
            statuses = wait_until(
                lambda: (
                    dict(
                        database_rows(var, "SELECT status, count(*) FROM integrations_webhookdelivery GROUP BY status")
                    )
                    == {"delivered": EVENTS}
                ),
                timeout=20,
            )
            assert stop(workers[1].process) == 0, workers[1].log()
        finally:
            for worker in workers:
                worker.close()
            beat.close()

        keys_stored = {key for (key,) in database_rows(var, "SELECT event_key FROM integrations_webhookdelivery")}
        with receiver.lock:
            handled = [request for request in receiver.requests if request.status == 200 and not request.duplicate]
            handled_keys = [request.json()["key"] for request in handled]
            duplicates = receiver.duplicates

    assert claimed_by_the_dead > 0  # the kill did interrupt deliveries
    assert statuses
    assert len(database_rows(var, "SELECT id FROM accesscontrol_auditevent")) == EVENTS
    assert len(keys_stored) == EVENTS
    # Each event handled exactly once; whatever was sent again carried the same id and was recognised.
    assert sorted(handled_keys) == sorted(keys_stored)
    assert set(receiver.accepted.values()) == {1}
    print(json.dumps({"claimed_by_the_dead": claimed_by_the_dead, "duplicates_recognised": duplicates}))
