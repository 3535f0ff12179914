"""The web app with the keyboard alone: the skip link, a visible focus, and the confirmation dialog's focus."""

from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import focus_top_of_page, focused, log_in, url_path

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PASSWORD = "Lamp-post 42 & fern"
FOCUS_RING = "() => { const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.boxShadow]; }"


@pytest.fixture
def signed_in(space, page):
    _, grace = space.seed_all(
        ("operator", {"username": "ada", "password": PASSWORD, "superuser": True}),
        ("cardholder", {"first_name": "Grace", "last_name": "Hopper", "key_uid": "04A1B2C3D4"}),
    )
    log_in(page, space, "ada", PASSWORD)
    return space, grace


def test_the_first_tab_shows_the_skip_link_and_enter_takes_the_focus_past_the_menu(signed_in, page):
    server, _ = signed_in
    page.goto(server.url(url_path("cardholders")))
    focus_top_of_page(page)

    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    box = skip.bounding_box()
    assert box["y"] >= 0 and box["x"] >= 0 and box["width"] > 20, f"the skip link is off screen: {box}"
    assert page.evaluate(FOCUS_RING) != ["none", "none"]

    page.keyboard.press("Enter")
    assert focused(page)["id"] == "main"
    page.keyboard.press("Tab")
    in_main = page.evaluate("() => document.getElementById('main').contains(document.activeElement)")
    assert in_main, focused(page)
    assert urlparse(page.url).path == url_path("cardholders")


def test_every_stop_of_the_tab_order_on_the_cardholder_page_shows_a_focus_ring(signed_in, page):
    server, grace = signed_in
    page.goto(server.url(url_path("cardholder", grace["id"])))
    focus_top_of_page(page)

    unringed = []
    for _ in range(30):
        page.keyboard.press("Tab")
        stop = focused(page)
        if stop["tag"] == "body":
            break
        if page.evaluate(FOCUS_RING) == ["none", "none"]:
            unringed.append(stop)
    assert unringed == []


def test_the_confirmation_dialog_takes_the_focus_keeps_it_and_gives_it_back_when_cancelled(signed_in, page):
    server, grace = signed_in
    page.goto(server.url(url_path("cardholder", grace["id"])))
    deactivate = page.get_by_role("button", name="Deactivate")
    deactivate.focus()

    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("button", name="Confirm")).to_be_focused()
    stops = set()
    for _ in range(4):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.getElementById('confirm-dialog').contains(document.activeElement)"):
            stops.add(focused(page)["text"])
    assert {"Cancel", "Confirm"} <= stops

    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(deactivate).to_be_focused()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Active")


def test_confirming_with_the_keyboard_does_what_the_button_says(signed_in, page):
    server, grace = signed_in
    page.goto(server.url(url_path("cardholder", grace["id"])))
    page.get_by_role("button", name="Deactivate").focus()

    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog").get_by_role("button", name="Confirm")).to_be_focused()
    with page.expect_navigation():
        page.keyboard.press("Enter")

    expect(page.get_by_role("heading", level=1)).to_contain_text("Inactive")
