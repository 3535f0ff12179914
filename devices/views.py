"""The web app's device pages: the device list with online state, a device's doors, commands and events.

Devices are site-wide (like calendars); the access points their doors map to
and the commands and events shown are limited to what the operator may see.
Commissioning and rekeying stay in the admin, the API and ``manage.py
commission_device``: a device key is shown once, which a web page is not
the place for.
"""

from django import forms
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, render
from django.views import View

from accesscontrol.forms.partitioned import OperatorModelForm
from accesscontrol.models import AccessPoint, AuditEvent, Key
from accesscontrol.permissions import restrict
from accesscontrol.views.base import OperatorPage
from accesscontrol.views.editing import DetailPage, EditPage, ListPage
from devices import commands
from devices.api.views import DeviceFilterSet
from devices.choices import DeviceKind
from devices.models import Device, DeviceCommand, DeviceDoor, DeviceReader, EncodeJob

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
        context["doors"] = doors
        context["readers"] = _with_points(DeviceReader, user).filter(device=device)
        context["may_see_commands"] = user.has_perm("devices.view_devicecommand")
        visible_commands = commands.visible_commands(restrict(DeviceCommand.objects.all(), user, "view"), user)
        context["commands"] = visible_commands.filter(device=device).select_related("access_point", "operator")[:RECENT]
        context["may_see_events"] = user.has_perm("accesscontrol.view_auditevent")
        events = restrict(AuditEvent.objects.filter(device=device), user, "view")
        context["events"] = events.order_by("-at", "-id")[:RECENT]
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
