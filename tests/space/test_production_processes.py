"""The production profile proven as processes, with the device runtime's worker and a web server killed mid-load.

Real processes on loopback: PostgreSQL (a database of the test's own), a redis-server of its own, two
``runspace --no-migrate``, two Celery workers on the ``connectors`` queue, one on ``default``, and beat.
Simulated SDP/1 devices send card reads and door events at a steady rate to the device bridge (the
``device-bridge`` service, a long-lived task on one of the connectors workers); a webhook receiver in this
process verifies every request's signature; a monitoring websocket client listens on each web server.

Mid-load, the connectors worker holding the bridge's lease and one ``runspace`` are SIGKILLed together. Then:
the bridge comes back on the other connectors worker within the lease's time to live plus beat's check
interval; every device shakes hands again; once the load stops and everything drains, every event each device
generated is stored exactly once, every stored event reached the receiver exactly once, and the client on
the surviving web server kept receiving events after the kill.

It runs once, in the PostgreSQL pass of scripts/test.sh (the production profile's database): the
``django_db`` mark keeps it there (tests/conftest.py), though it uses a database of its own on the same
server, which it creates and drops.
"""

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
import websockets
from prometheus_client.parser import text_string_to_metric_families

from core.lease import DEFAULT_TTL_SECONDS, KEY_PREFIX
from simulation.benchmarks.webhooks import Receiver
from simulation.sdp_devices import SimulatedDevice, run_load
from space.celery import ENSURE_EVERY_SECONDS
from tests.support.ports import free_port, udp_port_in_use
from tests.support.processes import BASE_DIR, environment, redis_database
from tests.support.waiting import wait_until

DATABASE_URL = os.environ.get("DATABASE_URL", "")

pytestmark = [
    pytest.mark.slow,
    # Keeps it in the PostgreSQL pass (tests/conftest.py); the test database itself is not used.
    pytest.mark.django_db,
    pytest.mark.skipif(
        not DATABASE_URL.startswith(("postgres://", "postgresql://")),
        reason="the production profile's processes run on PostgreSQL: the PostgreSQL pass runs this",
    ),
]

DEVICES = 10
RATE = 40.0  # card presentations and exits by push button per second, over all devices
BRIDGE_LEASE = KEY_PREFIX + "device-bridge"
# After the lease runs out, beat's next check sends run_service, and a worker takes it and starts the bridge
# (loads the rules and the device registry, binds the port): this long at most, on a loaded 2-core CI machine.
START_ALLOWANCE_SECONDS = 15.0
# The bridge is back on another worker within the lease's time to live, beat's check interval and that.
FAILOVER_BOUND_SECONDS = DEFAULT_TTL_SECONDS + ENSURE_EVERY_SECONDS + START_ALLOWANCE_SECONDS
# Generous deadlines for what only needs to happen eventually (startup, draining); none is a sleep.
START_TIMEOUT = 120
# Events the devices generate through the new bridge before the load stops.
AFTER_FAILOVER_EVENTS = 300
DRAIN_TIMEOUT = 120

SETUP = """
import json
from django.core.management import call_command
from django.db.models import Max
from accesscontrol.models import ApiKey, AuditEvent, Operator
from integrations.models import WebhookSubscription
from simulation.management.commands.simulate_devices import card_uids, commission

call_command("seed_demo", verbosity=0)
operator = Operator.objects.create_superuser(username="prodproof", email="", password=None)
_, token = ApiKey.issue(operator, "production processes test")
devices = commission(FIRST_ID, COUNT)
# Every event stored from now on has its webhook.
events_before = AuditEvent.objects.aggregate(last=Max("id"))["last"] or 0
subscription = WebhookSubscription(
    name="everything", url=RECEIVER_URL, all_partitions=True, allow_private_target=True, max_tries=30
)
secret = subscription.set_secret()
subscription.save()
print("SETUP " + json.dumps({
    "token": token,
    "secret": secret,
    "uids": card_uids(0.1),
    "events_before": events_before,
    "devices": [
        {"device_id": d.device_id, "key": d.key.hex(), "readers": d.readers, "first_event_id": d.first_event_id}
        for d in devices
    ],
}))
"""
FIRST_DEVICE_ID = 910001


# --- the parts -----------------------------------------------------------------------------------------------


class Process:
    """A command in a session (process group) of its own, its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict, logs: Path):
        self.name = name
        self.log_path = logs / f"{name}.log"
        self.log_file = self.log_path.open("w")
        self.process = subprocess.Popen(
            args, cwd=BASE_DIR, env=env, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.pid = self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_for_log(self, text: str, timeout: float = START_TIMEOUT) -> None:
        wait_until(
            lambda: text in self.log() or not self.alive(),
            timeout=timeout,
            interval=0.1,
            message=lambda: f"{self.name} saying {text!r}:\n{self.log()[-4000:]}",
        )
        assert self.alive(), f"{self.name} exited:\n{self.log()[-4000:]}"

    def kill(self) -> None:
        """SIGKILL the whole process group (whatever the command started dies with it)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(30)

    def close(self) -> None:
        if self.alive():
            self.kill()
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)  # anything it left behind
        self.log_file.close()


def manage(env: dict, *args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"manage.py {args[0]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


class LoopThread:
    """An event loop on a thread of its own: the devices and the websocket clients live there."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def call(self, coroutine, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def run(self, function, *args, timeout: float = 60):
        """``function(*args)`` on the loop, where the objects it reads live; its result."""

        async def call():
            return function(*args)

        return self.call(call(), timeout)

    def close(self) -> None:
        """Cancel what still runs there (a websocket client's receive), then stop the loop."""

        async def cancel_the_rest():
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.call(cancel_the_rest(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()


class MonitorClient:
    """A monitoring websocket (``/ws/monitor/``, API key) recording each audit event's id and when it came."""

    def __init__(self, name: str, port: int, token: str):
        self.name = name
        self.url = f"ws://127.0.0.1:{port}/ws/monitor/"
        self.token = token
        self.received: list[tuple[float, int]] = []  # (time.monotonic(), event id)
        self.hello = False
        self.closed_at: float | None = None
        self.error: str = ""

    async def run(self) -> None:
        headers = {"Authorization": f"Api-Key {self.token}", "X-Forwarded-Proto": "https"}
        try:
            async with websockets.connect(self.url, additional_headers=headers, max_size=None) as socket:
                async for text in socket:
                    message = json.loads(text)
                    if message.get("type") == "hello":
                        self.hello = True
                    for item in message.get("items", ()):
                        if item.get("type") == "audit_event":
                            self.received.append((time.monotonic(), item["id"]))
        except (OSError, websockets.ConnectionClosed) as error:
            self.error = repr(error)
        finally:
            self.closed_at = time.monotonic()

    def count(self) -> int:
        return len(self.received)

    def after(self, moment: float) -> list[int]:
        return [event_id for at, event_id in list(self.received) if at > moment]


class Load:
    """Simulated devices under ``run_load`` on a loop thread, until ``stop``; then it drains."""

    def __init__(self, loop: LoopThread, setup: dict, port: int):
        self.loop = loop
        self.devices = [
            SimulatedDevice(
                item["device_id"],
                bytes.fromhex(item["key"]),
                ("127.0.0.1", port),
                readers={int(reader): door for reader, door in item["readers"].items()},
                uids=setup["uids"],
                first_event_id=item["first_event_id"],
            )
            for item in setup["devices"]
        ]
        self.first_event_ids = {item["device_id"]: item["first_event_id"] for item in setup["devices"]}
        self.stopping = None
        self.future = None

    def start(self) -> None:
        async def begin():
            self.stopping = asyncio.Event()
            return asyncio.ensure_future(run_load(self.devices, RATE, stop=self.stopping, seed=15, drain_s=60.0))

        self.future = asyncio.run_coroutine_threadsafe(begin(), self.loop.loop).result(30)

    def stop(self) -> dict:
        """Stop the traffic and wait for the run's statistics (the drain: answers and acks still due)."""
        self.loop.loop.call_soon_threadsafe(self.stopping.set)

        async def finish():
            return await self.future

        return self.loop.call(finish(), timeout=DRAIN_TIMEOUT)

    def state(self) -> dict:
        """Per device: online, handshakes, events generated so far, events not acknowledged yet."""
        return self.loop.run(
            lambda: {
                device.device_id: {
                    "online": device.online,
                    "handshakes": device.stats.handshakes,
                    "session_breaks": device.stats.session_breaks,
                    "next_event_id": device.next_event_id,
                    "unacked": len(device.unacked_events),
                    "decisions": device.stats.decisions,
                    "no_decision": device.stats.no_decision,
                }
                for device in self.devices
            }
        )

    def close(self) -> None:
        if self.stopping is not None:
            self.loop.loop.call_soon_threadsafe(self.stopping.set)

        async def stop_devices():
            await asyncio.gather(*(device.stop() for device in self.devices))

        with contextlib.suppress(Exception):  # cleanup: never hide the test's own failure
            self.loop.call(stop_devices(), timeout=30)


# --- fixtures --------------------------------------------------------------------------------------------------


@pytest.fixture
def database_url():
    """A PostgreSQL database of this test's own, on the server DATABASE_URL names; dropped afterwards."""
    server = urlsplit(DATABASE_URL)
    name = f"space_prodproof_{uuid.uuid4().hex[:12]}"
    admin = server._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url(tmp_path):
    """A redis-server of this test's own on a free port (leases and queues have fixed names), else a free database."""
    if shutil.which("redis-server") is None:
        with redis_database() as url:
            yield url
        return
    port = free_port()
    directory = tmp_path / "redis"
    directory.mkdir()
    server = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            *("--dir", str(directory)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)

    def answers() -> bool:
        with contextlib.suppress(redis.ConnectionError):
            return client.ping()
        return False

    try:
        wait_until(answers, timeout=30, message="redis-server answering")
        yield url
    finally:
        client.close()
        server.kill()
        server.wait(10)


@pytest.fixture
def processes(tmp_path):
    """Starts processes; every one is killed (its whole group) when the test ends, passed or failed."""
    started: list[Process] = []
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(name: str, env: dict, *args: str) -> Process:
        process = Process(name, [sys.executable, *args], env, logs)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


@pytest.fixture
def loops():
    made: list[LoopThread] = []

    def make(name: str) -> LoopThread:
        made.append(LoopThread(name))
        return made[-1]

    yield make
    for loop in made:
        loop.close()


# --- the test -------------------------------------------------------------------------------------------------


def rows(database_url: str, query: str, *args) -> list[tuple]:
    with psycopg.connect(database_url) as connection:
        return connection.execute(query, args).fetchall()


def metrics_of(port: int, token: str) -> dict:
    """The SDP/1 decisions a web server's /metrics counts, and how many of them it timed."""
    headers = {"Authorization": f"Api-Key {token}", "X-Forwarded-Proto": "https"}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (a URL of our own)
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    return {
        "decisions": sum(
            s.value
            for s in families["space_decisions"].samples
            if s.name == "space_decisions_total" and s.labels["driver"] == "sdp"
        ),
        "timed": sum(
            s.value
            for s in families["space_decision_seconds"].samples
            if s.name == "space_decision_seconds_count" and s.labels["driver"] == "sdp"
        ),
    }


def worker(start, env: dict, name: str, queue: str, concurrency: int) -> Process:
    return start(
        name,
        env,
        *("-m", "celery", "-A", "space", "worker", "-Q", queue, "--pool", "threads", "-c", str(concurrency)),
        *("--loglevel", "INFO", "--without-mingle", "--without-gossip", "--hostname", f"{name}@%h"),
    )


def test_the_device_runtime_and_a_web_server_killed_mid_load_lose_and_duplicate_nothing(
    database_url, redis_url, processes, loops, tmp_path
):
    device_port = free_port("udp")
    env = environment(
        tmp_path / "var",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SPACE_PROFILE="production",
        SPACE_SECRET_KEY="prodproof-secret-key-" + uuid.uuid4().hex,
        SPACE_MASTER_KEY="prodproof-master-key-" + uuid.uuid4().hex,
        SPACE_ALLOWED_HOSTS="127.0.0.1,localhost",
        # Declared as behind a TLS proxy (which a deployment has): the production runspace refuses plain HTTP
        # otherwise. The websocket clients send X-Forwarded-Proto as that proxy would.
        SPACE_BEHIND_TLS_PROXY="true",
        SPACE_DEVICE_HOST="127.0.0.1",
        SPACE_DEVICE_PORT=str(device_port),
    )
    manage(env, "migrate", "--no-input", "--verbosity", "0")

    with Receiver() as receiver:
        output = manage(
            env,
            "shell",
            "-c",
            f"RECEIVER_URL = {receiver.url!r}\nFIRST_ID = {FIRST_DEVICE_ID}\nCOUNT = {DEVICES}\n{SETUP}",
        )
        setup = json.loads(next(line for line in output.splitlines() if line.startswith("SETUP "))[6:])
        receiver.secret = setup["secret"]  # every request from now on must carry a valid signature

        web_ports = [free_port(), free_port()]
        webs = [
            processes(f"runspace{n + 1}", env, "manage.py", "runspace", "--no-migrate", "--port", str(port))
            for n, port in enumerate(web_ports)
        ]
        connectors = [worker(processes, env, f"connectors{n + 1}", "connectors", 8) for n in range(2)]
        default = worker(processes, env, "default", "default", 4)
        schedule = str(tmp_path / "beat-schedule")
        beat = processes("beat", env, *("-m", "celery", "-A", "space", "beat", "--loglevel", "INFO", "-s", schedule))
        for web, port in zip(webs, web_ports, strict=True):
            web.wait_for_log(f"Space is listening on http://127.0.0.1:{port}/")
        for celery_worker in [*connectors, default]:
            celery_worker.wait_for_log(" ready.")
        leases = redis.Redis.from_url(redis_url, decode_responses=True)
        everything = [*webs, *connectors, default, beat]

        def logs() -> str:
            return "\n".join(f"--- {p.name}\n{p.log()[-3000:]}" for p in everything)

        def bridge_holder() -> Process | None:
            """The connectors worker whose pid is in the bridge's lease (hostname:pid:token), with the port bound."""
            token = leases.get(BRIDGE_LEASE)
            if token is None or not udp_port_in_use(device_port):
                return None
            pid = int(token.split(":")[1])
            return next((w for w in connectors if w.pid == pid), None)

        first_holder = wait_until(bridge_holder, timeout=START_TIMEOUT, interval=0.1, message=logs)
        survivor = next(w for w in connectors if w is not first_holder)

        clients_loop = loops("monitors")
        clients = [MonitorClient(web.name, port, setup["token"]) for web, port in zip(webs, web_ports, strict=True)]
        for client in clients:
            asyncio.run_coroutine_threadsafe(client.run(), clients_loop.loop)
        wait_until(
            lambda: all(c.hello for c in clients), timeout=60, message=lambda: f"monitors: {[c.error for c in clients]}"
        )

        load = Load(loops("devices"), setup, device_port)
        try:
            load.start()
            # Running at full steam: every device online, events stored, webhooks and monitors flowing.
            wait_until(lambda: all(d["online"] for d in load.state().values()), timeout=60, interval=0.2, message=logs)
            wait_until(
                lambda: all(c.count() >= 20 for c in clients) and len(receiver.accepted) >= 50,
                timeout=60,
                interval=0.2,
                message=lambda: f"{[c.count() for c in clients]} {len(receiver.accepted)}\n{logs()}",
            )
            before = load.state()
            survivor_web, killed_web = webs
            surviving_client = clients[0]

            killed_at = time.monotonic()
            first_holder.kill()
            killed_web.kill()

            new_holder = wait_until(
                bridge_holder,
                timeout=FAILOVER_BOUND_SECONDS + 30,
                interval=0.05,
                message=logs,
            )
            bridge_back_s = time.monotonic() - killed_at

            def everyone_shook_hands_again() -> bool:
                now = load.state()
                return all(now[d]["handshakes"] > before[d]["handshakes"] and now[d]["online"] for d in now)

            wait_until(everyone_shook_hands_again, timeout=60, interval=0.1, message=logs)
            devices_back_s = time.monotonic() - killed_at
            # Some load after the failover too, through the new bridge, seen by the surviving monitor.
            back = load.state()
            wait_until(
                lambda: (
                    sum(d["next_event_id"] for d in load.state().values())
                    >= sum(d["next_event_id"] for d in back.values()) + AFTER_FAILOVER_EVENTS
                ),
                timeout=60,
                interval=0.1,
            )
            stats = load.stop()
            after = load.state()

            generated = {
                device: range(load.first_event_ids[device], after[device]["next_event_id"]) for device in after
            }
            device_pks = dict(
                rows(database_url, "SELECT device_id, id FROM devices_device WHERE device_id >= %s", FIRST_DEVICE_ID)
            )
            expected = sum(len(ids) for ids in generated.values())

            def stored_device_events() -> list[tuple]:
                return rows(
                    database_url,
                    "SELECT device_id, device_event_id FROM accesscontrol_auditevent WHERE device_id = ANY(%s) "
                    "AND device_event_id IS NOT NULL",
                    list(device_pks.values()),
                )

            wait_until(lambda: len(stored_device_events()) >= expected, timeout=DRAIN_TIMEOUT, interval=0.2)
            stored = Counter(stored_device_events())

            def stored_event_ids() -> set[int]:
                query = "SELECT id FROM accesscontrol_auditevent WHERE id > %s"
                return {event_id for (event_id,) in rows(database_url, query, setup["events_before"])}

            def webhook_ids() -> set[int]:
                with receiver.lock:
                    return {request.json()["id"] for request in receiver.requests if request.status == 200}

            # Every event stored reaches the receiver (beat's sweep makes up for kicks lost with a process).
            event_ids = wait_until(
                lambda: (ids := stored_event_ids()) <= webhook_ids() and ids,
                timeout=DRAIN_TIMEOUT,
                interval=0.2,
                message=lambda: f"{len(webhook_ids())} of {len(stored_event_ids())} webhooks\n{logs()}",
            )
            access_rows = dict(
                rows(
                    database_url,
                    "SELECT device_id, count(*) FROM accesscontrol_auditevent "
                    "WHERE device_id = ANY(%s) AND kind IN ('access_granted', 'access_denied') GROUP BY device_id",
                    list(device_pks.values()),
                )
            )
            surviving_after_kill = surviving_client.after(killed_at)
            # The surviving web server's /metrics sums what the bridge counted in its connectors worker.
            decided_after_failover = sum(after[d]["decisions"] - back[d]["decisions"] for d in after)
            counted = metrics_of(web_ports[0], setup["token"])
        finally:
            load.close()

        with receiver.lock:
            handled = [r for r in receiver.requests if r.status == 200]  # duplicates included
            webhook_event_ids = Counter(r.json()["id"] for r in handled)
            answered_per_id = Counter(receiver.answered_ok)
            bad_signatures = receiver.bad_signatures
        # Stored after the webhooks were counted: it holds every event a webhook named.
        stored_at_the_end = stored_event_ids()

    figures = {
        "bridge_back_s": round(bridge_back_s, 2),
        "devices_back_s": round(devices_back_s, 2),
        "bound_s": FAILOVER_BOUND_SECONDS,
        "events_generated": expected,
        "events_stored": len(event_ids),
        "webhooks": len(handled),
        "monitor_after_kill": len(surviving_after_kill),
        # Decisions answered by the killed bridge whose rows the new one stored from the journal (often 0).
        "decisions_from_the_journal": sum(
            int(found) for found in re.findall(r"stored (\d+) of the \d+ decisions journaled", survivor.log())
        ),
        "load": {k: stats[k] for k in ("presentations", "decisions", "no_decision", "session_breaks", "handshakes")},
        "metrics": {**counted, "decided_after_failover": decided_after_failover},
    }
    print(json.dumps(figures))

    # The bridge came back, on the other connectors worker, in time.
    assert new_holder is survivor, logs()
    assert bridge_back_s <= FAILOVER_BOUND_SECONDS, figures
    assert not first_holder.alive() and survivor.alive() and survivor_web.alive()
    # Every device noticed and shook hands again with the new bridge.
    assert all(after[d]["handshakes"] >= 2 and after[d]["session_breaks"] >= 1 for d in after), after
    # Every event a device generated is stored, exactly once; none that no device generated.
    assert all(after[d]["unacked"] == 0 for d in after), after
    wanted = Counter({(device_pks[device], event_id): 1 for device, ids in generated.items() for event_id in ids})
    assert stored == wanted, {"lost": len(wanted - stored), "duplicated": sum((stored - wanted).values())}
    # Every online decision a device received is in the audit trail (its row committed however the bridge died).
    for device, state in after.items():
        assert access_rows.get(device_pks[device], 0) >= state["decisions"], (device, state, access_rows)
    # Decisions made in a Celery worker are in a web server's /metrics (prometheus_client's multiprocess files).
    assert decided_after_failover > 0
    assert counted["decisions"] >= decided_after_failover, figures
    assert counted["timed"] >= decided_after_failover, figures
    # Every stored event reached the receiver exactly once, signed; nothing else did.
    assert bad_signatures == 0
    assert set(webhook_event_ids.values()) == {1}
    assert event_ids <= set(webhook_event_ids) <= stored_at_the_end
    assert set(answered_per_id.values()) == {1}, "a webhook was delivered twice"
    # The monitor on the surviving web server kept receiving events, those committed by the new bridge included.
    assert surviving_client.closed_at is None, surviving_client.error
    assert len(surviving_after_kill) >= 50
    last_seen_on_the_killed_server = max((event_id for _, event_id in clients[1].received), default=0)
    assert max(surviving_after_kill) > last_seen_on_the_killed_server
