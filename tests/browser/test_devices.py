"""A simulated device on the live server's bridge: its events reach the audit trail an operator sees in the browser."""

import pytest

from tests.browser.conftest import screenshot
from tests.browser.helpers import DeviceOnBridge, log_in

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PASSWORD = "Lamp-post 42 & fern"


def test_a_door_forced_open_on_a_simulated_device_shows_in_the_audit_events_an_operator_opens(space, page):
    _, _, device = space.seed_all(
        ("operator", {"username": "ada", "password": PASSWORD, "superuser": True}),
        ("access_point", {"name": "Loading dock"}),
        ("device", {"device_id": 4660, "name": "Dock unit", "door": "Loading dock"}),
    )

    with DeviceOnBridge(space, 4660, device["key_hex"]) as unit:
        unit.connect()
        unit.send_event("door_forced")

    log_in(page, space, "ada", PASSWORD)
    page.goto(space.url("/admin/accesscontrol/auditevent/?kind__exact=door_forced"))
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "Door forced open" in rows.first.inner_text()
    assert "Loading dock" in rows.first.inner_text()
    screenshot(page, "admin-audit-events")
