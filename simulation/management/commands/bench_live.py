"""``manage.py bench_live``: live monitoring and webhooks under load; prints one JSON line.

In processes of its own, against a throwaway database (SQLite in a temporary
directory, or ``--database-url``, an empty database):

1. a site of an online door per simulated device (simulation/sitegen.py), and
   ``runspace`` (web server and device bridge in one process; with
   ``--redis-url``, ``runspace`` and ``runbridge`` as two processes joined by
   channels-redis);
2. ``--clients`` websocket clients on ``/ws/monitor/`` in one process, as an
   operator who sees everything;
3. simulated devices raising ``--rate`` events per second through the bridge
   for ``--seconds``; each event's time is its moment of creation on the
   device, so event-to-browser latency is the whole way: device, bridge,
   commit, channel layer, websocket;
4. afterwards, the messages each client should have had and did not are the
   dropped ones;
5. the webhooks: ``simulation.benchmarks.webhooks.measure_webhooks`` with a local
   receiver failing 10 % of its answers.

The internal ``--role`` option runs one of the child processes.
"""

import asyncio
import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

MANAGE = str(Path(settings.BASE_DIR) / "manage.py")
FIRST_ID = 910001
EVENT_DEVICES = 50


def _percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def _free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Command(BaseCommand):
    help = "Measure live monitoring (websockets) and webhook delivery; prints one JSON line."

    def add_arguments(self, parser):
        parser.add_argument("--clients", type=int, default=100, help="Websocket clients (default 100).")
        parser.add_argument("--rate", type=float, default=500.0, help="Events per second (default 500).")
        parser.add_argument("--seconds", type=float, default=20.0, help="Length of the run (default 20).")
        parser.add_argument("--webhook-events", type=int, default=2000, help="Webhook deliveries (default 2000).")
        parser.add_argument("--database-url", help="An empty database to use instead of a throwaway SQLite file.")
        parser.add_argument("--redis-url", help="Run the web server and the bridge as two processes joined by Redis.")
        parser.add_argument("--role", help=None)
        parser.add_argument("--port", type=int)
        parser.add_argument("--token")

    def handle(self, *args, **options):
        if options["role"]:
            result = getattr(self, f"role_{options['role']}")(options)
            self.stdout.write(json.dumps(result))
            return
        with tempfile.TemporaryDirectory(prefix="space-bench-live-") as directory:
            self.stdout.write(json.dumps(self.run(options, Path(directory))))

    # --- the parent ------------------------------------------------------------------

    def run(self, options, directory: Path) -> dict:
        device_port, http_port = _free_port(socket.SOCK_DGRAM), _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPACE_", "DATABASE_URL", "REDIS_URL"))}
        env.update(
            SPACE_VAR_DIR=str(directory),
            SPACE_MASTER_KEY=secrets.token_urlsafe(32),
            SPACE_DEVICE_HOST="127.0.0.1",
            SPACE_DEVICE_PORT=str(device_port),
            SPACE_LOG_LEVEL="WARNING",
            DATABASE_URL=options["database_url"] or f"sqlite:///{directory / 'bench.sqlite3'}",
        )
        if options["redis_url"]:
            env.update(REDIS_URL=options["redis_url"], SPACE_BRIDGE_IN_RUNSPACE="false")
        self.env = env
        self._child("migrate", "--no-input", "-v", "0")
        token = self._child("bench_live", "--role", "prepare")["token"]
        servers = [self._start("runspace", "--no-migrate", "--host", "127.0.0.1", "--port", str(http_port))]
        if options["redis_url"]:
            servers.append(self._start("runbridge"))
        try:
            clients = self._spawn(
                "bench_live", "--role", "clients", "--port", str(http_port), "--token", token,
                "--clients", str(options["clients"]), "--seconds", str(options["seconds"] + 15),
            )  # fmt: skip
            ready = clients.stdout.readline()
            if "ready" not in ready:
                raise CommandError(f"The websocket clients did not connect: {ready.strip() or clients.stderr.read()}")
            events = self._child(
                "bench_live", "--role", "events", "--rate", str(options["rate"]), "--seconds", str(options["seconds"])
            )
            clients.send_signal(signal.SIGINT)
            out, err = clients.communicate(timeout=120)
            if clients.returncode != 0:
                raise CommandError(f"The websocket clients failed: {err.strip()[-2000:]}")
            received = json.loads(out.strip().splitlines()[-1])
        finally:
            for server in reversed(servers):
                server.send_signal(signal.SIGTERM)
                server.wait(60)
        webhooks = self._child("bench_live", "--role", "webhooks", "--webhook-events", str(options["webhook_events"]))
        latencies = sorted(received["latencies_ms"])
        expected = events["events"] * options["clients"]
        return {
            "websocket_clients": options["clients"],
            "clients_connected": received["connected"],
            "processes": "runspace + runbridge over redis" if options["redis_url"] else "runspace (embedded)",
            "database": env["DATABASE_URL"].split(":", 1)[0],
            "events_raised": events["events"],
            "events_per_second_raised": round(events["events"] / events["seconds"]),
            "event_to_browser_ms": {
                "p50": round(_percentile(latencies, 0.5), 2),
                "p95": round(_percentile(latencies, 0.95), 2),
                "p99": round(_percentile(latencies, 0.99), 2),
                "max": round(latencies[-1], 2) if latencies else 0.0,
            },
            "messages_expected": expected,
            "messages_received": received["received"],
            "messages_dropped": expected - received["received"],
            **webhooks,
            "python": sys.version.split()[0],
        }

    def _child(self, *args) -> dict | None:
        done = subprocess.run(  # noqa: S603 (our own manage.py)
            [sys.executable, MANAGE, *args], env=self.env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise CommandError(f"{' '.join(args[:3])} failed: {done.stderr.strip()[-2000:]}")
        lines = done.stdout.strip().splitlines()
        return json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None

    def _spawn(self, *args, log: Path | None = None) -> subprocess.Popen:
        return subprocess.Popen(  # noqa: S603 (our own manage.py)
            [sys.executable, MANAGE, *args],
            env=self.env,
            stdout=subprocess.PIPE,
            # A server's log goes to a file: a pipe nobody reads would stop it once full.
            stderr=log.open("a") if log else subprocess.PIPE,
            text=True,
        )

    def _start(self, *args) -> subprocess.Popen:
        log = Path(self.env["SPACE_VAR_DIR"]) / f"{args[0]}.log"
        process = self._spawn(*args, log=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if "listening" in line:
                return process
            if not line and process.poll() is not None:
                break
        process.kill()
        raise CommandError(f"{args[0]} did not start: {log.read_text()[-2000:]}")

    # --- the children ------------------------------------------------------------------

    def role_prepare(self, options):
        from accesscontrol.models import ApiKey, Operator
        from simulation import sitegen
        from simulation.management.commands.simulate_devices import commission

        # An online door for each simulated device, from the site generator; commissioning puts one on each.
        sitegen.generate(sitegen.SiteSpec(access_points=EVENT_DEVICES, online_share=1.0))
        operator = Operator.objects.create_superuser("bench", password=secrets.token_urlsafe(24))
        commission(FIRST_ID, EVENT_DEVICES)
        return {"token": ApiKey.issue(operator, "bench_live")[1]}

    def role_clients(self, options):
        from websockets.asyncio.client import connect

        url = f"ws://127.0.0.1:{options['port']}/ws/monitor/"
        headers = {"Authorization": f"Api-Key {options['token']}"}
        latencies: list[float] = []
        counts = {"received": 0, "connected": 0}
        stop = asyncio.Event()

        async def client(ready: asyncio.Event):
            async with connect(url, additional_headers=headers, max_queue=None) as ws:
                await ws.recv()  # hello
                counts["connected"] += 1
                ready.set()
                while not stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 0.5)
                    except TimeoutError:
                        continue
                    now = time.time()
                    for item in json.loads(raw).get("items", ()):
                        if item.get("device_event_id") is not None and item.get("kind") == "bench":
                            counts["received"] += 1
                            latencies.append((now - _epoch(item["at"])) * 1000)

        async def main():
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGINT, stop.set)
            events = [asyncio.Event() for _ in range(options["clients"])]
            tasks = [asyncio.create_task(client(event)) for event in events]
            await asyncio.wait_for(asyncio.gather(*(event.wait() for event in events)), 60)
            print("ready", flush=True)
            await asyncio.wait_for(stop.wait(), options["seconds"] + 60)
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run(main())
        return {**counts, "latencies_ms": [round(value, 3) for value in latencies]}

    def role_events(self, options):
        from simulation.management.commands.simulate_devices import allow_sockets, commission
        from simulation.sdp_devices import SimulatedDevice

        configured = commission(FIRST_ID, EVENT_DEVICES)
        allow_sockets(EVENT_DEVICES)
        server = ("127.0.0.1", settings.SPACE_DEVICE_PORT)
        devices = [
            SimulatedDevice(c.device_id, c.key, server, readers=c.readers, first_event_id=c.first_event_id)
            for c in configured
        ]
        rate, seconds = options["rate"], options["seconds"]

        async def main():
            await asyncio.gather(*(device.start() for device in devices))
            await asyncio.wait_for(asyncio.gather(*(device.wait_online() for device in devices)), 30)
            ids = []
            started = time.perf_counter()
            sent = 0
            while (elapsed := time.perf_counter() - started) < seconds:
                for _ in range(int(elapsed * rate) - sent):
                    device = devices[sent % len(devices)]
                    ids.append((device, device.queue_event("bench", door=1, detail={"n": sent})))
                    sent += 1
                await asyncio.sleep(0.002)
            await asyncio.wait_for(asyncio.gather(*(device.wait_acked(i) for device, i in ids)), 60)
            await asyncio.gather(*(device.stop() for device in devices))
            return sent, time.perf_counter() - started

        events, elapsed = asyncio.run(main())
        return {"events": events, "seconds": round(min(elapsed, seconds), 3)}

    def role_webhooks(self, options):
        from simulation.benchmarks.webhooks import measure_webhooks

        return measure_webhooks(events=options["webhook_events"], failure_share=0.1)


def _epoch(at: str) -> float:
    return dt.datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
