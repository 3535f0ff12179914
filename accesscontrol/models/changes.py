from django.db import models


class RuleChange(models.Model):
    """A row per change to the data the decision engine uses.

    Every process holding a rules snapshot (web, device bridge) reads the rows
    after the last one it applied and reloads just those objects.
    """

    model = models.CharField(max_length=32)
    object_id = models.BigIntegerField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["at"], name="rulechange_at")]

    def __str__(self):
        return f"#{self.pk} {self.model} {self.object_id}"
