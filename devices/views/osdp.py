"""The web app's OSDP pages: buses and their readers, commissioning a reader, its settings, a new key, a door's wiring.

Every write goes through devices.actions (which records it in the system
auditor); a ValidationError it raises is shown on the form. A reader's secure
channel key is never shown: Space gives it to the reader over the bus.
"""

from functools import cached_property

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Prefetch, Q
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views import View
from django.views.generic import FormView

from accesscontrol.models import AccessPoint
from accesscontrol.permissions import permission_name, restrict
from accesscontrol.views.base import VIA, OperatorPage, client_address
from accesscontrol.views.editing import CreatePage, DetailPage, EditPage, ListPage
from devices import actions
from devices.filtersets import OsdpBusFilterSet
from devices.forms import CommissionOsdpReaderForm, DoorWiringForm, OsdpBusForm, OsdpReaderForm, add_validation_errors
from devices.models import Device, DeviceDoor, OsdpBus, OsdpReader

CHANGE_READER = permission_name(OsdpReader, "change")


def by(request) -> dict:
    """Who writes, for an action: the operator, through the web app, from their address."""
    return {"operator": request.user, "via": VIA, "address": client_address(request)}


# --- buses ------------------------------------------------------------------------------------------


class OsdpBusPage:
    model = OsdpBus
    detail_url_name = "osdp_bus"
    list_url_name = "osdp_buses"


class OsdpBusList(OsdpBusPage, ListPage):
    template_name = "devices/osdp_bus_list.html"
    page_title = "OSDP buses"
    filterset_class = OsdpBusFilterSet
    search_fields = ("name", "port", "description")

    def base_queryset(self):
        return OsdpBus.objects.annotate(
            reader_count=Count("readers"), online_count=Count("readers", filter=Q(readers__device__online=True))
        ).order_by("name", "pk")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["may_commission"] = self.request.user.has_perm(permission_name(OsdpReader, "add"))
        return context


class OsdpBusDetail(OsdpBusPage, DetailPage):
    template_name = "devices/osdp_bus_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user = self.request.user
        visible = restrict(AccessPoint.objects.only("id", "name"), user, "view")
        doors = DeviceDoor.objects.order_by("number").prefetch_related(Prefetch("access_point", visible))
        context["page_title"] = self.object.name
        context["readers"] = (
            self.object.readers.select_related("device")
            .defer("device__key_sealed")
            .prefetch_related(Prefetch("device__doors", doors))
            .order_by("address")
        )
        context["may_commission"] = user.has_perm(permission_name(OsdpReader, "add"))
        context["may_see_devices"] = user.has_perm(permission_name(Device, "view"))
        return context


class OsdpBusCreate(OsdpBusPage, CreatePage):
    form_class = OsdpBusForm
    page_title = "New OSDP bus"

    def form_valid(self, form):
        fields = {name: form.cleaned_data[name] for name in actions.BUS_FIELDS}
        try:
            self.object = actions.create_osdp_bus(**fields, **by(self.request))
        except ValidationError as error:
            add_validation_errors(form, error)
            return self.form_invalid(form)
        messages.success(self.request, f"OSDP bus “{self.object}” created.")
        return HttpResponseRedirect(self.get_success_url())


class OsdpBusEdit(OsdpBusPage, EditPage):
    form_class = OsdpBusForm
    page_title = "Edit OSDP bus"

    def form_valid(self, form):
        try:
            self.object = actions.update_osdp_bus(form.instance, **by(self.request))
        except ValidationError as error:
            add_validation_errors(form, error)
            return self.form_invalid(form)
        messages.success(self.request, f"“{self.object}” saved.")
        return HttpResponseRedirect(self.get_success_url())


# --- readers ----------------------------------------------------------------------------------------


class CommissionOsdpReader(OperatorPage, FormView):
    """A new OSDP reader or I/O module on a bus, with the access point it serves (its door 1 and reader 1)."""

    permission_required = permission_name(OsdpReader, "add")
    template_name = "devices/osdp_reader_form.html"
    form_class = CommissionOsdpReaderForm
    page_title = "Commission an OSDP reader"

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "operator": self.request.user}

    def get_initial(self):
        initial = super().get_initial()
        bus = self.request.GET.get("bus", "")
        if bus.isdigit():
            initial["bus"] = bus
        return initial

    def form_valid(self, form):
        try:
            device = actions.commission_osdp_reader(form.device(), form.reader(), **form.mappings(), **by(self.request))
        except ValidationError as error:
            add_validation_errors(form, error)
            return self.form_invalid(form)
        messages.success(
            self.request,
            f"{device} is commissioned (device id {device.device_id}). Space gives it its own secure channel key "
            "on first contact, while the reader is in install mode.",
        )
        return redirect("device", device.pk)

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "cancel_url": reverse("osdp_buses")}


def _reader_of(request, pk: int, action: str) -> OsdpReader:
    readers = restrict(OsdpReader.objects.select_related("device", "bus"), request.user, action)
    return get_object_or_404(readers, pk=pk)


class EditOsdpReader(OperatorPage, FormView):
    """An OSDP device's name, kind, place on its bus, card format and secure channel policy."""

    permission_required = CHANGE_READER
    template_name = "accesscontrol/places/form.html"
    form_class = OsdpReaderForm
    page_title = "OSDP settings"

    @cached_property
    def reader(self) -> OsdpReader:
        return _reader_of(self.request, self.kwargs["pk"], "change")

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "operator": self.request.user}

    def get_initial(self):
        reader = self.reader
        initial = {name: getattr(reader.device, name) for name in actions.OSDP_DEVICE_FIELDS}
        return initial | {name: getattr(reader, name) for name in actions.OSDP_READER_FIELDS}

    def form_valid(self, form):
        reader = form.reader(self.reader)
        form.device(reader.device)
        try:
            actions.update_osdp_reader(reader, **by(self.request))
        except ValidationError as error:
            add_validation_errors(form, error)
            return self.form_invalid(form)
        messages.success(self.request, f"“{reader.device}” saved.")
        return redirect("device", reader.pk)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        return context | {"object": self.reader.device, "cancel_url": reverse("device", args=[self.reader.pk])}


class RekeyOsdpReader(OperatorPage, View):
    """POST: a new secure channel key for the reader (not shown); it must be put back in install mode to take it."""

    permission_required = CHANGE_READER
    http_method_names = ["post"]

    def post(self, request, pk):
        reader = _reader_of(request, pk, "change")
        actions.rekey_osdp_reader(reader, **by(request))
        messages.warning(request, f"{reader.device} has a new secure channel key. {actions.REKEY_HELP}")
        return redirect("device", reader.pk)


# --- a door's wiring --------------------------------------------------------------------------------


class EditDoorWiring(OperatorPage, FormView):
    """Which relay a door's lock is on and which inputs are its contact and exit button (doors Space runs)."""

    permission_required = permission_name(Device, "change")
    template_name = "accesscontrol/places/form.html"
    form_class = DoorWiringForm
    page_title = "Door wiring"

    @cached_property
    def door(self) -> DeviceDoor:
        devices = restrict(Device.objects.defer("key_sealed"), self.request.user, "change")
        device = get_object_or_404(devices, pk=self.kwargs["pk"])
        doors = DeviceDoor.objects.select_related("device", "access_point")
        return get_object_or_404(doors, device=device, number=self.kwargs["number"])

    def get_form_kwargs(self):
        # Not bound to the door: the action writes it.
        kwargs = super().get_form_kwargs()
        kwargs["initial"] = {name: getattr(self.door, name) for name in actions.WIRING["doors"]}
        return kwargs

    def form_valid(self, form):
        try:
            actions.update_door_wiring(self.door, **form.cleaned_data, **by(self.request))
        except ValidationError as error:
            add_validation_errors(form, error)
            return self.form_invalid(form)
        messages.success(self.request, f"The wiring of {self.door} is saved.")
        return redirect("device", self.door.device_id)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        return context | {"object": self.door, "cancel_url": reverse("device", args=[self.door.device_id])}
