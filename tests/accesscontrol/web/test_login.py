"""Logging in and out: the password step, lockout per username, throttling per address, idle log-off, the auditor."""

import datetime as dt

import pytest
from django.contrib.sessions.models import Session
from django.urls import reverse
from django.utils import timezone

from accesscontrol import security
from accesscontrol.models import LoginAttempt, SystemAuditEntry
from tests.accesscontrol.web.logins import PASSWORD, log_in, signed_in_operator_id
from tests.factories import make_operator

pytestmark = pytest.mark.django_db

BAD_CREDENTIALS = "The username or password is not right."
LOCKED = "Too many failed logins for this username. Try again in 15 minutes."
THROTTLED = "Too many failed logins from your address. Try again in 15 minutes."


def errors_of(response) -> list[str]:
    return list(response.context["form"].non_field_errors())


def auditor_rows(*actions):
    rows = SystemAuditEntry.objects.order_by("id")
    if actions:
        rows = rows.filter(action__in=actions)
    return [(row.action, row.operator_id, row.address, row.via, row.detail) for row in rows]


def age_attempts(seconds: int) -> None:
    """Move every login attempt so far ``seconds`` into the past."""
    for attempt in LoginAttempt.objects.all():
        LoginAttempt.objects.filter(pk=attempt.pk).update(at=attempt.at - dt.timedelta(seconds=seconds))


def test_the_login_page_shows_a_labelled_form(client):
    response = client.get(reverse("login"))

    assert response.status_code == 200
    html = response.content.decode()
    assert '<label for="id_username">Username</label>' in html
    assert '<label for="id_password">Password</label>' in html
    assert 'autocomplete="current-password"' in html


def test_an_operator_logs_in_with_the_right_password(client):
    operator = make_operator(username="ada")

    response = log_in(client, "ada", address="192.0.2.10")

    assert response.status_code == 302 and response.url == "/"  # the dashboard, once it exists
    assert signed_in_operator_id(client) == str(operator.pk)
    assert auditor_rows() == [("login", operator.pk, "192.0.2.10", "web", {"second_factor": "none"})]
    attempt = LoginAttempt.objects.get()
    assert (attempt.username, attempt.address, attempt.succeeded) == ("ada", "192.0.2.10", True)


def test_a_login_goes_on_to_a_local_next_page_but_never_to_another_site(client):
    make_operator(username="ada")

    local = log_in(client, "ada", next="/account/")
    elsewhere = log_in(client, "ada", next="https://evil.example/")

    assert local.url == "/account/"
    assert elsewhere.url == "/"


def test_a_wrong_password_and_an_unknown_username_get_the_same_answer(client):
    operator = make_operator(username="ada")

    wrong_password = log_in(client, "ada", "not the password")
    unknown_user = log_in(client, "nobody", "not the password")

    assert wrong_password.status_code == unknown_user.status_code == 200
    assert errors_of(wrong_password) == errors_of(unknown_user) == [BAD_CREDENTIALS]
    assert signed_in_operator_id(client) is None
    assert auditor_rows() == [
        ("login_failed", operator.pk, "127.0.0.1", "web", {"username": "ada", "reason": "password"}),
        ("login_failed", None, "127.0.0.1", "web", {"username": "nobody", "reason": "password"}),
    ]


def test_an_inactive_operator_cannot_log_in(client):
    make_operator(username="ada", is_active=False)

    response = log_in(client, "ada")

    assert errors_of(response) == [BAD_CREDENTIALS]
    assert signed_in_operator_id(client) is None


@pytest.mark.parametrize(
    ("data", "field"),
    [({"username": "", "password": "x"}, "username"), ({"username": "ada", "password": ""}, "password")],
)
def test_an_empty_field_gets_a_field_error_and_counts_as_no_attempt(client, data, field):
    response = client.post(reverse("login"), data)

    assert response.status_code == 200
    assert response.context["form"].errors[field] == ["This field is required."]
    assert not LoginAttempt.objects.exists()


def test_a_username_too_long_gets_a_field_error(client):
    response = client.post(reverse("login"), {"username": "a" * 151, "password": "x"})

    assert response.status_code == 200
    assert response.context["form"].errors["username"] == ["Ensure this value has at most 150 characters (it has 151)."]


def test_four_failures_do_not_lock_the_username(client):
    make_operator(username="ada")
    for _ in range(4):
        log_in(client, "ada", "wrong")

    response = log_in(client, "ada")

    assert response.status_code == 302
    assert not auditor_rows("login_locked")


def test_the_fifth_failure_locks_the_username_even_for_the_right_password(client):
    operator = make_operator(username="ada")
    answers = [errors_of(log_in(client, "ada", "wrong", address=f"192.0.2.{n}")) for n in range(1, 6)]

    refused = log_in(client, "ada", PASSWORD, address="192.0.2.99")

    assert answers == [[BAD_CREDENTIALS]] * 4 + [[LOCKED]]
    assert errors_of(refused) == [LOCKED]
    assert signed_in_operator_id(client) is None
    locked = auditor_rows("login_locked")
    assert len(locked) == 1
    action, operator_id, address, via, detail = locked[0]
    assert (action, operator_id, address, via) == ("login_locked", operator.pk, "192.0.2.5", "web")
    assert detail["username"] == "ada" and detail["failures"] == 5
    assert auditor_rows("login_failed")[-1][4]["reason"] == "locked"
    assert list(LoginAttempt.objects.order_by("id").values_list("reason", flat=True)) == ["password"] * 5 + ["locked"]


def test_the_lockout_counts_usernames_whatever_their_case(client):
    make_operator(username="ada")
    for username in ["ada", "ADA", " Ada", "adA", "aDa"]:
        log_in(client, username, "wrong")

    assert errors_of(log_in(client, "ada")) == [LOCKED]


def test_an_unknown_username_is_locked_the_same_way(client):
    answers = [errors_of(log_in(client, "nobody", "wrong")) for _ in range(6)]

    assert answers == [[BAD_CREDENTIALS]] * 4 + [[LOCKED]] * 2
    assert [row[1] for row in auditor_rows("login_locked")] == [None]


def test_the_lockout_ends_after_the_lockout_time(client):
    make_operator(username="ada")
    for _ in range(5):
        log_in(client, "ada", "wrong")
    age_attempts(15 * 60 - 5)
    assert errors_of(log_in(client, "ada")) == ["Too many failed logins for this username. Try again in 1 minute."]

    age_attempts(10)
    response = log_in(client, "ada")

    assert response.status_code == 302
    assert signed_in_operator_id(client) is not None


def test_failures_older_than_the_window_do_not_count(client):
    make_operator(username="ada")
    for _ in range(4):
        log_in(client, "ada", "wrong")
    age_attempts(15 * 60 + 1)

    answer = errors_of(log_in(client, "ada", "wrong"))

    assert answer == [BAD_CREDENTIALS]
    assert log_in(client, "ada").status_code == 302


def test_a_successful_login_starts_the_count_afresh(client):
    make_operator(username="ada")
    for _ in range(4):
        log_in(client, "ada", "wrong")
    assert log_in(client, "ada").status_code == 302

    answers = [errors_of(log_in(client, "ada", "wrong")) for _ in range(4)]

    assert answers == [[BAD_CREDENTIALS]] * 4
    assert log_in(client, "ada").status_code == 302


def test_an_address_is_throttled_after_twenty_failures_whatever_the_usernames(client):
    operator = make_operator(username="ada")
    answers = [errors_of(log_in(client, f"guess{n}", "wrong", address="198.51.100.7")) for n in range(20)]

    from_there = log_in(client, "ada", address="198.51.100.7")
    from_elsewhere = log_in(client, "ada", address="198.51.100.8")

    assert answers == [[BAD_CREDENTIALS]] * 19 + [[THROTTLED]]
    assert errors_of(from_there) == [THROTTLED]
    assert from_elsewhere.status_code == 302
    throttled = auditor_rows("login_throttled")
    assert [(row[1], row[2], row[4]["failures"]) for row in throttled] == [(None, "198.51.100.7", 20)]
    refused = auditor_rows("login_failed")[-1]
    assert (refused[1], refused[2], refused[4]["reason"]) == (operator.pk, "198.51.100.7", "throttled")


def test_a_successful_login_does_not_reset_its_addresss_count(client):
    make_operator(username="ada")
    for n in range(19):
        log_in(client, f"guess{n}", "wrong", address="198.51.100.7")
    assert log_in(client, "ada", address="198.51.100.7").status_code == 302

    answer = errors_of(log_in(client, "guess", "wrong", address="198.51.100.7"))

    assert answer == [THROTTLED]


def test_the_thresholds_come_from_the_settings(client, settings):
    settings.SPACE_LOGIN_MAX_FAILURES = 2
    settings.SPACE_LOGIN_LOCKOUT_SECONDS = 60
    make_operator(username="ada")

    answers = [errors_of(log_in(client, "ada", "wrong")) for _ in range(2)]

    assert answers == [[BAD_CREDENTIALS], ["Too many failed logins for this username. Try again in 1 minute."]]


def test_the_defaults_are_five_failures_per_user_and_twenty_per_address_in_fifteen_minutes(settings):
    assert (settings.SPACE_LOGIN_MAX_FAILURES, settings.SPACE_LOGIN_MAX_FAILURES_PER_ADDRESS) == (5, 20)
    assert (settings.SPACE_LOGIN_FAILURE_WINDOW_SECONDS, settings.SPACE_LOGIN_LOCKOUT_SECONDS) == (900, 900)


def test_logging_off_is_recorded_and_ends_the_session(client):
    operator = make_operator(username="ada")
    log_in(client, "ada", address="192.0.2.10")

    response = client.post(reverse("logout"), REMOTE_ADDR="192.0.2.10")

    assert response.status_code == 302 and response.url == reverse("login")
    assert signed_in_operator_id(client) is None
    assert auditor_rows("logout") == [("logout", operator.pk, "192.0.2.10", "web", {"reason": "operator"})]


def test_logging_off_takes_a_post_only(client):
    operator = make_operator(username="ada")
    client.force_login(operator)

    response = client.get(reverse("logout"))

    assert response.status_code == 405
    assert signed_in_operator_id(client) == str(operator.pk)


def test_an_idle_log_off_is_recorded_and_the_login_page_says_why(client):
    operator = make_operator(username="ada")
    client.force_login(operator)

    response = client.post(reverse("logout"), {"reason": "idle"})
    page = client.get(response.url)

    assert response.url == reverse("login") + "?reason=idle"
    assert auditor_rows("logout") == [("logout", operator.pk, "127.0.0.1", "web", {"reason": "idle"})]
    assert "You were logged off after 30 minutes without activity." in page.content.decode()


def test_an_idle_log_off_after_the_server_forgot_the_session_still_lands_on_the_login_page(client):
    response = client.post(reverse("logout"), {"reason": "idle"})

    assert response.url == reverse("login") + "?reason=idle"
    assert not SystemAuditEntry.objects.exists()


def test_the_server_forgets_a_session_a_minute_after_the_pages_idle_log_off(client, settings):
    make_operator(username="ada")
    log_in(client, "ada")

    session = Session.objects.get(session_key=client.session.session_key)

    assert settings.SPACE_SESSION_IDLE_SECONDS == 1800 and settings.SESSION_COOKIE_AGE == 1860
    left = (session.expire_date - timezone.now()).total_seconds()
    assert 1850 < left <= 1860


def test_signed_in_pages_tell_the_script_the_idle_time_and_the_keepalive_url(client):
    client.force_login(make_operator())

    html = client.get(reverse("account")).content.decode()

    assert 'data-idle-seconds="1800"' in html
    assert f'data-logout-url="{reverse("logout")}"' in html
    assert f'data-keepalive-url="{reverse("session_keepalive")}"' in html


def test_the_keepalive_renews_the_session(client):
    client.force_login(make_operator())
    key = client.session.session_key
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() + dt.timedelta(seconds=10))

    response = client.post(reverse("session_keepalive"))

    assert response.status_code == 204
    left = (Session.objects.get(session_key=key).expire_date - timezone.now()).total_seconds()
    assert left > 1800


def test_the_keepalive_says_401_without_a_session(client):
    assert client.post(reverse("session_keepalive")).status_code == 401


def test_the_admin_logs_in_through_the_login_page(client):
    response = client.get("/admin/")
    login_redirect = client.get(response.url)

    assert response.url == "/admin/login/?next=/admin/"
    assert login_redirect.status_code == 302
    assert login_redirect.url == reverse("login") + "?next=%2Fadmin%2F"


def test_an_administrator_reaches_the_admin_after_logging_in(client):
    make_operator(username="root", is_staff=True, is_superuser=True)

    response = log_in(client, "root", next="/admin/")

    assert response.url == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_the_admins_log_off_is_recorded_too(client):
    operator = make_operator(username="root", is_staff=True, is_superuser=True)
    client.force_login(operator)

    client.post("/admin/logout/")

    assert signed_in_operator_id(client) is None
    assert [row[0:2] for row in auditor_rows("logout")] == [("logout", operator.pk)]


def test_login_attempts_older_than_thirty_days_are_purged():
    LoginAttempt.objects.create(username="old")
    LoginAttempt.objects.create(username="recent")
    LoginAttempt.objects.filter(username="old").update(at=timezone.now() - dt.timedelta(days=31))

    deleted = security.purge_old_attempts(force=True)

    assert deleted == 1
    assert list(LoginAttempt.objects.values_list("username", flat=True)) == ["recent"]
