"""The web app's face terminal pages (the list, commissioning, settings) and enrolling a cardholder's face at one.

Every write goes through devices.actions, which records it in the system
auditor; a ValidationError it raises is shown on the form or, for the
cardholder page's small forms, as a message there. Consent and the templates
themselves are the cardholder page's (accesscontrol); this adds the terminals.
No page shows a template's vector.
"""

from functools import cached_property

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views import View
from django.views.generic import FormView

from accesscontrol.models import AccessPoint
from accesscontrol.permissions import may_use_partition, permission_name, restrict
from accesscontrol.views.base import OperatorPage
from accesscontrol.views.cardholders import cardholder_for
from accesscontrol.views.editing import ListPage
from devices import actions
from devices.forms import FaceEnrolForm, FaceTerminalForm, add_validation_errors
from devices.models import FaceEnrolment, FaceTerminal
from devices.views.osdp import by

RECENT = 10


class FaceTerminalList(ListPage):
    model = FaceTerminal
    template_name = "devices/face_terminal_list.html"
    page_title = "Face terminals"
    search_fields = ("terminal_id", "device__name", "device__description")

    def base_queryset(self):
        visible = restrict(AccessPoint.objects.only("id", "name"), self.request.user, "view")
        terminals = FaceTerminal.objects.select_related("device").defer("device__key_sealed")
        return terminals.prefetch_related(Prefetch("access_point", visible)).order_by("terminal_id")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["may_change"] = self.request.user.has_perm(permission_name(FaceTerminal, "change"))
        return context


class CommissionFaceTerminal(OperatorPage, FormView):
    """A new face terminal: its device (the next free device id, no key) and the door it guards."""

    permission_required = permission_name(FaceTerminal, "add")
    template_name = "accesscontrol/places/form.html"
    form_class = FaceTerminalForm
    page_title = "Commission a face terminal"

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "operator": self.request.user}

    def form_valid(self, form):
        values = form.changes()
        try:
            terminal = actions.commission_face_terminal(
                terminal_id=form.cleaned_data["terminal_id"], **values, **by(self.request)
            )
        except ValidationError as error:
            add_validation_errors(form, error)
            return self.form_invalid(form)
        messages.success(
            self.request,
            f"{terminal} is commissioned. Issue its certificate with manage.py face_terminal {terminal.terminal_id}.",
        )
        return redirect("face_terminals")

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "cancel_url": reverse("face_terminals")}


class EditFaceTerminal(OperatorPage, FormView):
    """A face terminal's name, door, methods, model, quality and liveness, and whether it is enabled."""

    permission_required = permission_name(FaceTerminal, "change")
    template_name = "accesscontrol/places/form.html"
    form_class = FaceTerminalForm
    page_title = "Face terminal settings"

    @cached_property
    def terminal(self) -> FaceTerminal:
        terminals = restrict(FaceTerminal.objects.select_related("device"), self.request.user, "change")
        return get_object_or_404(terminals, pk=self.kwargs["pk"])

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "operator": self.request.user, "terminal": self.terminal}

    def get_initial(self):
        terminal = self.terminal
        initial = {name: getattr(terminal.device, name) for name in actions.FACE_DEVICE_FIELDS}
        return initial | {name: getattr(terminal, name) for name in actions.FACE_TERMINAL_FIELDS}

    def form_valid(self, form):
        try:
            actions.update_face_terminal(self.terminal, **form.changes(), **by(self.request))
        except ValidationError as error:
            add_validation_errors(form, error)
            return self.form_invalid(form)
        messages.success(self.request, f"“{self.terminal.device}” saved.")
        return redirect("face_terminals")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        return context | {"object": self.terminal, "cancel_url": reverse("face_terminals")}


# --- enrolment, from the cardholder page ----------------------------------------------------------


def cardholder_face_enrolments(holder, keys) -> dict:
    """The cardholder page's recent enrolments and the form that starts one (accesscontrol.extensions)."""
    recent = holder.face_enrolments.select_related("terminal__device", "requested_by")[:RECENT]
    return {"face_enrolments": recent, "face_enrol_form": FaceEnrolForm()}


class StartFaceEnrolment(OperatorPage, View):
    """POST: ask a terminal to capture the cardholder's face (their consent is needed; the action checks it)."""

    permission_required = permission_name(FaceEnrolment, "add")
    http_method_names = ["post"]

    def post(self, request, pk):
        holder = cardholder_for(request, pk, "change")
        if not may_use_partition(request.user, permission_name(FaceEnrolment, "add"), holder.partition_id):
            raise PermissionDenied("You may not enrol this cardholder's face.")
        form = FaceEnrolForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose an enabled face terminal.")
            return redirect(f"{reverse('cardholder', args=[holder.pk])}#face")
        terminal = form.cleaned_data["terminal"]
        try:
            actions.start_face_enrolment(holder, terminal, **by(request))
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"{holder}: look into {terminal.device.name}'s camera now.")
        return redirect(f"{reverse('cardholder', args=[holder.pk])}#face")


class CancelFaceEnrolment(OperatorPage, View):
    permission_required = permission_name(FaceEnrolment, "change")
    http_method_names = ["post"]

    def post(self, request, pk):
        enrolments = restrict(FaceEnrolment.objects.select_related("terminal", "cardholder"), request.user, "change")
        enrolment = get_object_or_404(enrolments, pk=pk)
        try:
            actions.cancel_face_enrolment(enrolment, **by(request))
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, "Enrolment cancelled.")
        return redirect(f"{reverse('cardholder', args=[enrolment.cardholder_id])}#face")
