"""Webhooks: who wants which audit events (subscriptions), and the outbox of their deliveries.

A delivery row is written in the transaction that stores its event
(``integrations.webhooks.enqueue``) and is the only record of what is still to
send: Celery tasks and the embedded service only ever work from these rows.
"""

import secrets
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from accesscontrol.choices import AuditKind
from core import vault
from integrations.targets import TargetError, check_url

SECRET_MIN_LENGTH = 16
SECRET_MAX_LENGTH = 200
DEFAULT_MAX_TRIES = 15
MAX_TRIES_LIMIT = 30


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERING = "delivering", "Delivering"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


def generate_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


class WebhookSubscription(models.Model):
    """An HTTP(S) endpoint that receives the audit events of some kinds in some partitions, signed with a secret."""

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(
        max_length=500, help_text="Where events are POSTed. HTTPS is verified against the system's CAs."
    )
    kinds = models.JSONField(default=list, blank=True, help_text="The audit event kinds to send (empty: every kind).")
    partitions = models.ManyToManyField(
        "accesscontrol.Partition",
        blank=True,
        related_name="+",
        help_text="Events at access points of these partitions are sent.",
    )
    all_partitions = models.BooleanField(
        default=False,
        help_text="Every event, also those of no partition (device events, operator actions); the partitions "
        "listed are then ignored.",
    )
    # Names the vault purpose of the secret, so a sealed secret copied onto another row does not open there.
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    secret_sealed = models.BinaryField(editable=False, default=b"")
    active = models.BooleanField(
        default=True, help_text="An inactive subscription gets no new deliveries and sends none of those waiting."
    )
    paused_at = models.DateTimeField(null=True, blank=True, editable=False)
    paused_reason = models.CharField(max_length=500, blank=True, editable=False)
    allow_private_target = models.BooleanField(
        default=False,
        help_text="Allow a URL on a loopback, link-local or cloud metadata address (administrators only).",
    )
    max_tries = models.PositiveSmallIntegerField(
        default=DEFAULT_MAX_TRIES,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_TRIES_LIMIT)],
        help_text="Tries per delivery, the first included, before it is given up as failed.",
    )
    # Health, kept up to date by the delivery runs: what the pause rule looks at.
    failures_in_a_row = models.PositiveIntegerField(default=0, editable=False)
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.CharField(max_length=500, blank=True, editable=False)
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Site-wide for restrict(); which operators reach a subscription is decided by its
    # partitions (integrations.webhooks.actions.visible_subscriptions).
    partition_path = None

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        _forget_subscriptions()

    def delete(self, *args, **kwargs):
        result = super().delete(*args, **kwargs)
        _forget_subscriptions()
        return result

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    @property
    def secret_purpose(self) -> str:
        return f"webhook-secret:{self.uid}"

    def set_secret(self, secret: str | None = None) -> str:
        """Seal ``secret`` (a fresh random one when None) onto the subscription and return it (save() stores it)."""
        secret = generate_secret() if secret is None else secret
        self.secret_sealed = vault.seal(secret.encode(), self.secret_purpose)
        return secret

    def secret(self) -> str:
        return vault.unseal(self.secret_sealed, self.secret_purpose).decode()

    def clean(self):
        errors = {}
        try:
            check_url(self.url, allow_private=self.allow_private_target)
        except TargetError as error:
            errors["url"] = [str(error)]
        if not isinstance(self.kinds, list) or not all(isinstance(kind, str) for kind in self.kinds):
            errors["kinds"] = ["A list of audit event kinds."]
        else:
            unknown = sorted(set(self.kinds) - set(AuditKind.values))
            if unknown:
                errors["kinds"] = [f"Unknown kinds: {', '.join(unknown)}."]
            self.kinds = sorted(set(self.kinds))
        if errors:
            raise ValidationError(errors)


# Who keeps subscriptions in a cache (integrations.webhooks, when imported) registers here to be told of changes.
subscription_listeners: list[Callable[[], None]] = []


def _forget_subscriptions():
    for listener in subscription_listeners:
        listener()


class WebhookDelivery(models.Model):
    """One event for one subscription: the outbox row, and the delivery log an operator reads."""

    # No database constraint: enqueue may race with a subscription's deletion in another
    # process (its list of subscriptions is cached briefly), and that must never fail the
    # transaction storing audit events. Orphans are never claimed and the sweep removes them.
    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, db_constraint=False, related_name="deliveries"
    )
    event_key = models.CharField(max_length=64, help_text="The event's stable id.")
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    tries = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["subscription", "event_key"], name="webhook_delivery_once_per_event"),
        ]
        indexes = [
            # What a delivery run claims: a subscription's due rows, oldest first.
            models.Index(fields=["subscription", "status", "next_attempt_at"], name="webhook_due"),
            # Across subscriptions: what is due or next (runs, the sweep), old rows (the sweep's purge).
            models.Index(fields=["status", "next_attempt_at"], name="webhook_status_next"),
            models.Index(fields=["status", "created_at"], name="webhook_status_created"),
        ]

    def __str__(self):
        return f"{self.event_key} → {self.subscription_id} ({self.status})"

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.subscription.uid, self.event_key)


# The namespace of idempotency keys: one per (subscription, event), the same on every try and redelivery.
IDEMPOTENCY_NAMESPACE = uuid.UUID("3b8f0f8e-5c1a-4f55-9d0e-7c7a2f0b6e11")


def idempotency_key(subscription_uid: uuid.UUID, event_key: str) -> str:
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{subscription_uid}:{event_key}"))


from integrations.eventstream.models import EventStream, StreamItem  # noqa: E402, F401
from integrations.ldap.models import DirectoryAccount  # noqa: E402, F401
from integrations.mobilekeys.models import MobileKey, PhoneEnrolment  # noqa: E402, F401
