"""Second factor: TOTP authenticators (RFC 6238, django-otp devices) and one-time backup codes.

An operator has at most one confirmed :class:`Authenticator` and, with it, one
:class:`BackupCodes` device holding ten codes. A device counts only once it is
confirmed by a code read off the operator's app. The seed is sealed under the
master key and the codes are kept as keyed digests (accesscontrol/models/secondfactor.py):
a database dump reveals neither; the seed is shown once, at enrolment.
"""

import base64
import re
import secrets

import segno
from django.db import transaction

from accesscontrol.models import Authenticator, BackupCode, BackupCodes, OperatorGroup
from accesscontrol.models.secondfactor import backup_code_digest

AUTHENTICATOR_NAME = "Authenticator app"
BACKUP_NAME = "Backup codes"
BACKUP_CODE_COUNT = 10
ENROL_SESSION_KEY = "space_two_factor_enrolment"  # set at login: this session must enrol before anything else
TOTP_CODE = re.compile(r"\d{6}")


def clean_code(code: str) -> str:
    """What the operator typed, as the devices compare it: no spaces or dashes, backup codes in lower case."""
    return re.sub(r"[\s-]", "", code).lower()


def authenticator(operator, confirmed: bool = True) -> Authenticator | None:
    return Authenticator.objects.filter(user=operator, confirmed=confirmed).order_by("id").first()


def has_second_factor(operator) -> bool:
    return Authenticator.objects.filter(user=operator, confirmed=True).exists()


def required_for(operator) -> bool:
    """Whether one of the operator's groups requires a second factor."""
    return OperatorGroup.objects.filter(members=operator, require_two_factor=True).exists()


def verify(operator, code: str):
    """The confirmed device that accepts ``code`` (a TOTP code or an unused backup code, which it uses up), or None."""
    code = clean_code(code)
    model = Authenticator if TOTP_CODE.fullmatch(code) else BackupCodes
    with transaction.atomic():
        for device in model.objects.filter(user=operator, confirmed=True).select_for_update():
            if device.verify_token(code):
                return device
    return None


def start_enrolment(operator) -> Authenticator:
    """The unconfirmed authenticator the operator is setting up (made once, kept until confirmed or removed)."""
    device = authenticator(operator, confirmed=False)
    if device is None:
        device = Authenticator.objects.create(user=operator, name=AUTHENTICATOR_NAME, confirmed=False)
    return device


def confirm_enrolment(device: Authenticator, code: str) -> list[str] | None:
    """Confirm ``device`` if ``code`` is its current code; returns the new backup codes, or None."""
    with transaction.atomic():
        if not device.verify_token(clean_code(code)):
            return None
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        Authenticator.objects.filter(user=device.user).exclude(pk=device.pk).delete()
        return new_backup_codes(device.user)


def new_backup_codes(operator) -> list[str]:
    """Ten fresh backup codes (shown once; only their keyed digests are kept); those given before stop working."""
    with transaction.atomic():
        device, _ = BackupCodes.objects.get_or_create(user=operator, name=BACKUP_NAME, defaults={"confirmed": True})
        BackupCodes.objects.filter(user=operator).exclude(pk=device.pk).delete()
        device.codes.all().delete()
        codes = [new_backup_code() for _ in range(BACKUP_CODE_COUNT)]
        BackupCode.objects.bulk_create(BackupCode(device=device, digest=backup_code_digest(code)) for code in codes)
    return codes


def new_backup_code() -> str:
    """Eight random characters of lower-case base32 (40 bits): typed once, never stored."""
    return base64.b32encode(secrets.token_bytes(5)).decode().lower()


def backup_codes_left(operator) -> int:
    return BackupCode.objects.filter(device__user=operator, device__confirmed=True).count()


def remove(operator) -> None:
    """Remove the operator's authenticator and backup codes."""
    with transaction.atomic():
        Authenticator.objects.filter(user=operator).delete()
        BackupCodes.objects.filter(user=operator).delete()


def secret_text(device: Authenticator) -> str:
    """The key as an operator types it into an app by hand: base32, in groups of four."""
    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def qr_svg(device: Authenticator) -> str:
    """The otpauth:// URI as an inline SVG QR code (drawn here: no request leaves the page)."""
    return segno.make(device.config_url, error="m").svg_inline(
        scale=5, border=2, light="#fff", title="QR code for your authenticator app", svgclass="qr-code"
    )
