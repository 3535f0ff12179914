"""A lockdown on the live monitor puts the muster report one click away, and the report is a page to print."""

import pytest

from tests.browser.conftest import screenshot
from tests.browser.helpers import log_in

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PASSWORD = "Lamp-post 42 & fern"


def test_during_a_lockdown_the_monitor_leads_to_the_printable_muster_report(space, page):
    _, hall = space.seed_all(
        (
            "operator",
            {
                "username": "grace",
                "password": PASSWORD,
                "permissions": ["accesscontrol.view_auditevent", "accesscontrol.view_muster"],
            },
        ),
        ("roll_call_area", {"name": "Assembly hall", "people": ["Ada Lovelace", "Alan Turing"], "lockdown": True}),
    )

    log_in(page, space, "grace", PASSWORD)
    page.goto(space.url("/monitor/"))
    assert page.locator(f"#roll-call-{hall['id']} .roll-call-count").inner_text() == "2"
    button = page.locator(".muster-alert").get_by_role("link", name="Muster report")
    assert button.is_visible()
    screenshot(page, "monitor-lockdown-muster")
    button.click()

    page.wait_for_url("**/muster/")
    report = page.locator("main")
    assert "Assembly hall" in report.inner_text()
    assert report.get_by_text("Lovelace, Ada").is_visible() and report.get_by_text("Turing, Alan").is_visible()
    page.emulate_media(media="print")
    assert not page.locator(".sidebar").is_visible()
    assert not page.get_by_role("button", name="Print").is_visible()
    assert page.locator(".muster-area").is_visible()
    screenshot(page, "muster-report-print")
