"""Two-factor login: enrolment with a QR code, the second step, backup codes, removal, and groups that require it."""

import base64
import time

import pytest
from django.urls import reverse

from accesscontrol import twofactor
from accesscontrol.models import (
    ApiKey,
    Authenticator,
    BackupCode,
    BackupCodes,
    LoginAttempt,
    OperatorGroup,
    SystemAuditEntry,
)
from accesscontrol.models.secondfactor import backup_code_digest
from accesscontrol.views.login import PENDING_SESSION_KEY
from tests.accesscontrol.web.logins import code_for, enrolled, log_in, send_code, signed_in_operator_id
from tests.factories import make_operator

pytestmark = pytest.mark.django_db

WRONG_CODE = "That code is not right. Codes change every 30 seconds; try the current one."


def actions() -> list[str]:
    return list(SystemAuditEntry.objects.order_by("id").values_list("action", flat=True))


def stored_digests(operator) -> set[str]:
    return set(BackupCode.objects.filter(device__user=operator).values_list("digest", flat=True))


def requiring_group(*members) -> OperatorGroup:
    group = OperatorGroup.objects.create(name="Security desk", require_two_factor=True)
    group.members.add(*members)
    return group


# --- enrolment -----------------------------------------------------------------------------


def test_the_enrolment_page_shows_a_qr_code_and_the_key_as_text(client):
    operator = make_operator(username="ada")
    client.force_login(operator)

    response = client.get(reverse("account_two_factor"))

    html = response.content.decode()
    device = Authenticator.objects.get(user=operator)
    assert device.confirmed is False
    assert '<svg width="' in html and "<title>QR code for your authenticator app</title>" in html
    assert response.context["secret"].replace(" ", "") in device.config_url
    assert device.config_url.startswith("otpauth://totp/Space%3Aada?secret=")
    assert "http://" not in html.split("<svg", 1)[1].split("</svg>", 1)[0]  # drawn inline, nothing fetched


def test_a_device_counts_only_once_confirmed_by_a_valid_code(client):
    operator = make_operator(username="ada")
    client.force_login(operator)
    client.get(reverse("account_two_factor"))
    device = Authenticator.objects.get(user=operator)

    wrong = client.post(reverse("account_two_factor"), {"code": "000000" if code_for(device) != "000000" else "111111"})
    device.refresh_from_db()
    assert wrong.status_code == 200 and wrong.context["form"].errors["code"]
    assert device.confirmed is False

    right = client.post(reverse("account_two_factor"), {"code": code_for(device)})

    device.refresh_from_db()
    assert device.confirmed is True
    codes = right.context["codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    # Only keyed digests are stored, not the codes.
    assert stored_digests(operator) == {backup_code_digest(code) for code in codes}
    assert not stored_digests(operator) & set(codes)
    assert all(code in right.content.decode() for code in codes)
    assert actions() == ["two_factor_enrol"]


def test_reloading_the_enrolment_page_keeps_the_same_key_until_it_is_confirmed(client):
    operator = make_operator()
    client.force_login(operator)

    first = client.get(reverse("account_two_factor")).context["secret"]
    second = client.get(reverse("account_two_factor")).context["secret"]

    assert first == second
    assert Authenticator.objects.filter(user=operator).count() == 1


@pytest.mark.parametrize("code", ["", "12345", "abcdef", "1234567"])
def test_an_enrolment_code_that_is_not_six_digits_gets_a_field_error(client, code):
    operator = make_operator()
    client.force_login(operator)

    response = client.post(reverse("account_two_factor"), {"code": code})

    assert response.status_code == 200
    assert response.context["form"].errors["code"]
    assert not Authenticator.objects.filter(user=operator, confirmed=True).exists()


def test_an_enrolled_operator_is_sent_back_to_the_account_page(client):
    operator = make_operator()
    enrolled(operator)
    client.force_login(operator)

    response = client.get(reverse("account_two_factor"))

    assert response.status_code == 302 and response.url == reverse("account")


# --- the second step -------------------------------------------------------------------------


def test_an_operator_with_a_device_must_give_a_code_after_the_password(client):
    operator = make_operator(username="ada")
    device = enrolled(operator)

    after_password = log_in(client, "ada", next="/account/")
    assert after_password.url == reverse("login_otp")
    assert signed_in_operator_id(client) is None
    assert client.get(reverse("account")).status_code == 302  # nothing opens yet

    response = send_code(client, code_for(device))

    assert response.url == "/account/"
    assert signed_in_operator_id(client) == str(operator.pk)
    assert client.get(reverse("account")).status_code == 200
    login = SystemAuditEntry.objects.get(action="login")
    assert (login.operator_id, login.detail) == (operator.pk, {"second_factor": "totp"})


def test_a_wrong_code_gets_a_field_error_and_is_recorded_as_a_failure(client):
    operator = make_operator(username="ada")
    device = enrolled(operator)
    log_in(client, "ada")

    response = send_code(client, "000000" if code_for(device) != "000000" else "111111", address="192.0.2.4")

    assert response.status_code == 200
    assert response.context["form"].errors["code"] == [WRONG_CODE]
    assert signed_in_operator_id(client) is None
    failed = SystemAuditEntry.objects.get(action="login_failed")
    assert (failed.operator_id, failed.address, failed.detail) == (
        operator.pk,
        "192.0.2.4",
        {"username": "ada", "reason": "otp"},
    )


def test_wrong_codes_count_towards_the_lockout(client):
    operator = make_operator(username="ada")
    device = enrolled(operator)
    wrong = "000000" if code_for(device) != "000000" else "111111"
    log_in(client, "ada", "wrong password")
    log_in(client, "ada", "wrong password")
    log_in(client, "ada")
    send_code(client, wrong)
    send_code(client, wrong)

    locking = send_code(client, wrong)
    after = log_in(client, "ada")

    assert locking.url == reverse("login")
    assert PENDING_SESSION_KEY not in client.session
    assert after.context["form"].non_field_errors() == [
        "Too many failed logins for this username. Try again in 15 minutes."
    ]
    assert list(LoginAttempt.objects.order_by("id").values_list("reason", flat=True)) == [
        "password",
        "password",
        "otp",
        "otp",
        "otp",
        "locked",
    ]
    assert "login_locked" in actions()


def test_a_right_code_during_a_lockout_is_refused(client):
    operator = make_operator(username="ada")
    device = enrolled(operator)
    log_in(client, "ada")
    for _ in range(5):
        LoginAttempt.objects.create(username="ada", reason="password")

    response = send_code(client, code_for(device))

    assert response.url == reverse("login")
    assert signed_in_operator_id(client) is None


def test_a_backup_code_logs_in_once(client):
    operator = make_operator(username="ada")
    enrolled(operator)
    code = twofactor.new_backup_codes(operator)[0]

    log_in(client, "ada")
    first = send_code(client, code.upper())
    client.post(reverse("logout"))
    log_in(client, "ada")
    second = send_code(client, code)

    assert first.status_code == 302 and first.url == "/"
    assert second.status_code == 200 and second.context["form"].errors["code"] == [WRONG_CODE]
    assert BackupCode.objects.filter(device__user=operator).count() == 9
    login = SystemAuditEntry.objects.get(action="login")
    assert login.detail == {"second_factor": "backup_code"}


def test_the_code_step_without_a_password_first_goes_back_to_the_login_page(client):
    assert client.get(reverse("login_otp")).url == reverse("login")
    assert send_code(client, "123456").url == reverse("login")


def test_the_code_step_expires_after_five_minutes(client):
    operator = make_operator(username="ada")
    device = enrolled(operator)
    log_in(client, "ada")
    session = client.session
    session[PENDING_SESSION_KEY] = {**session[PENDING_SESSION_KEY], "at": time.time() - 301}
    session.save()

    response = send_code(client, code_for(device))

    assert response.url == reverse("login")
    assert signed_in_operator_id(client) is None


@pytest.mark.parametrize("code", ["", "12", "abc def ghi", "!!!!!!"])
def test_a_malformed_code_gets_a_field_error(client, code):
    enrolled(make_operator(username="ada"))
    log_in(client, "ada")

    response = send_code(client, code)

    assert response.status_code == 200
    assert response.context["form"].errors["code"]
    assert not LoginAttempt.objects.filter(reason="otp").exists()


# --- the account page ------------------------------------------------------------------------------------


def test_new_backup_codes_replace_the_old_ones(client):
    operator = make_operator()
    enrolled(operator)
    old = stored_digests(operator)
    client.force_login(operator)

    response = client.post(reverse("account"), {"action": "backup_codes"})

    new = set(response.context["codes"])
    assert len(new) == 10
    assert stored_digests(operator) == {backup_code_digest(code) for code in new}
    assert not stored_digests(operator) & old
    assert actions() == ["backup_codes_renew"]
    assert client.get(reverse("account")).context["backup_codes_left"] == 10


def test_an_operator_turns_two_factor_off_with_a_current_code(client):
    operator = make_operator()
    device = enrolled(operator)
    client.force_login(operator)

    wrong = client.post(reverse("account"), {"action": "remove_two_factor", "remove-code": "00000000"})
    assert wrong.context["remove_form"].errors["code"] == ["That code is not right."]
    assert Authenticator.objects.filter(user=operator).exists()

    response = client.post(reverse("account"), {"action": "remove_two_factor", "remove-code": code_for(device)})

    assert response.url == reverse("account")
    assert not Authenticator.objects.filter(user=operator).exists()
    assert not BackupCode.objects.filter(device__user=operator).exists()
    assert actions() == ["two_factor_remove"]


def test_a_member_of_a_group_that_requires_it_cannot_turn_it_off(client):
    operator = make_operator()
    device = enrolled(operator)
    requiring_group(operator)
    client.force_login(operator)

    client.post(reverse("account"), {"action": "remove_two_factor", "remove-code": code_for(device)})

    assert Authenticator.objects.filter(user=operator, confirmed=True).exists()
    assert not SystemAuditEntry.objects.exists()


# --- groups that require it ------------------------------------------------------------------------------


def test_a_member_without_a_device_is_sent_to_enrolment_and_reaches_nothing_else(client):
    operator = make_operator("accesscontrol.view_zone", username="ada", all_partitions=True)
    requiring_group(operator)

    after_password = log_in(client, "ada")

    assert after_password.url == reverse("account_two_factor")
    assert signed_in_operator_id(client) == str(operator.pk)
    assert client.get(reverse("account")).url == reverse("account_two_factor")
    assert client.get("/admin/").url == reverse("account_two_factor")
    assert client.get("/api/v1/zones/").status_code == 403
    assert client.get(reverse("account_two_factor")).status_code == 200
    assert client.post(reverse("session_keepalive")).status_code == 204
    assert SystemAuditEntry.objects.get(action="login").detail == {"second_factor": "enrolment_required"}


def test_after_enrolling_the_member_reaches_everything(client):
    operator = make_operator("accesscontrol.view_zone", username="ada", all_partitions=True)
    requiring_group(operator)
    log_in(client, "ada")
    client.get(reverse("account_two_factor"))
    device = Authenticator.objects.get(user=operator)

    done = client.post(reverse("account_two_factor"), {"code": code_for(device)})

    assert done.context["continue_url"] == "/"
    assert client.get(reverse("account")).status_code == 200
    assert client.get("/api/v1/zones/").status_code == 200


def test_next_time_the_member_logs_in_with_a_code(client):
    operator = make_operator(username="ada")
    requiring_group(operator)
    device = enrolled(operator)

    assert log_in(client, "ada").url == reverse("login_otp")
    assert send_code(client, code_for(device)).url == "/"


def test_the_requirement_does_not_touch_api_keys(client):
    operator = make_operator("accesscontrol.view_zone", all_partitions=True)
    requiring_group(operator)
    _, token = ApiKey.issue(operator, "integration")

    response = client.get("/api/v1/zones/", HTTP_AUTHORIZATION=f"Api-Key {token}")

    assert response.status_code == 200


def test_an_administrator_sets_the_requirement_in_the_admin(client):
    admin = make_operator(username="root", is_staff=True, is_superuser=True)
    group = OperatorGroup.objects.create(name="Desk")
    client.force_login(admin)

    page = client.get(reverse("admin:accesscontrol_operatorgroup_change", args=[group.pk]))
    client.post(
        reverse("admin:accesscontrol_operatorgroup_change", args=[group.pk]),
        {"name": "Desk", "description": "", "require_two_factor": "on"},
    )

    assert 'name="require_two_factor"' in page.content.decode()
    group.refresh_from_db()
    assert group.require_two_factor is True


# --- the admin -------------------------------------------------------------------------------------------


def test_an_administrator_resets_a_lost_authenticator_in_the_admin_without_seeing_its_seed(client):
    operator = make_operator(username="ada")
    device = enrolled(operator)
    codes = twofactor.new_backup_codes(operator)
    client.force_login(make_operator(username="root", is_superuser=True, is_staff=True))

    page = client.get(reverse("admin:accesscontrol_authenticator_change", args=[device.pk]))
    html = page.content.decode()
    seed = device.bin_key
    assert page.status_code == 200 and "ada" in html
    assert seed.hex() not in html.lower() and base64.b32encode(seed).decode().rstrip("=") not in html
    assert not any(code in html for code in codes)
    assert client.get(reverse("admin:accesscontrol_authenticator_add")).status_code == 403

    client.post(reverse("admin:accesscontrol_authenticator_delete", args=[device.pk]), {"post": "yes"})
    client.post(reverse("admin:accesscontrol_backupcodes_changelist"), {
        "action": "delete_selected", "_selected_action": list(BackupCodes.objects.values_list("pk", flat=True)),
        "post": "yes",
    })  # fmt: skip

    assert not twofactor.has_second_factor(operator) and twofactor.backup_codes_left(operator) == 0
    assert list(SystemAuditEntry.objects.values_list("action", flat=True)) == ["delete", "delete"]
    # django-otp's own device admins (seeds in clear) are not offered.
    assert client.get("/admin/otp_totp/totpdevice/").status_code == 404
