"""Pages for time periods (with the weekly grid editor), calendars (with their special days) and mode schedules
(with their change rows)."""

import itertools

from django.contrib import messages
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.views import View

from accesscontrol import actions, filtersets
from accesscontrol.forms.schedules import (
    DAY_COLUMNS,
    DAY_NAMES,
    CalendarDayForm,
    CalendarForm,
    HolidaysForm,
    IntervalFormSet,
    ModeChangeFormSet,
    ModeScheduleForm,
    TimePeriodForm,
)
from accesscontrol.models import (
    AccessLevelEntry,
    Calendar,
    CalendarDay,
    ModeChange,
    ModeSchedule,
    TimeInterval,
    TimePeriod,
)
from accesscontrol.permissions import restrict
from accesscontrol.views.base import VIA, OperatorPage, client_address
from accesscontrol.views.editing import CreatePage, DeletePage, DetailPage, EditPage, ListPage, visible_partitions
from accesscontrol.views.places import count_of

DAY_MINUTES = 24 * 60
SLOT = 15  # minutes in one cell of the weekly grid
SHORT = dict((name, short) for name, short, _ in DAY_COLUMNS)
INTERVAL_FIELDS = ("start", "end", *DAY_NAMES)


# --- the weekly grid -------------------------------------------------------------------------


def _minutes(moment) -> int:
    return moment.hour * 60 + moment.minute


describe = actions.describe_interval


def day_segments(intervals) -> dict[str, list[tuple[int, int]]]:
    """Each grid row's allowed minutes as (from, to) segments.

    An interval whose end is not after its start runs past midnight: on a weekday
    the rest falls on the next weekday's row; a day type (holiday, special day)
    has no fixed next day, so the page only says "(to next day)" there.
    """
    segments = {name: [] for name in DAY_NAMES}
    weekdays = DAY_NAMES[:7]
    for interval in intervals:
        start, end = _minutes(interval.start), _minutes(interval.end)
        for name in DAY_NAMES:
            if not getattr(interval, name):
                continue
            if end > start:
                segments[name].append((start, end))
            elif start == end:  # 00:00-00:00, the whole day (the model allows no other equal times)
                segments[name].append((0, DAY_MINUTES))
            else:
                segments[name].append((start, DAY_MINUTES))
                if name in weekdays:
                    following = weekdays[(weekdays.index(name) + 1) % 7]
                    segments[following].append((0, end))
    return segments


def _covered(segments: list[tuple[int, int]], start: int, end: int) -> int:
    """Minutes of [start, end) inside the union of ``segments``."""
    marks = sorted((max(a, start), min(b, end)) for a, b in segments if a < end and b > start)
    covered, reached = 0, start
    for a, b in marks:
        a = max(a, reached)
        if b > a:
            covered += b - a
            reached = b
    return covered


def weekly_grid(intervals) -> list[dict]:
    """Rows (weekdays, then day types) of 96 quarter-hour cells: "on" (all allowed), "part", or "" (none)."""
    intervals = list(intervals)
    segments = day_segments(intervals)
    rows = []
    for name, short, label in DAY_COLUMNS:
        cells = []
        for slot in range(0, DAY_MINUTES, SLOT):
            covered = _covered(segments[name], slot, slot + SLOT)
            cells.append("on" if covered == SLOT else "part" if covered else "")
        own = [describe_on(interval) for interval in intervals if getattr(interval, name)]
        rows.append({"name": name, "short": short, "label": label, "cells": cells, "summary": own})
    return rows


def describe_on(interval: TimeInterval) -> str:
    if interval.start == interval.end:
        return "all day"
    crosses = interval.end < interval.start
    return f"{interval.start:%H:%M}\N{EN DASH}{interval.end:%H:%M}{' (to next day)' if crosses else ''}"


HOURS = [f"{hour:02d}" for hour in range(24)]


# --- time periods ----------------------------------------------------------------------------


class TimePeriodPage:
    model = TimePeriod
    detail_url_name = "time_period"
    list_url_name = "time_periods"


class TimePeriodList(TimePeriodPage, ListPage):
    template_name = "accesscontrol/schedules/time_period_list.html"
    page_title = "Time periods"
    filterset_class = filtersets.TimePeriodFilterSet

    def base_queryset(self):
        return TimePeriod.objects.select_related("partition").prefetch_related(
            Prefetch("intervals", TimeInterval.objects.order_by("start", "id"))
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["partitions"] = visible_partitions(self.request.user, TimePeriod)
        context["rows"] = [(period, [describe(i) for i in period.intervals.all()]) for period in context["page_obj"]]
        return context


class TimePeriodDetail(TimePeriodPage, DetailPage):
    """The weekly grid, and for those who may change the period, its intervals as form rows."""

    template_name = "accesscontrol/schedules/time_period_detail.html"

    def base_queryset(self):
        return TimePeriod.objects.select_related("partition")

    def get_context_data(self, formset=None, **kwargs):
        context = super().get_context_data(**kwargs)
        period = self.object
        intervals = list(period.intervals.order_by("start", "id"))
        context.update(
            page_title=period.name,
            grid=weekly_grid(intervals),
            hours=HOURS,
            intervals=intervals,
            day_columns=DAY_COLUMNS,
            used_by=restrict(
                AccessLevelEntry.objects.filter(time_period=period).select_related("access_level"),
                self.request.user,
                "view",
            )[:20],
        )
        if context["may_change"]:
            context["formset"] = formset or IntervalFormSet(
                instance=period, queryset=period.intervals.order_by("start", "id")
            )
        return context


class TimePeriodIntervals(TimePeriodPage, DetailPage):
    """Save the interval rows: the period's intervals as a whole, recorded as one change of "intervals"."""

    action = "change"
    template_name = TimePeriodDetail.template_name
    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        self.object = period = self.get_object()
        before = [describe(interval) for interval in period.intervals.order_by("start", "id")]
        formset = IntervalFormSet(request.POST, instance=period, queryset=period.intervals.order_by("start", "id"))
        if not formset.is_valid():
            detail = TimePeriodDetail(request=request, kwargs=kwargs, object=period)
            context = detail.get_context_data(object=period, formset=formset)
            return TemplateResponse(request, self.template_name, context, status=200)
        intervals = [
            {name: form.cleaned_data[name] for name in INTERVAL_FIELDS}
            for form in formset.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        actions.save_time_period(
            period, intervals=intervals, operator=request.user, via=VIA, address=client_address(request)
        )
        after = [describe(interval) for interval in period.intervals.order_by("start", "id")]
        messages.success(request, "Intervals saved." if before != after else "Nothing changed.")
        return redirect("time_period", pk=period.pk)


class TimePeriodCreate(TimePeriodPage, CreatePage):
    form_class = TimePeriodForm
    page_title = "New time period"


class TimePeriodEdit(TimePeriodPage, EditPage):
    form_class = TimePeriodForm
    page_title = "Edit time period"


class TimePeriodDelete(TimePeriodPage, DeletePage):
    page_title = "Delete time period"


# --- calendars -------------------------------------------------------------------------------


class CalendarPage:
    model = Calendar
    detail_url_name = "calendar"
    list_url_name = "calendars"


class CalendarList(CalendarPage, ListPage):
    template_name = "accesscontrol/schedules/calendar_list.html"
    page_title = "Calendars"
    filterset_class = filtersets.CalendarFilterSet

    def base_queryset(self):
        return Calendar.objects.annotate(day_count=count_of(CalendarDay.objects.all(), "calendar_id"))


def days_by_month(days) -> list[dict]:
    """Dated days by month ("March 2026"), then the recurring ones by month under "Every year"."""
    days = list(days)
    groups = []
    dated = [day for day in days if not day.recurring]
    for (year, _month), group in itertools.groupby(dated, key=lambda day: (day.date.year, day.date.month)):
        group = list(group)
        groups.append({"title": f"{group[0].date:%B} {year}", "days": group})
    recurring = sorted((day for day in days if day.recurring), key=lambda day: (day.date.month, day.date.day))
    for _month, group in itertools.groupby(recurring, key=lambda day: day.date.month):
        group = list(group)
        groups.append({"title": f"{group[0].date:%B}, every year", "days": group})
    return groups


class CalendarDetail(CalendarPage, DetailPage):
    template_name = "accesscontrol/schedules/calendar_detail.html"

    def get_context_data(self, day_form=None, holidays_form=None, **kwargs):
        context = super().get_context_data(**kwargs)
        calendar = self.object
        context["page_title"] = calendar.name
        context["months"] = days_by_month(calendar.days.order_by("date"))
        if context["may_change"]:
            context["day_form"] = day_form or CalendarDayForm(calendar=calendar)
            context["holidays_form"] = holidays_form or HolidaysForm()
        return context


class CalendarDays(OperatorPage, View):
    """Add a special day to a calendar, or remove one."""

    permission_required = ("accesscontrol.change_calendar",)

    def post(self, request, pk):
        calendar = get_object_or_404(restrict(Calendar.objects.all(), request.user, "change"), pk=pk)
        if "remove" in request.POST:
            day = get_object_or_404(calendar.days, pk=_int(request.POST.get("remove")))
            actions.remove_calendar_day(day, operator=request.user, via=VIA, address=client_address(request))
            messages.success(request, f"{day.date:%Y-%m-%d} removed.")
            return redirect("calendar", pk=calendar.pk)
        form = CalendarDayForm(request.POST, calendar=calendar)
        if not form.is_valid():
            return _calendar_page(request, calendar, day_form=form)
        day = actions.add_calendar_day(
            calendar,
            **{name: form.cleaned_data[name] for name in ("date", "day_type", "name", "recurring")},
            operator=request.user,
            via=VIA,
            address=client_address(request),
        )
        messages.success(request, f"{day.date:%Y-%m-%d} added as {day.get_day_type_display().lower()}.")
        return redirect("calendar", pk=calendar.pk)


class CalendarHolidays(OperatorPage, View):
    """Add a year's public holidays (accesscontrol.holidays) to a calendar; dates already there stay as they are."""

    permission_required = ("accesscontrol.change_calendar",)

    def post(self, request, pk):
        calendar = get_object_or_404(restrict(Calendar.objects.all(), request.user, "change"), pk=pk)
        form = HolidaysForm(request.POST)
        if not form.is_valid():
            return _calendar_page(request, calendar, holidays_form=form)
        added = actions.add_public_holidays(
            calendar,
            form.holidays(),
            year=form.cleaned_data["year"],
            country=form.cleaned_data["country"],
            operator=request.user,
            via=VIA,
            address=client_address(request),
        )
        messages.success(request, f"{len(added)} holiday{'s' if len(added) != 1 else ''} added.")
        return redirect("calendar", pk=calendar.pk)


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _calendar_page(request, calendar, **forms):
    page = CalendarDetail(request=request, kwargs={"pk": calendar.pk}, object=calendar)
    context = page.get_context_data(object=calendar, **forms)
    return TemplateResponse(request, CalendarDetail.template_name, context)


class CalendarCreate(CalendarPage, CreatePage):
    form_class = CalendarForm
    page_title = "New calendar"


class CalendarEdit(CalendarPage, EditPage):
    form_class = CalendarForm
    page_title = "Edit calendar"


class CalendarDelete(CalendarPage, DeletePage):
    page_title = "Delete calendar"


# --- mode schedules --------------------------------------------------------------------------

CHANGE_FIELDS = ("at", "mode", *DAY_NAMES)
USERS_SHOWN = 50


def day_changes(changes) -> list[dict]:
    """Per weekday and day type, the changes in order of time: what the mode table does on such a day."""
    changes = list(changes)
    return [
        {"label": label, "short": short, "changes": [change for change in changes if getattr(change, name)]}
        for name, short, label in DAY_COLUMNS
    ]


class ModeSchedulePage:
    model = ModeSchedule
    detail_url_name = "mode_schedule"
    list_url_name = "mode_schedules"


class ModeScheduleList(ModeSchedulePage, ListPage):
    template_name = "accesscontrol/schedules/mode_schedule_list.html"
    page_title = "Mode schedules"
    filterset_class = filtersets.ModeScheduleFilterSet

    def base_queryset(self):
        return ModeSchedule.objects.select_related("partition").prefetch_related(
            Prefetch("changes", ModeChange.objects.order_by("at", "id"))
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["partitions"] = visible_partitions(self.request.user, ModeSchedule)
        context["rows"] = [
            (schedule, [actions.describe_mode_change(change) for change in schedule.changes.all()])
            for schedule in context["page_obj"]
        ]
        return context


class ModeScheduleDetail(ModeSchedulePage, DetailPage):
    """The changes day by day, the access points and zones that follow the schedule, and the change rows' editor."""

    template_name = "accesscontrol/schedules/mode_schedule_detail.html"

    def base_queryset(self):
        return ModeSchedule.objects.select_related("partition")

    def get_context_data(self, formset=None, **kwargs):
        context = super().get_context_data(**kwargs)
        schedule, user = self.object, self.request.user
        changes = list(schedule.changes.order_by("at", "id"))
        context.update(
            page_title=schedule.name,
            days=day_changes(changes),
            changes=changes,
            day_columns=DAY_COLUMNS,
            access_points=restrict(schedule.access_points.all(), user, "view")[:USERS_SHOWN],
            zones=restrict(schedule.zones.all(), user, "view")[:USERS_SHOWN],
        )
        if context["may_change"]:
            context["formset"] = formset or ModeChangeFormSet(instance=schedule, queryset=schedule.changes.all())
        return context


class ModeScheduleChanges(ModeSchedulePage, DetailPage):
    """Save the change rows: the schedule's changes as a whole, recorded as one change of "changes"."""

    action = "change"
    template_name = ModeScheduleDetail.template_name
    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        self.object = schedule = self.get_object()
        before = [actions.describe_mode_change(change) for change in schedule.changes.all()]
        formset = ModeChangeFormSet(request.POST, instance=schedule, queryset=schedule.changes.all())
        if not formset.is_valid():
            detail = ModeScheduleDetail(request=request, kwargs=kwargs, object=schedule)
            context = detail.get_context_data(object=schedule, formset=formset)
            return TemplateResponse(request, self.template_name, context, status=200)
        changes = [
            {name: form.cleaned_data[name] for name in CHANGE_FIELDS}
            for form in formset.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        actions.save_mode_schedule(
            schedule, changes=changes, operator=request.user, via=VIA, address=client_address(request)
        )
        after = [actions.describe_mode_change(change) for change in schedule.changes.all()]
        messages.success(request, "Changes saved." if before != after else "Nothing changed.")
        return redirect("mode_schedule", pk=schedule.pk)


class ModeScheduleCreate(ModeSchedulePage, CreatePage):
    form_class = ModeScheduleForm
    page_title = "New mode schedule"


class ModeScheduleEdit(ModeSchedulePage, EditPage):
    form_class = ModeScheduleForm
    page_title = "Edit mode schedule"


class ModeScheduleDelete(ModeSchedulePage, DeletePage):
    page_title = "Delete mode schedule"
