"""The operator's day from issue 5, in Debian's Chromium against a live server, one step per test.

Log in with a password and a TOTP code, create a cardholder through the form,
grant an access level, issue a key, watch a card presented at a simulated
device appear in the live monitor without a reload, lock down a zone from the
monitor through the confirmation dialog, and be logged off when idle. Every
step is driven through accessible names (roles and labels), as a screen reader
or a keyboard user would find them.
"""

import re
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.browser.helpers import DeviceOnBridge, fresh_totp_code, url_path

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PASSWORD = "Lamp-post 42 & fern"


def log_in_by_label(page, server, username: str, password: str, *, totp_key: str | None = None) -> None:
    """Log in as a person would: find the fields by their labels and the buttons by their names."""
    page.goto(server.url(url_path("login")))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    if totp_key:
        page.get_by_label("Code").fill(fresh_totp_code(totp_key))
        with page.expect_navigation():
            page.get_by_role("button", name="Verify").click()


def test_an_operator_logs_in_with_a_password_then_the_code_of_their_authenticator(space, page):
    (ada,) = space.seed_all(("operator", {"username": "ada", "password": PASSWORD, "superuser": True, "totp": True}))
    page.goto(space.url(url_path("login")))
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()

    assert urlparse(page.url).path == url_path("login_otp")
    expect(page.get_by_role("heading", name="Two-factor login")).to_be_visible()
    page.get_by_label("Code").fill(fresh_totp_code(ada["totp_key"]))
    with page.expect_navigation():
        page.get_by_role("button", name="Verify").click()

    assert urlparse(page.url).path == url_path("dashboard")
    expect(page.locator(".topbar .user-name")).to_have_text("ada")
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()


def test_a_wrong_code_keeps_the_operator_on_the_two_factor_step_with_a_field_error(space, page):
    (ada,) = space.seed_all(("operator", {"username": "ada", "password": PASSWORD, "superuser": True, "totp": True}))
    page.goto(space.url(url_path("login")))
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    right = fresh_totp_code(ada["totp_key"])
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    page.get_by_label("Code").fill(wrong)
    with page.expect_navigation():
        page.get_by_role("button", name="Verify").click()

    assert urlparse(page.url).path == url_path("login_otp")
    expect(page.get_by_role("alert").first).to_be_visible()
    page.goto(space.url(url_path("dashboard")))
    assert urlparse(page.url).path == url_path("login")


def test_an_operator_creates_a_cardholder_through_the_form_and_lands_on_their_page(space, page):
    space.seed_all(
        ("operator", {"username": "ada", "password": PASSWORD, "superuser": True}),
        ("partition", {"name": "Office building"}),
    )
    log_in_by_label(page, space, "ada", PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Cardholders").click()
    page.get_by_role("link", name="New cardholder").click()

    page.get_by_label("Partition").select_option(label="Office building")
    page.get_by_label("First name").fill("Grace")
    page.get_by_label("Last name").fill("Hopper")
    page.get_by_label("Email").fill("grace@example.com")
    with page.expect_navigation():
        page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("Grace Hopper")
    assert re.fullmatch(r"/cardholders/\d+/", urlparse(page.url).path), page.url
    expect(page.get_by_role("status").or_(page.locator(".messages")).first).to_be_visible()


def test_a_cardholder_form_without_a_last_name_shows_the_error_beside_the_field(space, page):
    space.seed_all(
        ("operator", {"username": "ada", "password": PASSWORD, "superuser": True}),
        ("partition", {"name": "Office building"}),
    )
    log_in_by_label(page, space, "ada", PASSWORD)
    page.goto(space.url(url_path("cardholder_create")))

    page.get_by_label("First name").fill("Grace")
    with page.expect_navigation():
        page.get_by_role("button", name="Save").click()

    assert urlparse(page.url).path == url_path("cardholder_create")
    field = page.locator(".field.has-error")
    expect(field).to_have_count(1)
    expect(field.get_by_label("Last name")).to_be_visible()
    expect(field.get_by_role("alert")).to_have_text("This field is required.")


def test_an_operator_grants_an_access_level_then_issues_a_key_on_the_cardholder_page(space, page):
    _, _, _, grace = space.seed_all(
        ("operator", {"username": "ada", "password": PASSWORD, "superuser": True}),
        ("access_point", {"name": "Lobby", "zones": ["Main building"]}),
        ("access_level", {"name": "Staff", "access_points": ["Lobby"]}),
        ("cardholder", {"first_name": "Grace", "last_name": "Hopper"}),
    )
    log_in_by_label(page, space, "ada", PASSWORD)
    page.goto(space.url(url_path("cardholder", grace["id"])))
    levels = page.get_by_role("region", name="Access levels")
    expect(levels.get_by_text("No access levels.")).to_be_visible()

    levels.get_by_label("Access level").select_option(label="Staff")
    with page.expect_navigation():
        levels.get_by_role("button", name="Grant").click()

    levels = page.get_by_role("region", name="Access levels")
    expect(levels.get_by_role("listitem")).to_have_count(1)
    expect(levels.get_by_role("listitem")).to_contain_text("Staff")

    keys = page.get_by_role("region", name="Keys")
    keys.get_by_label("UID").fill("04A1B2C3D4")
    with page.expect_navigation():
        keys.get_by_role("button", name="Issue key").click()

    keys = page.get_by_role("region", name="Keys")
    rows = keys.get_by_role("row")
    expect(rows).to_have_count(2)  # the header and the new key
    expect(rows.nth(1)).to_contain_text("04A1B2C3D4")
    expect(rows.nth(1)).to_contain_text("Issued")
    screenshot(page, "scenario-cardholder-with-level-and-key")


def seed_site_with_a_door(server) -> dict:
    """Ada (all permissions), Grace with a key for the Lobby (zone Main building), and the Lobby's control unit."""
    *_, device = server.seed_all(
        ("operator", {"username": "ada", "password": PASSWORD, "superuser": True}),
        ("access_point", {"name": "Lobby", "zones": ["Main building"]}),
        ("access_level", {"name": "Staff", "access_points": ["Lobby"]}),
        (
            "cardholder",
            {"first_name": "Grace", "last_name": "Hopper", "access_levels": ["Staff"], "key_uid": "04A1B2C3D4"},
        ),
        ("device", {"device_id": 4660, "name": "Lobby unit", "door": "Lobby"}),
    )
    return device


def test_a_card_presented_at_a_simulated_door_appears_in_the_monitor_feed_without_a_reload(space, page):
    device = seed_site_with_a_door(space)
    log_in_by_label(page, space, "ada", PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Live monitor").click()
    expect(page.locator("#monitor-connection")).to_have_text("Live")
    page.evaluate("() => { window.sameDocument = true; }")
    feed = page.get_by_role("table", name="Live events, newest first")
    before = feed.locator("tbody tr").count()

    with DeviceOnBridge(space, 4660, device["key_hex"]) as unit:
        unit.connect()
        decision = unit.present_card("04A1B2C3D4")

        granted = feed.locator("tbody tr", has_text="Grace Hopper")
        expect(granted).to_have_count(1)
        expect(granted).to_contain_text("Access granted")
        expect(granted).to_contain_text("Lobby")
        expect(granted).to_contain_text("04A1B2C3D4")
        assert page.evaluate("() => window.sameDocument") is True, "the page was reloaded"
        assert feed.locator("tbody tr").count() > before
        assert decision["grant"] is True, decision
        screenshot(page, "scenario-monitor-live-event")


def test_an_operator_locks_down_a_zone_from_the_monitor_after_confirming_in_the_dialog(space, page):
    device = seed_site_with_a_door(space)
    with DeviceOnBridge(space, 4660, device["key_hex"]) as unit:
        unit.connect()
        log_in_by_label(page, space, "ada", PASSWORD)
        page.goto(space.url(url_path("monitor")))
        zones = page.get_by_role("region", name="Zones")

        zones.get_by_role("button", name="Lock down Main building").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("Lock down Main building?")
        assert page.evaluate("() => document.activeElement.id") == "confirm-ok"
        screenshot(page, "scenario-monitor-lockdown-dialog")
        page.keyboard.press("Escape")  # cancelled: nothing happens
        expect(dialog).to_be_hidden()
        expect(zones.get_by_text("Lockdown", exact=True)).to_have_count(0)

        zones.get_by_role("button", name="Lock down Main building").click()
        with page.expect_navigation():
            dialog.get_by_role("button", name="Confirm").click()

        zones = page.get_by_role("region", name="Zones")
        expect(zones.get_by_text("Lockdown", exact=True)).to_be_visible()
        expect(zones.get_by_role("button", name="End lockdown of Main building")).to_be_visible()
        commands = page.get_by_role("region", name="Your commands")
        expect(commands.get_by_role("row", name=re.compile("Lobby"))).to_contain_text("Succeeded", timeout=15_000)
        screenshot(page, "scenario-monitor-zone-lockdown")


def test_an_idle_monitor_page_logs_the_operator_off_and_says_why(start_space, page):
    # The least idle time the settings allow is 60 s; the page's clock is moved on instead of waiting a minute.
    server = start_space(SPACE_SESSION_IDLE_SECONDS=60)
    server.seed("operator", username="ada", password=PASSWORD, superuser=True)
    log_in_by_label(page, server, "ada", PASSWORD)
    page.clock.install()
    page.goto(server.url(url_path("monitor")))
    expect(page.get_by_role("heading", name="Live monitor")).to_be_visible()

    page.clock.run_for(50_000)
    assert urlparse(page.url).path == url_path("monitor"), "logged off before the idle time"
    page.clock.run_for(15_000)
    page.wait_for_url(lambda url: urlparse(url).path == url_path("login"))

    expect(page.get_by_role("status")).to_have_text("You were logged off after 1 minute without activity.")
    page.goto(server.url(url_path("monitor")))
    assert urlparse(page.url).path == url_path("login")
    screenshot(page, "login-after-idle")
