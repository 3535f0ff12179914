"""Forms for time periods (with their intervals) and calendars (with their days)."""

import datetime as dt

from django import forms
from django.conf import settings
from django.forms import BaseInlineFormSet, inlineformset_factory

from accesscontrol import holidays
from accesscontrol.forms.partitioned import OperatorModelForm, time_input
from accesscontrol.models import Calendar, CalendarDay, ModeChange, ModeSchedule, TimeInterval, TimePeriod
from accesscontrol.models.schedules import MAX_INTERVALS_PER_PERIOD, MAX_MODE_CHANGES

# Rows of the weekly grid and columns of the interval rows: the weekdays, then the calendar's day types.
DAY_COLUMNS = (
    ("monday", "Mon", "Monday"),
    ("tuesday", "Tue", "Tuesday"),
    ("wednesday", "Wed", "Wednesday"),
    ("thursday", "Thu", "Thursday"),
    ("friday", "Fri", "Friday"),
    ("saturday", "Sat", "Saturday"),
    ("sunday", "Sun", "Sunday"),
    ("holiday", "Hol", "Holiday"),
    ("special1", "Sp1", "Special day 1"),
    ("special2", "Sp2", "Special day 2"),
)
DAY_NAMES = tuple(name for name, _, _ in DAY_COLUMNS)


class TimePeriodForm(OperatorModelForm):
    class Meta:
        model = TimePeriod
        fields = ["name", "partition", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


def _whole_minute(value: dt.time | None) -> dt.time | None:
    if value is not None and (value.second or value.microsecond):
        raise forms.ValidationError("Give whole minutes (HH:MM).")
    return value


class IntervalForm(forms.ModelForm):
    """One row of a time period: from, to, and the days it applies on. The model's clean() checks the rest."""

    class Meta:
        model = TimeInterval
        fields = ["start", "end", *DAY_NAMES]
        labels = {"start": "From", "end": "To"}
        widgets = {"start": time_input(), "end": time_input()}
        help_texts = {"end": "A time not after the start crosses midnight; 00:00 to 00:00 is the whole day."}

    def day_fields(self):
        return [self[name] for name in DAY_NAMES]

    def clean_start(self):
        return _whole_minute(self.cleaned_data.get("start"))

    def clean_end(self):
        return _whole_minute(self.cleaned_data.get("end"))


class BaseIntervalFormSet(BaseInlineFormSet):
    def clean(self):
        super().clean()
        seen = set()
        for form in self.forms:
            blank = form.empty_permitted and not form.has_changed()
            if blank or self._should_delete_form(form) or not hasattr(form, "cleaned_data"):
                continue
            row = tuple(form.cleaned_data.get(name) for name in ("start", "end", *DAY_NAMES))
            if row in seen:
                form.add_error(None, "This interval is given twice.")
            seen.add(row)


IntervalFormSet = inlineformset_factory(
    TimePeriod,
    TimeInterval,
    form=IntervalForm,
    formset=BaseIntervalFormSet,
    extra=2,
    max_num=MAX_INTERVALS_PER_PERIOD,
    validate_max=True,
    can_delete=True,
)


class ModeScheduleForm(OperatorModelForm):
    class Meta:
        model = ModeSchedule
        fields = ["name", "partition", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


class ModeChangeForm(forms.ModelForm):
    """One row of a mode schedule: at, the mode, and the days it happens on. The model's clean() checks the rest."""

    class Meta:
        model = ModeChange
        fields = ["at", "mode", *DAY_NAMES]
        labels = {"at": "At"}
        widgets = {"at": time_input()}

    def day_fields(self):
        return [self[name] for name in DAY_NAMES]

    def clean_at(self):
        return _whole_minute(self.cleaned_data.get("at"))


class BaseModeChangeFormSet(BaseInlineFormSet):
    def clean(self):
        super().clean()
        taken = {}
        for form in self.forms:
            blank = form.empty_permitted and not form.has_changed()
            if blank or self._should_delete_form(form) or not hasattr(form, "cleaned_data"):
                continue
            at, mode = form.cleaned_data.get("at"), form.cleaned_data.get("mode")
            for name in DAY_NAMES:
                if form.cleaned_data.get(name):
                    other = taken.setdefault((at, name), mode)
                    if other != mode:
                        form.add_error(None, f"Another change at {at:%H:%M} on the same day names another mode.")
                        return


ModeChangeFormSet = inlineformset_factory(
    ModeSchedule,
    ModeChange,
    form=ModeChangeForm,
    formset=BaseModeChangeFormSet,
    extra=2,
    max_num=MAX_MODE_CHANGES,
    validate_max=True,
    can_delete=True,
)


class CalendarForm(OperatorModelForm):
    class Meta:
        model = Calendar
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


class CalendarDayForm(forms.ModelForm):
    class Meta:
        model = CalendarDay
        fields = ["date", "day_type", "name", "recurring"]
        widgets = {"date": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")}

    def __init__(self, *args, calendar, **kwargs):
        super().__init__(*args, **kwargs)
        self.calendar = calendar

    def clean_date(self):
        date = self.cleaned_data["date"]
        if self.calendar.days.filter(date=date).exists():
            raise forms.ValidationError(f"{self.calendar} already has {date:%Y-%m-%d}; remove that day first.")
        return date

    def save(self, commit=True):
        self.instance.calendar = self.calendar
        return super().save(commit)


def _country_choices():
    return [("", "Common holidays"), *((name, name) for name in sorted(holidays.COUNTRIES))]


class HolidaysForm(forms.Form):
    """Add a country's public holidays for one year (accesscontrol.holidays), skipping dates already there."""

    year = forms.IntegerField(min_value=1970, max_value=2100)
    country = forms.ChoiceField(choices=_country_choices, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["year"].initial = dt.date.today().year
        self.fields["country"].initial = holidays.country_for_time_zone(settings.TIME_ZONE) or ""

    def holidays(self) -> list[tuple[dt.date, str]]:
        year, country = self.cleaned_data["year"], self.cleaned_data["country"]
        rules = holidays.COUNTRIES[country] if country else holidays.COMMON
        return sorted((holidays.rule_date(rule, year), name) for name, rule in rules.items())
