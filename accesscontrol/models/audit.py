from django.conf import settings
from django.db import models

from accesscontrol.choices import AuditKind, Decision


class AppendOnlyError(Exception):
    """Audit records are written once and never changed or deleted one by one."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError(f"{self.model.__name__} rows cannot be updated.")

    def delete(self):
        raise AppendOnlyError(f"{self.model.__name__} rows cannot be deleted.")


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} rows cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{type(self).__name__} rows cannot be deleted.")


def _reference(model: str) -> models.ForeignKey:
    # No database constraint and no cascade: the audit trail outlives the doors,
    # people and devices it names, whose names are copied into the row.
    return models.ForeignKey(
        model, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )


class AuditEvent(AppendOnlyModel):
    """One access or door event, online or collected from an offline lock."""

    at = models.DateTimeField(help_text="When it happened, by the device's clock.")
    recorded_at = models.DateTimeField(auto_now_add=True)
    kind = models.CharField(max_length=32, choices=AuditKind.choices)
    reason = models.CharField(max_length=32, choices=Decision.choices, blank=True)
    access_point = _reference("accesscontrol.AccessPoint")
    access_point_name = models.CharField(max_length=100, blank=True)
    cardholder = _reference("accesscontrol.Cardholder")
    cardholder_name = models.CharField(max_length=201, blank=True)
    key_uid = models.CharField(max_length=64, blank=True)
    device = _reference("devices.Device")
    device_event_id = models.BigIntegerField(null=True, blank=True)
    operator = _reference(settings.AUTH_USER_MODEL)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["device", "device_event_id"], name="audit_event_once_per_device_event")
        ]
        indexes = [
            models.Index(fields=["at"], name="audit_at"),
            models.Index(fields=["access_point", "at"], name="audit_point_at"),
            models.Index(fields=["cardholder", "at"], name="audit_cardholder_at"),
            models.Index(fields=["kind", "at"], name="audit_kind_at"),
            # The audit trail's key UID search: one key's events among a million, newest first.
            models.Index(fields=["key_uid", "at"], name="audit_key_uid_at"),
            # A device's recent events (the device page).
            models.Index(fields=["device", "at"], name="audit_device_at"),
        ]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.get_kind_display()} {self.access_point_name}".strip()


class SystemAuditEntry(AppendOnlyModel):
    """One operator action (SALTO's "system auditor")."""

    at = models.DateTimeField(auto_now_add=True)
    operator = _reference(settings.AUTH_USER_MODEL)
    operator_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=32)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    via = models.CharField(max_length=16, blank=True, help_text="api, admin, web, command")
    address = models.GenericIPAddressField(null=True, blank=True, help_text="Where the request came from.")
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "system audit entries"
        indexes = [
            models.Index(fields=["at"], name="sysaudit_at"),
            models.Index(fields=["operator", "at"], name="sysaudit_operator_at"),
            models.Index(fields=["object_type", "object_id"], name="sysaudit_object"),
        ]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.operator_name} {self.action} {self.object_repr}"
