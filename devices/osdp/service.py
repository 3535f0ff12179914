"""OSDP buses as services: one :class:`BusService` per bus, and :class:`Buses`, which runs every enabled one.

A ``BusService`` owns one line: its bus (devices/osdp/bus.py), its driver, a
device runtime with a decider on the rules snapshot, and a writer. Background
tasks keep it current:

- every 50 ms the runtime's clock work (release ends, held-open doors, PIN timeouts);
- every 250 ms the rules snapshot, every second the bus's configuration: doors
  and readers are taken at once; a change of the line itself (port, speed,
  addresses, keys) restarts the bus, since libosdp knows its readers when it starts;
- every 250 ms the operator commands queued for its devices' doors
  (devices/commands.py), carried out by the runtime and marked done or failed.

In production each bus is an entry of the table of services of its own
(``osdp-bus-<id>``, under its own lease: ``space.services``); inside
``runspace`` the :class:`Buses` service starts and stops bus services as buses
are added, enabled, disabled and removed.
"""

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from accesscontrol.snapshot import get_store
from core.services import close_connection, run_orm, stop_all
from devices import recorder
from devices.choices import CommandStatus
from devices.osdp import bus as osdp_bus
from devices.osdp.config import BusConfig, enabled_buses, load_bus
from devices.osdp.driver import OsdpDriver
from devices.recorder import CommandUpdate
from devices.runtime.decisions import Decider
from devices.runtime.runtime import KeypadSettings, Runtime
from devices.runtime.writer import Writer

logger = logging.getLogger("space.osdp")

TICK_SECONDS = 0.05
REFRESH_SECONDS = 0.25
CONFIG_SECONDS = 1.0
COMMAND_SECONDS = 0.25
SUPERVISE_SECONDS = 2.0
IN_FLIGHT_SECONDS = 30.0


def keypad_settings() -> KeypadSettings:
    return KeypadSettings(
        timeout=settings.SPACE_PIN_TIMEOUT_SECONDS,
        max_wrong=settings.SPACE_PIN_MAX_WRONG,
        lockout=settings.SPACE_PIN_LOCKOUT_SECONDS,
    )


class BusService:
    """One OSDP bus, its readers and doors (a ``core.services.Service``)."""

    def __init__(self, bus_id: int, *, store=None):
        self.bus_id = bus_id
        self.name = f"OSDP bus {bus_id}"
        self.store = store or get_store()
        self.writer = Writer(f"osdp-{bus_id}")
        self.driver: OsdpDriver | None = None
        self.runtime: Runtime | None = None
        self.decider: Decider | None = None
        self.bus: osdp_bus.Bus | None = None
        self._reader = ThreadPoolExecutor(1, thread_name_prefix=f"osdp-{bus_id}-read")
        self._tasks: list[asyncio.Task] = []
        # Commands carried out whose result the writer may not have stored yet: not to be read as queued again.
        self._in_flight: dict[int, float] = {}

    async def read(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._reader, run_orm, function, *args)

    async def start(self) -> None:
        self.decider = Decider(self.store, on_passage=self.writer.passage)
        await self.read(self.decider.refresh)
        config = await self.read(load_bus, self.bus_id)
        if config is None:
            raise RuntimeError(f"OSDP bus {self.bus_id} does not exist or is disabled")
        self.name = f"OSDP bus {config.name}"
        self.writer.start()
        self.driver = OsdpDriver(config, self.writer)
        self.runtime = Runtime(
            self.decider, self.driver, self.writer, publish=self.writer.show, keypad=keypad_settings()
        )
        self.driver.runtime = self.runtime
        self.runtime.configure(config.readers, config.doors)
        await self._start_bus(config)
        for work in (self._ticker(), self._refresher(), self._commands()):
            self._tasks.append(asyncio.create_task(work))
        logger.info("%s on %s at %d baud: %d devices", self.name, config.port, config.baud, len(config.devices))

    async def _start_bus(self, config: BusConfig) -> None:
        self.bus = osdp_bus.Bus(config.port, config.baud, self.driver.reader_specs(), self.driver.on_event)
        self.driver.bus = self.bus
        await self.bus.start()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.bus is not None:
            await self.bus.stop()
            self.bus = None
        await self.writer.stop()
        self._reader.submit(close_connection)
        self._reader.shutdown(wait=True)

    @property
    def counters(self) -> dict:
        """What was counted, for operators and tests: the bus's, the driver's, the runtime's, the writer's."""
        merged = {}
        for part in (self.bus, self.driver, self.runtime, self.writer):
            if part is not None:
                merged.update({f"{k}": v for k, v in part.counters.items()})
        return merged

    # --- background work ---------------------------------------------------------------------------

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                self.runtime.tick()
            except Exception:
                logger.exception("%s: the runtime's clock work failed", self.name)

    async def _refresher(self) -> None:
        configured_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.read(self.decider.refresh)
                if loop.time() - configured_at >= CONFIG_SECONDS:
                    configured_at = loop.time()
                    await self.reconfigure()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("%s: refreshing the rules or the configuration failed", self.name)
                await asyncio.sleep(1.0)

    async def reconfigure(self) -> None:
        """Take the bus's configuration as it is in the database now."""
        config = await self.read(load_bus, self.bus_id)
        if config is None:
            return  # disabled or removed: the supervisor (or the lease holder) stops this service
        line_changed = config.line() != self.driver.config.line()
        self.driver.configure(config)
        self.runtime.configure(config.readers, config.doors)
        if line_changed:
            logger.info("%s: the line changed; restarting the bus", self.name)
            await self.bus.stop()
            await self._start_bus(config)

    async def _commands(self) -> None:
        while True:
            await asyncio.sleep(COMMAND_SECONDS)
            try:
                devices = list(self.runtime.doors_by_device)
                if not devices:
                    continue
                now = time.monotonic()
                self._in_flight = {cmd: at for cmd, at in self._in_flight.items() if now - at < IN_FLIGHT_SECONDS}
                rows = await self.read(recorder.queued_commands, devices, set(self._in_flight))
                for cmd, device_pk, op, args in rows:
                    self._carry_out(cmd, device_pk, op, args)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("%s: reading commands failed", self.name)
                await asyncio.sleep(1.0)

    def _carry_out(self, cmd: int, device_pk: int, op: str, args: dict) -> None:
        if self.bus is None or not self.bus.is_online(self.driver.by_pk[device_pk].address):
            # Left queued: carried out when the device is back, or expired by the bridge's sweep.
            return
        self._in_flight[cmd] = time.monotonic()
        error = self.runtime.command(device_pk, op, args)
        status = CommandStatus.FAILED if error else CommandStatus.SUCCEEDED
        self.writer.command(CommandUpdate(cmd, status, error or ""))


class Buses:
    """Every enabled OSDP bus, each in a :class:`BusService` of its own, started and stopped as buses come and go."""

    name = "OSDP buses"

    def __init__(self):
        self.services: dict[int, BusService] = {}
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="osdp-buses")

    async def start(self) -> None:
        await self.supervise()
        self._task = asyncio.create_task(self._supervisor())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await stop_all(list(self.services.values()))
        self.services.clear()
        self._executor.submit(close_connection)
        self._executor.shutdown(wait=True)

    async def _supervisor(self) -> None:
        while True:
            await asyncio.sleep(SUPERVISE_SECONDS)
            try:
                await self.supervise()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("OSDP buses: supervising failed")

    async def supervise(self) -> None:
        loop = asyncio.get_running_loop()
        wanted = dict(await loop.run_in_executor(self._executor, run_orm, enabled_buses))
        for bus_id in [b for b in self.services if b not in wanted]:
            await stop_all([self.services.pop(bus_id)])
        for bus_id in wanted:
            if bus_id not in self.services:
                service = BusService(bus_id)
                try:
                    await service.start()
                except Exception:
                    logger.exception("OSDP bus %s could not start; trying again shortly", wanted[bus_id])
                    await service.stop()
                    continue
                self.services[bus_id] = service
