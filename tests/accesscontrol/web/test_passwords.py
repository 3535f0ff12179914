"""The password policy (length, letters + digits + symbols, not common, not like the name); changing a password."""

import pytest
from django.contrib.auth.password_validation import password_validators_help_texts, validate_password
from django.core.exceptions import ValidationError
from django.urls import reverse

from accesscontrol.management.commands.create_admin import generate_password
from accesscontrol.models import Operator, SystemAuditEntry
from tests.accesscontrol.web.logins import PASSWORD
from tests.factories import make_operator

pytestmark = pytest.mark.django_db

GOOD = "Tulip-garden-1987"


def problems(password: str, user=None) -> list[str]:
    try:
        validate_password(password, user)
    except ValidationError as error:
        return error.messages
    return []


def test_a_long_password_of_letters_digits_and_symbols_passes():
    assert problems(GOOD) == []


def test_a_short_password_is_refused_with_the_minimum_length():
    assert problems("Ab1-cd2-ef3") == ["This password is too short. It must contain at least 12 characters."]


def test_the_minimum_length_comes_from_the_settings(settings):
    settings.AUTH_PASSWORD_VALIDATORS = [
        {
            "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
            "OPTIONS": {"min_length": 20},
        }
    ]

    assert problems(GOOD) == ["This password is too short. It must contain at least 20 characters."]


def test_the_default_minimum_length_is_twelve(settings):
    assert settings.SPACE_PASSWORD_MIN_LENGTH == 12
    assert settings.AUTH_PASSWORD_VALIDATORS[0]["OPTIONS"] == {"min_length": 12}


@pytest.mark.parametrize(
    ("password", "missing"),
    [
        ("tulipgardenvast", "digits and no symbols"),
        ("tulip-garden-vast", "digits"),
        ("tulip garden 1987", "symbols"),
        ("1987-2024-3141-59", "letters"),
        ("19872024314159265", "letters and no symbols"),
    ],
)
def test_a_password_without_letters_digits_and_symbols_is_refused_saying_what_it_lacks(password, missing):
    assert (
        f"The password must contain letters, digits and symbols (such as ! # % or -); it has no {missing}."
        in problems(password)
    )


def test_a_common_password_is_refused():
    assert "This password is too common." in problems("Password1234")


def test_a_password_like_the_username_is_refused():
    user = Operator(username="frederick.hopkins", email="fh@example.com")

    assert "The password is too similar to the username." in problems("Frederick.Hopkins1", user)


def test_the_policy_explains_itself():
    assert password_validators_help_texts()[:2] == [
        "Your password must contain at least 12 characters.",
        "Your password must contain letters, digits and symbols (such as ! # % or -).",
    ]


def test_create_admin_generates_passwords_the_policy_accepts():
    assert all(problems(generate_password()) == [] for _ in range(20))


def change(client, old: str, new: str, again: str | None = None):
    data = {"action": "password", "old_password": old, "new_password1": new, "new_password2": again or new}
    return client.post(reverse("account"), data)


def test_an_operator_changes_their_password_and_stays_logged_in(client):
    operator = make_operator(username="ada")
    client.force_login(operator)

    response = change(client, PASSWORD, GOOD)

    assert response.url == reverse("account")
    operator.refresh_from_db()
    assert operator.check_password(GOOD)
    assert client.get(reverse("account")).status_code == 200
    entry = SystemAuditEntry.objects.get()
    assert (entry.action, entry.operator_id, entry.object_id, entry.via) == (
        "change_password",
        operator.pk,
        str(operator.pk),
        "web",
    )
    assert entry.detail == {}


def test_a_new_password_against_the_policy_gets_field_errors_and_changes_nothing(client):
    operator = make_operator(username="ada")
    client.force_login(operator)

    response = change(client, PASSWORD, "short")

    assert response.status_code == 200
    assert response.context["password_form"].errors["new_password2"] == [
        "This password is too short. It must contain at least 12 characters.",
        "The password must contain letters, digits and symbols (such as ! # % or -); it has no digits and no symbols.",
    ]
    operator.refresh_from_db()
    assert operator.check_password(PASSWORD)
    assert not SystemAuditEntry.objects.exists()


def test_a_wrong_current_password_gets_a_field_error(client):
    operator = make_operator()
    client.force_login(operator)

    response = change(client, "not it", GOOD)

    assert response.context["password_form"].errors["old_password"] == [
        "Your old password was entered incorrectly. Please enter it again."
    ]
    operator.refresh_from_db()
    assert operator.check_password(PASSWORD)


def test_mismatched_new_passwords_get_a_field_error(client):
    client.force_login(make_operator())

    response = change(client, PASSWORD, GOOD, GOOD + "x")

    assert response.context["password_form"].errors["new_password2"] == ["The two password fields didn\u2019t match."]


def test_an_operator_from_the_directory_is_told_to_change_it_there(client):
    operator = make_operator()
    operator.set_unusable_password()
    operator.save()
    client.force_login(operator)

    html = client.get(reverse("account")).content.decode()
    response = change(client, "", GOOD)

    assert "Your password is managed by your organisation's directory; change it there." in html
    assert response.status_code == 200
    operator.refresh_from_db()
    assert not operator.has_usable_password()


def test_the_account_page_needs_a_login(client):
    response = client.get(reverse("account"))

    assert response.status_code == 302 and response.url == reverse("login") + "?next=/account/"


def test_passwords_are_hashed_with_argon2():
    operator = make_operator()

    assert operator.password.startswith("argon2$")
