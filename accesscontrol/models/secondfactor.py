"""Operators' second factor, stored so that a database dump reveals none of it.

django-otp's own devices keep the TOTP seed in hex and backup codes as typed;
these are django-otp devices too (``django_otp.models.Device``: ``otp_login``,
``is_verified`` and the middleware work with them unchanged) but:

- :class:`Authenticator` keeps its TOTP seed sealed under the master key
  (``core.vault``, purpose ``totp-seed:<operator id>``) and verifies like
  django-otp's ``TOTPDevice``: a tolerance of steps either side, the drift it
  learns, and never the same step twice (``last_t``), so a code seen is not
  replayed;
- :class:`BackupCodes` keeps each code as ``HMAC-SHA256(key, code)`` under a key
  derived from the master key; a code works once.
"""

import hmac
import secrets
import time
from base64 import b32encode
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import models
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.oath import TOTP

from core import vault

SEED_SIZE = 20  # bytes: RFC 4226's recommended HMAC-SHA1 key length, what authenticator apps expect
BACKUP_CODE_PURPOSE = "backup-code"  # core.vault.derive(): the key of stored backup code digests


class Authenticator(TimestampMixin, ThrottlingMixin, Device):
    """An authenticator app (TOTP, RFC 6238) whose seed is sealed under the master key."""

    seed_sealed = models.BinaryField(editable=False, default=b"")
    step = models.PositiveSmallIntegerField(default=30, help_text="The time step in seconds.")
    t0 = models.BigIntegerField(default=0, help_text="The Unix time at which to begin counting steps.")
    digits = models.PositiveSmallIntegerField(choices=[(6, 6), (8, 8)], default=6)
    tolerance = models.PositiveSmallIntegerField(default=1, help_text="Steps either side of now a code may be.")
    drift = models.SmallIntegerField(default=0, help_text="Steps the operator's app is known to be off by.")
    last_t = models.BigIntegerField(default=-1, help_text="The step of the last code accepted; only later ones are.")

    class Meta(Device.Meta):
        verbose_name = "authenticator"

    @property
    def seed_purpose(self) -> str:
        return f"totp-seed:{self.user_id}"

    def set_seed(self, seed: bytes | None = None) -> bytes:
        """Seal ``seed`` (a fresh random one when None) onto the device and return it (save() stores it)."""
        seed = secrets.token_bytes(SEED_SIZE) if seed is None else seed
        self.seed_sealed = vault.seal(seed, self.seed_purpose)
        return seed

    @property
    def bin_key(self) -> bytes:
        """The seed (the name django-otp's TOTPDevice gives it)."""
        return vault.unseal(self.seed_sealed, self.seed_purpose)

    def save(self, *args, **kwargs):
        if not self.seed_sealed:
            self.set_seed()
        super().save(*args, **kwargs)

    def get_throttle_factor(self):
        return getattr(settings, "OTP_TOTP_THROTTLE_FACTOR", 1)

    def verify_token(self, token) -> bool:
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        try:
            code = int(token)
        except (TypeError, ValueError):
            verified = False
        else:
            totp = TOTP(self.bin_key, self.step, self.t0, self.digits, self.drift)
            totp.time = time.time()
            verified = totp.verify(code, self.tolerance, self.last_t + 1)
            if verified:
                self.last_t = totp.t()
                if getattr(settings, "OTP_TOTP_SYNC", True):
                    self.drift = totp.drift
                self.throttle_reset(commit=False)
                self.set_last_used_timestamp(commit=False)
                self.save()
        if not verified:
            self.throttle_increment(commit=True)
        return verified

    @property
    def config_url(self) -> str:
        """The otpauth:// URI an authenticator app reads from the QR code."""
        label = self.user.get_username()
        issuer = str(getattr(settings, "OTP_TOTP_ISSUER", "") or "").replace(":", "")
        params = {"secret": b32encode(self.bin_key), "algorithm": "SHA1", "digits": self.digits, "period": self.step}
        query = urlencode(params)
        if issuer:
            label = f"{issuer}:{label}"
            query += f"&issuer={quote(issuer)}"
        return f"otpauth://totp/{quote(label)}?{query}"


def backup_code_digest(code: str) -> str:
    return hmac.digest(vault.derive(BACKUP_CODE_PURPOSE), code.encode(), "sha256").hex()


class BackupCodes(TimestampMixin, ThrottlingMixin, Device):
    """An operator's one-time backup codes, kept as keyed digests (:class:`BackupCode`)."""

    class Meta(Device.Meta):
        verbose_name = "backup codes"
        verbose_name_plural = "backup codes"

    def get_throttle_factor(self):
        return getattr(settings, "OTP_STATIC_THROTTLE_FACTOR", 1)

    def verify_token(self, token) -> bool:
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        match = self.codes.filter(digest=backup_code_digest(str(token))).first()
        if match is None:
            self.throttle_increment()
            return False
        match.delete()
        self.throttle_reset(commit=False)
        self.set_last_used_timestamp(commit=False)
        self.save()
        return True


class BackupCode(models.Model):
    device = models.ForeignKey(BackupCodes, on_delete=models.CASCADE, related_name="codes")
    digest = models.CharField(max_length=64, db_index=True, editable=False)

    def __str__(self):
        return f"backup code of {self.device}"
