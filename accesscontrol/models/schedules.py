from django.core.exceptions import ValidationError
from django.db import models

from accesscontrol.choices import DayType, OpeningMode
from accesscontrol.models.partitions import PartitionedModel

MAX_INTERVALS_PER_PERIOD = 8
# Rows one mode schedule may hold: a change every half hour of a day is more than any site needs.
MAX_MODE_CHANGES = 48


class TimePeriod(PartitionedModel):
    """A weekly schedule: up to eight intervals, each valid on some weekdays and special-day types."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class DayMarks(models.Model):
    """The day types a row applies on: the weekdays, and the calendar's day types (which replace the weekday)."""

    monday = models.BooleanField(default=False)
    tuesday = models.BooleanField(default=False)
    wednesday = models.BooleanField(default=False)
    thursday = models.BooleanField(default=False)
    friday = models.BooleanField(default=False)
    saturday = models.BooleanField(default=False)
    sunday = models.BooleanField(default=False)
    holiday = models.BooleanField(default=False)
    special1 = models.BooleanField(default=False)
    special2 = models.BooleanField(default=False)

    # Order matters: index 0-6 are date.weekday() values, then the calendar day types.
    DAY_FIELDS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    DAY_TYPE_FIELDS = {DayType.HOLIDAY: "holiday", DayType.SPECIAL1: "special1", DayType.SPECIAL2: "special2"}
    ALL_DAY_FIELDS = (*DAY_FIELDS, *DAY_TYPE_FIELDS.values())

    class Meta:
        abstract = True

    def marks_a_day(self) -> bool:
        return any(getattr(self, name) for name in self.ALL_DAY_FIELDS)


class TimeInterval(DayMarks):
    """From ``start`` to ``end`` local time on the marked day types.

    An interval whose end is not after its start crosses midnight: it begins on a
    marked day and ends on the next day, whatever that day is. 00:00-00:00 is the
    whole day.
    """

    time_period = models.ForeignKey(TimePeriod, on_delete=models.CASCADE, related_name="intervals")
    start = models.TimeField()
    end = models.TimeField()

    class Meta:
        ordering = ["time_period", "start"]

    def __str__(self):
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def clean(self):
        if self.start == self.end and (self.start.hour, self.start.minute) != (0, 0):
            raise ValidationError({"end": "An interval must not end when it starts (00:00-00:00 is the whole day)."})
        if not self.marks_a_day():
            raise ValidationError("Mark at least one day on which the interval applies.")


class Calendar(models.Model):
    """Holidays and special days; a date's day type replaces its weekday in time periods."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class CalendarDay(models.Model):
    calendar = models.ForeignKey(Calendar, on_delete=models.CASCADE, related_name="days")
    date = models.DateField(help_text="For a recurring day only the month and day count.")
    day_type = models.CharField(max_length=16, choices=DayType.choices, default=DayType.HOLIDAY)
    name = models.CharField(max_length=100, blank=True)
    recurring = models.BooleanField(default=False, help_text="Repeats every year on this month and day.")

    class Meta:
        ordering = ["calendar", "date"]
        constraints = [models.UniqueConstraint(fields=["calendar", "date"], name="calendar_day_unique_date")]

    def __str__(self):
        return f"{self.date:%Y-%m-%d} {self.get_day_type_display()}"


class ModeSchedule(PartitionedModel):
    """Automatic changes of opening mode: at given local times on given day types, access points take a mode.

    Named so that many access points, or whole zones, share one table. A change
    holds until the next one; an operator's mode holds until the next change too.
    """

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class ModeChange(DayMarks):
    """At ``at`` (local wall-clock time) on the marked day types, the schedule's access points take ``mode``."""

    schedule = models.ForeignKey(ModeSchedule, on_delete=models.CASCADE, related_name="changes")
    at = models.TimeField(help_text="Local time of the site.")
    mode = models.CharField(max_length=16, choices=OpeningMode.choices)

    class Meta:
        ordering = ["schedule", "at", "id"]

    def __str__(self):
        return f"{self.at:%H:%M} {self.get_mode_display()}"

    def clean(self):
        if not self.marks_a_day():
            raise ValidationError("Mark at least one day on which the change happens.")
