"""Space as it runs in production, for tests that start real processes: a migrated SQLite database in a var/ of
its own, a Redis database no other test uses, ``celery worker`` processes, and stopping them by signal.
"""

import ast
import contextlib
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis

from tests.support.waiting import wait_until

BASE_DIR = Path(__file__).resolve().parents[2]
REDIS_SERVER = os.environ.get("SPACE_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")


@contextlib.contextmanager
def redis_database():
    """The URL of a Redis database no one else uses (claimed while empty), emptied afterwards.

    Leases and Celery queues have fixed names, so tests that may run in parallel (pytest -n) each need a
    database of their own.
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


def environment(var: Path, **variables) -> dict:
    """This process's environment without Space's settings, pointed at ``var`` (SQLite in it), plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPACE_", "DATABASE_URL", "REDIS_URL", "DJANGO_"))}
    env.update(
        SPACE_VAR_DIR=str(var),
        DATABASE_URL=f"sqlite:///{var / 'space.sqlite3'}",
        SPACE_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.update(variables)
    return env


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


def stop(process: subprocess.Popen, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Send ``signum`` and wait for the exit code; fails the test if the process does not stop."""
    process.send_signal(signum)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"process {process.pid} did not stop on signal {signum}")


class Worker:
    """``celery -A space worker -Q <queue> --pool threads`` in a process of its own, logging to a file."""

    def __init__(self, env: dict, log: Path, queue: str = "default"):
        self.log_path = log
        self.log_file = log.open("w")
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "space", "worker", "-Q", queue, "--pool", "threads"),
                *("--concurrency", "4", "--loglevel", "INFO", "--without-mingle", "--without-gossip"),
                *("--hostname", f"{log.stem}-{uuid.uuid4().hex[:8]}@%h"),
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
        wait_until(
            lambda: " ready." in self.log() or self.process.poll() is not None,
            timeout=60,
            message=lambda: f"the worker getting ready:\n{self.log()}",
        )
        if self.process.poll() is not None:
            pytest.fail(f"the worker exited:\n{self.log()}")

    def result(self, task_id: str):
        """What the task returned (a string, a dict...), from the worker's log; None while it has not."""
        found = re.search(rf"\[{task_id}\] succeeded in [^:]*: (.*)$", self.log(), re.MULTILINE)
        return found and ast.literal_eval(found.group(1))

    def wait_result(self, task_id: str, timeout: float = 30):
        return wait_until(
            lambda: self.result(task_id), timeout=timeout, message=lambda: f"task {task_id} finishing:\n{self.log()}"
        )

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log_file.close()
