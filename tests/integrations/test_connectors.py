"""integrations.connectors: the long-lived Celery task and beat's check, with a real Redis lease."""

import pytest

from core import hosting
from core.lease import Lease, redis_client
from integrations import connectors
from integrations.pms.fias_service import FiasService
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
        yield redis_client(redis_url)


def test_a_redelivered_run_returns_at_once_while_the_connector_runs_elsewhere(production):
    elsewhere = Lease("connector-fias", client=production)
    assert elsewhere.acquire()

    assert connectors.run_connector("fias", lease_seconds=3.0) == hosting.ALREADY_RUNNING
    assert production.get(connectors.CONNECTORS["fias"].lease().key) == elsewhere.token


def test_beats_check_leaves_a_running_connector_alone_and_names_only_configured_ones(production):
    elsewhere = Lease("connector-fias", client=production)
    assert elsewhere.acquire()

    assert connectors.ensure_connectors() == {"fias": connectors.RUNNING}


def test_a_connector_that_is_not_configured_or_unknown_is_not_run(production, settings):
    settings.SPACE_FIAS_ADDRESS = ""

    assert connectors.run_connector("fias") == connectors.NOT_CONFIGURED
    assert connectors.run_connector("no-such-connector") == connectors.NOT_CONFIGURED
    assert connectors.ensure_connectors() == {}


def test_in_the_embedded_profile_runspace_runs_the_configured_connectors(settings):
    settings.SPACE_CONNECTORS_IN_RUNSPACE = True
    settings.REDIS_URL = None
    settings.SPACE_FIAS_ADDRESS = "127.0.0.1:9"

    assert connectors.run_connector("fias") == connectors.RUNS_IN_RUNSPACE
    assert set(connectors.ensure_connectors().values()) == {connectors.RUNS_IN_RUNSPACE}
    assert FiasService in [type(service) for service in connectors.embedded()]
