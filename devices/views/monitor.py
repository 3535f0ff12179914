"""The live monitor: the newest events at once, then live over /ws/monitor/; remote open and lockdown; open alarms.

The page is rendered with the last events of the operator's partitions, the
doors' states and the devices' presence, so it is useful before its script has
connected. Its alarm panel lists the alarms nobody has acknowledged yet (htmx
asks for it again every few seconds); its Acknowledge buttons go through
``devices.actions.acknowledge_alarm``, for operators holding
``devices.acknowledge_alarm`` in the alarm's partition. Commands go through ``devices.commands.issue`` (which queues the
device commands and records the action in the system auditor), under the rules
the API's ``POST /api/v1/commands/`` applies: the operator needs
``devices.add_devicecommand`` and must be allowed to change every access point a
command reaches, and, for a lockdown or its end, the zone or the site itself.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.generic import TemplateView, View

from accesscontrol import muster, photos
from accesscontrol.choices import AuditKind, Decision
from accesscontrol.models import AccessPoint, AuditEvent, SiteSettings, Zone
from accesscontrol.permissions import ALL, allowed_partitions, permission_name, restrict
from accesscontrol.views.base import VIA, OperatorPage, client_address
from accesscontrol.views.records import ALERT_KINDS, AUDIT_COLUMNS
from devices import actions, alarms, commands
from devices.choices import CommandOp
from devices.forms import AcknowledgeAlarmForm
from devices.models import Alarm, Device, DeviceCommand, DeviceDoor
from devices.modeplan import next_changes

VIEW_EVENTS = "accesscontrol.view_auditevent"
# The permission the API's commands endpoint asks for.
ISSUE_COMMANDS = "devices.add_devicecommand"
FIRST_EVENTS = 50
RECENT_COMMANDS = 10
OPEN_ALARMS_SHOWN = 50
# What the page's buttons ask for, and the command each is.
ACTIONS = {
    "open": CommandOp.OPEN,
    "lockdown": CommandOp.EMERGENCY_CLOSE,
    "end_lockdown": CommandOp.END_EMERGENCY,
}
ACTION_LABELS = {"open": "Remote open", "lockdown": "Lockdown", "end_lockdown": "End of lockdown"}


def monitored(queryset, operator):
    """The access points or zones of the partitions whose events ``operator`` watches: what the monitor shows."""
    partitions = allowed_partitions(operator, VIEW_EVENTS)
    return queryset if partitions is ALL else queryset.filter(partition__in=partitions)


def alarm_panel(operator) -> dict:
    """The open alarms the operator sees (newest first, at most OPEN_ALARMS_SHOWN) and which they may acknowledge."""
    if not operator.has_perm(alarms.VIEW):
        return {"may_see_alarms": False, "alarms": [], "alarm_count": 0, "may_acknowledge": set()}
    visible = alarms.open_alarms(alarms.visible_alarms(Alarm.objects.all(), operator))
    shown = list(visible.select_related("access_point", "device")[:OPEN_ALARMS_SHOWN])
    acknowledgeable = alarms.visible_alarms(
        Alarm.objects.filter(pk__in=[alarm.pk for alarm in shown]), operator, "acknowledge"
    )
    return {
        "may_see_alarms": True,
        "alarms": shown,
        "alarm_count": visible.count() if len(shown) == OPEN_ALARMS_SHOWN else len(shown),
        "may_acknowledge": set(acknowledgeable.values_list("pk", flat=True)),
    }


def roll_call_panel(operator) -> dict:
    """The live counts: every roll-call area the operator may muster, and the monitored zones with a limit."""
    areas = list(muster.roll_call_areas(operator))
    limited = [
        zone
        for zone in monitored(Zone.objects.filter(max_occupancy__isnull=False), operator).order_by("name")
        if zone.pk not in {area.pk for area in areas}
    ]
    counted = muster.with_counts([*areas, *limited])
    return {
        "may_muster": operator.has_perm(muster.VIEW_MUSTER),
        "roll_call_areas": counted[: len(areas)],
        "limited_zones": counted[len(areas) :],
        "inside_total": sum(zone.count for zone in counted[: len(areas)]),
    }


def with_modes(points: list, at=None) -> None:
    """Set ``next_change`` (instant, mode label) on each access point, from the scheduler when there is one."""
    upcoming = next_changes([point.pk for point in points], at or timezone.now())
    labels = dict(AccessPoint._meta.get_field("opening_mode").choices)
    for point in points:
        change = upcoming.get(point.pk)
        point.next_change = (change[0], labels.get(change[1], change[1])) if change else None


def recent_commands(operator):
    """The operator's own latest commands, with how far each got (queued, sent, acknowledged, ...)."""
    return DeviceCommand.objects.filter(operator=operator).select_related("device", "access_point")[:RECENT_COMMANDS]


class MonitorView(OperatorPage, TemplateView):
    permission_required = VIEW_EVENTS
    template_name = "accesscontrol/monitor/monitor.html"
    page_title = "Live monitor"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        operator = self.request.user
        events = self.restricted(AuditEvent.objects.only(*AUDIT_COLUMNS)).order_by("-at", "-pk")[:FIRST_EVENTS]
        points = list(
            monitored(
                AccessPoint.objects.only("id", "name", "lockdown", "partition_id", "opening_mode", "mode_source"),
                operator,
            ).order_by("name")
        )
        with_modes(points)
        doors = DeviceDoor.objects.filter(access_point__in=[point.pk for point in points]).select_related("device")
        door_of = {door.access_point_id: door for door in doors}
        for point in points:
            door = door_of.get(point.pk)
            point.device = door.device if door else None
            point.door_state = door.device.door_states.get(str(door.number), "") if door else ""
            point.door_label = point.door_state.replace("_", " ") or "unknown"
        may_command = operator.has_perm(ISSUE_COMMANDS)
        changeable_points = set(restrict(AccessPoint.objects.all(), operator, "change").values_list("pk", flat=True))
        zones = list(monitored(Zone.objects.only("id", "name", "lockdown"), operator).order_by("name"))
        changeable_zones = set(restrict(Zone.objects.all(), operator, "change").values_list("pk", flat=True))
        if allowed_partitions(operator, VIEW_EVENTS) is ALL:
            devices = Device.objects.all()
        else:
            devices = Device.objects.filter(doors__access_point__in=[point.pk for point in points]).distinct()
        site = SiteSettings.load()
        events = list(events)
        thumbnails = photos.thumbnail_urls(event.cardholder_id for event in events if event.cardholder_id)
        for event in events:
            event.cardholder_photo = thumbnails.get(event.cardholder_id)
        context.update(
            events=events,
            access_points=points,
            zones=zones,
            devices=list(devices.only("id", "name", "online", "last_seen_at", "tamper", "battery").order_by("name")),
            site=site,
            may_command=may_command,
            may_open={point.pk for point in points if may_command and point.pk in changeable_points},
            may_lock_zone={zone.pk for zone in zones if may_command and zone.pk in changeable_zones},
            may_lock_site=may_command and _may_lock_site(operator),
            commands=recent_commands(operator) if may_command else [],
            alert_kinds=sorted(ALERT_KINDS),
            kinds=AuditKind.choices,
            reasons=Decision.choices,
            emergency=site.lockdown or any(zone.lockdown for zone in zones),
            today=timezone.localdate().isoformat(),
            **alarm_panel(operator),
            **roll_call_panel(operator),
        )
        return context


def _may_lock_site(operator) -> bool:
    if not operator.has_perm(permission_name(SiteSettings, "change")):
        return False
    return not AccessPoint.objects.exclude(pk__in=restrict(AccessPoint.objects.all(), operator, "change")).exists()


class MonitorCommandsView(OperatorPage, TemplateView):
    """The operator's latest commands and their status: the monitor polls it."""

    permission_required = ISSUE_COMMANDS
    template_name = "accesscontrol/monitor/commands.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["commands"] = recent_commands(self.request.user)
        return context


class MonitorCommandView(OperatorPage, View):
    """POST: remote open an access point, or lock down (or end the lockdown of) a zone or the whole site."""

    permission_required = ISSUE_COMMANDS
    http_method_names = ["post"]

    def post(self, request):
        action = request.POST.get("action", "")
        if action not in ACTIONS:
            messages.error(request, "Choose an action: remote open, lockdown or end of lockdown.")
            return redirect("monitor")
        op = ACTIONS[action]
        target = self.target(op)
        self.check_target(op, target)
        try:
            issued = commands.issue(op, target, operator=request.user, via=VIA, address=client_address(request))
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return redirect("monitor")
        messages.success(request, describe(action, target, issued))
        return redirect("monitor")

    def target(self, op: str):
        """The access point, zone or site named in the form, among those the monitor shows the operator (else 404)."""
        post = self.request.POST
        try:
            if post.get("access_point"):
                return monitored(AccessPoint.objects.all(), self.request.user).get(pk=int(post["access_point"]))
            if op == CommandOp.OPEN:
                raise Http404("Remote open names an access point.")
            if post.get("zone"):
                return monitored(Zone.objects.all(), self.request.user).get(pk=int(post["zone"]))
        except (ValueError, OverflowError, AccessPoint.DoesNotExist, Zone.DoesNotExist):
            raise Http404("No such access point or zone.") from None
        if post.get("site") == "1":
            return SiteSettings.load()
        raise Http404("Name an access point, a zone or the site.")

    def check_target(self, op: str, target) -> None:
        operator = self.request.user
        if op in (CommandOp.EMERGENCY_CLOSE, CommandOp.END_EMERGENCY):
            if isinstance(target, SiteSettings):
                allowed = operator.has_perm(permission_name(SiteSettings, "change"))
            else:
                allowed = restrict(type(target).objects.filter(pk=target.pk), operator, "change").exists()
            if not allowed:
                raise PermissionDenied(f"You may not change the lockdown of {target}.")
        changeable = restrict(AccessPoint.objects.all(), operator, "change").values("pk")
        if commands.access_points_of(target).exclude(pk__in=changeable).exists():
            raise PermissionDenied("You may not change every access point this command reaches.")


def describe(action: str, target, issued: commands.Issued) -> str:
    where = "the whole site" if isinstance(target, SiteSettings) else str(target)
    parts = [
        f"{ACTION_LABELS[action]} of {where}: {issued.queued} device command{'s' if issued.queued != 1 else ''} queued"
    ]
    if issued.without_device:
        parts.append(f"{len(issued.without_device)} access point(s) have no device to send it to")
    if issued.still_in_lockdown:
        parts.append(f"{len(issued.still_in_lockdown)} access point(s) stay locked by another lockdown")
    return "; ".join(parts) + "."


class MonitorRollCallView(OperatorPage, TemplateView):
    """The monitor's live counts (roll-call areas, limited zones): htmx polls it."""

    permission_required = VIEW_EVENTS
    template_name = "accesscontrol/monitor/roll_call.html"

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), **roll_call_panel(self.request.user)}


class MonitorAlarmsView(OperatorPage, TemplateView):
    """The monitor's panel of open alarms: htmx polls it, and an acknowledgement answers with it."""

    permission_required = alarms.VIEW
    template_name = "accesscontrol/monitor/alarms.html"

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), **alarm_panel(self.request.user)}


class AcknowledgeAlarmView(OperatorPage, View):
    """POST: the operator has seen an alarm. From htmx, the answer is the refreshed alarm panel; else the monitor."""

    permission_required = alarms.ACKNOWLEDGE
    http_method_names = ["post"]

    def post(self, request, pk):
        alarm = get_object_or_404(alarms.visible_alarms(Alarm.objects.all(), request.user, "acknowledge"), pk=pk)
        form = AcknowledgeAlarmForm(request.POST)
        error = ""
        if not form.is_valid():
            error = " ".join(message for messages_ in form.errors.values() for message in messages_)
        else:
            try:
                actions.acknowledge_alarm(
                    alarm,
                    operator=request.user,
                    via=VIA,
                    note=form.cleaned_data["note"],
                    address=client_address(request),
                )
            except ValidationError as refused:
                error = " ".join(refused.messages)
        if request.headers.get("HX-Request"):
            context = {**alarm_panel(request.user), "alarm_error": error}
            return render(request, "accesscontrol/monitor/alarms.html", context)
        if error:
            messages.error(request, error)
        else:
            messages.success(request, f"{alarm} acknowledged.")
        return redirect("monitor")
