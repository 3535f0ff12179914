"""Cardholder photos in Debian's Chromium against a live server: an operator uploads a phone's photo on the
cardholder's page and sees it upright, a text file named .jpg is refused on the form, and when the card is
presented at a simulated door the live monitor shows the face beside the name."""

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import screenshot
from tests.browser.helpers import DeviceOnBridge, log_in, url_path
from tests.support.photos import camera_jpeg

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PASSWORD = "Lamp-post 42 & fern"


def loaded_size(locator) -> list[int]:
    """The image's size as the browser decoded it ([0, 0] while it has not loaded, or failed)."""
    return locator.evaluate("(img) => img.complete ? [img.naturalWidth, img.naturalHeight] : [0, 0]")


def test_a_photo_uploaded_on_the_page_is_upright_and_shows_in_the_monitor(space, page):
    *_, grace, device = space.seed_all(
        ("operator", {"username": "ada", "password": PASSWORD, "superuser": True}),
        ("access_point", {"name": "Lobby"}),
        ("access_level", {"name": "Staff", "access_points": ["Lobby"]}),
        (
            "cardholder",
            {"first_name": "Grace", "last_name": "Hopper", "access_levels": ["Staff"], "key_uid": "04A1B2C3D4"},
        ),
        ("device", {"device_id": 4660, "name": "Lobby unit", "door": "Lobby"}),
    )
    log_in(page, space, "ada", PASSWORD)
    page.goto(space.url(url_path("cardholder", grace["id"])))
    expect(page.get_by_text("No photo")).to_be_visible()

    page.get_by_label("Photo").set_input_files({"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"Hi!\n"})
    page.get_by_role("button", name="Upload photo").click()
    expect(page.get_by_text("This file is not an image Space reads")).to_be_visible()

    # A landscape sensor image whose EXIF says "turn it a quarter": upright, it is a portrait.
    page.get_by_label("Photo").set_input_files({"name": "grace.jpg", "mimeType": "image/jpeg", "buffer": camera_jpeg()})
    page.get_by_role("button", name="Upload photo").click()
    photo = page.get_by_role("img", name="Photo of Grace Hopper")
    expect(photo).to_be_visible()
    page.wait_for_function("() => document.querySelector('img.photo').complete")
    assert loaded_size(photo) == [360, 480]
    expect(page.get_by_role("button", name="Remove photo")).to_be_visible()
    screenshot(page, "cardholder-photo")

    page.goto(space.url(url_path("monitor")))
    expect(page.locator("#monitor-connection")).to_have_text("Live")
    feed = page.get_by_role("table", name="Live events, newest first")
    with DeviceOnBridge(space, 4660, device["key_hex"]) as unit:
        unit.connect()
        unit.present_card("04A1B2C3D4")
        row = feed.locator("tbody tr", has_text="Grace Hopper").first
        expect(row).to_contain_text("Access granted")
        thumbnail = row.locator("img.monitor-photo")
        expect(thumbnail).to_have_count(1)
        page.wait_for_function("() => document.querySelector('img.monitor-photo').naturalWidth > 0")
        assert loaded_size(thumbnail) == [72, 96]
        screenshot(page, "monitor-event-with-photo")
