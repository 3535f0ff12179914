"""The hotel: rooms (with their connecting doors), the common areas every guest may use, guest stays,
and the record that makes a retried REST call answer without issuing twice.

A room is an access point of kind ``room`` with the number the PMS uses (FIAS ``RN``,
at most 8 characters). A stay is one guest's (or one reservation's) time in a room
and its extra rooms (a suite); its guest is a cardholder of its own, of kind guest,
whose individual permissions are the stay's rooms and guest areas, so the card data
and the decision engine need nothing hotel-specific (hotel/actions.py).
"""

from django.conf import settings
from django.db import models

from accesscontrol.choices import StayStatus
from accesscontrol.models.permissions import Grant, one_target


class Room(models.Model):
    number = models.CharField(max_length=8, unique=True, help_text="As the PMS names it (FIAS RN): 1 to 8 characters.")
    access_point = models.OneToOneField(
        "accesscontrol.AccessPoint",
        on_delete=models.CASCADE,
        related_name="room",
        limit_choices_to={"kind": "room"},
        help_text="The room's door (an access point of kind room).",
    )
    floor = models.SmallIntegerField(default=0)
    suite = models.BooleanField(
        default=False, help_text="A suite: checking this room in gives its connected rooms too."
    )
    connects = models.ManyToManyField(
        "self",
        blank=True,
        symmetrical=True,
        help_text="Rooms with a connecting door: a stay in several of them (a suite) opens the doors between.",
    )

    class Meta:
        ordering = ["floor", "number"]

    def __str__(self):
        return f"Room {self.number}"


class GuestArea(Grant):
    """A common area guests may use (lifts, gym, parking): an access point or a zone, at a time period.

    ``default`` areas are given at every check-in that names none; a check-in may name areas instead.
    """

    name = models.CharField(max_length=32, unique=True, help_text="As check-ins name it (e.g. GYM, PARKING).")
    default = models.BooleanField(default=True, help_text="Given to every guest whose check-in names no areas.")

    class Meta:
        ordering = ["name"]
        constraints = [one_target("guest_area_one_target")]
        default_related_name = "guest_areas"

    def __str__(self):
        return self.name


class Stay(models.Model):
    """A guest's time in a room (and its extra rooms), from check-in to check-out."""

    room = models.ForeignKey(Room, on_delete=models.PROTECT, related_name="stays")
    extra_rooms = models.ManyToManyField(Room, blank=True, related_name="extra_stays")
    cardholder = models.OneToOneField(
        "accesscontrol.Cardholder", on_delete=models.PROTECT, related_name="stay", help_text="The guest."
    )
    reservation = models.CharField(max_length=32, blank=True, help_text="The PMS's reservation number (FIAS G#).")
    guest_name = models.CharField(max_length=200, blank=True)
    arrival = models.DateTimeField()
    departure = models.DateTimeField()
    areas = models.ManyToManyField(GuestArea, blank=True, related_name="stays")
    status = models.CharField(max_length=4, choices=StayStatus.choices, default=StayStatus.IN)
    checked_out_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-arrival", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["room"], condition=models.Q(status=StayStatus.IN), name="stay_one_in_house_per_room"
            ),
        ]
        indexes = [models.Index(fields=["status", "reservation"], name="stay_status_reservation")]

    def __str__(self):
        return f"{self.guest_name or 'Guest'} in {self.room}"


class IdempotencyRecord(models.Model):
    """One REST call made with an ``Idempotency-Key``: its answer, returned again to a retry (24 h)."""

    operator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the method, path and body.")
    status = models.PositiveSmallIntegerField(default=0, help_text="0 while the first call is running.")
    body = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["operator", "key"], name="idempotency_key_once_per_operator")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created")]

    def __str__(self):
        return f"{self.key} ({self.status or 'running'})"
