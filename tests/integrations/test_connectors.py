"""The PMS and SHIP connectors as long-lived Celery tasks (space.tasks) and beat's check, with a real Redis lease."""

import pytest

from core import hosting
from core.lease import Lease, redis_client
from integrations.pms.fias_service import FiasService
from space import tasks
from space.services import SERVICES, embedded_services
from tests.support.processes import redis_database


@pytest.fixture
def production(settings):
    """This process as a production site: Redis for the leases, the connectors left to the workers."""
    with redis_database() as redis_url:
        settings.REDIS_URL = redis_url
        settings.SPACE_CONNECTORS_IN_RUNSPACE = False
        settings.SPACE_FIAS_ADDRESS = "127.0.0.1:9"
        settings.SPACE_INDUSTRY_ENABLED = False
        settings.SPACE_SHIP_PORT = None
        # The bridge and the event stream stay in runspace: beat's check has only the connectors to start.
        settings.SPACE_BRIDGE_IN_RUNSPACE = True
        settings.SPACE_EVENT_STREAM_IN_RUNSPACE = True
        settings.SPACE_MODE_SCHEDULER_IN_RUNSPACE = True
        yield redis_client(redis_url)


def connectors_only(outcome: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in outcome.items() if name in ("fias", "industry", "ship")}


def test_a_redelivered_run_returns_at_once_while_the_connector_runs_elsewhere(production):
    elsewhere = Lease("connector-fias", client=production)
    assert elsewhere.acquire()

    assert tasks.run_service("fias", lease_seconds=3.0) == hosting.ALREADY_RUNNING
    assert production.get(SERVICES["fias"].lease_for().key) == elsewhere.token


def test_beats_check_leaves_a_running_connector_alone_and_names_only_configured_ones(production):
    elsewhere = Lease("connector-fias", client=production)
    assert elsewhere.acquire()

    assert connectors_only(tasks.ensure_services()) == {"fias": tasks.RUNNING}


def test_a_connector_that_is_not_configured_or_unknown_is_not_run(production, settings):
    settings.SPACE_FIAS_ADDRESS = ""

    assert tasks.run_service("fias") == tasks.NOT_CONFIGURED
    assert tasks.run_service("no-such-connector") == tasks.NOT_CONFIGURED
    assert connectors_only(tasks.ensure_services()) == {}


def test_in_the_embedded_profile_runspace_runs_the_configured_connectors(settings):
    settings.SPACE_CONNECTORS_IN_RUNSPACE = True
    settings.SPACE_BRIDGE_IN_RUNSPACE = True
    settings.SPACE_EVENT_STREAM_IN_RUNSPACE = True
    settings.SPACE_MODE_SCHEDULER_IN_RUNSPACE = True
    settings.REDIS_URL = None
    settings.SPACE_FIAS_ADDRESS = "127.0.0.1:9"

    assert tasks.run_service("fias") == tasks.RUNS_IN_RUNSPACE
    assert set(tasks.ensure_services().values()) == {tasks.RUNS_IN_RUNSPACE}
    assert FiasService in [type(service) for service in embedded_services()]
