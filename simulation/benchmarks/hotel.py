"""``manage.py bench_hotel``: the hotel interfaces measured end to end, on real sockets.

One process, one event loop, the parts a site runs: the device bridge on UDP
127.0.0.1 with simulated Ethernet encoders (simulation/encoders.py, a fresh
blank card in the field for each job, ``write_s`` to write it), and

- **FIAS**: the real FiasService connected over TCP to the simulated PMS
  (simulation/fias_pms.py), which sends KR and times the KA;
- **Industry Standard**: the real service on a TCP port, one simulated PMS
  connection per station sending CN (simulation/industry_pms.py);
- **SHIP**: the real SHIP TCP service, one connection per station sending
  ``Hotel.CheckIn`` after authenticating with an API key;
- **REST**: ``POST /api/v1/hotel/check-in/`` to a real HTTP server (Django's
  threaded WSGI server on 127.0.0.1, as ``runserver`` runs it), one client
  thread per station, with an API key and an idempotency key.

Every check-in names an encoder, so each one writes a card. Figures:

- ``fias_round_trip_ms``: KR sent → KA received, ``--round-trips`` KRs one after
  the other, new keys in rooms taken in turn, the encoders in turn.
- per interface, ``--count`` check-ins (each in a room of its own) by
  ``--parallel`` stations at once (FIAS: one link, on which the requests for
  different encoders and rooms go on side by side): check-ins per minute, the
  latency of one, and the loss check: a check-in counts as kept when its room
  holds exactly one stay whose guest holds exactly one issued key whose UID is
  that of a card an encoder wrote. ``lost`` is the requests not kept; duplicates
  (a second stay or key) are counted apart.
"""

import asyncio
import collections
import datetime as dt
import http.client
import json
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from django.contrib.auth.models import Permission
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application
from django.db import transaction
from django.utils import timezone

from accesscontrol.choices import KeyStatus
from accesscontrol.models import ApiKey, Key, Operator, OperatorGroup, Room, Stay
from core.services import run_orm
from devices.choices import DeviceKind
from devices.models import Device
from devices.sdp.bridge import Bridge
from integrations.pms import industry
from integrations.pms.fias_service import FiasService
from integrations.pms.industry_service import IndustryStandardService
from integrations.ship import xml as ship
from integrations.ship.operations import format_time
from integrations.ship.service import ShipService
from simulation import fias_pms as sim_fias
from simulation import industry_pms as sim_industry
from simulation import sitegen
from simulation.encoders import SimulatedEncoder

INTERFACES = ("fias", "industry", "ship", "rest")
PREFIX = {"fias": "F", "industry": "I", "ship": "S", "rest": "R"}
DEVICE_KEY = bytes(range(16))
FIRST_DEVICE_ID = 61_000
STAY_DAYS = 2
OPERATOR_PERMISSIONS = ("view_key", "add_key", "change_key", "view_cardholder", "add_cardholder")
ONLINE_TIMEOUT_SECONDS = 30.0
REST_PATH = "/api/v1/hotel/check-in/"


def _percentiles(samples: list[float]) -> dict:
    if not samples:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(samples)
    return {
        "p50": round(statistics.median(ordered) * 1000, 1),
        "p99": round(ordered[max(0, -(-len(ordered) * 99 // 100) - 1)] * 1000, 1),
        "max": round(ordered[-1] * 1000, 1),
    }


def stations(interface: str, parallel: int) -> list[str]:
    return [f"{PREFIX[interface]}{i + 1}" for i in range(parallel)]


def generate(rooms: int, parallel: int) -> dict:
    """``rooms`` rooms (numbers from 10001), an encoder per station of each interface, an operator with an
    API key. Returns the token and the timing."""
    if Room.objects.exists() or Device.objects.filter(kind=DeviceKind.ENCODER).exists():
        raise ValueError("The database already holds rooms or encoders; generate into an empty one.")
    started = time.perf_counter()
    spec = sitegen.SiteSpec(
        rooms=rooms,
        encoders=tuple(station for interface in INTERFACES for station in stations(interface, parallel)),
        device_key=DEVICE_KEY,
        first_device_id=FIRST_DEVICE_ID,
    )
    sitegen.generate(spec)
    with transaction.atomic():
        operator = Operator.objects.create_user(username="bench-hotel-pms", password=uuid.uuid4().hex)
        group = OperatorGroup.objects.create(name="bench hotel PMS", all_partitions=True)
        group.permissions.set(
            Permission.objects.filter(content_type__app_label="accesscontrol", codename__in=OPERATOR_PERMISSIONS)
        )
        group.members.add(operator)
        _key, token = ApiKey.issue(operator, "bench_hotel")
    return {"token": token, "generate_seconds": round(time.perf_counter() - started, 3)}


def verify(rooms: list[str], written_uids: set[str], requests: int, answered_ok: int) -> dict:
    """Whether every check-in of ``rooms`` left exactly one stay with exactly one issued key on a written card."""
    stays = list(Stay.objects.filter(room__number__in=rooms).values_list("room__number", "cardholder_id"))
    keys = collections.defaultdict(list)
    for holder, uid, status in Key.objects.filter(cardholder_id__in=[h for _r, h in stays]).values_list(
        "cardholder_id", "uid", "status"
    ):
        keys[holder].append((uid, status))
    per_room = collections.Counter(room for room, _holder in stays)
    kept = 0
    for room, holder in stays:
        held = keys.get(holder, [])
        if per_room[room] == 1 and len(held) == 1 and held[0][1] == KeyStatus.ISSUED:
            kept += held[0][0] in written_uids
    duplicates = sum(n - 1 for n in per_room.values()) + sum(max(0, len(k) - 1) for k in keys.values())
    return {
        "requests": requests,
        "answered_ok": answered_ok,
        "kept": kept,
        "lost": requests - kept,
        "duplicates": duplicates,
        "cards_written": len(written_uids),
    }


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


class Bench:
    """The running parts; :meth:`run` measures and returns the figures."""

    def __init__(self, *, rooms: int, round_trips: int, count: int, parallel: int, write_s: float, token: str):
        self.rooms = [str(10_001 + i) for i in range(rooms)]
        self.round_trips, self.count, self.parallel = round_trips, count, parallel
        self.write_s, self.token = write_s, token
        self.departure = timezone.localtime() + dt.timedelta(days=STAY_DAYS)
        self.encoders: dict[str, SimulatedEncoder] = {}
        self.next_room = 0

    def take_rooms(self, count: int) -> list[str]:
        taken = self.rooms[self.next_room : self.next_room + count]
        self.next_room += count
        return taken

    async def run(self) -> dict:
        bridge = Bridge(host="127.0.0.1", port=0, heartbeat_s=30)
        await bridge.start()
        pms = sim_fias.SimulatedPms()
        fias = industry_service = ship_service = http_server = None
        try:
            await self._connect_encoders(bridge.port)
            await pms.start()
            fias = FiasService(f"127.0.0.1:{pms.port}", backoff_first=0.05, backoff_max=0.5)
            await fias.start()
            await pms.linked(ONLINE_TIMEOUT_SECONDS)
            industry_service = IndustryStandardService(host="127.0.0.1", port=0, serial_path="")
            await industry_service.start()
            ship_service = ShipService("127.0.0.1", 0, idle_seconds=300, max_connections=self.parallel + 4)
            await ship_service.start()
            http_server = self._start_http()
            result = {"round_trip": await self._round_trips(pms)}
            senders = {
                "fias": lambda: self._fias_sender(pms),
                "industry": lambda: self._industry_sender(industry_service.port),
                "ship": lambda: self._ship_sender(ship_service.port),
                "rest": lambda: self._rest_sender(http_server.server_address[1]),
            }
            for interface in INTERFACES:
                result[interface] = await self._sustained(interface, senders[interface])
            result["bridge_encode_timeouts"] = bridge.counters["encode_timeouts"]
            return result
        finally:
            if http_server is not None:
                http_server.shutdown()
                http_server.server_close()
            for service in (ship_service, industry_service, fias):
                if service is not None:
                    await service.stop()
            await pms.stop()
            for encoder in self.encoders.values():
                await encoder.stop()
            await bridge.stop()

    async def _connect_encoders(self, port: int) -> None:
        devices = await asyncio.to_thread(
            run_orm, lambda: list(Device.objects.filter(kind=DeviceKind.ENCODER).values_list("device_id", "station"))
        )
        for device_id, station in devices:
            encoder = SimulatedEncoder(
                device_id, DEVICE_KEY, ("127.0.0.1", port), write_s=self.write_s, fresh_cards=True, retry_first_s=0.1
            )
            await encoder.connect(10)
            self.encoders[station] = encoder
        deadline = time.monotonic() + ONLINE_TIMEOUT_SECONDS
        while await asyncio.to_thread(
            run_orm, lambda: Device.objects.filter(kind=DeviceKind.ENCODER, online=False).exists()
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the simulated encoders did not come online")
            await asyncio.sleep(0.1)

    def _start_http(self) -> ThreadedWSGIServer:
        server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=True)
        server.set_app(get_wsgi_application())
        threading.Thread(target=server.serve_forever, name="bench-http", daemon=True).start()
        return server

    def _written(self, interface_stations: list[str], before: dict[str, int]) -> set[str]:
        return {
            uid
            for station in interface_stations
            for _job, uid, _data in self.encoders[station].written[before.get(station, 0) :]
        }

    async def _round_trips(self, pms: sim_fias.SimulatedPms) -> dict:
        """KR after KR (rooms in turn, the FIAS encoders in turn); each KR→KA timed."""
        names = stations("fias", self.parallel)
        rooms = self.take_rooms(self.round_trips)
        samples, answered_ok = [], 0
        for i, room in enumerate(rooms):
            answer, seconds = await pms.key_request(
                room=room, encoder=names[i % len(names)], departure=self.departure, reservation=f"RT{i}"
            )
            samples.append(seconds)
            answered_ok += answer.type == "KA" and answer.get("AS") == "OK"
        return {"count": len(rooms), "answered_ok": answered_ok, "ms": _percentiles(samples)}

    async def _sustained(self, interface: str, make_sender) -> dict:
        """``count`` check-ins, ``parallel`` stations at once, each in a room of its own."""
        names = stations(interface, self.parallel)
        rooms = self.take_rooms(self.count)
        before = {station: len(self.encoders[station].written) for station in names}
        workers = self.parallel
        queues = [
            [(i, room, names[i % len(names)]) for i, room in enumerate(rooms) if i % workers == w]
            for w in range(workers)
        ]
        samples: list[float] = []
        answered_ok = 0

        async def work(queue) -> None:
            nonlocal answered_ok
            send, close = await make_sender()
            try:
                for i, room, station in queue:
                    started = time.perf_counter()
                    ok = await send(i, room, station)  # (awaited first: the count is shared by the workers)
                    answered_ok += bool(ok)
                    samples.append(time.perf_counter() - started)
            finally:
                await close()

        started = time.perf_counter()
        await asyncio.gather(*(work(queue) for queue in queues))
        seconds = time.perf_counter() - started
        written = self._written(names, before)
        figures = await asyncio.to_thread(run_orm, verify, rooms, written, len(rooms), answered_ok)
        return {
            "parallel": workers,
            "seconds": round(seconds, 2),
            "per_minute": round(len(rooms) / seconds * 60, 1),
            "ms": _percentiles(samples),
            **figures,
        }

    # --- one check-in through each interface: (send, close) ------------------------------------------

    async def _fias_sender(self, pms):
        async def send(i, room, station):
            answer, _seconds = await pms.key_request(
                room=room, encoder=station, departure=self.departure, reservation=f"F{i}", matched=True
            )
            return answer.type == "KA" and answer.get("AS") == "OK"

        async def close():
            pass

        return send, close

    async def _industry_sender(self, port: int):
        tz = timezone.get_default_timezone()
        client = await sim_industry.SimulatedPms.connect("127.0.0.1", port, tz=tz)
        end = self.departure.astimezone(tz).replace(second=0, microsecond=0)

        async def send(i, room, station):
            request = industry.CardRequest(command="CN", station=station, rooms=(room,), end=end)
            return (await client.exchange(request)).answer.ok

        return send, client.close

    async def _ship_sender(self, port: int):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        decoder = ship.FrameDecoder()
        answers: list[bytes] = []

        async def call(name: str, params: list) -> ship.Response:
            writer.write(ship.frame(ship.build_request(name, params)))
            await writer.drain()
            while not answers:
                chunk = await reader.read(65536)
                if not chunk:
                    raise ConnectionError("the SHIP service closed the connection")
                answers.extend(decoder.feed(chunk))
            return ship.parse_response(answers.pop(0))

        if (await call("GetInfo", [("ApiKey", self.token)])).error is not None:
            raise RuntimeError("SHIP refused the API key")
        departure = format_time(self.departure)

        async def send(i, room, station):
            params = [("Room", room), ("Departure", departure), ("Encoder", station), ("Reservation", f"S{i}")]
            return (await call("Hotel.CheckIn", params)).error is None

        async def close():
            writer.close()

        return send, close

    async def _rest_sender(self, port: int):
        executor = ThreadPoolExecutor(1, thread_name_prefix="bench-rest")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        departure = self.departure.isoformat()

        def post(i, room, station) -> bool:
            body = json.dumps({"room": room, "departure": departure, "encoder": station, "reservation": f"R{i}"})
            headers = {
                "Authorization": f"Api-Key {self.token}",
                "Content-Type": "application/json",
                "Idempotency-Key": uuid.uuid4().hex,
            }
            connection.request("POST", REST_PATH, body, headers)
            response = connection.getresponse()
            response.read()
            return response.status in (200, 201)

        async def send(i, room, station):
            return await asyncio.get_running_loop().run_in_executor(executor, post, i, room, station)

        async def close():
            connection.close()
            executor.shutdown()

        return send, close


def measure(*, rooms: int, round_trips: int, count: int, parallel: int, write_s: float, token: str) -> dict:
    bench = Bench(rooms=rooms, round_trips=round_trips, count=count, parallel=parallel, write_s=write_s, token=token)
    result = asyncio.run(bench.run())
    result.update(rooms=rooms, encoder_write_ms=round(write_s * 1000, 1), rest_server="django ThreadedWSGIServer")
    return result
