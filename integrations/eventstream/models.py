"""The event stream's models: the configured receivers and their outbox rows.

They live here, not in ``integrations/models.py``, which imports them so that
Django registers them with the ``integrations`` app.
"""

from collections.abc import Callable

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.utils import timezone


class StreamProtocol(models.TextChoices):
    TCP = "tcp", "TCP (Space connects as a client)"
    UDP = "udp", "UDP (one datagram per event)"


class EventStream(models.Model):
    """A receiver of audit events as they happen: one JSON object per event, over TCP or UDP."""

    name = models.CharField(max_length=100, unique=True)
    protocol = models.CharField(max_length=3, choices=StreamProtocol.choices, default=StreamProtocol.TCP)
    host = models.CharField(max_length=255, help_text="Host name or IP address of the receiver.")
    port = models.PositiveIntegerField(validators=[MinValueValidator(1), MaxValueValidator(65535)])
    kinds = models.JSONField(
        default=list, blank=True, help_text="Audit event kinds to send (e.g. access_denied); none ticked: all kinds."
    )
    partitions = models.ManyToManyField(
        "accesscontrol.Partition",
        blank=True,
        related_name="+",
        help_text="Send only events of these partitions; none: every event, including those without a partition.",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_connected_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False, help_text="Cleared when a connection succeeds.")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        _forget_streams()

    def delete(self, *args, **kwargs):
        result = super().delete(*args, **kwargs)
        _forget_streams()
        return result

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.protocol}://{host}:{self.port}"


# Who keeps streams in a cache (integrations.eventstream.service, when imported) registers here to be told of changes.
stream_listeners: list[Callable[[], None]] = []


def _forget_streams() -> None:
    """This process picks the change up at once (and again after the commit); others within seconds."""
    for listener in stream_listeners:
        listener()
        transaction.on_commit(listener)


class StreamItem(models.Model):
    """One event waiting for (``sent_at`` null) or written to (``sent_at`` set) one stream: the outbox row."""

    # No database constraint: ``eventstream.enqueue`` works from a list of streams cached
    # for a few seconds, and an event must be stored even when one of them was just
    # deleted. The service removes such orphan rows; the ORM cascades deletes as usual.
    stream = models.ForeignKey(EventStream, on_delete=models.CASCADE, related_name="items", db_constraint=False)
    key = models.CharField(max_length=64, help_text="The event's stable id; receivers de-duplicate by it.")
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["stream", "key"], name="streamitem_once_per_stream")]
        # Serves both the sender's "next pending rows in order" and the purge of old sent rows.
        indexes = [models.Index(fields=["stream", "sent_at", "id"], name="streamitem_stream_sent")]

    def __str__(self):
        return f"{self.key} → stream {self.stream_id}"
