"""Forms of the front desk: check-in, move, new departure, and the desk's encoder.

A departure is a date and a time: the time starts at the hotel's check-out time
(``SPACE_HOTEL_CHECK_OUT_TIME``), so the desk usually only picks the day.
"""

import datetime as dt

from django import forms
from django.utils import timezone

from hotel.actions import check_out_time

MAX_KEYS = 4


def checkout_time() -> dt.time:
    """The hotel's usual check-out time (``SPACE_HOTEL_CHECK_OUT_TIME``)."""
    return check_out_time()


class DepartureFields(forms.Form):
    """A departure day and time, in the site's time zone; it must lie ahead."""

    departure_date = forms.DateField(label="Departure", widget=forms.DateInput(attrs={"type": "date"}))
    departure_time = forms.TimeField(label="Check-out time", widget=forms.TimeInput(attrs={"type": "time"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        tomorrow = timezone.localdate() + dt.timedelta(days=1)
        self.fields["departure_date"].initial = tomorrow
        self.fields["departure_time"].initial = checkout_time().strftime("%H:%M")

    def clean(self):
        data = super().clean()
        day, time = data.get("departure_date"), data.get("departure_time")
        if day and time:
            departure = timezone.make_aware(dt.datetime.combine(day, time))
            if departure <= timezone.now():
                self.add_error("departure_date", "The departure must be in the future.")
            data["departure"] = departure
        return data


class CheckInForm(DepartureFields):
    guest_name = forms.CharField(label="Guest", max_length=200)
    keys = forms.IntegerField(
        label="Keys", min_value=1, max_value=MAX_KEYS, initial=1, help_text="Cards to write, one after the other."
    )
    common_areas = forms.MultipleChoiceField(
        label="Common areas",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The guest areas (lifts, gym, parking) the key opens; the hotel's defaults are ticked.",
    )
    extra_rooms = forms.MultipleChoiceField(
        label="Also open", required=False, widget=forms.CheckboxSelectMultiple, help_text="Free rooms of the suite."
    )
    field_order = ["guest_name", "departure_date", "departure_time", "keys", "extra_rooms", "common_areas"]

    def __init__(self, *args, suite_rooms=(), areas=(), **kwargs):
        super().__init__(*args, **kwargs)
        if areas:
            self.fields["common_areas"].choices = [(area.name, area.name) for area in areas]
            self.fields["common_areas"].initial = [area.name for area in areas if area.default]
        else:
            del self.fields["common_areas"]  # none defined: the check-in names none
        if suite_rooms:
            self.fields["extra_rooms"].choices = [(number, f"Room {number}") for number in suite_rooms]
        else:
            del self.fields["extra_rooms"]

    def clean_guest_name(self):
        name = " ".join(self.cleaned_data["guest_name"].split())
        if not name:
            raise forms.ValidationError("Enter the guest's name.")
        return name


class DepartureForm(DepartureFields):
    pass


class MoveForm(forms.Form):
    new_room = forms.ChoiceField(label="Move to", help_text="A free room; the guest's keys follow.")

    def __init__(self, *args, free_rooms=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["new_room"].choices = [("", "Choose a free room")] + [
            (number, f"Room {number}") for number in free_rooms
        ]
