from django.db import models

from devices.choices import DeviceKind


class Device(models.Model):
    """A piece of hardware Space talks to. Commissioning and keys come with the device bridge."""

    device_id = models.PositiveIntegerField(unique=True, help_text="The id the device sends in every frame.")
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=DeviceKind.choices)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name
