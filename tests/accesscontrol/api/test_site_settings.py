"""The site's settings: one object, read and patched at /api/v1/site/."""

import pytest

from accesscontrol.models import SiteSettings, SystemAuditEntry
from tests.factories import make_calendar
from tests.support.api import client_with

pytestmark = pytest.mark.django_db


def test_it_shows_the_site_settings():
    client = client_with("accesscontrol.view_sitesettings")

    response = client.get("/api/v1/site/")

    assert response.status_code == 200
    assert response.json() == {"name": "Space", "default_calendar": None, "lockdown": False}


def test_it_patches_the_site_settings_and_records_it():
    calendar = make_calendar()
    client = client_with(
        "accesscontrol.view_sitesettings", "accesscontrol.change_sitesettings", "accesscontrol.view_calendar"
    )

    response = client.patch("/api/v1/site/", {"lockdown": True, "default_calendar": calendar.pk}, format="json")

    assert response.status_code == 200
    site = SiteSettings.load()
    assert (site.lockdown, site.default_calendar) == (True, calendar)
    entry = SystemAuditEntry.objects.get()
    assert (entry.action, entry.via) == ("update", "api")
    assert sorted(entry.detail["changes"]) == ["default_calendar", "lockdown"]


def test_without_permission_it_refuses_and_changes_nothing():
    client = client_with("accesscontrol.view_sitesettings")

    response = client.patch("/api/v1/site/", {"lockdown": True}, format="json")

    assert response.status_code == 403
    assert SiteSettings.load().lockdown is False
    assert not SystemAuditEntry.objects.exists()


def test_bad_values_are_field_errors(admin_client):
    response = admin_client.patch("/api/v1/site/", {"lockdown": "sometimes", "default_calendar": 10**20}, format="json")

    assert response.status_code == 400
    assert sorted(response.json()) == ["default_calendar", "lockdown"]


def test_the_site_cannot_be_replaced_or_deleted(admin_client):
    SiteSettings.load()

    assert admin_client.put("/api/v1/site/", {"name": "X"}, format="json").status_code == 405
    assert admin_client.delete("/api/v1/site/").status_code == 405
    assert SiteSettings.objects.count() == 1
