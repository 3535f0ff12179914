"""Logging in through a real browser (Debian's Chromium) against a live server: with the mouse and with the keyboard.

Until the web app has its own login page (URL name ``login``), the admin's is
the one an operator uses; the tests follow whichever exists.
"""

from urllib.parse import urlparse

import pytest

from tests.browser.conftest import screenshot
from tests.browser.helpers import focus_top_of_page, focused, log_in, login_path, tab_through, url_path

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PASSWORD = "Lamp-post 42 & fern"
SIGNED_IN_NAME = ".topbar .user-name, #user-tools strong"


def landing_path() -> str:
    """Where a password login lands: the dashboard of the web app, or the admin's index."""
    return url_path("dashboard") if url_path("login") else "/admin/"


def test_an_operator_who_logs_in_with_a_password_lands_on_a_page_that_names_them(space, page):
    space.seed("operator", username="ada", password=PASSWORD, superuser=True)

    page.goto(space.url(login_path()))
    screenshot(page, "login")
    log_in(page, space, "ada", PASSWORD)

    assert urlparse(page.url).path == landing_path()
    assert page.locator(SIGNED_IN_NAME).first.text_content().strip() == "ada"
    screenshot(page, "after-login")


def test_a_wrong_password_leaves_the_operator_on_the_login_page_signed_out(space, page):
    space.seed("operator", username="ada", password=PASSWORD, superuser=True)

    log_in(page, space, "ada", "not the password")

    assert urlparse(page.url).path == login_path()
    assert page.locator("input[name=password]").is_visible()
    assert page.locator(SIGNED_IN_NAME).count() == 0
    page.goto(space.url(landing_path()))
    assert urlparse(page.url).path == login_path()


def test_tab_reaches_the_username_then_the_password_then_the_login_button(space, page):
    page.goto(space.url(login_path()))

    stops = tab_through(page)

    names = [stop["name"] for stop in stops]
    assert "username" in names and "password" in names, stops
    login_form = stops[names.index("password")]["form"]
    buttons = [i for i, stop in enumerate(stops) if stop["type"] == "submit" and stop["form"] == login_form]
    assert buttons, stops
    assert stops[names.index("username")]["form"] == login_form
    assert names.index("username") < names.index("password") < buttons[0]


def test_an_operator_logs_in_with_the_keyboard_alone_and_sees_where_the_focus_is(space, page):
    space.seed("operator", username="ada", password=PASSWORD, superuser=True)
    page.goto(space.url(login_path()))
    focus_top_of_page(page)

    for _ in range(20):
        page.keyboard.press("Tab")
        if focused(page)["name"] == "username":
            break
    outline = page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.boxShadow]; }"
    )
    page.keyboard.type("ada")
    page.keyboard.press("Tab")
    assert focused(page)["name"] == "password"
    page.keyboard.type(PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")

    assert outline != ["none", "none"], "the focused field shows no focus ring"
    assert urlparse(page.url).path == landing_path()
    assert page.locator(SIGNED_IN_NAME).first.text_content().strip() == "ada"
