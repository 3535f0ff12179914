"""The device bridge as the Celery task run_service: at most one runs, a dead one is replaced (real Redis, workers).

Each test gets a Redis database of its own, a migrated SQLite file and a free
UDP port, and runs real ``celery worker`` processes (threads pool, connectors
queue) against them, as the production profile does.
"""

import ast
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
from celery import Celery

from core.lease import KEY_PREFIX, Lease, redis_client
from space import tasks
from space.celery import app as celery_app
from space.services import SERVICES

pytestmark = pytest.mark.slow

BASE_DIR = Path(__file__).resolve().parents[2]
REDIS_SERVER = os.environ.get("SPACE_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
BRIDGE = "device-bridge"
BRIDGE_LEASE = SERVICES[BRIDGE].lease
BRIDGE_KEY = KEY_PREFIX + BRIDGE_LEASE
LEASE_SECONDS = 3.0  # short, so a dead worker's lease runs out within the test


# --- helpers, also used by test_runbridge ---------------------------------------------


def wait_until(condition, timeout: float = 30.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return condition()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def udp_port_in_use(port: int) -> bool:
    """True while something (a running bridge) is bound to 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


@contextlib.contextmanager
def redis_database():
    """The URL of a Redis database no one else uses (claimed while empty), emptied afterwards.

    The bridge's lease and the connectors queue have fixed names, so tests
    that may run in parallel (pytest -n) each need a database of their own.
    """
    claim = f"space-test:claim:{uuid.uuid4().hex}"
    for db in range(15, 0, -1):
        client = redis.Redis.from_url(f"{REDIS_SERVER}/{db}")
        try:
            if client.dbsize() == 0 and client.set("space-test:claim", claim, nx=True, ex=600):
                if client.dbsize() == 1:
                    break
                client.delete("space-test:claim")
        except redis.ConnectionError as error:
            pytest.fail(f"These tests need Redis at {REDIS_SERVER} (scripts/services.sh starts it): {error}")
        client.close()
    else:
        pytest.fail(f"No empty Redis database left on {REDIS_SERVER}")
    try:
        yield f"{REDIS_SERVER}/{db}"
    finally:
        client.flushdb()
        client.close()


def migrated_var_dir(tmp_path_factory) -> Path:
    """A var/ with a migrated SQLite database, a secret key and a master key, as ``runspace`` leaves it."""
    var = tmp_path_factory.mktemp("space") / "var"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=BASE_DIR,
        env=environment(var),
        check=True,
        timeout=120,
    )
    return var


def environment(var: Path, **variables) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPACE_", "DATABASE_URL", "REDIS_URL", "DJANGO_"))}
    env.update(
        SPACE_VAR_DIR=str(var),
        DATABASE_URL=f"sqlite:///{var / 'space.sqlite3'}",
        SPACE_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.update(variables)
    return env


def stop(process: subprocess.Popen, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
    process.send_signal(signum)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"process {process.pid} did not stop on signal {signum}")


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory) -> Path:
    return migrated_var_dir(tmp_path_factory)


# --- a connectors worker -------------------------------------------------------------------


class Worker:
    """``celery -A space worker -Q connectors --pool threads`` in a process of its own, logging to a file."""

    def __init__(self, env: dict, log: Path):
        self.log_path = log
        self.log_file = log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "space",
                "worker",
                "-Q",
                "connectors",
                "--pool",
                "threads",
                "--concurrency",
                "4",
                "--loglevel",
                "INFO",
                "--without-mingle",
                "--without-gossip",
                "--hostname",
                f"{log.stem}-{uuid.uuid4().hex[:8]}@%h",
            ],
            cwd=BASE_DIR,
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.process.pid

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_ready(self) -> None:
        if not wait_until(lambda: " ready." in self.log() or self.process.poll() is not None, timeout=60):
            pytest.fail(f"the worker did not get ready:\n{self.log()}")
        if self.process.poll() is not None:
            pytest.fail(f"the worker exited:\n{self.log()}")

    def result(self, task_id: str):
        """What the task returned, from the worker's log; None while it has not."""
        found = re.search(rf"\[{task_id}\] succeeded in [^:]*: (.*)$", self.log(), re.MULTILINE)
        return found and ast.literal_eval(found.group(1))

    def wait_result(self, task_id: str, timeout: float = 30):
        result = wait_until(lambda: self.result(task_id), timeout=timeout)
        assert result, f"task {task_id} did not finish:\n{self.log()}"
        return result

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log_file.close()


class Deployment:
    """What a worker of the production profile needs (Redis, a database, a UDP port), and its workers."""

    def __init__(self, redis_url: str, var: Path, logs: Path):
        self.port = free_udp_port()
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
        worker = Worker(self.env, self.logs / f"worker{len(self.workers) + 1}.log")
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


def test_beats_check_leaves_a_running_bridge_alone(production):
    elsewhere = Lease(BRIDGE_LEASE, client=production)
    assert elsewhere.acquire()

    assert tasks.ensure_services()[BRIDGE] == "running"


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
