"""Where cardholders come from when the site's truth is elsewhere: a directory, an HR feed (accesscontrol/sync.py).

A :class:`CardholderSource` is configured once (the admin); its kind's reader (registered by
``integrations``) reads the people, and the sync brings the cardholders it manages into line. Each
managed cardholder has a :class:`SourcedCardholder` link holding the source's id for them and what
was last applied. Every run, previewed or applied, leaves a :class:`SyncRun` with its diff.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from core import vault


class CardholderSource(models.Model):
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, help_text="ldap (a directory) or hr_feed (a CSV or XLSX file).")
    enabled = models.BooleanField(default=True, help_text="Off: no scheduled runs; an operator may still run it.")
    settings = models.JSONField(default=dict, blank=True, help_text="What the kind needs (see docs); checked on save.")
    secret_sealed = models.BinaryField(editable=False, default=b"")
    group_map = models.JSONField(
        default=dict,
        blank=True,
        help_text='{"<group>": {"access_levels": ["<name>", ...], "partition": "<name>"}}: what a group gives.',
    )
    scope_groups = models.JSONField(
        default=list, blank=True, help_text="When set, only members of one of these groups are synced; others leave."
    )
    default_partition = models.ForeignKey(
        "accesscontrol.Partition",
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Cardholders whose groups name no partition go here.",
    )
    max_leaver_percent = models.PositiveSmallIntegerField(
        default=10,
        validators=[MaxValueValidator(100)],
        help_text="A run that would deactivate more than this share of the source's cardholders waits for an operator.",
    )
    sync_minutes = models.PositiveIntegerField(
        default=60,
        help_text="Run every so many minutes (0: only when asked). Watched folders are looked at each minute.",
    )
    full_every_hours = models.PositiveIntegerField(
        default=24,
        validators=[MinValueValidator(1)],
        help_text="Between full reads, runs read only what changed, where the source can tell.",
    )
    cursor = models.JSONField(default=dict, blank=True, editable=False, help_text="The reader's incremental state.")
    last_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_full_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def secret_purpose(self) -> str:
        return f"source-secret:{self.pk}"

    @property
    def secret(self) -> str:
        """The bind password, token or SFTP credential, unsealed ("" when none)."""
        if not self.secret_sealed:
            return ""
        return vault.unseal(bytes(self.secret_sealed), self.secret_purpose).decode()

    def set_secret(self, text: str) -> None:
        """Seal ``text`` under the master key; the source must be saved already (its pk is in the purpose)."""
        if self.pk is None:
            raise ValueError("Save the source before giving it a secret.")
        self.secret_sealed = vault.seal(text.encode(), self.secret_purpose) if text else b""


class LeftReason(models.TextChoices):
    GONE = "gone", "gone from the source"
    BLOCKED = "blocked", "blocked at the source"
    OUT_OF_SCOPE = "out_of_scope", "out of the synced groups"


class SourcedCardholder(models.Model):
    """A cardholder the source manages: the source's id for them and what the last run applied."""

    source = models.ForeignKey(CardholderSource, on_delete=models.PROTECT, related_name="links")
    key = models.CharField(max_length=128, help_text="The source's id: entryUUID, objectGUID, employee number.")
    cardholder = models.OneToOneField("accesscontrol.Cardholder", on_delete=models.CASCADE, related_name="source_link")
    digest = models.CharField(max_length=64, help_text="Of what was last applied: an unchanged entry is skipped.")
    photo_digest = models.CharField(max_length=64, blank=True)
    groups = models.JSONField(default=list)
    card_uid = models.CharField(max_length=64, blank=True, help_text="The key issued from the source's card number.")
    seen_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True, help_text="When the sync deactivated them.")
    left_reason = models.CharField(max_length=16, choices=LeftReason.choices, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "key"], name="sourced_cardholder_key")]

    def __str__(self):
        return f"{self.source}: {self.key}"


class SyncStatus(models.TextChoices):
    RUNNING = "running", "Running"
    PREVIEWED = "previewed", "Previewed (dry run)"
    HELD = "held", "Held: too many leavers"
    APPLIED = "applied", "Applied"
    NOTHING = "nothing", "Nothing new"
    FAILED = "failed", "Failed"


class SyncRun(models.Model):
    source = models.ForeignKey(CardholderSource, on_delete=models.CASCADE, related_name="runs")
    job = models.ForeignKey("accesscontrol.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    dry_run = models.BooleanField(default=False)
    full = models.BooleanField(default=True, help_text="Read everything (not only what changed).")
    status = models.CharField(max_length=16, choices=SyncStatus.choices, default=SyncStatus.RUNNING)
    description = models.CharField(max_length=300, blank=True, help_text="What was read.")
    counts = models.JSONField(default=dict, blank=True)
    diff = models.JSONField(default=dict, blank=True, help_text="Who is added, changed, deactivated (capped lists).")
    errors = models.JSONField(default=list, blank=True, help_text="Entries or rows that could not be used.")
    message = models.TextField(blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approves = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="The held run approved."
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["source", "-started_at"], name="syncrun_source_started")]

    def __str__(self):
        return f"{self.source} {self.started_at:%Y-%m-%d %H:%M} ({self.get_status_display()})"
