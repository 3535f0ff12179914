"""The OSDP driver: what a bus reports becomes runtime calls, what the runtime asks becomes OSDP commands.

The transport is devices/osdp/bus.py (libosdp's control panel on a serial line),
the codec devices/osdp/cardformats.py (card bits into a key UID); this module
only translates, in both directions:

- a card read is decoded by the reader's card format; a read error is handed to
  the runtime as such (refused and counted, never a grant);
- keypad keys, input states, tamper and power, the link going up and down go to
  the runtime as they are; what the reader says of itself (identity, secure
  channel, its own key taken) is written on its row;
- the runtime's relay becomes an output command (a timed pulse up to OSDP's
  25.5 s; longer, on then off on a timer), its signals an LED colour and a
  buzzer pattern on the reader.

Every OSDP device is reader 1 of its own (OSDP addresses readers per device;
a device with several readers is not yet mapped).
"""

import asyncio
import logging
import time
from collections import Counter

from django.utils import timezone

from accesscontrol.choices import AuditKind
from devices.choices import AlarmKind
from devices.osdp import bus as osdp_bus
from devices.osdp import cardformats
from devices.osdp.config import BusConfig, OsdpDevice
from devices.runtime.runtime import Runtime, Signal
from devices.runtime.writer import Writer

logger = logging.getLogger("space.osdp")

READER_NO = 1
MAX_PULSE_SECONDS = 25.5


class OsdpDriver:
    """The runtime's hands on one bus, and the bus's voice into the runtime."""

    def __init__(self, config: BusConfig, writer: Writer):
        self.writer = writer
        self.runtime: Runtime | None = None  # set by the service once both exist
        self.bus: osdp_bus.Bus | None = None
        self.counters: Counter = Counter()
        # Set to a list to collect, per card read, the seconds from libosdp's hand-over to the last command
        # submitted (relay, LED, buzzer): Space's own share of a card-to-relay time (manage.py bench_doors).
        self.trace: list[float] | None = None
        self._timers: dict[tuple[int, int], asyncio.TimerHandle] = {}
        self._insecure: set[int] = set()  # devices whose secure channel failed, until it comes up
        self.configure(config)

    def configure(self, config: BusConfig) -> None:
        self.config = config
        self.by_address: dict[int, OsdpDevice] = {device.address: device for device in config.devices}
        self.by_pk: dict[int, OsdpDevice] = {device.device_pk: device for device in config.devices}

    def reader_specs(self) -> list[osdp_bus.ReaderSpec]:
        return [
            osdp_bus.ReaderSpec(device.address, device.scbk, enforce_secure=not device.allow_clear)
            for device in self.config.devices
        ]

    # --- the runtime's hands ------------------------------------------------------------------------

    def relay(self, device_pk: int, output: int, on: bool, seconds: float | None) -> bool:
        device = self.by_pk.get(device_pk)
        if device is None or self.bus is None:
            return False
        timer = self._timers.pop((device_pk, output), None)
        if timer is not None:
            timer.cancel()
        if on and seconds is not None and seconds > MAX_PULSE_SECONDS:
            # Longer than OSDP's timer: on now, off from here.
            ok = self.bus.output(device.address, output, True)
            loop = asyncio.get_running_loop()
            self._timers[(device_pk, output)] = loop.call_later(seconds, self.bus.output, device.address, output, False)
            return ok
        pulse_ms = round(seconds * 1000) if on and seconds is not None else None
        return self.bus.output(device.address, output, on, pulse_ms)

    def signal(self, device_pk: int, reader: int, signal: Signal) -> bool:
        device = self.by_pk.get(device_pk)
        if device is None or self.bus is None:
            return False
        seconds = min(max(signal.seconds, 0.1), MAX_PULSE_SECONDS)
        if signal.kind == "ask_pin":
            lit = self.bus.led(device.address, signal.led, on_ms=300, off_ms=300, seconds=seconds)
        else:
            lit = self.bus.led(device.address, signal.led, seconds=seconds)
        beeped = self.bus.buzzer(device.address, signal.beep_ms, 100, signal.beeps)
        return lit and beeped

    # --- the bus's voice -------------------------------------------------------------------------------

    def on_event(self, event: osdp_bus.BusEvent) -> None:
        """Called on the event loop for each bus event; nothing raises out of it."""
        try:
            self._handle(event)
        except Exception:
            self.counters["internal_error"] += 1
            logger.exception("OSDP bus %s: an event could not be handled: %r", self.config.name, event)

    def _handle(self, event: osdp_bus.BusEvent) -> None:
        device = self.by_address.get(event.address)
        runtime = self.runtime
        if device is None or runtime is None:
            self.counters["unknown_address"] += 1
            return
        pk = device.device_pk
        if isinstance(event, osdp_bus.CardRead):
            self._card(runtime, device, event)
        elif isinstance(event, osdp_bus.Keypad):
            runtime.keys(pk, READER_NO, event.keys)
        elif isinstance(event, osdp_bus.Inputs):
            runtime.inputs(pk, event.states)
        elif isinstance(event, osdp_bus.Local):
            runtime.local_status(pk, tamper=event.tamper, power_failed=event.power)
        elif isinstance(event, osdp_bus.Link):
            runtime.device_online(pk, event.online, detail={"address": event.address, "secure": event.secure})
            self.writer.reader(pk, secure=event.secure and event.online)
            if event.online and event.secure and pk in self._insecure:
                self._insecure.discard(pk)
                self.writer.alarm(AlarmKind.SECURE_CHANNEL, False, None, pk, timezone.now())
            if event.online:
                self.writer.device(pk, last_seen_at=timezone.now(), address=f"{self.config.name} #{event.address}")
        elif isinstance(event, osdp_bus.Identity):
            self.writer.reader(
                pk,
                vendor_code=f"{event.vendor_code:06X}",
                model=str(event.model),
                serial_number=f"{event.serial_number:08X}",
                firmware=event.firmware[:32],
                capabilities={name: list(value) for name, value in event.capabilities.items()},
            )
            self.writer.device(pk, firmware=event.firmware[:64])
        elif isinstance(event, osdp_bus.KeySet):
            self.writer.reader(pk, key_set_at=timezone.now())
            runtime.record(AuditKind.READER_KEY_SET, pk, {"address": event.address})
        elif isinstance(event, osdp_bus.SecureFailed):
            self.counters["secure_channel_failed"] += 1
            if pk not in self._insecure:
                # The bus tries again and again (up to every 30 s): one event and one alarm until it works.
                self._insecure.add(pk)
                runtime.record(AuditKind.SECURE_CHANNEL_FAILED, pk, {"address": event.address})
                self.writer.alarm(AlarmKind.SECURE_CHANNEL, True, None, pk, timezone.now())

    def _card(self, runtime: Runtime, device: OsdpDevice, event: osdp_bus.CardRead) -> None:
        try:
            card = cardformats.decode(device.card_format, event.data, event.bits)
        except cardformats.CardReadError as error:
            self.counters[f"card_{error.reason}"] += 1
            runtime.card(device.device_pk, READER_NO, None, detail={"error": error.reason, "bits": event.bits})
            return
        detail = {"format": card.format}
        if card.facility is not None:
            detail["facility"] = card.facility
        runtime.card(device.device_pk, READER_NO, card.uid, detail=detail)
        if self.trace is not None:
            self.trace.append(time.monotonic() - event.at)
