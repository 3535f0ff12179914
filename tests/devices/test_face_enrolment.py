"""Face terminals' actions: commissioning, updating, and enrolling a cardholder's face at a terminal
(consent first, one open enrolment per terminal, only that terminal's capture, in time, sealed)."""

import datetime as dt
import io

import numpy as np
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from accesscontrol import actions as domain
from accesscontrol import faces
from accesscontrol.models import FaceTemplate, SystemAuditEntry
from devices import actions
from devices.choices import DeviceKind
from devices.face import pki
from devices.models import Device, FaceEnrolment, FaceTerminal
from tests.devices.face_support import DIMENSION, capture, make_terminal
from tests.factories import make_access_point, make_cardholder, make_operator

pytestmark = pytest.mark.django_db

Status = FaceEnrolment.Status


@pytest.fixture
def operator():
    return make_operator(is_superuser=True)


@pytest.fixture
def consenting(operator):
    holder = make_cardholder(first_name="Grace", last_name="Hopper")
    faces.record_consent(holder, operator=operator, via="test")
    return holder


def start(holder, terminal, operator):
    return actions.start_face_enrolment(holder, terminal, operator=operator, via="test")


# --- commissioning ------------------------------------------------------------------------------


def test_commissioning_makes_a_keyless_face_terminal_device_and_its_terminal(operator):
    point = make_access_point(name="Lab door")

    terminal = actions.commission_face_terminal(
        name="Lab face", terminal_id="lab-1", access_point=point, operator=operator, via="test", pin_and_face=True
    )

    device = Device.objects.get(pk=terminal.device_id)
    assert device.kind == DeviceKind.FACE_TERMINAL and device.name == "Lab face" and device.enabled
    assert device.key_sealed == b"" and device.device_id >= 1
    assert terminal.access_point == point and terminal.methods == ["face", "card_face", "pin_face"]
    entry = SystemAuditEntry.objects.get(action="commission_face_terminal")
    assert entry.detail["terminal_id"] == "lab-1" and entry.detail["access_point"] == point.pk


def test_commissioning_refuses_bad_fields_with_field_errors_and_saves_nothing(operator):
    make_terminal(terminal_id="taken")

    with pytest.raises(ValidationError) as raised:
        actions.commission_face_terminal(
            name="",
            terminal_id="taken",
            access_point=make_access_point(),
            operator=operator,
            via="test",
            model_name="no-such-model",
            min_quality=2.0,
        )

    assert {"name", "terminal_id", "model_name", "min_quality"} <= set(raised.value.message_dict)
    assert FaceTerminal.objects.count() == 1 and Device.objects.count() == 1


def test_commissioning_refuses_a_terminal_that_takes_nothing(operator):
    with pytest.raises(ValidationError):
        make_terminal(face_only=False, card_and_face=False, pin_and_face=False)
    assert not FaceTerminal.objects.exists()


def test_an_update_records_what_changed_and_keeps_the_terminal_id(operator):
    terminal = make_terminal(terminal_id="hall")
    other = make_access_point(name="Other door")

    actions.update_face_terminal(terminal, name="Hall face", access_point=other, operator=operator, via="test")

    terminal = FaceTerminal.objects.select_related("device").get(pk=terminal.pk)
    assert terminal.device.name == "Hall face" and terminal.access_point == other
    changes = SystemAuditEntry.objects.get(action="update").detail["changes"]
    assert set(changes) == {"name", "access_point"}
    with pytest.raises(ValueError):
        actions.update_face_terminal(terminal, terminal_id="elsewhere", operator=operator, via="test")


def test_decommissioning_disables_the_device_and_cancels_its_open_enrolment(operator, consenting):
    terminal = make_terminal()
    enrolment = start(consenting, terminal, operator)

    actions.decommission_face_terminal(terminal, operator=operator, via="test")

    assert not Device.objects.get(pk=terminal.device_id).enabled
    assert FaceEnrolment.objects.get(pk=enrolment.pk).status == Status.CANCELLED


# --- starting an enrolment ----------------------------------------------------------------------


def test_an_enrolment_starts_pending_and_expires_after_the_setting(operator, consenting):
    terminal = make_terminal()
    before = timezone.now()

    enrolment = start(consenting, terminal, operator)

    assert enrolment.status == Status.PENDING and enrolment.requested_by == operator
    seconds = settings.SPACE_FACE_ENROL_SECONDS
    assert (
        before + dt.timedelta(seconds=seconds) <= enrolment.expires_at <= timezone.now() + dt.timedelta(seconds=seconds)
    )
    assert list(actions.open_face_enrolments()) == [enrolment]
    assert SystemAuditEntry.objects.get(action="face enrolment").detail["terminal"] == terminal.terminal_id


def test_an_enrolment_needs_a_live_consent(operator):
    holder = make_cardholder()
    terminal = make_terminal()

    with pytest.raises(ValidationError) as raised:
        start(holder, terminal, operator)

    assert "consent" in raised.value.message_dict["cardholder"][0]
    faces.record_consent(holder, operator=operator, via="test")
    faces.withdraw_consent(holder, operator=operator, via="test")
    with pytest.raises(ValidationError):
        start(holder, terminal, operator)
    assert not FaceEnrolment.objects.exists()


def test_a_deactivated_or_banned_cardholder_is_not_enrolled(operator, consenting):
    terminal = make_terminal()
    banned = make_cardholder(banned=True)
    faces.record_consent(banned, operator=operator, via="test")
    domain.deactivate_cardholder(consenting, operator=operator, via="test")

    for holder in (consenting, banned):
        with pytest.raises(ValidationError) as raised:
            start(holder, terminal, operator)
        assert set(raised.value.message_dict) == {"cardholder"}
    assert not FaceEnrolment.objects.exists()


def test_a_disabled_terminal_or_one_of_an_unknown_model_enrols_nobody(operator, consenting):
    disabled = make_terminal(enabled=False)
    unknown = make_terminal()
    FaceTerminal.objects.filter(pk=unknown.pk).update(model_name="retired-model")
    unknown.refresh_from_db()

    for terminal in (disabled, unknown):
        with pytest.raises(ValidationError) as raised:
            start(consenting, terminal, operator)
        assert set(raised.value.message_dict) == {"terminal"}
    assert not FaceEnrolment.objects.exists()


def test_a_terminal_has_one_open_enrolment_the_newer_cancels_the_older(operator, consenting):
    terminal = make_terminal()
    elsewhere = make_terminal()
    other = make_cardholder()
    faces.record_consent(other, operator=operator, via="test")
    first = start(consenting, terminal, operator)
    at_another = start(consenting, elsewhere, operator)

    second = start(other, terminal, operator)

    assert FaceEnrolment.objects.get(pk=first.pk).status == Status.CANCELLED
    assert FaceEnrolment.objects.get(pk=second.pk).status == Status.PENDING
    assert FaceEnrolment.objects.get(pk=at_another.pk).status == Status.PENDING
    assert FaceEnrolment.objects.filter(terminal=terminal, status__in=FaceEnrolment.OPEN).count() == 1


def test_a_cancelled_enrolment_takes_no_capture_and_cannot_be_cancelled_twice(operator, consenting):
    terminal = make_terminal()
    enrolment = start(consenting, terminal, operator)

    actions.cancel_face_enrolment(enrolment, operator=operator, via="test")

    with pytest.raises(ValidationError):
        actions.cancel_face_enrolment(enrolment, operator=operator, via="test")
    with pytest.raises(ValidationError):
        actions.complete_face_enrolment(terminal.terminal_id, enrolment.pk, capture())
    assert not FaceTemplate.objects.exists()


# --- the terminal's answer ----------------------------------------------------------------------


def test_sent_then_completed_stores_a_sealed_template_in_the_operators_name(operator, consenting):
    terminal = make_terminal()
    enrolment = start(consenting, terminal, operator)
    assert actions.mark_face_enrolment_sent(enrolment.pk)
    assert not actions.mark_face_enrolment_sent(enrolment.pk)  # sent once
    assert list(actions.open_face_enrolments()) == []
    sent = capture(seed=3)

    done = actions.complete_face_enrolment(terminal.terminal_id, enrolment.pk, sent)

    stored = FaceEnrolment.objects.get(pk=enrolment.pk)
    assert stored.status == Status.COMPLETED and stored.sent_at is not None and stored.finished_at is not None
    template = FaceTemplate.objects.get(cardholder=consenting)
    assert stored.template == template == done.template
    assert template.source_terminal == terminal.terminal_id and template.quality == 0.9
    unit = np.asarray(sent.vector) / np.linalg.norm(sent.vector)
    assert np.allclose(faces.template_vector(template), unit, atol=1e-6)
    assert np.asarray(unit, dtype="<f4").tobytes()[:16] not in bytes(template.vector_sealed)
    entry = SystemAuditEntry.objects.get(action="face enrolled")
    assert entry.operator == operator and entry.via == "face terminal"


def test_another_terminals_capture_is_refused_and_changes_nothing(operator, consenting):
    terminal = make_terminal()
    intruder = make_terminal()
    enrolment = start(consenting, terminal, operator)

    with pytest.raises(ValidationError) as raised:
        actions.complete_face_enrolment(intruder.terminal_id, enrolment.pk, capture())

    assert "enrolment" in raised.value.message_dict
    assert FaceEnrolment.objects.get(pk=enrolment.pk).status == Status.PENDING
    assert not FaceTemplate.objects.exists()
    with pytest.raises(ValidationError):
        actions.fail_face_enrolment(intruder.terminal_id, enrolment.pk, "no face")
    assert FaceEnrolment.objects.get(pk=enrolment.pk).status == Status.PENDING


def test_a_capture_after_the_expiry_is_refused_and_the_enrolment_expires(operator, consenting):
    terminal = make_terminal()
    enrolment = start(consenting, terminal, operator)
    late = enrolment.expires_at + dt.timedelta(seconds=1)

    with pytest.raises(ValidationError):
        actions.complete_face_enrolment(terminal.terminal_id, enrolment.pk, capture(), now=late)

    assert FaceEnrolment.objects.get(pk=enrolment.pk).status == Status.EXPIRED
    assert not FaceTemplate.objects.exists()


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (capture(dimension=DIMENSION - 1), "template"),
        (capture(model="other-model"), "model"),
        (capture(quality=0.1), "quality"),
    ],
)
def test_a_bad_template_fails_the_enrolment_with_the_reason(operator, consenting, bad, field):
    terminal = make_terminal()
    enrolment = start(consenting, terminal, operator)

    with pytest.raises(ValidationError) as raised:
        actions.complete_face_enrolment(terminal.terminal_id, enrolment.pk, bad)

    assert field in raised.value.message_dict
    stored = FaceEnrolment.objects.get(pk=enrolment.pk)
    assert stored.status == Status.FAILED and stored.error.startswith(field) and stored.template is None
    assert not FaceTemplate.objects.exists()


def test_a_consent_withdrawn_meanwhile_fails_the_enrolment(operator, consenting):
    terminal = make_terminal()
    enrolment = start(consenting, terminal, operator)
    faces.withdraw_consent(consenting, operator=operator, via="test")

    with pytest.raises(ValidationError):
        actions.complete_face_enrolment(terminal.terminal_id, enrolment.pk, capture())

    assert FaceEnrolment.objects.get(pk=enrolment.pk).status == Status.FAILED
    assert not FaceTemplate.objects.exists()


def test_the_terminal_reports_a_failure(operator, consenting):
    terminal = make_terminal()
    enrolment = start(consenting, terminal, operator)

    actions.fail_face_enrolment(terminal.terminal_id, enrolment.pk, "not live")

    stored = FaceEnrolment.objects.get(pk=enrolment.pk)
    assert (stored.status, stored.error) == (Status.FAILED, "not live")


def test_expiry_closes_only_the_open_enrolments_past_their_time(operator, consenting):
    due, fresh, done = make_terminal(), make_terminal(), make_terminal()
    late = start(consenting, due, operator)
    young = start(consenting, fresh, operator)
    finished = start(consenting, done, operator)
    actions.complete_face_enrolment(done.terminal_id, finished.pk, capture())
    FaceEnrolment.objects.filter(pk__in=[late.pk, finished.pk]).update(expires_at=timezone.now())

    assert actions.expire_face_enrolments() == 1

    statuses = dict(FaceEnrolment.objects.values_list("pk", "status"))
    assert statuses == {late.pk: Status.EXPIRED, young.pk: Status.PENDING, finished.pk: Status.COMPLETED}


# --- manage.py face_terminal ----------------------------------------------------------------------


def test_the_command_commissions_the_rows_with_the_certificate_and_revoke_disables_them(tmp_path):
    folder = tmp_path / "device-ca"
    output = io.StringIO()
    call_command("face_broker", "broker.site", "--out", str(folder), stdout=output)
    point = make_access_point(name="Loading dock")

    call_command(
        "face_terminal",
        "dock-1",
        "--name",
        "Dock face",
        "--access-point",
        "Loading dock",
        "--out",
        str(folder),
        stdout=output,
    )

    terminal = FaceTerminal.objects.select_related("device").get()
    assert (terminal.terminal_id, terminal.device.name, terminal.access_point) == ("dock-1", "Dock face", point)
    assert pki.DevicePaths(folder).terminal("dock-1").cert.exists()
    assert SystemAuditEntry.objects.get(action="commission_face_terminal").via == "command"
    with pytest.raises(CommandError, match="commissioned already"):
        call_command(
            "face_terminal", "dock-1", "--name", "Again", "--access-point", str(point.pk), "--out", str(folder)
        )
    call_command("face_terminal", "dock-1", "--out", str(folder), stdout=output)  # a new certificate, as before

    call_command("face_terminal", "dock-1", "--revoke", "--out", str(folder), stdout=output)

    assert not Device.objects.get(pk=terminal.device_id).enabled
    assert len(pki.revocations(pki.DevicePaths(folder))) == 1


def test_the_command_refuses_half_or_bad_rows_before_issuing_anything(tmp_path):
    folder = tmp_path / "device-ca"
    call_command("face_broker", "broker.site", "--out", str(folder), stdout=io.StringIO())

    with pytest.raises(CommandError, match="go together"):
        call_command("face_terminal", "gate-1", "--name", "Gate face", "--out", str(folder))
    with pytest.raises(CommandError, match="no access point"):
        call_command("face_terminal", "gate-1", "--name", "Gate", "--access-point", "Nowhere", "--out", str(folder))
    make_access_point(name="Gate")
    with pytest.raises(CommandError, match="name"):
        call_command("face_terminal", "gate-1", "--name", "", "--access-point", "Gate", "--out", str(folder))

    assert not FaceTerminal.objects.exists()
    assert not pki.DevicePaths(folder).terminal("gate-1").cert.exists()


def test_the_database_itself_refuses_a_second_open_enrolment_at_a_terminal(operator, consenting):
    terminal = make_terminal()
    first = start(consenting, terminal, operator)
    second = FaceEnrolment(cardholder=consenting, terminal=terminal, expires_at=first.expires_at)

    with pytest.raises(IntegrityError), transaction.atomic():
        second.save()

    FaceEnrolment.objects.create(
        cardholder=consenting, terminal=terminal, expires_at=first.expires_at, status=Status.FAILED
    )
    assert FaceEnrolment.objects.filter(terminal=terminal).count() == 2
