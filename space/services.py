"""The table of long-lived services: what each one is, whether it is on, and where it runs.

Every service is an asyncio component with ``start()`` and ``stop()``
(``core.services.Service``) that knows nothing of its host. It runs

- inside ``runspace``, on the web server's event loop, when ``in_runspace()``
  says so for this profile (``embedded_services()``);
- otherwise, if it has a lease, as the long-lived Celery task
  ``space.tasks.run_service(NAME)`` on the ``connectors`` queue, one copy at a
  time under the Redis lease ``space:lease:<lease>``, started again by beat's
  ``space.tasks.ensure_services`` when the lease runs out (its worker died);
- or alone: ``manage.py runservice NAME`` (holding the same lease when
  REDIS_URL is set).

A service without a lease runs only inside ``runspace``; where Celery is in use,
its work is done by short tasks instead (webhook delivery, the blacklist purge).
Services are made lazily: their modules import models, which need the app
registry ready.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings

from core.broker import uses_celery
from core.lease import DEFAULT_TTL_SECONDS, Lease
from core.services import Service


def setting_on(name: str) -> Callable[[], bool]:
    """``in_runspace`` read from a boolean setting."""

    def on() -> bool:
        return bool(getattr(settings, name))

    on.__name__ = name
    return on


def always() -> bool:
    return True


def without_celery() -> bool:
    """Inside runspace when no Celery worker or beat takes the work (the broker is memory://)."""
    return not uses_celery()


@dataclass(frozen=True)
class Entry:
    name: str  # runservice NAME, run_service(NAME)
    title: str  # what the service is, for the operator: "device bridge"
    make_with: str | Callable[..., Service]  # a class or factory, or its dotted path; called with no arguments
    in_runspace: Callable[[], bool]
    setting: str | None = None  # the setting that turns the service on when set (non-empty); None: always on
    lease: str | None = None  # the lease name when it may run outside runspace; None: inside runspace only
    listens: str | None = None  # "udp" or "tcp": it takes host= and port= (runservice --host/--port)
    description: str = field(default="", compare=False)

    @property
    def configured(self) -> bool:
        return self.setting is None or bool(getattr(settings, self.setting, None))

    @property
    def hosted(self) -> bool:
        """Whether it can run outside runspace: as a Celery task or with runservice."""
        return self.lease is not None

    def factory(self) -> Callable[..., Service]:
        if callable(self.make_with):
            return self.make_with
        module, _, name = self.make_with.rpartition(".")
        return getattr(importlib.import_module(module), name)

    def make(self, **options) -> Service:
        return self.factory()(**options)

    def lease_for(self, ttl: float = DEFAULT_TTL_SECONDS) -> Lease:
        if self.lease is None:
            raise ValueError(f"The {self.title} runs inside runspace only: it has no lease")
        return Lease(self.lease, ttl=ttl)

    @property
    def a_title(self) -> str:
        """The title with its indefinite article: "a device bridge", "an event stream sender"."""
        return f"{'an' if self.title[0].lower() in 'aeiou' else 'a'} {self.title}"


def blacklist_purge() -> Service:
    """The hourly purge of expired blacklist entries and old rule and presence changes (beat's purge_blacklist)."""
    from accesscontrol.housekeeping import purge
    from core.periodic import PeriodicService
    from space.celery import PURGE_BLACKLIST_EVERY_SECONDS

    return PeriodicService("blacklist-purge", purge, PURGE_BLACKLIST_EVERY_SECONDS)


def backup_scheduler() -> Service:
    """The daily backup and the overdue alarm, checked every minute (beat's backup_tick)."""
    from accesscontrol.backups import tick
    from core.periodic import PeriodicService
    from space.celery import BACKUP_TICK_SECONDS

    return PeriodicService("backups", tick, BACKUP_TICK_SECONDS)


def source_scheduler() -> Service:
    """Cardholder sources: due directory and HR feed syncs, watched folders (beat's source_tick)."""
    from accesscontrol.sync import tick
    from core.periodic import PeriodicService
    from space.celery import SOURCE_TICK_SECONDS

    return PeriodicService("sources", tick, SOURCE_TICK_SECONDS)


def audit_retention() -> Service:
    """The daily audit purge: archive, then delete, what the retention policy no longer keeps (beat's purge_audit)."""
    from accesscontrol.retention import purge
    from core.periodic import PeriodicService
    from space.celery import PURGE_AUDIT_EVERY_SECONDS

    return PeriodicService("audit-retention", purge, PURGE_AUDIT_EVERY_SECONDS)


connectors_in_runspace = setting_on("SPACE_CONNECTORS_IN_RUNSPACE")

# In start order inside runspace (stopped in reverse).
SERVICES: dict[str, Entry] = {
    entry.name: entry
    for entry in (
        Entry(
            "device-bridge",
            "device bridge",
            "devices.sdp.bridge.Bridge",
            setting_on("SPACE_BRIDGE_IN_RUNSPACE"),
            lease="device-bridge",
            listens="udp",
            description="The SDP/1 server of the online devices (docs/sdp1-in-space.md)",
        ),
        Entry(
            "osdp",
            "OSDP buses",
            "devices.osdp.service.Buses",
            setting_on("SPACE_OSDP_IN_RUNSPACE"),
            description="Every enabled OSDP bus, started and stopped as buses come and go (docs/osdp.md); "
            "outside runspace each bus is a service of its own, osdp-bus-<id>",
        ),
        Entry(
            "usb-encoder-sweep",
            "USB encoder sweep",
            "devices.usb_encoders.EncoderSweep",
            # Local bridges of USB encoders connect to the web server: the sweep of their jobs runs beside it.
            always,
            description="Fails the encode jobs of USB encoders that went silent",
        ),
        Entry(
            "webhooks",
            "webhook delivery service",
            "integrations.webhooks.service.WebhookService",
            # With Celery, short tasks deliver (integrations.tasks.deliver_webhooks) and beat sweeps.
            without_celery,
            description="Delivers the webhook outbox (docs/webhooks.md)",
        ),
        Entry(
            "blacklist-purge",
            "blacklist purge",
            blacklist_purge,
            # With Celery, beat's accesscontrol.tasks.purge_blacklist does it.
            without_celery,
            description="Drops blacklist entries whose keys would have expired anyway",
        ),
        Entry(
            "backups",
            "backup scheduler",
            backup_scheduler,
            # With Celery, beat's accesscontrol.tasks.backup_tick does it.
            without_celery,
            description="The daily backup at SPACE_BACKUP_TIME and the overdue alarm (docs/backups.md)",
        ),
        Entry(
            "sources",
            "cardholder sources",
            source_scheduler,
            # With Celery, beat's accesscontrol.tasks.source_tick does it.
            without_celery,
            description="Syncs cardholders from directories and HR feeds when due (docs/cardholder-sources.md)",
        ),
        Entry(
            "audit-retention",
            "audit retention purge",
            audit_retention,
            # With Celery, beat's accesscontrol.tasks.purge_audit does it.
            without_celery,
            description="Archives and deletes audit records older than the retention policy (docs/audit-retention.md)",
        ),
        Entry(
            "event-stream",
            "event stream sender",
            "integrations.eventstream.service.EventStreamService",
            setting_on("SPACE_EVENT_STREAM_IN_RUNSPACE"),
            lease="event-stream",
            description="Sends audit events to the event streams' receivers (docs/event-stream.md)",
        ),
        Entry(
            "mode-scheduler",
            "mode scheduler",
            "devices.scheduler.ModeScheduler",
            setting_on("SPACE_MODE_SCHEDULER_IN_RUNSPACE"),
            lease="mode-scheduler",
            description="Automatic opening mode changes at their instants (docs/modes.md)",
        ),
        Entry(
            "face-terminals",
            "face terminal service",
            "devices.face.service.FaceService",
            setting_on("SPACE_FACE_IN_RUNSPACE"),
            setting="SPACE_FACE_MQTT_HOST",
            lease="face-terminals",
            description="Face terminals over MQTT: access requests, enrolment, status (docs/face-terminals.md)",
        ),
        Entry(
            "fias",
            "FIAS connector",
            "integrations.pms.fias_service.FiasService",
            connectors_in_runspace,
            setting="SPACE_FIAS_ADDRESS",
            lease="connector-fias",
            description="Oracle Hospitality FIAS: Space as the TCP client of the PMS interface (docs/fias-in-space.md)",
        ),
        Entry(
            "industry",
            "Industry Standard connector",
            "integrations.pms.industry_service.IndustryStandardService",
            connectors_in_runspace,
            setting="SPACE_INDUSTRY_ENABLED",
            lease="connector-industry",
            listens="tcp",
            description=(
                "SALTO PMS Industry Standard: a PMS on a TCP port and/or a serial line (docs/industry-standard.md)"
            ),
        ),
        Entry(
            "ship",
            "SHIP connector",
            "integrations.ship.service.ShipService",
            connectors_in_runspace,
            setting="SPACE_SHIP_PORT",
            lease="connector-ship",
            listens="tcp",
            description="SHIP over TCP (STP framing): the XML integrator interface (docs/ship-in-space.md)",
        ),
    )
}


BUS_PREFIX = "osdp-bus-"


def bus_entry(bus_id: int, name: str) -> Entry:
    """The entry of one OSDP bus: hosted under a lease of its own, unless runspace runs every bus ("osdp")."""

    def make() -> Service:
        return importlib.import_module("devices.osdp.service").BusService(bus_id)

    return Entry(
        f"{BUS_PREFIX}{bus_id}",
        f"OSDP bus {name}",
        make,
        setting_on("SPACE_OSDP_IN_RUNSPACE"),
        lease=f"{BUS_PREFIX}{bus_id}",
        description=f"The readers and doors on the OSDP bus {name} (docs/osdp.md)",
    )


def bus_entries() -> list[Entry]:
    """One entry per enabled OSDP bus, read from the database (the table's part that the site configures)."""
    enabled_buses = importlib.import_module("devices.osdp.config").enabled_buses
    return [bus_entry(bus_id, name) for bus_id, name in enabled_buses()]


def lookup(name: str) -> Entry | None:
    """The table's entry called ``name``, an OSDP bus's included; None when there is none."""
    if name.startswith(BUS_PREFIX):
        return next((entry for entry in bus_entries() if entry.name == name), None)
    return SERVICES.get(name)


def hosted() -> list[Entry]:
    """The services that can run outside runspace (a Celery task, runservice), in table order."""
    return [entry for entry in SERVICES.values() if entry.hosted]


def connectors() -> list[Entry]:
    """The PMS and SHIP connectors: the services SPACE_CONNECTORS_IN_RUNSPACE places."""
    return [entry for entry in SERVICES.values() if entry.in_runspace is connectors_in_runspace]


def embedded_services() -> list[Service]:
    """The services that run inside runspace in this profile, made anew, in start order (stopped in reverse)."""
    return [entry.make() for entry in SERVICES.values() if entry.in_runspace() and entry.configured]
