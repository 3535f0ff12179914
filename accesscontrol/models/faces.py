"""Face biometrics, which belong to the cardholder: consent and sealed templates.

A template is the float32 vector a face terminal's model makes of a face. It is
kept sealed under the master key (``core.vault``, purpose
``face-template:<cardholder id>``), so a database dump reveals no vector, and it
is never serialised by any API. The rules (consent first, the model's dimension,
erasure) are in :mod:`accesscontrol.faces`.
"""

from django.conf import settings
from django.db import models


class FaceConsent(models.Model):
    """A cardholder's consent to face matching: given by an operator, and perhaps withdrawn later."""

    cardholder = models.ForeignKey("accesscontrol.Cardholder", on_delete=models.CASCADE, related_name="face_consents")
    given_at = models.DateTimeField()
    given_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["cardholder"], condition=models.Q(withdrawn_at=None), name="one_live_face_consent"
            )
        ]

    def __str__(self):
        state = "withdrawn" if self.withdrawn_at else "given"
        return f"face consent of cardholder {self.cardholder_id} ({state})"


class FaceTemplate(models.Model):
    """One enrolled capture of a cardholder's face; the vector is sealed (``accesscontrol.faces.template_vector``)."""

    cardholder = models.ForeignKey("accesscontrol.Cardholder", on_delete=models.CASCADE, related_name="face_templates")
    model_name = models.CharField(max_length=32, help_text="The terminal's face model, e.g. xs4face-v1.")
    dimension = models.PositiveSmallIntegerField()
    vector_sealed = models.BinaryField(editable=False)
    quality = models.FloatField(null=True, blank=True, help_text="The terminal's quality score of the capture.")
    created_at = models.DateTimeField(auto_now_add=True)
    source_terminal = models.CharField(max_length=64, blank=True, help_text="The id of the terminal that captured it.")

    class Meta:
        indexes = [models.Index(fields=["cardholder"], name="facetemplate_cardholder")]

    def __str__(self):
        return f"face template #{self.pk} of cardholder {self.cardholder_id} ({self.model_name})"
