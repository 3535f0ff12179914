"""The device bridge as the Celery task run_service: at most one runs, a dead one is replaced (real Redis, workers).

Each test gets a Redis database of its own, a migrated SQLite file and a free
UDP port, and runs real ``celery worker`` processes (threads pool, connectors
queue) against them, as the production profile does.
"""

import time
from pathlib import Path

import pytest
import redis
from celery import Celery

from core.lease import KEY_PREFIX, Lease, redis_client
from space import tasks
from space.celery import app as celery_app
from space.services import SERVICES
from tests.support.ports import free_port, udp_port_in_use
from tests.support.processes import Worker, environment, migrated_var_dir, redis_database, stop
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

BRIDGE = "device-bridge"
BRIDGE_LEASE = SERVICES[BRIDGE].lease
BRIDGE_KEY = KEY_PREFIX + BRIDGE_LEASE
LEASE_SECONDS = 3.0  # short, so a dead worker's lease runs out within the test


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory) -> Path:
    return migrated_var_dir(tmp_path_factory)


# --- a connectors worker -------------------------------------------------------------------


class Deployment:
    """What a worker of the production profile needs (Redis, a database, a UDP port), and its workers."""

    def __init__(self, redis_url: str, var: Path, logs: Path):
        self.port = free_port("udp")
        self.env = environment(
            var,
            REDIS_URL=redis_url,
            SPACE_BRIDGE_IN_RUNSPACE="false",
            SPACE_DEVICE_HOST="127.0.0.1",
            SPACE_DEVICE_PORT=str(self.port),
        )
        self.logs = logs
        self.workers = []
        self.app = Celery("space-test", broker=redis_url)
        self.redis = redis.Redis.from_url(redis_url, decode_responses=True)

    def start_worker(self) -> Worker:
        worker = Worker(self.env, self.logs / f"worker{len(self.workers) + 1}.log", queue="connectors")
        self.workers.append(worker)
        return worker

    def send(self, task: str, *args, **kwargs) -> str:
        """Send ``space.tasks.<task>`` as beat or an operator would; return its id."""
        return self.app.send_task(f"space.tasks.{task}", args=args, kwargs=kwargs, queue="connectors").id

    def holder(self) -> str | None:
        """Who holds the bridge's lease now."""
        return self.redis.get(BRIDGE_KEY)

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        self.app.close()
        self.redis.close()


@pytest.fixture
def deployment(var_dir, tmp_path):
    with redis_database() as redis_url:
        deployment = Deployment(redis_url, var_dir, tmp_path)
        try:
            yield deployment
        finally:
            deployment.close()


# --- the tests --------------------------------------------------------------------------------


def test_only_one_bridge_runs_however_often_run_service_is_sent_for_it(deployment):
    worker = deployment.start_worker()
    worker.wait_ready()

    sent = [deployment.send("run_service", BRIDGE, lease_seconds=LEASE_SECONDS) for _ in range(2)]

    # One of the two returns at once; the other runs the bridge and holds the lease.
    returned = wait_until(lambda: [task for task in sent if worker.result(task)])
    assert len(returned) == 1, worker.log()
    assert worker.result(returned[0]) == "already running"
    running = next(task for task in sent if task not in returned)
    token = wait_until(deployment.holder)
    assert f":{worker.pid}:" in token
    assert wait_until(lambda: udp_port_in_use(deployment.port))

    # It keeps the lease past several lifetimes of it, and keeps running.
    time.sleep(2 * LEASE_SECONDS)
    assert deployment.holder() == token
    assert worker.result(running) is None
    assert udp_port_in_use(deployment.port)

    # A warm shutdown stops the bridge and gives the lease back at once.
    assert stop(worker.process) == 0, worker.log()
    assert worker.result(running) == "stopped"
    assert deployment.holder() is None
    assert not udp_port_in_use(deployment.port)


def test_a_dead_workers_bridge_is_restarted_elsewhere_once_its_lease_expires(deployment):
    first = deployment.start_worker()
    first.wait_ready()
    deployment.send("run_service", BRIDGE, lease_seconds=LEASE_SECONDS)
    token = wait_until(deployment.holder)
    assert token, first.log()
    assert wait_until(lambda: udp_port_in_use(deployment.port))

    first.process.kill()
    first.process.wait(10)
    second = deployment.start_worker()

    # The dead holder's lease outlives it by at most its TTL...
    assert deployment.holder() == token
    assert wait_until(lambda: deployment.holder() is None, timeout=LEASE_SECONDS + 10)
    # ...and then beat's check starts the bridge again, on the worker still alive.
    second.wait_ready()
    check = deployment.send("ensure_services")
    assert second.wait_result(check)[BRIDGE] == "sent"
    new_token = wait_until(deployment.holder)
    assert new_token and f":{second.pid}:" in new_token, second.log()
    assert wait_until(lambda: udp_port_in_use(deployment.port))

    assert stop(second.process) == 0, second.log()
    assert deployment.holder() is None


# --- the tasks' decisions, in this process ----------------------------------------------------


@pytest.fixture
def production(settings):
    """This process as a production site: Redis for the lease, the bridge left to the connectors worker."""
    with redis_database() as redis_url:
        settings.REDIS_URL = redis_url
        settings.SPACE_BRIDGE_IN_RUNSPACE = False
        yield redis_client(redis_url)


def test_a_redelivered_run_service_returns_at_once_while_the_bridge_runs_elsewhere(production):
    elsewhere = Lease(BRIDGE_LEASE, client=production)
    assert elsewhere.acquire()

    outcome = tasks.run_service(BRIDGE, lease_seconds=LEASE_SECONDS)

    assert outcome == "already running"
    assert production.get(BRIDGE_KEY) == elsewhere.token


@pytest.mark.django_db
def test_beats_check_leaves_a_running_bridge_alone(production):
    elsewhere = Lease(BRIDGE_LEASE, client=production)
    assert elsewhere.acquire()

    assert tasks.ensure_services()[BRIDGE] == "running"


@pytest.mark.django_db
def test_in_the_embedded_profile_both_tasks_leave_the_bridge_to_runspace(settings):
    settings.SPACE_BRIDGE_IN_RUNSPACE = True
    settings.REDIS_URL = None

    assert tasks.run_service(BRIDGE) == "runs in runspace"
    assert tasks.ensure_services()[BRIDGE] == "runs in runspace"


def test_beat_checks_the_bridge_often_and_both_tasks_go_to_the_connectors_queue():
    entry = celery_app.conf.beat_schedule["ensure-services"]
    queues = {
        name: celery_app.amqp.router.route({}, f"space.tasks.{name}")["queue"].name
        for name in ("run_service", "ensure_services")
    }

    assert entry["task"] == "space.tasks.ensure_services"
    assert entry["schedule"] <= 15  # a dead bridge is back within its lease TTL plus this
    assert queues == {"run_service": "connectors", "ensure_services": "connectors"}
    assert tasks.run_service.acks_late is True
