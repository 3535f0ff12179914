from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from accesscontrol.choices import AccessPointKind, Connection, Direction, ModeSource, OpeningMode, PassbackKind
from accesscontrol.models.partitions import PartitionedModel


class Location(PartitionedModel):
    """Where access points are (a building, a floor); for finding and reporting, not for permissions."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Zone(PartitionedModel):
    """A group of access points that permissions, lockdown and anti-passback can name at once."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    anti_passback = models.BooleanField(
        default=False, help_text="Cardholders who use anti-passback cannot enter again before leaving."
    )
    passback_kind = models.CharField(
        "anti-passback", max_length=8, choices=PassbackKind.choices, default=PassbackKind.HARD
    )
    passback_minutes = models.PositiveIntegerField(
        "re-entry after (minutes)",
        default=0,
        help_text="Timed anti-passback: entering again is allowed this long after entering (0: only after leaving).",
    )
    roll_call = models.BooleanField(
        "roll-call area", default=False, help_text="Who is inside is listed for evacuation (the muster report)."
    )
    max_occupancy = models.PositiveIntegerField(
        null=True, blank=True, help_text="At most this many people inside; entry is refused when full (empty: none)."
    )
    occupancy_correction = models.IntegerField(
        default=0, editable=False, help_text="Added to the people counted inside, set by an operator's correction."
    )
    mode_schedule = models.ForeignKey(
        "accesscontrol.ModeSchedule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="zones",
        help_text="Automatic opening mode changes for its access points that have none of their own.",
    )
    lockdown = models.BooleanField(default=False, help_text="Emergency close for every access point in the zone.")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def tracks_presence(self) -> bool:
        """Whether entries and exits through its doors are recorded as presence."""
        return self.anti_passback or self.roll_call or self.max_occupancy is not None


class AccessPoint(PartitionedModel):
    name = models.CharField(max_length=100, unique=True)
    ext_id = models.CharField("external id", max_length=64, unique=True, null=True, blank=True)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=AccessPointKind.choices, default=AccessPointKind.DOOR)
    connection = models.CharField(max_length=8, choices=Connection.choices, default=Connection.OFFLINE)
    opening_mode = models.CharField(
        max_length=16,
        choices=OpeningMode.choices,
        default=OpeningMode.STANDARD,
        help_text="The mode in force; its schedule of automatic changes, if any, sets it at each change.",
    )
    mode_schedule = models.ForeignKey(
        "accesscontrol.ModeSchedule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="access_points",
        help_text="Automatic opening mode changes; its zone's when empty.",
    )
    mode_source = models.CharField(
        max_length=16, choices=ModeSource.choices, default=ModeSource.CONFIGURED, editable=False
    )
    mode_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    timed_period = models.ForeignKey(
        "accesscontrol.TimePeriod",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="When the door stays open by itself (timed mode) or office mode may be set.",
    )
    face_threshold = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="The cosine score a face must reach here; the site's SPACE_FACE_THRESHOLD when empty.",
    )
    open_time = models.PositiveSmallIntegerField("open time (s)", default=4)
    extended_open_time = models.PositiveSmallIntegerField("extended open time (s)", default=10)
    location = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.SET_NULL, related_name="access_points"
    )
    zones = models.ManyToManyField(Zone, blank=True, related_name="access_points")
    calendar = models.ForeignKey(
        "accesscontrol.Calendar",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Holidays and special days; the site's default calendar when empty.",
    )
    direction = models.CharField(max_length=8, choices=Direction.choices, default=Direction.BOTH)
    pin_required = models.BooleanField("PIN required", default=False, help_text="A card needs its PIN too.")
    pin_only = models.BooleanField(
        "PIN alone", default=False, help_text="A cardholder's PIN typed at the keypad opens it without a card."
    )
    held_open_time = models.PositiveSmallIntegerField(
        "held-open time (s)",
        default=30,
        help_text="An open door raises a held-open alarm after this long (0: never).",
    )
    lockdown = models.BooleanField(default=False, help_text="Emergency close: only lockdown overriders may pass.")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        if self.opening_mode == OpeningMode.TIMED and self.timed_period_id is None:
            raise ValidationError({"timed_period": "Timed opening mode needs a time period."})
        if self.extended_open_time < self.open_time:
            raise ValidationError(
                {"extended_open_time": "The extended open time must not be shorter than the open time."}
            )
        if not 1 <= self.open_time <= 255:
            raise ValidationError({"open_time": "The open time is 1 to 255 seconds."})
        if self.extended_open_time > 255:
            raise ValidationError({"extended_open_time": "The extended open time is at most 255 seconds."})
