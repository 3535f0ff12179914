"""API v1 for faces: /face-terminals/ (create commissions, PATCH enabled=false decommissions), /face-enrolments/
(create starts one, cancel), and a cardholder's /face/ and /face/consent/. No answer ever holds a vector."""

import json

import numpy as np
import pytest

from accesscontrol import faces
from accesscontrol.models import FaceConsent, FaceTemplate, SystemAuditEntry
from devices import actions
from devices.models import Device, FaceEnrolment, FaceTerminal
from tests.devices.face_support import capture, make_terminal
from tests.factories import make_access_point, make_cardholder, make_partition
from tests.support.api import client_with

pytestmark = pytest.mark.django_db

ENROL = ("accesscontrol.view_cardholder", "devices.view_faceenrolment", "devices.add_faceenrolment")
ENROL += ("devices.change_faceenrolment",)


def consenting(**fields):
    holder = make_cardholder(**fields)
    faces.record_consent(holder, operator=None, via="test")
    return holder


def no_vector_in(body, template: FaceTemplate) -> None:
    text = json.dumps(body)
    assert "vector" not in text
    first = float(faces.template_vector(template)[0])
    assert f"{first:.6f}"[:8] not in text


# --- terminals --------------------------------------------------------------------------------------


def test_a_terminal_is_commissioned_listed_and_retrieved(api_admin):
    point = make_access_point(name="Lab")

    response = api_admin.post(
        "/api/v1/face-terminals/",
        {"terminal_id": "lab-1", "name": "Lab face", "access_point": point.pk, "pin_and_face": True},
        format="json",
    )

    assert response.status_code == 201, response.json()
    terminal = FaceTerminal.objects.select_related("device").get()
    body = api_admin.get(f"/api/v1/face-terminals/{terminal.pk}/").json()
    assert body == {
        "id": terminal.pk,
        "terminal_id": "lab-1",
        "device": terminal.device_id,
        "device_id": terminal.device.device_id,
        "name": "Lab face",
        "description": "",
        "enabled": True,
        "access_point": point.pk,
        "direction": "",
        "face_only": True,
        "card_and_face": True,
        "pin_and_face": True,
        "model_name": "xs4face-v1",
        "min_quality": 0.5,
        "require_liveness": True,
        "methods": ["face", "card_face", "pin_face"],
        "online": False,
        "last_seen_at": None,
    }
    assert [row["terminal_id"] for row in api_admin.get("/api/v1/face-terminals/").json()["results"]] == ["lab-1"]
    assert SystemAuditEntry.objects.filter(action="commission_face_terminal", via="api").count() == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"terminal_id": "has space"}, "terminal_id"),
        ({"terminal_id": "taken"}, "terminal_id"),
        ({"name": ""}, "name"),
        ({"model_name": "other"}, "model_name"),
        ({"min_quality": 1.5}, "min_quality"),
        ({"access_point": 10**9}, "access_point"),
        ({"face_only": False, "card_and_face": False}, "non_field_errors"),
    ],
)
def test_a_bad_terminal_is_a_400_naming_the_field(api_admin, payload, field):
    make_terminal(terminal_id="taken")
    point = make_access_point()
    base = {"terminal_id": "new-1", "name": "New face", "access_point": point.pk}

    response = api_admin.post("/api/v1/face-terminals/", base | payload, format="json")

    assert response.status_code == 400 and field in response.json(), response.json()
    assert FaceTerminal.objects.count() == 1


def test_a_patch_changes_settings_disables_it_and_keeps_its_id(api_admin):
    terminal = make_terminal(terminal_id="gate")

    response = api_admin.patch(
        f"/api/v1/face-terminals/{terminal.pk}/", {"enabled": False, "min_quality": 0.7}, format="json"
    )

    assert response.status_code == 200, response.json()
    assert response.json()["enabled"] is False and response.json()["min_quality"] == 0.7
    assert not Device.objects.get(pk=terminal.device_id).enabled
    moved = api_admin.patch(f"/api/v1/face-terminals/{terminal.pk}/", {"terminal_id": "elsewhere"}, format="json")
    assert moved.status_code == 400 and "terminal_id" in moved.json()
    assert api_admin.delete(f"/api/v1/face-terminals/{terminal.pk}/").status_code == 405


def test_terminals_need_their_permissions():
    terminal = make_terminal()
    viewer = client_with("devices.view_faceterminal")

    assert viewer.get("/api/v1/face-terminals/").status_code == 200
    assert viewer.patch(f"/api/v1/face-terminals/{terminal.pk}/", {"enabled": False}, format="json").status_code == 403
    denied = viewer.post("/api/v1/face-terminals/", {"terminal_id": "x", "name": "X"}, format="json")
    assert denied.status_code == 403
    assert client_with().get("/api/v1/face-terminals/").status_code == 403
    assert Device.objects.get(pk=terminal.device_id).enabled and FaceTerminal.objects.count() == 1


# --- enrolments -------------------------------------------------------------------------------------


def test_an_enrolment_is_created_filtered_and_cancelled():
    holder = consenting()
    terminal = make_terminal(terminal_id="lobby")
    client = client_with(*ENROL, all_partitions=True)

    response = client.post(
        "/api/v1/face-enrolments/", {"cardholder": holder.pk, "terminal": terminal.pk}, format="json"
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["cardholder"], body["terminal"], body["terminal_id"], body["status"]) == (
        holder.pk,
        terminal.pk,
        "lobby",
        "pending",
    )
    assert body["requested_by"] and body["expires_at"] and body["template"] is None
    listed = client.get("/api/v1/face-enrolments/", {"cardholder": holder.pk, "status": "pending"}).json()
    assert [row["id"] for row in listed["results"]] == [body["id"]]
    assert client.get("/api/v1/face-enrolments/", {"status": "completed"}).json()["results"] == []

    cancelled = client.post(f"/api/v1/face-enrolments/{body['id']}/cancel/")

    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = client.post(f"/api/v1/face-enrolments/{body['id']}/cancel/")
    assert again.status_code == 400 and "status" in again.json()


def test_an_enrolment_without_consent_is_a_400_and_none_is_made():
    holder = make_cardholder()
    terminal = make_terminal()
    client = client_with(*ENROL, all_partitions=True)

    response = client.post(
        "/api/v1/face-enrolments/", {"cardholder": holder.pk, "terminal": terminal.pk}, format="json"
    )

    assert response.status_code == 400 and "cardholder" in response.json()
    for bad in ({}, {"cardholder": "x", "terminal": terminal.pk}, {"cardholder": holder.pk, "terminal": 10**12}):
        assert client.post("/api/v1/face-enrolments/", bad, format="json").status_code == 400
    assert not FaceEnrolment.objects.exists()


def test_an_enrolment_needs_the_permission_in_the_cardholders_partition():
    holder = consenting()
    terminal = make_terminal()
    elsewhere = client_with(*ENROL, partitions=[make_partition()])
    viewer = client_with("accesscontrol.view_cardholder", "devices.view_faceenrolment", all_partitions=True)
    payload = {"cardholder": holder.pk, "terminal": terminal.pk}

    assert viewer.post("/api/v1/face-enrolments/", payload, format="json").status_code == 403
    assert elsewhere.post("/api/v1/face-enrolments/", payload, format="json").status_code == 400  # unseen cardholder
    assert not FaceEnrolment.objects.exists()
    enrolment = actions.start_face_enrolment(holder, terminal, operator=None, via="test")
    assert viewer.post(f"/api/v1/face-enrolments/{enrolment.pk}/cancel/").status_code == 403
    assert FaceEnrolment.objects.get().status == "pending"


# --- a cardholder's face ----------------------------------------------------------------------------


def test_the_face_state_shows_consent_and_template_metadata_but_no_vector(api_admin):
    holder = make_cardholder()
    assert api_admin.get(f"/api/v1/cardholders/{holder.pk}/face/").json() == {
        "cardholder": holder.pk,
        "consent": None,
        "templates": [],
    }

    consented = api_admin.post(f"/api/v1/cardholders/{holder.pk}/face/consent/")

    assert consented.status_code == 200 and consented.json()["consent"]["given_by"]
    terminal = make_terminal(terminal_id="hall")
    enrolment = actions.start_face_enrolment(holder, terminal, operator=None, via="test")
    actions.complete_face_enrolment("hall", enrolment.pk, capture(quality=0.8))
    template = FaceTemplate.objects.get()
    body = api_admin.get(f"/api/v1/cardholders/{holder.pk}/face/").json()
    assert body["templates"] == [
        {
            "id": template.pk,
            "model_name": "xs4face-v1",
            "dimension": 512,
            "quality": 0.8,
            "created_at": body["templates"][0]["created_at"],
            "source_terminal": "hall",
        }
    ]
    no_vector_in(body, template)
    enrolment_body = api_admin.get(f"/api/v1/face-enrolments/{enrolment.pk}/").json()
    assert enrolment_body["template"] == template.pk
    no_vector_in(enrolment_body, template)
    assert np.asarray(faces.template_vector(template)).size == 512

    withdrawn = api_admin.delete(f"/api/v1/cardholders/{holder.pk}/face/consent/")

    assert withdrawn.status_code == 200 and withdrawn.json() == {
        "cardholder": holder.pk,
        "consent": None,
        "templates": [],
    }
    assert not FaceTemplate.objects.exists() and faces.live_consent(holder) is None


def test_consent_needs_the_change_permission_in_the_cardholders_partition():
    holder = make_cardholder()
    viewer = client_with("accesscontrol.view_cardholder", all_partitions=True)
    elsewhere = client_with(
        "accesscontrol.view_cardholder", "accesscontrol.change_cardholder", partitions=[make_partition()]
    )

    assert viewer.get(f"/api/v1/cardholders/{holder.pk}/face/").status_code == 200
    assert viewer.post(f"/api/v1/cardholders/{holder.pk}/face/consent/").status_code == 403
    assert elsewhere.post(f"/api/v1/cardholders/{holder.pk}/face/consent/").status_code == 404
    assert elsewhere.get(f"/api/v1/cardholders/{holder.pk}/face/").status_code == 404
    assert not FaceConsent.objects.exists()
