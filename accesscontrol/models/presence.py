from django.db import models

from accesscontrol.choices import PresenceSource


class Presence(models.Model):
    """Whether a cardholder is inside a zone, and since when: one row per cardholder and zone ever passed.

    Written only by accesscontrol.presence, from online decisions, offline audit
    trails and operators; ``last_at`` is the passage it reflects, so passages
    merged late (an offline lock's trail) never undo a newer one.
    """

    cardholder = models.ForeignKey("accesscontrol.Cardholder", on_delete=models.CASCADE, related_name="presences")
    zone = models.ForeignKey("accesscontrol.Zone", on_delete=models.CASCADE, related_name="presences")
    inside = models.BooleanField(default=True)
    since = models.DateTimeField(help_text="When they entered (inside) or left.")
    last_at = models.DateTimeField(help_text="The passage this row reflects.")
    source = models.CharField(max_length=16, choices=PresenceSource.choices, default=PresenceSource.ONLINE)
    access_point = models.ForeignKey(
        "accesscontrol.AccessPoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["zone", "since"]
        constraints = [models.UniqueConstraint(fields=["cardholder", "zone"], name="presence_once_per_zone")]
        indexes = [models.Index(fields=["zone", "inside", "since"], name="presence_zone_inside")]
        permissions = [
            ("forgive_presence", "Can forgive anti-passback and correct occupancy"),
            ("view_muster", "Can see the muster report"),
        ]

    def __str__(self):
        return f"{self.cardholder_id} {'in' if self.inside else 'out of'} {self.zone_id}"


class PresenceChange(models.Model):
    """A row per change of presence, for every process's in-memory view to follow (as RuleChange for rules)."""

    cardholder_id = models.BigIntegerField()
    zone_id = models.BigIntegerField()
    inside = models.BooleanField()
    at = models.DateTimeField(help_text="The passage (or correction) the change reflects.")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["recorded_at"], name="presencechange_recorded")]

    def __str__(self):
        return f"#{self.pk} {self.cardholder_id} {'in' if self.inside else 'out of'} {self.zone_id}"
