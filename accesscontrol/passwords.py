"""The password policy's own rule; length, common passwords and likeness to the name are Django's validators.

Listed in ``AUTH_PASSWORD_VALIDATORS``, so the account page, the admin and
``manage.py changepassword`` all apply the same policy.
"""

from django.core.exceptions import ValidationError


def _classes_missing(password: str) -> list[str]:
    missing = []
    if not any(c.isalpha() for c in password):
        missing.append("letters")
    if not any(c.isdigit() for c in password):
        missing.append("digits")
    if not any(not c.isalnum() and not c.isspace() for c in password):
        missing.append("symbols")
    return missing


class CharacterClassesValidator:
    """Letters, digits and symbols (anything else but spaces), at least one of each."""

    def validate(self, password, user=None):
        missing = _classes_missing(password)
        if missing:
            raise ValidationError(
                "The password must contain letters, digits and symbols (such as ! # %% or -); it has no %(missing)s.",
                code="password_missing_character_classes",
                params={"missing": " and no ".join(missing)},
            )

    def get_help_text(self):
        return "Your password must contain letters, digits and symbols (such as ! # % or -)."
