"""The runtime's writer: what the device runtime must store, in batches, off the event loop.

The runtime hands it audit events, alarms, device and reader status and command
results (the :class:`~devices.runtime.runtime.Sink` methods, plus
:meth:`Writer.command`); a task gathers them for a few milliseconds and stores
each batch in one transaction on a database thread (``devices.recorder.store``:
events through ``accesscontrol.events.record_many``, so each is stored once and
reaches the outbox and the monitor). A batch that fails is put back and tried
again; nothing accepted is lost while the process lives. Door states and the
new events are then sent to the monitor in one message.
"""

import asyncio
import collections
import logging
from concurrent.futures import ThreadPoolExecutor

from django.utils import timezone

from accesscontrol import live
from accesscontrol.models import AuditEvent
from accesscontrol.presence import Passage
from core.services import close_connection, run_orm
from devices import recorder
from devices.places import Place
from devices.recorder import AlarmChange, CommandUpdate

logger = logging.getLogger("space.runtime")

GATHER_SECONDS = 0.005
RETRY_SECONDS = 1.0
BATCH = 2000


class Writer:
    def __init__(self, name: str = "runtime", gather_seconds: float = GATHER_SECONDS):
        """``gather_seconds``: how long a batch gathers before it is stored (each batch costs a transaction and
        the monitor's lookups, whatever its size)."""
        self.name = name
        self.gather_seconds = gather_seconds
        self.counters: collections.Counter = collections.Counter()
        self._events: collections.deque[AuditEvent] = collections.deque()
        self._alarms: list[AlarmChange] = []
        self._commands: list[CommandUpdate] = []
        self._passages: list[Passage] = []
        self._devices: dict[int, dict] = {}
        self._readers: dict[int, dict] = {}
        self._door_states: dict[int, dict[str, str]] = {}
        self._live: list[dict] = []
        self._ready = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-write")

    # --- the sink -------------------------------------------------------------------------------------

    def event(self, event: AuditEvent) -> None:
        self._events.append(event)
        self._ready.set()

    def alarm(self, kind: str, raised: bool, place: Place | None, device_pk: int, at) -> None:
        self._alarms.append(AlarmChange(kind, raised, place.id if place else None, device_pk, at))
        self._ready.set()

    def passage(self, passage: Passage) -> None:
        """A passage a decision made (presence), stored with the batch of its access event."""
        self._passages.append(passage)
        self._ready.set()

    def device(self, device_pk: int, **fields) -> None:
        door_states = fields.pop("door_states", None)
        if door_states:
            merged = self._door_states.setdefault(device_pk, {})
            merged.update(door_states)
            fields["door_states"] = dict(merged)
        self._devices.setdefault(device_pk, {}).update(fields)
        self._ready.set()

    def reader(self, device_pk: int, **fields) -> None:
        self._readers.setdefault(device_pk, {}).update(fields)
        self._ready.set()

    def command(self, update: CommandUpdate) -> None:
        self._commands.append(update)
        self._ready.set()

    def show(self, payload: dict) -> None:
        """A payload for the monitor (a door state), sent with the next batch's events."""
        self._live.append(payload)
        self._ready.set()

    # --- the task -------------------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._ready = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def stop(self, timeout: float = 8.0) -> None:
        if self._task is not None:
            self._stopping = True
            self._ready.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                logger.error("%s: %d events could not be stored before stopping", self.name, len(self._events))
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._executor.submit(close_connection)
        self._executor.shutdown(wait=True)

    def _pending(self) -> bool:
        return bool(
            self._events
            or self._alarms
            or self._commands
            or self._devices
            or self._readers
            or self._live
            or self._passages
        )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending():
                if self._stopping:
                    return
                await self._ready.wait()
                self._ready.clear()
                continue
            if not self._stopping:
                await asyncio.sleep(self.gather_seconds)
            try:
                await self._flush(loop)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.counters["store_failures"] += 1
                logger.exception("%s: storing a batch failed; retrying", self.name)
                await asyncio.sleep(RETRY_SECONDS)

    async def _flush(self, loop) -> None:
        events = [self._events.popleft() for _ in range(min(len(self._events), BATCH))]
        alarms, self._alarms = self._alarms, []
        commands, self._commands = self._commands, []
        devices, self._devices = self._devices, {}
        readers, self._readers = self._readers, {}
        shown, self._live = self._live, []
        passages, self._passages = self._passages, []
        try:
            payloads = await loop.run_in_executor(
                self._executor, run_orm, _store, events, commands, devices, alarms, readers, passages
            )
        except BaseException:
            self._events.extendleft(reversed(events))
            self._alarms[:0] = alarms
            self._commands[:0] = commands
            for pk, fields in devices.items():
                self._devices[pk] = {**fields, **self._devices.get(pk, {})}
            for pk, fields in readers.items():
                self._readers[pk] = {**fields, **self._readers.get(pk, {})}
            self._live[:0] = shown
            self._passages[:0] = passages
            raise
        self.counters["events_stored"] += len(events)
        await live.publish(shown + payloads)


def _store(events, commands, devices, alarms, readers, passages) -> list[dict]:
    with live.collect() as payloads:
        recorder.store(events, commands, devices, timezone.now(), alarms=alarms, readers=readers, passages=passages)
    return payloads
