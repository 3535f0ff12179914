"""The web app's face pages: the cardholder page's Face panel (consent, templates, enrolment at a terminal) and
the face terminals list with its commissioning and settings forms."""

import re

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from accesscontrol import faces
from accesscontrol.models import FaceConsent, FaceTemplate, SystemAuditEntry
from devices import actions
from devices.models import Device, FaceEnrolment, FaceTerminal
from tests.accesscontrol.web.places_helpers import client_with, page_text, web_rows
from tests.devices.face_support import capture, make_terminal
from tests.factories import make_access_point, make_cardholder, make_operator, make_partition
from tests.support.api import grant

pytestmark = pytest.mark.django_db

SEE = ("accesscontrol.view_cardholder",)
CHANGE = (*SEE, "accesscontrol.change_cardholder")
ENROL = (*CHANGE, "devices.view_faceenrolment", "devices.add_faceenrolment", "devices.change_faceenrolment")
TERMINALS = ("devices.view_faceterminal", "devices.add_faceterminal", "devices.change_faceterminal")
TERMINALS += ("accesscontrol.view_accesspoint",)


def messages_of(response) -> str:
    return " ".join(str(message) for message in get_messages(response.wsgi_request))


def consenting(**fields):
    holder = make_cardholder(**fields)
    faces.record_consent(holder, operator=None, via="test")
    return holder


def face_panel(response) -> str:
    return re.search(r'<section class="card" aria-labelledby="face-title".*?</section>', page_text(response), re.S)[0]


# --- the cardholder's Face panel --------------------------------------------------------------------


def test_the_panel_shows_the_consent_and_the_templates_metadata_never_a_vector():
    holder = consenting()
    terminal = make_terminal(terminal_id="hall-1")
    enrolment = actions.start_face_enrolment(holder, terminal, operator=None, via="test")
    actions.complete_face_enrolment("hall-1", enrolment.pk, capture(quality=0.87))
    template = FaceTemplate.objects.get()
    client = client_with(*SEE, "devices.view_faceenrolment", all_partitions=True)

    response = client.get(f"/cardholders/{holder.pk}/")

    assert response.status_code == 200
    panel = face_panel(response)
    assert "Consent given" in panel and "xs4face-v1" in panel and "0.87" in panel and "hall-1" in panel
    assert "Completed" in panel
    assert "Withdraw consent" not in panel and "Enrol at terminal" not in panel  # viewing only
    sealed = bytes(template.vector_sealed)
    assert sealed.hex() not in page_text(response)
    assert str(faces.template_vector(template)[0])[:8] not in page_text(response)
    without = face_panel(client_with(*SEE, all_partitions=True).get(f"/cardholders/{holder.pk}/"))
    assert "hall-1" in without and "Recent enrolments" not in without  # the template's terminal, not the enrolments


def test_an_operator_records_consent_then_withdraws_it_erasing_the_templates():
    holder = make_cardholder()
    client = client_with(*CHANGE, all_partitions=True)
    page = face_panel(client.get(f"/cardholders/{holder.pk}/"))
    assert "No consent" in page and "Record consent" in page and "csrfmiddlewaretoken" in page

    response = client.post(f"/cardholders/{holder.pk}/face/consent/")

    assert response.status_code == 302 and response["Location"].endswith(f"/cardholders/{holder.pk}/#face")
    consent = faces.live_consent(holder)
    assert consent is not None and consent.given_by.get_username() == response.wsgi_request.user.get_username()
    faces.store_template(holder, capture(), via="test")
    assert "data-confirm" in face_panel(client.get(f"/cardholders/{holder.pk}/"))

    response = client.post(f"/cardholders/{holder.pk}/face/withdraw/")

    assert "1 face template erased" in messages_of(response)
    assert faces.live_consent(holder) is None and not FaceTemplate.objects.exists()
    assert [row.action for row in web_rows()] == ["face consent", "face consent withdrawn"]


def test_consent_needs_the_right_to_change_the_cardholder_in_their_partition():
    holder = make_cardholder()
    viewer = client_with(*SEE, all_partitions=True)
    elsewhere = client_with(*CHANGE, partitions=[make_partition()])

    assert viewer.post(f"/cardholders/{holder.pk}/face/consent/").status_code == 403
    assert elsewhere.post(f"/cardholders/{holder.pk}/face/consent/").status_code == 404
    assert not FaceConsent.objects.exists()
    assert client_with(*CHANGE, all_partitions=True).get(f"/cardholders/{holder.pk}/face/consent/").status_code == 405


def test_an_operator_enrols_at_an_enabled_terminal_and_cancels_it():
    holder = consenting()
    terminal = make_terminal(name="Lobby face", terminal_id="lobby")
    make_terminal(name="Old face", enabled=False)
    client = client_with(*ENROL, all_partitions=True)
    panel = face_panel(client.get(f"/cardholders/{holder.pk}/"))
    assert "Lobby face (lobby)" in panel and "Old face" not in panel

    response = client.post(f"/cardholders/{holder.pk}/face/enrol/", {"terminal": terminal.pk})

    assert response.status_code == 302
    enrolment = FaceEnrolment.objects.get()
    assert (enrolment.cardholder, enrolment.terminal, enrolment.status) == (holder, terminal, "pending")
    assert "Waiting to be sent" in face_panel(client.get(f"/cardholders/{holder.pk}/"))

    client.post(f"/face-enrolments/{enrolment.pk}/cancel/")

    assert FaceEnrolment.objects.get().status == "cancelled"
    assert [row.action for row in web_rows()] == ["face enrolment", "face enrolment cancelled"]


def test_enrolling_without_consent_or_at_a_disabled_terminal_says_why_and_starts_nothing():
    holder = make_cardholder()
    terminal = make_terminal()
    disabled = make_terminal(enabled=False)
    client = client_with(*ENROL, all_partitions=True)

    response = client.post(f"/cardholders/{holder.pk}/face/enrol/", {"terminal": terminal.pk})
    assert "not consented" in messages_of(response)
    faces.record_consent(holder, operator=None, via="test")
    response = client.post(f"/cardholders/{holder.pk}/face/enrol/", {"terminal": disabled.pk})
    assert "Choose an enabled face terminal" in messages_of(response)
    response = client.post(f"/cardholders/{holder.pk}/face/enrol/", {"terminal": "x"})
    assert response.status_code == 302

    assert not FaceEnrolment.objects.exists()


def test_enrolling_needs_the_enrolment_permission_in_the_cardholders_partition():
    holder = consenting()
    terminal = make_terminal()
    client = client_with(*CHANGE, all_partitions=True)
    operator = make_operator(*CHANGE, all_partitions=True)
    grant(operator, "devices.add_faceenrolment", partitions=[make_partition()])
    elsewhere = Client()
    elsewhere.force_login(operator)

    assert "Enrol at terminal" not in face_panel(client.get(f"/cardholders/{holder.pk}/"))
    assert client.post(f"/cardholders/{holder.pk}/face/enrol/", {"terminal": terminal.pk}).status_code == 403
    assert elsewhere.post(f"/cardholders/{holder.pk}/face/enrol/", {"terminal": terminal.pk}).status_code == 403
    assert not FaceEnrolment.objects.exists()


# --- the face terminals pages -----------------------------------------------------------------------


def test_the_list_shows_id_name_door_methods_and_online_state():
    point = make_access_point(name="Server room")
    terminal = make_terminal(name="Server face", terminal_id="srv-1", access_point=point, pin_and_face=True)
    Device.objects.filter(pk=terminal.device_id).update(online=True)
    client = client_with(*TERMINALS, all_partitions=True)

    response = client.get("/face-terminals/")

    text = page_text(response)
    assert response.status_code == 200
    for shown in ("srv-1", "Server face", "Server room", "PIN + face", "Online", "Commission a face terminal"):
        assert shown in text
    assert "srv-1" not in page_text(client.get("/face-terminals/", {"q": "nothing-like-it"}))
    assert 'href="/face-terminals/"' in page_text(client.get("/"))  # in the menu
    # An access point the operator may not see is not named.
    assert "Server room" not in page_text(client_with(*TERMINALS).get("/face-terminals/"))


def test_the_list_needs_its_permission():
    assert client_with("devices.view_device").get("/face-terminals/").status_code == 403


def test_an_operator_commissions_a_terminal_through_the_form():
    point = make_access_point(name="Lab")
    client = client_with(*TERMINALS, all_partitions=True)
    assert client.get("/face-terminals/add/").status_code == 200
    form = {
        "name": "Lab face",
        "terminal_id": "lab-7",
        "access_point": point.pk,
        "direction": "",
        "face_only": "on",
        "model_name": "xs4face-v1",
        "min_quality": "0.6",
        "require_liveness": "on",
        "enabled": "on",
    }

    response = client.post("/face-terminals/add/", form)

    assert response.status_code == 302
    terminal = FaceTerminal.objects.select_related("device").get()
    assert (terminal.terminal_id, terminal.device.name, terminal.min_quality) == ("lab-7", "Lab face", 0.6)
    assert terminal.methods == ["face"]
    assert web_rows("commission_face_terminal")

    again = client.post("/face-terminals/add/", form | {"name": "Other"})
    assert again.status_code == 200 and "already exists" in page_text(again)
    none = client.post("/face-terminals/add/", form | {"terminal_id": "lab-8", "name": "N", "face_only": ""})
    assert none.status_code == 200 and "at least one" in page_text(none)
    assert FaceTerminal.objects.count() == 1


def test_an_operator_edits_and_disables_a_terminal():
    terminal = make_terminal(name="Gate face", terminal_id="gate")
    client = client_with(*TERMINALS, all_partitions=True)
    page = client.get(f"/face-terminals/{terminal.pk}/edit/")
    assert page.status_code == 200 and "Gate face" in page_text(page) and 'name="terminal_id"' not in page_text(page)
    form = {
        "name": "Gate face 2",
        "access_point": terminal.access_point_id,
        "direction": "entry",
        "face_only": "on",
        "card_and_face": "on",
        "model_name": "xs4face-v1",
        "min_quality": "0.5",
        "require_liveness": "on",
    }

    response = client.post(f"/face-terminals/{terminal.pk}/edit/", form)

    assert response.status_code == 302
    terminal = FaceTerminal.objects.select_related("device").get(pk=terminal.pk)
    assert terminal.device.name == "Gate face 2" and not terminal.device.enabled and terminal.direction == "entry"
    assert set(web_rows("update")[0].detail["changes"]) == {"name", "enabled", "direction"}


def test_editing_needs_the_change_permission():
    terminal = make_terminal()
    client = client_with("devices.view_faceterminal")
    assert client.get(f"/face-terminals/{terminal.pk}/edit/").status_code == 403
    assert client.get("/face-terminals/add/").status_code == 403


# --- the admin ------------------------------------------------------------------------------------


def admin_url(model, view, *args):
    return reverse(f"admin:devices_{model._meta.model_name}_{view}", args=args)


def test_the_admin_commissions_and_changes_a_terminal_through_the_actions(admin_client):
    point = make_access_point(name="Dock")
    form = {
        "terminal_id": "dock-1",
        "name": "Dock face",
        "access_point": point.pk,
        "direction": "",
        "face_only": "on",
        "model_name": "xs4face-v1",
        "min_quality": "0.5",
        "enabled": "on",
    }

    added = admin_client.post(admin_url(FaceTerminal, "add"), form)

    assert added.status_code == 302
    terminal = FaceTerminal.objects.select_related("device").get()
    assert terminal.device.name == "Dock face" and terminal.device.kind == "face_terminal"
    changed = admin_client.post(admin_url(FaceTerminal, "change", terminal.pk), form | {"enabled": ""})
    assert changed.status_code == 302 and not Device.objects.get(pk=terminal.device_id).enabled
    assert [row.action for row in SystemAuditEntry.objects.order_by("id")] == ["commission_face_terminal", "update"]
    taken = admin_client.post(admin_url(FaceTerminal, "add"), form | {"terminal_id": "dock-2"})
    assert taken.status_code == 200 and FaceTerminal.objects.count() == 1
    for view, args in (("changelist", ()), ("change", (terminal.pk,))):
        assert admin_client.get(admin_url(FaceTerminal, view, *args)).status_code == 200


def test_the_admin_lists_enrolments_read_only(admin_client):
    holder = consenting()
    enrolment = actions.start_face_enrolment(holder, make_terminal(), operator=None, via="test")

    assert admin_client.get(admin_url(FaceEnrolment, "changelist")).status_code == 200
    page = admin_client.get(admin_url(FaceEnrolment, "change", enrolment.pk))
    assert page.status_code == 200 and 'name="_save"' not in page_text(page)
    assert admin_client.get(admin_url(FaceEnrolment, "add")).status_code == 403
