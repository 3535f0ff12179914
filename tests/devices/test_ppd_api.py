"""The PPD API (/api/v1/ppd/locks/...): permissions, bad input, the secret's handling, events stored once."""

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accesscontrol.models import ApiKey, AuditEvent, SystemAuditEntry
from devices import locks
from devices.models import LockState
from tests.devices.test_locks import make_lock
from tests.factories import make_access_point, make_cardholder, make_key, make_operator
from tests.support.api import client_with

pytestmark = pytest.mark.django_db


@pytest.fixture
def ppd():
    return client_with("devices.use_ppd")


@pytest.fixture
def lock():
    return make_lock(make_access_point(name="Room 12"))


def url(lock, what=""):
    return f"/api/v1/ppd/locks/{lock.pk}/{what}/" if what else "/api/v1/ppd/locks/"


def upload(client, lock, *events):
    return client.post(url(lock, "audit"), {"events": list(events)}, format="json")


def event(number, **fields):
    return {"id": number, "at": "2026-11-20T10:00:00Z", "kind": "access_granted", **fields}


@pytest.mark.parametrize(
    ("method", "what", "body"),
    [
        ("get", "", None),
        ("get", "config", None),
        ("post", "loaded", {"config_revision": 1, "blacklist_number": 0, "battery": 50, "at": "2026-11-20T10:00Z"}),
        ("post", "audit", {"events": [event(1)]}),
    ],
)
def test_every_endpoint_needs_the_use_ppd_permission(lock, method, what, body):
    # Changing devices is not enough: the configuration carries the site card key.
    client = client_with("devices.view_device", "devices.change_device", "accesscontrol.view_auditevent")

    answer = getattr(client, method)(url(lock, what), body, format="json")

    assert answer.status_code == 403
    assert not LockState.objects.exists()
    assert not AuditEvent.objects.exists()
    assert not SystemAuditEntry.objects.filter(action="export_lock_config").exists()


def test_an_api_key_of_a_ppd_operator_is_accepted(lock):
    operator = make_operator("devices.use_ppd")
    _, token = ApiKey.issue(operator, "PPD")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {token}")

    assert client.get(url(lock, "config")).status_code == 200
    assert APIClient().get(url(lock, "config")).status_code == 401


def test_the_config_is_not_cached_and_its_export_is_in_the_system_auditor(ppd, lock):
    answer = ppd.get(url(lock, "config"))

    assert answer.status_code == 200
    assert answer["Cache-Control"] == "no-store"
    config = locks.config_from_json(answer.json())
    assert config == locks.lock_config(lock)
    entry = SystemAuditEntry.objects.get(action="export_lock_config")
    assert (entry.object_type, entry.object_id, entry.detail["revision"]) == (
        "devices.device",
        str(lock.pk),
        config.revision,
    )
    assert entry.address == "127.0.0.1"


def test_a_lock_without_a_door_gets_a_clear_400(ppd):
    answer = ppd.get(url(make_lock(device_id=7100), "config"))

    assert answer.status_code == 400
    assert "drives no door" in answer.json()["non_field_errors"][0]


def test_only_offline_locks_are_ppd_locks(ppd):
    unit = make_lock(make_access_point(), device_id=7200, name="Unit")
    unit.kind = "control_unit"
    unit.save()

    assert ppd.get(url(unit, "config")).status_code == 404


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"config_revision", "blacklist_number", "battery", "at"}),
        (
            {"config_revision": 0, "blacklist_number": -1, "battery": 101, "at": "yesterday"},
            {"config_revision", "blacklist_number", "battery", "at"},
        ),
        (
            {"config_revision": 2**32, "blacklist_number": "x", "battery": None, "at": "2026-11-20T10:00Z"},
            {"config_revision", "blacklist_number", "battery"},
        ),
    ],
)
def test_bad_loaded_reports_get_field_errors(ppd, lock, body, fields):
    answer = ppd.post(url(lock, "loaded"), body, format="json")

    assert answer.status_code == 400
    assert set(answer.json()) == fields
    assert not LockState.objects.exists()


def test_a_loaded_report_from_the_future_is_refused(ppd, lock):
    at = timezone.now() + dt.timedelta(hours=1)
    body = {"config_revision": 5, "blacklist_number": 0, "battery": 50, "at": at.isoformat()}

    answer = ppd.post(url(lock, "loaded"), body, format="json")

    assert answer.status_code == 400
    assert "PPD's clock" in answer.json()["at"][0]


@pytest.mark.parametrize(
    ("events", "field"),
    [
        ("not a list", "events"),
        ([{"id": 0, "at": "2026-11-20T10:00Z", "kind": "access_granted"}], "id"),
        ([event(1, kind="teleported")], "kind"),
        ([event(1, reason="because")], "reason"),
        ([event(1, uid="not hex")], "uid"),
        ([event(1, at="soon")], "at"),
        ([event(1, key_id=-3)], "key_id"),
    ],
)
def test_bad_events_get_field_errors_and_nothing_is_stored(ppd, lock, events, field):
    answer = ppd.post(url(lock, "audit"), {"events": events}, format="json")

    assert answer.status_code == 400
    errors = answer.json()["events"]
    assert field == "events" or field in errors["0"]
    assert not AuditEvent.objects.exists()


def test_repeated_event_ids_in_one_upload_are_refused(ppd, lock):
    answer = upload(ppd, lock, event(1), event(1))

    assert answer.status_code == 400
    assert answer.json() == {"events": ["Each event id may appear only once."]}


def test_uploaded_events_name_the_cardholder_by_key_and_land_once(ppd, lock):
    holder = make_cardholder(first_name="Grace", last_name="Hopper")
    key = make_key(holder, uid="04AABBCC")

    first = upload(ppd, lock, event(1, key_id=key.pk), event(2, kind="access_denied", reason="blacklisted", uid="0b0b"))
    again = upload(ppd, lock, event(1, key_id=key.pk), event(2, kind="access_denied", reason="blacklisted"), event(3))

    assert first.json() == {"received": 2, "new": 2, "stored_up_to": 2}
    assert again.json() == {"received": 3, "new": 1, "stored_up_to": 3}
    rows = AuditEvent.objects.filter(device=lock).order_by("device_event_id")
    assert [(e.device_event_id, e.kind, e.reason, e.key_uid, e.cardholder_id) for e in rows] == [
        (1, "access_granted", "", "04AABBCC", holder.pk),
        (2, "access_denied", "blacklisted", "0B0B", None),
        (3, "access_granted", "", "", None),
    ]
    assert {(e.access_point_id, e.access_point_name, e.cardholder_name) for e in rows[:1]} == {
        (lock.doors.get().access_point_id, "Room 12", "Grace Hopper")
    }
    assert LockState.objects.get(device=lock).collected_at is not None


def test_an_empty_upload_says_what_is_stored_already(ppd, lock):
    upload(ppd, lock, event(7))

    assert upload(ppd, lock).json() == {"received": 0, "new": 0, "stored_up_to": 7}


def test_the_list_says_which_locks_need_a_visit_and_why(ppd, lock):
    fresh = make_lock(make_access_point(), device_id=7300, name="Fresh lock")
    locks.record_loaded(
        fresh,
        config_revision=locks.lock_config(fresh).revision,
        blacklist_number=0,
        battery=80,
        at=timezone.now(),
        operator=None,
    )

    every = ppd.get(url(lock)).json()
    needing = ppd.get(url(lock), {"needs_update": "true"}).json()
    fine = ppd.get(url(lock), {"needs_update": "false"}).json()

    assert [(item["name"], item["needs_update"], item["reasons"]) for item in every["results"]] == [
        ("Fresh lock", False, []),
        ("Lock 7001", True, ["never_initialised"]),
    ]
    assert [item["id"] for item in needing["results"]] == [lock.pk]
    assert [item["id"] for item in fine["results"]] == [fresh.pk]
    assert needing["results"][0]["state"] is None
    assert needing["results"][0]["config_revision"] == locks.lock_config(lock).revision
    assert ppd.get(url(lock), {"needs_update": "maybe"}).status_code == 400
