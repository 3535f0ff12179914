"""The audit purge under load: archived events purged per second while the device bridge stores and decides.

:func:`measure_purge` runs in a process whose database holds a site and its
audit trail (``bench_backup``'s 100,000 cardholders and 1,000,000 events, or
:func:`build_site`), SQLite or PostgreSQL, and

1. commissions ``devices`` simulated SDP/1 devices on the site's online doors,
   and lets the database settle after the site's bulk load (:func:`settle`);
2. starts the device bridge (``manage.py runbridge``) and a load process
   (``python -m simulation.benchmarks.retention``) that drives the devices at
   ``rate`` actions per second (card presentations with their door events, exit
   buttons), waits until every device is online, and measures the decisions'
   latency for ``baseline_seconds`` without a purge;
3. runs the real purge (``accesscontrol.retention.purge``) with a policy keeping
   ``keep_days`` of access and alarm events, into an archive folder of its own,
   while the load goes on; the load process measures every decision's latency
   from the purge's start to its end;
4. stops the load and the bridge, and says: events purged per second, archived,
   archive bytes, decisions during the purge and their p99, and the events the
   bridge stored meanwhile (rows with ids above the highest before the purge).
"""

import asyncio
import hashlib
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
from django.db import connection
from django.db.models import Max

FIRST_ID = 930001
READY_TIMEOUT = 120.0


def build_site(cardholders: int = 100_000, events: int = 1_000_000) -> dict:
    """The shared large site of the benchmarks (simulation/benchmarks/web.py), ``events`` over the past year."""
    from simulation.benchmarks import web

    return web.generate(cardholders, events)


def measure_purge(
    *,
    keep_days: int = 30,
    rate: float = 580.0,
    devices: int = 20,
    batch: int | None = None,
    pause: float | None = None,
    nice: int | None = None,
    rest_share: float | None = None,
    baseline_seconds: float = 10.0,
) -> dict:
    """Purge what ``keep_days`` no longer keeps, under load; returns the figures (see the module's docstring)."""
    from accesscontrol import retention
    from accesscontrol.models import AuditEvent

    commission(FIRST_ID, devices)
    settle()
    connection.close()  # the children open their own
    with tempfile.TemporaryDirectory(prefix="space-bench-purge-") as scratch:
        scratch = Path(scratch)
        env = _child_environment(scratch)
        bridge = _start_bridge(env, scratch)
        load = None
        try:
            load = subprocess.Popen(  # noqa: S603 (our own module)
                [sys.executable, "-m", "simulation.benchmarks.retention", str(FIRST_ID), str(devices), str(rate),
                 str(scratch)],
                cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=(scratch / "load.log").open("w"),
                text=True,
            )  # fmt: skip
            if "ready" not in load.stdout.readline():
                raise RuntimeError(f"The load did not start: {(scratch / 'load.log').read_text()[-2000:]}")
            (scratch / "baseline").touch()
            time.sleep(baseline_seconds)  # the decisions' latency without a purge, for comparison
            before = AuditEvent.objects.count()
            highest = AuditEvent.objects.aggregate(highest=Max("id"))["highest"] or 0
            (scratch / "begin").touch()
            options = {
                key: value
                for key, value in (("batch", batch), ("pause", pause), ("nice", nice), ("rest_share", rest_share))
                if value is not None
            }
            started, cpu = time.perf_counter(), time.process_time()
            report = retention.purge(
                policy=retention.Policy(access_days=keep_days, alarm_days=keep_days, system_days=0),
                folder=scratch / "archive",
                via="command",
                **options,
            )
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            (scratch / "stop").touch()
            out, _ = load.communicate(timeout=120)
            stored_during = AuditEvent.objects.filter(id__gt=highest).count()
            after = AuditEvent.objects.count()
        finally:
            if load is not None and load.poll() is None:
                load.kill()
            bridge.send_signal(signal.SIGTERM)
            bridge.wait(60)
    measured = json.loads(out.strip().splitlines()[-1])
    deleted = report.deleted
    return {
        "database": connection.vendor,
        "events_before": before,
        "events_after": after,
        "keep_days": keep_days,
        "events_archived": report.archived,
        "events_deleted": deleted,
        "archive_bytes": report.archive_bytes,
        "archive_bytes_per_event": round(report.archive_bytes / report.archived, 1) if report.archived else None,
        "purge_seconds": round(seconds, 2),
        "purge_events_per_second": round(deleted / seconds) if seconds else 0,
        # This process's CPU (on SQLite the database's work included; PostgreSQL's server is another process).
        "purge_cpu_seconds": round(cpu, 2),
        "batches": report.batches,
        "decisions_during_purge": measured["purge"]["decisions"],
        "decision_p50_ms": measured["purge"]["p50_ms"],
        "decision_p99_ms": measured["purge"]["p99_ms"],
        "decision_max_ms": measured["purge"]["max_ms"],
        "decision_p99_ms_without_purge": measured["baseline"]["p99_ms"],
        "decisions_without_purge": measured["baseline"]["decisions"],
        "bridge_events_stored_during_purge": stored_during,
        "bridge_events_per_second_during_purge": round(stored_during / seconds) if seconds else 0,
        "load_actions_per_second": rate,
        "devices": devices,
    }


def commission(first_id: int, count: int) -> None:
    """``count`` online control units from ``first_id`` (made once), each reading and driving a door of the
    site no device drives yet (else one of its own), with a key derived from its id (the load process knows it)."""
    from accesscontrol.choices import AccessPointKind, Connection
    from accesscontrol.models import AccessPoint
    from devices.choices import DeviceKind
    from devices.models import Device, DeviceDoor
    from simulation import sitegen

    ids = [device_id for device_id in range(first_id, first_id + count)]
    if Device.objects.filter(device_id__in=ids).exists():
        return
    free = list(
        AccessPoint.objects.filter(kind=AccessPointKind.DOOR, connection=Connection.ONLINE)
        .exclude(pk__in=DeviceDoor.objects.values("access_point"))
        .order_by("pk")[:count]
    )
    free += [
        AccessPoint.objects.create(
            name=f"Purge bench door {n}", kind=AccessPointKind.DOOR, connection=Connection.ONLINE
        )
        for n in range(count - len(free))
    ]
    for device_id, point in zip(ids, free, strict=True):
        sitegen.make_devices(
            [(device_id, f"Purge bench device {device_id}", DeviceKind.CONTROL_UNIT, "", None, True)],
            {device_id: [point]},
            key=device_key(device_id),
        )


def settle() -> None:
    """The database as on a site that has run a while, not just after a bulk load (untimed): on PostgreSQL
    the audit table vacuumed and analysed (else autovacuum's first pass over a million fresh rows runs during
    the purge), on SQLite the generator's write-ahead log checkpointed away and the statistics taken."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("VACUUM ANALYZE accesscontrol_auditevent")
        elif connection.vendor == "sqlite":
            cursor.execute("ANALYZE")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def device_key(device_id: int) -> bytes:
    return hashlib.sha256(f"purge bench {device_id}".encode()).digest()[:16]


def card_uids(unknown_share: float = 0.1, known: int = 20_000) -> list[str]:
    """UIDs of issued cards, and unknown ones making up about ``unknown_share`` of them."""
    from accesscontrol.choices import KeyStatus
    from accesscontrol.models import Key

    uids = list(Key.objects.filter(status=KeyStatus.ISSUED).order_by("pk").values_list("uid", flat=True)[:known])
    unknown = max(1, round(len(uids) * unknown_share / (1 - unknown_share)))
    return uids + [f"FF{n:012X}" for n in range(unknown)]


def first_event_ids(first_id: int, count: int) -> dict[int, int]:
    """Each device's next event id: after the last one stored (a second run must not resend the first's ids)."""
    from django.db.models import Max

    from accesscontrol.models import AuditEvent
    from devices.models import Device

    devices = Device.objects.filter(device_id__range=(first_id, first_id + count - 1)).order_by("device_id")
    return {
        device.device_id: (AuditEvent.objects.filter(device=device).aggregate(last=Max("device_event_id"))["last"] or 0)
        + 1
        for device in devices
    }


def _database_url() -> str:
    database = settings.DATABASES["default"]
    if connection.vendor == "sqlite":
        return f"sqlite:///{database['NAME']}"
    password = f":{database['PASSWORD']}" if database.get("PASSWORD") else ""
    host = database.get("HOST") or "127.0.0.1"
    return f"postgres://{database['USER']}{password}@{host}:{database.get('PORT') or 5432}/{database['NAME']}"


def _child_environment(scratch: Path) -> dict:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPACE_", "DATABASE_URL", "REDIS_URL"))}
    env.update(
        SPACE_VAR_DIR=str(scratch),
        SPACE_SECRET_KEY=secrets.token_urlsafe(40),
        SPACE_MASTER_KEY=settings.SPACE_MASTER_KEY,  # the devices' keys are sealed under it
        SPACE_DEVICE_HOST="127.0.0.1",
        SPACE_DEVICE_PORT=str(port),
        SPACE_LOG_LEVEL="WARNING",
        DATABASE_URL=_database_url(),
    )
    return env


def _start_bridge(env: dict, scratch: Path) -> subprocess.Popen:
    bridge = subprocess.Popen(  # noqa: S603 (our own manage.py)
        [
            sys.executable,
            str(Path(settings.BASE_DIR) / "manage.py"),
            "runbridge",
            "--host",
            "127.0.0.1",
            "--port",
            env["SPACE_DEVICE_PORT"],
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=(scratch / "bridge.log").open("w"),
        text=True,
    )
    line = bridge.stdout.readline()
    if "listening" not in line:
        bridge.kill()
        raise RuntimeError(f"The bridge did not start: {(scratch / 'bridge.log').read_text()[-2000:]}")
    return bridge


# --- the load process -----------------------------------------------------------------------------------


def _percentile(ordered: list[float], share: float) -> float | None:
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 2) if ordered else None


async def _load(firsts: dict[int, int], uids: list[str], rate: float, scratch: Path) -> dict:
    from simulation.sdp_devices import SimulatedDevice, run_load

    server = ("127.0.0.1", settings.SPACE_DEVICE_PORT)
    devices = [
        SimulatedDevice(device_id, device_key(device_id), server, readers={1: 1}, uids=uids, first_event_id=first)
        for device_id, first in firsts.items()
    ]
    await asyncio.gather(*(device.connect(READY_TIMEOUT) for device in devices))
    stop = asyncio.Event()
    marks: dict[str, list[int]] = {}

    async def mark(name: str) -> None:
        while not (scratch / name).exists():
            await asyncio.sleep(0.01)
        marks[name] = [len(device.stats.latencies) for device in devices]

    async def watch():
        for name in ("baseline", "begin", "stop"):
            await mark(name)
        stop.set()

    watcher = asyncio.create_task(watch())
    print("ready", flush=True)
    await run_load(devices, rate, stop=stop, drain_s=5.0)
    await watcher
    await asyncio.gather(*(device.stop() for device in devices))

    def between(first: str, last: str | None) -> dict:
        ends = marks[last] if last else [len(device.stats.latencies) for device in devices]
        latencies = sorted(
            value
            for device, start, end in zip(devices, marks[first], ends, strict=True)
            for value in device.stats.latencies[start:end]
        )
        return {
            "decisions": len(latencies),
            "p50_ms": _percentile(latencies, 0.50),
            "p99_ms": _percentile(latencies, 0.99),
            "max_ms": round(latencies[-1] * 1000, 2) if latencies else None,
        }

    # The purge's decisions: from its start until the load stopped, with the answers still due then.
    return {"baseline": between("baseline", "begin"), "purge": between("begin", None)}


def main(argv: list[str]) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "space.settings")
    django.setup()
    first_id, count, rate, scratch = int(argv[0]), int(argv[1]), float(argv[2]), Path(argv[3])
    uids, firsts = card_uids(), first_event_ids(first_id, count)
    connection.close()
    print(json.dumps(asyncio.run(_load(firsts, uids, rate, scratch))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
