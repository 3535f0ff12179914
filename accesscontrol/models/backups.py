"""The record of backups: when each ran, what it made, and how it ended (accesscontrol/backups.py writes it)."""

from django.conf import settings
from django.db import models


class BackupOutcome(models.TextChoices):
    RUNNING = "running", "Running"
    OK = "ok", "Succeeded"
    FAILED = "failed", "Failed"


class BackupTrigger(models.TextChoices):
    SCHEDULED = "scheduled", "Daily schedule"
    MANUAL = "manual", "manage.py backup"
    OPERATOR = "operator", "An operator (Back up now)"


class Backup(models.Model):
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=16, choices=BackupTrigger.choices)
    operator = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    outcome = models.CharField(max_length=16, choices=BackupOutcome.choices, default=BackupOutcome.RUNNING)
    file_name = models.CharField(max_length=200, help_text="In the backup folder (SPACE_BACKUP_DIR).")
    size = models.BigIntegerField(null=True, blank=True, help_text="Bytes.")
    seconds = models.FloatField(null=True, blank=True, help_text="How long it took (its verification included).")
    verified_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was read back from the folder and checked (SPACE_BACKUP_VERIFY)."
    )
    rows = models.BigIntegerField(null=True, blank=True, help_text="Rows in all tables, by the manifest.")
    error = models.TextField(blank=True)
    pruned_at = models.DateTimeField(null=True, blank=True, help_text="When retention deleted its file.")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["outcome", "-finished_at"], name="backup_outcome_finished")]

    def __str__(self):
        return f"{self.file_name} ({self.get_outcome_display()})"
