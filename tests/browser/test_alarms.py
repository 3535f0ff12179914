"""The live monitor's open alarms in a real browser: Acknowledge posts through htmx (with the CSRF token), the
panel is swapped for one without the alarm, and the audit trail has the acknowledgement."""

import pytest

from tests.browser.conftest import screenshot
from tests.browser.helpers import log_in

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PASSWORD = "Lamp-post 42 & fern"


def test_an_operator_acknowledges_a_forced_door_on_the_monitor(space, page):
    _, _, forced, held = space.seed_all(
        ("operator", {"username": "ada", "password": PASSWORD, "superuser": True}),
        ("access_point", {"name": "Loading dock"}),
        ("alarm", {"kind": "forced", "access_point": "Loading dock"}),
        ("alarm", {"kind": "held_open", "access_point": "Loading dock"}),
    )

    log_in(page, space, "ada", PASSWORD)
    page.goto(space.url("/monitor/"))
    panel = page.locator("#monitor-alarms")
    assert panel.locator("tbody tr").count() == 2
    screenshot(page, "monitor-open-alarms")
    page.locator(f"#alarm-{forced['id']} button").click()

    page.wait_for_selector(f"#alarm-{forced['id']}", state="detached")
    assert panel.locator("tbody tr").count() == 1
    assert panel.locator(f"#alarm-{held['id']}").is_visible()
    acknowledged = space.shell(
        "import json\nfrom accesscontrol.models import AuditEvent\n"
        "print(json.dumps(list(AuditEvent.objects.filter(kind='alarm_acknowledged')"
        ".values_list('access_point_name', 'detail__alarm'))))"
    )
    assert acknowledged == [["Loading dock", forced["id"]]]


def test_an_operator_commissions_an_osdp_reader_from_its_bus_page(space, page):
    _, _, bus = space.seed_all(
        ("operator", {"username": "ada", "password": PASSWORD, "superuser": True}),
        ("access_point", {"name": "Side door"}),
        ("osdp_bus", {"name": "Lobby line"}),
    )

    log_in(page, space, "ada", PASSWORD)
    page.goto(space.url(f"/osdp-buses/{bus['id']}/"))
    page.get_by_role("link", name="Commission a reader here").click()
    page.get_by_label("Name", exact=True).fill("Side reader")
    page.get_by_label("Address", exact=True).fill("7")
    page.get_by_label("Access point").select_option(label="Side door")
    page.get_by_label("Contact", exact=True).fill("0")
    page.get_by_label("Exit button").fill("1")
    screenshot(page, "osdp-commission")
    page.get_by_role("button", name="Commission").click()

    page.wait_for_selector("#osdp-title")
    text = page.inner_text("main")
    assert "Side reader" in text and "is commissioned (device id 1)" in text
    assert "Lobby line" in text
    cells = page.locator("#door-1-wiring td").all_inner_texts()
    assert cells[:4] == ["Door 1", "0", "0\nactive: open", "1"]
    screenshot(page, "osdp-reader-device-page")
