import hashlib
import secrets

from django.contrib.auth.models import AbstractUser, Permission
from django.db import models
from django.utils import timezone


class Operator(AbstractUser):
    """Someone who runs the system: through the web app, the admin, or an API key."""

    class Meta:
        ordering = ["username"]


class OperatorGroup(models.Model):
    """What its members may do (permissions) and where (partitions)."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    members = models.ManyToManyField(Operator, blank=True, related_name="operator_groups")
    permissions = models.ManyToManyField(Permission, blank=True, related_name="+")
    partitions = models.ManyToManyField("accesscontrol.Partition", blank=True, related_name="operator_groups")
    all_partitions = models.BooleanField(default=False, help_text="Not limited to the partitions listed.")
    require_two_factor = models.BooleanField(
        default=False, help_text="Members must log in with a second factor (a TOTP code or a backup code)."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiKey(models.Model):
    """An integrator's key; acts as its operator. Only a hash is stored; the key is shown once."""

    PREFIX = "spk"

    operator = models.ForeignKey(Operator, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    lookup = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.name} ({self.PREFIX}_{self.lookup}_…)"

    @classmethod
    def issue(cls, operator: Operator, name: str, expires_at=None) -> tuple["ApiKey", str]:
        """Create a key; returns it with the token, which is never seen again."""
        lookup = secrets.token_hex(6)
        token = f"{cls.PREFIX}_{lookup}_{secrets.token_urlsafe(32)}"
        key = cls.objects.create(
            operator=operator, name=name, lookup=lookup, digest=_digest(token), expires_at=expires_at
        )
        return key, token

    @classmethod
    def authenticate(cls, token: str) -> "ApiKey | None":
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != cls.PREFIX:
            return None
        key = cls.objects.select_related("operator").filter(lookup=parts[1]).first()
        if key is None or not secrets.compare_digest(key.digest, _digest(token)) or not key.is_usable:
            return None
        return key

    @property
    def is_usable(self) -> bool:
        now = timezone.now()
        return (
            self.revoked_at is None and (self.expires_at is None or self.expires_at > now) and self.operator.is_active
        )


class LoginAttempt(models.Model):
    """One try to log in, kept for throttling and lockout (per user and per source address) and for the record."""

    at = models.DateTimeField(auto_now_add=True)
    username = models.CharField(max_length=150, blank=True)
    address = models.GenericIPAddressField(null=True, blank=True)
    succeeded = models.BooleanField(default=False)
    reason = models.CharField(max_length=32, blank=True, help_text="Why it failed: password, otp, locked, throttled.")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["username", "at"], name="loginattempt_user_at"),
            models.Index(fields=["address", "at"], name="loginattempt_address_at"),
        ]

    def __str__(self):
        outcome = "ok" if self.succeeded else f"failed ({self.reason})"
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.username} from {self.address}: {outcome}"
