from django.core.exceptions import ValidationError
from django.db import models

from accesscontrol.models.partitions import PartitionedModel


class Grant(models.Model):
    """An access point or a zone, at the times of a time period (always when empty)."""

    access_point = models.ForeignKey("accesscontrol.AccessPoint", null=True, blank=True, on_delete=models.CASCADE)
    zone = models.ForeignKey("accesscontrol.Zone", null=True, blank=True, on_delete=models.CASCADE)
    time_period = models.ForeignKey(
        "accesscontrol.TimePeriod",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        help_text="Empty: at any time.",
    )

    class Meta:
        abstract = True

    def clean(self):
        if (self.access_point_id is None) == (self.zone_id is None):
            raise ValidationError("Name either an access point or a zone.")

    @property
    def target(self):
        return self.access_point or self.zone


def one_target(name: str) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=models.Q(access_point__isnull=False, zone__isnull=True)
        | models.Q(access_point__isnull=True, zone__isnull=False),
        name=name,
    )


class AccessLevel(PartitionedModel):
    """A named set of grants given to many cardholders (SALTO's "access level"/"user group")."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class AccessLevelEntry(Grant):
    access_level = models.ForeignKey(AccessLevel, on_delete=models.CASCADE, related_name="entries")

    class Meta:
        verbose_name_plural = "access level entries"
        constraints = [one_target("access_level_entry_one_target")]
        default_related_name = "access_level_entries"

    def __str__(self):
        return f"{self.access_level}: {self.target}"


class CardholderPermission(Grant):
    """A grant given to one cardholder alone."""

    cardholder = models.ForeignKey("accesscontrol.Cardholder", on_delete=models.CASCADE, related_name="permissions")

    class Meta:
        constraints = [one_target("cardholder_permission_one_target")]
        default_related_name = "cardholder_permissions"

    def __str__(self):
        return f"{self.cardholder}: {self.target}"
