"""``manage.py bench_bridge``: the device bridge under load from simulated devices; prints one JSON line.

Everything runs in processes of its own, against a throwaway database (SQLite
in a temporary directory, or ``--database-url``, which must be an empty
database, e.g. a scratch PostgreSQL one):

1. the database is migrated and seeded with the demo site, and the simulated
   devices are commissioned;
2. the baseline: a bare asyncio UDP echo with the same AES-GCM sealing
   (simulation/echo.py), server and load in two processes, for ``--echo-seconds``;
3. ``manage.py runbridge`` starts; ``--processes`` load processes drive
   ``--devices`` simulated devices at ``--rate`` actions per second for
   ``--seconds`` (card presentations, door events), then wait for every answer;
4. the burst: every device comes online with ``--backlog`` events buffered (as
   after a network outage) and sends them; events stored per second is the
   count over the time until the last one was acknowledged;
5. the knee (simulation/knee.py): one process with pre-sealed ``access`` frames
   offers the same devices' decisions at rates doubling from ``--knee-start``,
   ``--step-seconds`` each, then bisects; the knee is the highest offered rate
   whose p99 stayed within ``--p99-ms`` with at least 95% of it answered, and
   it is printed beside the echo's figure and as a share of it;
6. the bridge stops (SIGTERM), and the audit trail is counted: an event a device
   generated that is not stored is lost; one stored twice is duplicated.

The internal ``--role`` option runs one of the child processes.
"""

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.models import Count

MANAGE = str(Path(settings.BASE_DIR) / "manage.py")
FIRST_ID = 900001
KNEE_OPTIONS = ("step_seconds", "knee_start", "knee_ceiling", "p99_ms")
KNEE_FIGURES = (
    "offered",
    "decisions_per_second",
    "p50_ms",
    "p99_ms",
    "bridge_cpu",
    "load_cpu",
    "machine_cpu",
    "stored_after_s",
)
# After a step of the knee search, the bridge may take this long to store its decisions' audit rows.
SETTLE_TIMEOUT = 60
READY_TIMEOUT = 120
# SPACE_BENCH_PROFILE=FILE runs the bridge under cProfile, writing its statistics to FILE.
PROFILE = ["-m", "cProfile", "-o", os.environ["SPACE_BENCH_PROFILE"]] if os.environ.get("SPACE_BENCH_PROFILE") else []


def _percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


class Command(BaseCommand):
    help = "Measure the device bridge with simulated devices in other processes; prints one JSON line."

    def add_arguments(self, parser):
        parser.add_argument("--devices", type=int, default=200)
        parser.add_argument("--seconds", type=float, default=20.0, help="Length of the load run (default 20).")
        parser.add_argument(
            "--rate", type=float, default=3000.0, help="Actions per second, all devices (default 3000)."
        )
        parser.add_argument("--processes", type=int, default=2, help="Load processes (default 2).")
        parser.add_argument("--backlog", type=int, default=100, help="Events per device in the burst (default 100).")
        parser.add_argument("--echo-seconds", type=float, default=5.0)
        parser.add_argument(
            "--step-seconds", type=float, default=3.0, help="Length of each step of the knee search (default 3)."
        )
        parser.add_argument(
            "--knee-start", type=float, default=2000.0, help="First rate the knee search offers (default 2000/s)."
        )
        parser.add_argument(
            "--knee-ceiling", type=float, default=256000.0, help="Highest rate the knee search offers (default 256000)."
        )
        parser.add_argument(
            "--p99-ms", type=float, default=20.0, help="The p99 a step of the knee search must keep (default 20 ms)."
        )
        parser.add_argument("--database-url", help="An empty database to use instead of a throwaway SQLite file.")
        parser.add_argument("--role", help=None)
        parser.add_argument("--port", type=int)
        parser.add_argument("--first-id", type=int, default=FIRST_ID)
        parser.add_argument("--bridge-pid", type=int)

    def handle(self, *args, **options):
        role = options["role"]
        if role:
            result = getattr(self, f"role_{role.replace('-', '_')}")(options)
            if result is not None:
                self.stdout.write(json.dumps(result))
            return
        if options["devices"] < options["processes"] or options["processes"] < 1:
            raise CommandError("--devices must be at least --processes, which must be positive.")
        with tempfile.TemporaryDirectory(prefix="space-bench-bridge-") as directory:
            self.stdout.write(json.dumps(self.run(options, Path(directory))))

    # --- the parent ------------------------------------------------------------------

    def run(self, options, directory: Path) -> dict:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPACE_", "DATABASE_URL", "REDIS_URL"))}
        env.update(
            SPACE_VAR_DIR=str(directory),
            SPACE_MASTER_KEY=secrets.token_urlsafe(32),
            SPACE_DEVICE_HOST="127.0.0.1",
            SPACE_DEVICE_PORT=str(port),
            DATABASE_URL=options["database_url"] or f"sqlite:///{directory / 'bench.sqlite3'}",
        )
        self.env = env
        devices, processes = options["devices"], options["processes"]
        self._child("migrate", "--no-input", "-v", "0")
        self._child("bench_bridge", "--role", "prepare", "--devices", str(devices), parse=True)
        result = {"devices": devices, "load_processes": processes, "database": connection_vendor(env)}
        result["echo_round_trips_per_second"] = self.echo(options)

        bridge = subprocess.Popen(  # noqa: S603 (our own manage.py)
            [sys.executable, *PROFILE, MANAGE, "runbridge", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            line = bridge.stdout.readline()
            if "listening" not in line:
                raise CommandError(f"The bridge did not start: {line.strip() or bridge.wait()}")
            cpu_before = _cpu_seconds(bridge.pid)
            share = devices // processes
            slices = [
                (FIRST_ID + i * share, share if i < processes - 1 else devices - share * i) for i in range(processes)
            ]
            loads = self._children(
                "load", slices, "--rate", str(options["rate"] / processes), "--seconds", str(options["seconds"])
            )
            cpu_load = _cpu_seconds(bridge.pid) - cpu_before
            bursts = self._children("burst", slices, "--backlog", str(options["backlog"]))
            knee = self._child(
                "bench_bridge",
                "--role",
                "knee",
                "--devices",
                str(devices),
                "--bridge-pid",
                str(bridge.pid),
                *(f"--{name.replace('_', '-')}={options[name]}" for name in KNEE_OPTIONS),
                parse=True,
            )
        finally:
            bridge.send_signal(signal.SIGTERM)
            bridge.wait(60)
        counted = self._child("bench_bridge", "--role", "count", parse=True)
        result.update(self.summarise(loads, bursts, counted, options, cpu_load))
        result.update(knee)
        rate = knee["knee"]["decisions_per_second"] if knee["knee"] else 0
        echo = result["echo_round_trips_per_second"]
        result["knee_share_of_echo"] = round(rate / echo, 3) if echo else None
        result["python"] = sys.version.split()[0]
        return result

    def echo(self, options) -> int:
        port = str(_free_port())
        stop_file = self.env["SPACE_VAR_DIR"] + "/echo-stop"
        server = subprocess.Popen(  # noqa: S603 (our own manage.py)
            [sys.executable, MANAGE, "bench_bridge", "--role", "echo-server", "--port", port], env=self.env
        )
        try:
            time.sleep(1.0)
            load = self._child(
                "bench_bridge",
                "--role",
                "echo-load",
                "--port",
                port,
                "--devices",
                str(options["devices"]),
                "--seconds",
                str(options["echo_seconds"]),
                parse=True,
            )
        finally:
            Path(stop_file).touch()
            server.wait(30)
        return load["per_second"]

    def summarise(self, loads, bursts, counted, options, cpu_load) -> dict:
        seconds = max(load["seconds"] for load in loads)
        latencies = sorted(value for load in loads for value in load["latencies"])
        decisions = sum(load["decisions"] for load in loads)
        generated = sum(
            load["events_generated"] + burst["events_generated"] for load, burst in zip(loads, bursts, strict=True)
        )
        burst_events = sum(burst["events_generated"] for burst in bursts)
        burst_seconds = max(burst["seconds"] for burst in bursts)
        return {
            "rate_offered": options["rate"],
            "seconds": round(seconds, 2),
            "decisions": decisions,
            "decisions_per_second": round(decisions / seconds),
            "decision_latency_ms": {
                "p50": round(_percentile(latencies, 0.50), 2),
                "p95": round(_percentile(latencies, 0.95), 2),
                "p99": round(_percentile(latencies, 0.99), 2),
                "max": round(latencies[-1], 2) if latencies else 0.0,
            },
            "no_decision": sum(load["no_decision"] for load in loads),
            "load_events_per_second": round(sum(load["events_generated"] for load in loads) / seconds),
            "bridge_cpu_share_during_load": round(cpu_load / seconds, 2),
            "burst_events": burst_events,
            "burst_seconds": round(burst_seconds, 2),
            "events_per_second_stored": round(burst_events / burst_seconds) if burst_seconds else 0,
            "events_generated": generated,
            "events_stored": counted["stored"],
            "events_lost": generated - counted["distinct"],
            "events_duplicated": counted["stored"] - counted["distinct"],
            "session_breaks": sum(
                load["session_breaks"] + burst["session_breaks"] for load, burst in zip(loads, bursts, strict=True)
            ),
        }

    def _child(self, *args, parse=False):
        completed = subprocess.run(  # noqa: S603 (our own manage.py)
            [sys.executable, MANAGE, *args], env=self.env, capture_output=True, text=True, check=False
        )
        if completed.returncode != 0:
            raise CommandError(f"{' '.join(args[:3])} failed: {completed.stderr.strip()[-2000:]}")
        return json.loads(completed.stdout.strip().splitlines()[-1]) if parse else None

    def _children(self, role, slices, *extra) -> list[dict]:
        children = [
            subprocess.Popen(  # noqa: S603 (our own manage.py)
                [
                    sys.executable,
                    MANAGE,
                    "bench_bridge",
                    "--role",
                    role,
                    "--first-id",
                    str(first),
                    "--devices",
                    str(n),
                    *extra,
                ],
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for first, n in slices
        ]
        results = []
        for child in children:
            out, err = child.communicate(timeout=600)
            if child.returncode != 0:
                raise CommandError(f"A {role} process failed: {err.strip()[-2000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results

    # --- the children ------------------------------------------------------------------

    def role_prepare(self, options):
        from accesscontrol.models import Cardholder
        from simulation.management.commands.simulate_devices import commission

        if Cardholder.objects.exists():
            raise CommandError("The database is not empty: bench_bridge needs an empty one.")
        from django.core.management import call_command

        call_command("seed_demo", verbosity=0)
        commission(FIRST_ID, options["devices"])
        return {"ok": True}

    def role_echo_server(self, options):
        from simulation import echo

        echo.run_server("127.0.0.1", options["port"], self_stop_file())
        return None

    def role_echo_load(self, options):
        from simulation import echo

        return asyncio.run(echo.load("127.0.0.1", options["port"], options["devices"], 1, options["seconds"]))

    def _devices(self, options, **extra):
        from simulation.management.commands.simulate_devices import allow_sockets, card_uids, commission
        from simulation.sdp_devices import SimulatedDevice

        allow_sockets(options["devices"])
        configured = commission(options["first_id"], options["devices"])
        uids = card_uids(0.1)
        server = ("127.0.0.1", settings.SPACE_DEVICE_PORT)
        connection.close()
        return [
            SimulatedDevice(
                c.device_id, c.key, server, readers=c.readers, uids=uids, first_event_id=c.first_event_id, **extra
            )
            for c in configured
        ]

    def role_load(self, options):
        from simulation.sdp_devices import run_load

        devices = self._devices(options)
        firsts = [device.next_event_id for device in devices]

        async def go():
            stats = await run_load(devices, options["rate"], options["seconds"], drain_s=30.0)
            await asyncio.gather(*(device.stop() for device in devices))
            return stats

        stats = asyncio.run(go())
        latencies = [round(value * 1000, 3) for device in devices for value in device.stats.latencies]
        generated = sum(device.next_event_id - first for device, first in zip(devices, firsts, strict=True))
        return {
            "seconds": stats["seconds"],
            "decisions": stats["decisions"],
            "no_decision": stats["no_decision"],
            "latencies": latencies,
            "events_generated": generated,
            "session_breaks": stats["session_breaks"],
        }

    def role_burst(self, options):
        devices = self._devices(options)
        backlog = options["backlog"]

        async def go():
            ids = []
            for device in devices:
                door = next(iter(device.readers.values()))
                ids.extend((device, device.queue_event("door_opened", door=door)) for _ in range(backlog))
            started = time.perf_counter()
            await asyncio.gather(*(device.start() for device in devices))
            await asyncio.wait_for(asyncio.gather(*(device.wait_acked(i) for device, i in ids)), 300)
            elapsed = time.perf_counter() - started
            breaks = sum(device.stats.session_breaks for device in devices)
            await asyncio.gather(*(device.stop() for device in devices))
            return elapsed, breaks

        elapsed, breaks = asyncio.run(go())
        return {"events_generated": backlog * len(devices), "seconds": elapsed, "session_breaks": breaks}

    def role_knee(self, options):
        from simulation import knee
        from simulation.management.commands.simulate_devices import card_uids, commission

        configured = commission(options["first_id"], options["devices"])
        load = knee.PacedLoad(
            ("127.0.0.1", settings.SPACE_DEVICE_PORT), [(c.device_id, c.key) for c in configured], card_uids(0.1)
        )
        stored = _StoredDecisions()
        pid = options["bridge_pid"]
        probe = (lambda: _cpu_seconds(pid)) if pid else None
        try:
            load.handshake()
            found = knee.find_knee(
                lambda rate: load.run_step(rate, options["step_seconds"], bridge_cpu=probe),
                start=options["knee_start"],
                ceiling=options["knee_ceiling"],
                p99_bound_ms=options["p99_ms"],
                settle=stored.settle,
            )
        finally:
            load.close()
        return {
            "knee": _knee_figures(found.step) if found.step else None,
            "knee_rule": {
                "p99_ms_at_most": options["p99_ms"],
                "answered_share_at_least": knee.ACHIEVED_SHARE,
                "step_seconds": options["step_seconds"],
                "devices": len(configured),
                "load_processes": 1,
            },
            "knee_steps": [step.figures() for step in found.steps],
        }

    def role_count(self, options):
        from accesscontrol.models import AuditEvent

        events = AuditEvent.objects.filter(device__isnull=False, device_event_id__isnull=False)
        stored = events.count()
        distinct = events.values("device_id", "device_event_id").distinct().count()
        duplicated = events.values("device_id", "device_event_id").annotate(n=Count("id")).filter(n__gt=1).count()
        return {"stored": stored, "distinct": distinct, "duplicated_ids": duplicated}


def _knee_figures(step) -> dict:
    """What the summary says of the step at the knee (``knee_steps`` has every figure of every step)."""
    figures = step.figures()
    return {name: figures[name] for name in KNEE_FIGURES}


class _StoredDecisions:
    """Waits, after each step of the knee search, until the audit trail holds every decision answered so far.

    The next step then starts with the bridge's writer idle, and how long it took
    says whether storing keeps up with deciding at that rate.
    """

    def __init__(self):
        from accesscontrol.choices import AuditKind
        from accesscontrol.models import AuditEvent

        self.rows = AuditEvent.objects.filter(kind__in=[AuditKind.ACCESS_GRANTED, AuditKind.ACCESS_DENIED])
        self.before = self.rows.count()
        self.answered = 0

    def settle(self, step) -> None:
        self.answered += step.decisions
        deadline = time.perf_counter() + SETTLE_TIMEOUT
        while self.rows.count() - self.before < self.answered:
            if time.perf_counter() > deadline:
                return
            time.sleep(0.05)
        step.stored_after_s = round(time.time() - step.last_sent_at, 2)


def self_stop_file() -> str:
    return os.environ["SPACE_VAR_DIR"] + "/echo-stop"


def connection_vendor(env) -> str:
    return env["DATABASE_URL"].split(":", 1)[0]


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
