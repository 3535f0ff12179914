"""The PMS and SHIP connectors as long-lived services, run the same three ways as the device bridge.

Each connector is an asyncio service (start/stop, no knowledge of its host)
named in :data:`CONNECTORS` with the setting that turns it on. One is run

- inside ``runspace`` (embedded profile, ``SPACE_CONNECTORS_IN_RUNSPACE``),
- alone: ``manage.py runconnector NAME`` (holding its lease when REDIS_URL is set),
- or as the Celery long-lived task :func:`run_connector` on the ``connectors``
  queue under a Redis lease, started again by beat's :func:`ensure_connectors`.
"""

import importlib
from dataclasses import dataclass

from celery import shared_task
from django.conf import settings

from core import hosting
from core.lease import DEFAULT_TTL_SECONDS, Lease
from core.services import Service

RUNS_IN_RUNSPACE = "runs in runspace"
NOT_CONFIGURED = "not configured"
RUNNING = "running"
SENT = "sent"
RUN_EXPIRES_SECONDS = 60  # as devices.tasks: a run no worker took in this time is dropped; the next check sends one


@dataclass(frozen=True)
class Connector:
    name: str
    service: str  # dotted path of the service class; made with no arguments, it reads its settings
    setting: str  # the setting that turns the connector on when set (non-empty)
    description: str

    @property
    def configured(self) -> bool:
        return bool(getattr(settings, self.setting, None))

    def make(self) -> Service:
        module, _, name = self.service.rpartition(".")
        return getattr(importlib.import_module(module), name)()

    def lease(self, ttl: float = DEFAULT_TTL_SECONDS) -> Lease:
        return Lease(f"connector-{self.name}", ttl=ttl)


CONNECTORS: dict[str, Connector] = {
    connector.name: connector
    for connector in (
        Connector(
            "fias",
            "integrations.pms.fias_service.FiasService",
            "SPACE_FIAS_ADDRESS",
            "Oracle Hospitality FIAS: Space as the TCP client of the PMS interface (docs/fias-in-space.md)",
        ),
        Connector(
            "industry",
            "integrations.pms.industry_service.IndustryStandardService",
            "SPACE_INDUSTRY_ENABLED",
            "SALTO PMS Industry Standard: a PMS on a TCP port and/or a serial line (docs/industry-standard.md)",
        ),
        Connector(
            "ship",
            "integrations.ship.service.ShipService",
            "SPACE_SHIP_PORT",
            "SHIP over TCP (STP framing): the XML integrator interface (docs/ship-in-space.md)",
        ),
    )
}


def runs_in_runspace() -> bool:
    return settings.SPACE_CONNECTORS_IN_RUNSPACE


def configured() -> list[Connector]:
    return [connector for connector in CONNECTORS.values() if connector.configured]


def embedded() -> list[Service]:
    """The configured connectors' services, for runspace (none when they run elsewhere)."""
    return [connector.make() for connector in configured()] if runs_in_runspace() else []


# Late acknowledgement and the lease, as for the device bridge (devices.tasks.run_bridge).
@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_connector(name: str, lease_seconds: float = DEFAULT_TTL_SECONDS) -> str:
    """Run one connector until the worker shuts down or the lease is lost; at most one copy at a time."""
    if runs_in_runspace():
        return RUNS_IN_RUNSPACE
    connector = CONNECTORS.get(name)
    if connector is None or not connector.configured:
        return NOT_CONFIGURED
    return hosting.run(connector.make(), connector.lease(lease_seconds))


@shared_task(ignore_result=True)
def ensure_connectors() -> dict[str, str]:
    """Beat's check: start each configured connector whose lease no one holds (it died, or never started)."""
    if runs_in_runspace():
        return {name: RUNS_IN_RUNSPACE for name in CONNECTORS}
    outcome = {}
    for connector in configured():
        if connector.lease().holder() is not None:
            outcome[connector.name] = RUNNING
        else:
            run_connector.apply_async((connector.name,), expires=RUN_EXPIRES_SECONDS)
            outcome[connector.name] = SENT
    return outcome
