"""A mobile key's phone: its one-time invitation, then the credential the phone app fetches tokens with.

Only digests of the invitation code and of the credential are stored; each is
shown once (the code to the operator who gives it to the guest, the credential
to the phone app that redeems the code).
"""

import hashlib

from django.db import models
from django.utils import timezone


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class MobileKey(models.Model):
    """A Key of kind mobile, and the phone it is meant for."""

    key = models.OneToOneField("accesscontrol.Key", on_delete=models.CASCADE, related_name="mobile")
    phone_number = models.CharField(max_length=32, blank=True, help_text="E.164; for the operator's reference.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"mobile key {self.key.uid}"


class PhoneEnrolment(models.Model):
    """One phone's hold on a mobile key: invited (a code to redeem), then enrolled (a credential)."""

    mobile_key = models.ForeignKey(MobileKey, on_delete=models.CASCADE, related_name="enrolments")
    code_digest = models.CharField(max_length=64, unique=True, editable=False)
    code_expires_at = models.DateTimeField()
    enrolled_at = models.DateTimeField(null=True, blank=True)
    credential_lookup = models.CharField(max_length=16, unique=True, null=True, blank=True, editable=False)
    credential_digest = models.CharField(max_length=64, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_fetched_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"phone of {self.mobile_key}"

    @property
    def is_pending(self) -> bool:
        return self.enrolled_at is None and self.revoked_at is None and self.code_expires_at > timezone.now()

    @property
    def is_active(self) -> bool:
        return self.enrolled_at is not None and self.revoked_at is None
