from django.db import models


class Partition(models.Model):
    """A slice of the site (a building, a hotel wing) that operator groups are limited to."""

    GENERAL = "General"

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


def default_partition_id() -> int:
    return Partition.objects.get_or_create(name=Partition.GENERAL)[0].pk


class PartitionedModel(models.Model):
    partition = models.ForeignKey(Partition, on_delete=models.PROTECT, default=default_partition_id, related_name="+")

    class Meta:
        abstract = True


class SiteSettings(models.Model):
    """The one row of site-wide settings and state."""

    name = models.CharField(max_length=200, default="Space")
    default_calendar = models.ForeignKey(
        "accesscontrol.Calendar",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Calendar used by access points that name none.",
    )
    lockdown = models.BooleanField(default=False, help_text="Site-wide emergency close.")
    # Data-on-card: the site code written in clear on every card, and the card key sealed under the
    # master key (core/vault.py, purpose "site-card-key"); both made on first use (devices/cards.py).
    site_code = models.PositiveBigIntegerField(null=True, blank=True, editable=False)
    card_key_sealed = models.BinaryField(editable=False, default=b"")

    class Meta:
        verbose_name = verbose_name_plural = "site settings"

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)

    @classmethod
    def load(cls) -> "SiteSettings":
        return cls.objects.get_or_create(pk=1)[0]
