"""The web app's device pages: the device list with online state, a device's doors, commands and events.

Devices are site-wide (like calendars); the access points their doors map to
and the commands and events shown are limited to what the operator may see.
The offline locks page (and an offline lock's detail page) shows what each
lock runs against what it should, and why it needs a PPD visit
(devices.locks.lock_reports: a fixed number of queries for any number of locks).
An OSDP device's page shows where it is on its bus, its secure channel and what
it reported of itself, and its doors' wiring (devices/views/osdp.py edits them).
Commissioning and rekeying SDP/1 devices stay in the admin, the API and
``manage.py commission_device``: a device key is shown once, which a web page is
not the place for. OSDP readers are commissioned here too: their key is never shown.
"""

from django import forms
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views import View
from django.views.generic import TemplateView

from accesscontrol import blacklist
from accesscontrol.forms.partitioned import OperatorModelForm
from accesscontrol.models import AccessPoint, AuditEvent, Key
from accesscontrol.permissions import restrict
from accesscontrol.views.base import OperatorPage, paginate
from accesscontrol.views.editing import DetailPage, EditPage, ListPage
from devices import commands, locks
from devices.actions import REKEY_HELP, describe_wiring
from devices.api.views import DeviceFilterSet
from devices.choices import DeviceKind
from devices.models import Device, DeviceCommand, DeviceDoor, DeviceReader, EncodeJob, OsdpReader

RECENT = 20


class DeviceForm(OperatorModelForm):
    class Meta:
        model = Device
        fields = ["name", "description", "enabled"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}
        help_texts = {"enabled": "A disabled device's frames are dropped: it neither asks for decisions nor reports."}


class DevicePage:
    model = Device
    detail_url_name = "device"
    list_url_name = "devices"


def _with_points(model, user):
    """Doors or readers with the access point each maps to, where the operator may see it."""
    visible = restrict(AccessPoint.objects.only("id", "name"), user, "view")
    return model.objects.order_by("number").prefetch_related(Prefetch("access_point", visible))


class DeviceList(DevicePage, ListPage):
    template_name = "devices/device_list.html"
    page_title = "Devices"
    filterset_class = DeviceFilterSet

    def base_queryset(self):
        user = self.request.user
        return Device.objects.defer("key_sealed").prefetch_related(Prefetch("doors", _with_points(DeviceDoor, user)))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["kinds"] = DeviceKind.choices
        return context


class DeviceDetail(DevicePage, DetailPage):
    template_name = "devices/device_detail.html"

    def base_queryset(self):
        return Device.objects.defer("key_sealed")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        device, user = self.object, self.request.user
        context["page_title"] = device.name
        doors = list(_with_points(DeviceDoor, user).filter(device=device))
        for door in doors:
            door.state = (device.door_states or {}).get(str(door.number), "")
            door.state_label = door.state.replace("_", " ")
        context["doors"] = doors
        context["readers"] = _with_points(DeviceReader, user).filter(device=device)
        context["may_see_commands"] = user.has_perm("devices.view_devicecommand")
        visible_commands = commands.visible_commands(restrict(DeviceCommand.objects.all(), user, "view"), user)
        context["commands"] = visible_commands.filter(device=device).select_related("access_point", "operator")[:RECENT]
        context["may_see_events"] = user.has_perm("accesscontrol.view_auditevent")
        events = restrict(AuditEvent.objects.filter(device=device), user, "view")
        context["events"] = events.order_by("-at", "-id")[:RECENT]
        if device.kind == DeviceKind.OFFLINE_LOCK:
            context["lock"] = lock_rows(user, [device])[0]
        if device.kind in DeviceKind.osdp():
            context["osdp"] = OsdpReader.objects.select_related("bus").filter(device=device).first()
            context["rekey_help"] = REKEY_HELP
        context["wired"] = device.kind in DeviceKind.osdp() or any(describe_wiring(door) for door in doors)
        context["may_change_osdp"] = restrict(OsdpReader.objects.filter(device=device), user, "change").exists()
        return context


class DeviceEdit(DevicePage, EditPage):
    form_class = DeviceForm
    page_title = "Edit device"


class EncodeJobPanel(OperatorPage, View):
    """An encode job's progress panel; htmx asks for it every second until the job is done or failed."""

    permission_required = "accesscontrol.view_key"

    def get(self, request, pk):
        visible = EncodeJob.objects.filter(key__in=restrict(Key.objects.all(), request.user, "view"))
        job = get_object_or_404(visible.select_related("key", "encoder"), pk=pk)
        return render(request, "devices/_encode_job.html", {"job": job})


# --- offline locks -------------------------------------------------------------------------------


def lock_rows(user, devices=None, now=None) -> list[locks.LockReport]:
    """Each offline lock's report, with what its pages show beside it: its access point (where the
    operator may see it), whether it runs the configuration and the blacklist wanted, the reasons in words."""
    now = now or timezone.now()
    reports = locks.lock_reports(devices, now)
    point_ids = {report.config.access_point_id for report in reports if report.config}
    points = restrict(AccessPoint.objects.filter(pk__in=point_ids).only("id", "name"), user, "view").in_bulk()
    _, newest = blacklist.summary(now)
    for report in reports:
        state, config = report.state, report.config
        report.access_point = points.get(config.access_point_id) if config else None
        report.loaded = state is not None and state.initialised_at is not None
        report.config_current = report.loaded and config is not None and state.config_revision == config.revision
        report.blacklist_newest = newest
        report.blacklist_current = report.loaded and state.blacklist_number >= newest
        report.reason_texts = [locks.REASON_TEXT[reason] for reason in report.reasons]
    return reports


class OfflineLockList(OperatorPage, TemplateView):
    """Every offline lock: what it runs, what it reported, and why it needs a PPD visit (``?needs_update=1``)."""

    permission_required = "devices.view_device"
    template_name = "devices/offline_locks.html"
    page_title = "Offline locks"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        devices = locks.offline_locks().defer("key_sealed").order_by("name", "device_id")
        reports = lock_rows(self.request.user, devices)
        needing = [report for report in reports if report.needs_update]
        only_needing = self.request.GET.get("needs_update") == "1"
        context.update(paginate(self.request, needing if only_needing else reports))
        context.update(
            only_needing=only_needing,
            needing_count=len(needing),
            lock_count=len(reports),
            filters={"needs_update": "1"} if only_needing else {},
        )
        return context
