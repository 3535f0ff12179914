"""What the SHIP tests share: operators with the rights SHIP requests need, and requests made as them."""

import pytest

from accesscontrol.models import ApiKey
from integrations.ship import operations
from integrations.ship import xml as ship
from tests.factories import make_operator

# Everything the SHIP requests touch, as an integrator's operator would hold it.
INTEGRATOR = (
    "accesscontrol.view_cardholder",
    "accesscontrol.add_cardholder",
    "accesscontrol.change_cardholder",
    "accesscontrol.delete_cardholder",
    "accesscontrol.add_cardholderpermission",
    "accesscontrol.delete_cardholderpermission",
    "accesscontrol.view_accesspoint",
    "accesscontrol.change_accesspoint",
    "accesscontrol.view_zone",
    "accesscontrol.view_accesslevel",
    "accesscontrol.view_timeperiod",
    "accesscontrol.view_key",
    "accesscontrol.add_key",
    "accesscontrol.change_key",
    "devices.add_devicecommand",
)


def integrator(*, partitions=(), all_partitions=True, permissions=INTEGRATOR):
    return make_operator(*permissions, partitions=partitions, all_partitions=all_partitions and not partitions)


def api_key(operator) -> str:
    return ApiKey.issue(operator, "integration")[1]


def call(operator, name: str, params: list) -> ship.Response:
    """Make the request as ``operator``, through the codec both ways, as the endpoints do."""
    answer = operations.handle(ship.parse_request(ship.build_request(name, params)), operator, "192.0.2.7")
    return ship.parse_response(answer)


@pytest.fixture
def operator(db):
    return integrator()
