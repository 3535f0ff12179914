"""Screenshots of the main pages at 1280x800 on the demo site, and checks that each looks like a finished product.

One live server runs ``manage.py seed_demo`` (an office building and a hotel,
300 cardholders, about sixty doors) plus a day of history (tests/browser/seed.py
``demo_history``: access events, operator groups, system auditor rows, jobs).
Every page is visited once, saved under test-output/screenshots/, and checked
for what an operator would notice at once: a page wider than the window, a
heading missing, a server error.
"""

from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.browser.helpers import DeviceOnBridge, fresh_totp_code, url_path

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PASSWORD = "Lamp-post 42 & fern"


@pytest.fixture
def demo_site(space):
    space.manage("seed_demo", timeout=300)
    ada, ids, unit_1, unit_3, key = space.seed_all(
        ("operator", {"username": "ada", "password": PASSWORD, "superuser": True, "totp": True}),
        ("demo_history", {}),
        ("device_key", {"device_id": 1001}),
        ("device_key", {"device_id": 1003}),
        ("valid_key", {"level": "Staff"}),
    )
    # Two control units on the bridge, so the devices and the monitor show some online.
    units = [DeviceOnBridge(space, unit["device_id"], unit["key_hex"]) for unit in (unit_1, unit_3)]
    try:
        for unit in units:
            unit.connect()
        yield space, ada, ids, units[0], key
    finally:
        for unit in units:
            unit.close()


def assert_fits_the_window(page, name: str) -> None:
    """Nothing scrolls sideways at 1280 px, and the page has one level-1 heading."""
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{name}: the page is {overflow}px wider than the window"
    expect(page.get_by_role("heading", level=1)).to_have_count(1)


def test_screenshots_of_the_main_pages_on_the_demo_site(demo_site, page):
    server, ada, ids, main_entrance_unit, key = demo_site

    page.goto(server.url(url_path("login")))
    screenshot(page, "01-login")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    screenshot(page, "02-two-factor")
    page.get_by_label("Code").fill(fresh_totp_code(ada["totp_key"]))
    with page.expect_navigation():
        page.get_by_role("button", name="Verify").click()
    assert urlparse(page.url).path == url_path("dashboard")

    pages = [
        ("03-dashboard", url_path("dashboard")),
        ("04-cardholders", url_path("cardholders")),
        ("05-cardholder", url_path("cardholder", ids["cardholder"])),
        ("06-keys", url_path("keys")),
        ("07-access-points", url_path("access_points")),
        ("08-access-point", url_path("access_point", ids["access_point"])),
        ("09-zone", url_path("zone", ids["zone"])),
        ("10-time-period", url_path("time_period", ids["time_period"])),
        ("11-calendar", url_path("calendar", ids["calendar"])),
        ("12-access-levels", url_path("access_levels")),
        ("13-access-level", url_path("access_level", ids["level"])),
        ("14-devices", url_path("devices")),
        ("15-device", url_path("device", ids["device"])),
        ("16-monitor", url_path("monitor")),
        ("17-audit-trail", url_path("audit_trail")),
        ("18-system-auditor", url_path("system_audit")),
        ("19-operators", url_path("operators")),
        ("20-operator-groups", url_path("operator_groups")),
        ("21-operator-group-edit", url_path("operator_group_edit", ids["group"])),
        ("22-jobs", url_path("jobs")),
        ("23-zones", url_path("zones")),
        ("24-locations", url_path("locations")),
        ("25-time-periods", url_path("time_periods")),
        ("26-calendars", url_path("calendars")),
        ("27-cardholder-new", url_path("cardholder_create")),
        ("28-account", url_path("account")),
        ("29-job-running", url_path("job", ids["job"])),
        ("30-offline-locks", url_path("offline_locks")),
        ("31-blacklist", url_path("blacklist")),
        ("32-front-desk", url_path("front_desk")),
        ("33-front-desk-room", url_path("front_desk_room", ids["room"])),
    ]
    problems = []
    for name, path in pages:
        response = page.goto(server.url(path))
        assert response.status == 200, f"{name}: {path} answered {response.status}"
        if name == "16-monitor":
            expect(page.locator("#monitor-connection")).to_have_text("Live")
            main_entrance_unit.present_card(key["uid"])
            expect(page.locator("#monitor-feed tr.new", has_text=key["cardholder"])).to_have_count(1)
        elif name != "29-job-running":  # that page polls every second
            page.wait_for_load_state("networkidle")
        screenshot(page, name)
        try:
            assert_fits_the_window(page, name)
        except AssertionError as error:
            problems.append(str(error).splitlines()[0])
    assert problems == []
