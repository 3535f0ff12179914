"""Operators and operator groups: who may sign in, and what they may do where.

Every change lands in the system auditor with its before and after (never a
password nor its hash). The rules against privilege escalation live in
``accesscontrol.forms.operators``.
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.generic import DetailView, FormView, TemplateView

from accesscontrol.filtersets import OperatorFilterSet, OperatorGroupFilterSet
from accesscontrol.forms.operators import ACTIONS, OperatorForm, OperatorGroupForm, Rights, permission_label
from accesscontrol.models import Operator, OperatorGroup, Partition, SystemAuditEntry
from accesscontrol.views.base import OperatorPage, audit, paginate

OPERATOR_FIELDS = ("username", "first_name", "last_name", "email", "is_active", "is_staff", "is_superuser")


def changes(before: dict, after: dict) -> dict:
    return {name: {"from": before.get(name), "to": value} for name, value in after.items() if before.get(name) != value}


def operator_snapshot(operator: Operator) -> dict:
    state = {name: getattr(operator, name) for name in OPERATOR_FIELDS}
    state["groups"] = sorted(operator.operator_groups.values_list("name", flat=True))
    return state


def group_snapshot(group: OperatorGroup) -> dict:
    return {
        "name": group.name,
        "description": group.description,
        "all_partitions": group.all_partitions,
        "partitions": sorted(group.partitions.values_list("name", flat=True)),
        "permissions": sorted(permission_label(p) for p in group.permissions.select_related("content_type")),
        "require_two_factor": group.require_two_factor,
    }


def _any_yes_no(field, label: str, yes: str = "Yes", no: str = "No") -> None:
    """A yes/no filter (the API's NullBooleanSelect says "Unknown") as Any / yes / no, labelled for people."""
    field.label = label
    field.widget.choices = [("unknown", "Any"), ("true", yes), ("false", no)]


def _choose(field, label: str, rows) -> None:
    """An id filter (a number box in the API's filterset) as a list to choose from."""
    field.label = label
    field.widget = forms.Select(choices=[("", "Any"), *rows])


def operator_filter_form(form) -> None:
    form.fields["username"].label = "Username"
    _any_yes_no(form.fields["is_active"], "Status", "Active", "Inactive")
    _any_yes_no(form.fields["is_superuser"], "Superuser")
    _choose(form.fields["group"], "Group", OperatorGroup.objects.order_by("name").values_list("pk", "name"))


def group_filter_form(form) -> None:
    form.fields["name"].label = "Name"
    _choose(form.fields["member"], "Member", Operator.objects.order_by("username").values_list("pk", "username"))
    _choose(form.fields["partition"], "Partition", Partition.objects.order_by("name").values_list("pk", "name"))
    _any_yes_no(form.fields["all_partitions"], "All partitions")


# --- operators ------------------------------------------------------------------------------------------


class OperatorListView(OperatorPage, TemplateView):
    permission_required = "accesscontrol.view_operator"
    template_name = "accesscontrol/operators/operator_list.html"
    page_title = "Operators"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        operators = Operator.objects.prefetch_related("operator_groups").order_by("username")
        filterset = OperatorFilterSet(self.request.GET or None, queryset=operators, request=self.request)
        operator_filter_form(filterset.form)
        rows = filterset.qs if filterset.is_bound and filterset.is_valid() else operators
        if filterset.is_bound and not filterset.is_valid():
            rows = operators.none()
        context.update(filterset=filterset, form=filterset.form, **paginate(self.request, rows))
        return context


class OperatorDetailView(OperatorPage, DetailView):
    permission_required = "accesscontrol.view_operator"
    template_name = "accesscontrol/operators/operator_detail.html"
    queryset = Operator.objects.prefetch_related("operator_groups__partitions")
    context_object_name = "operator"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        operator = self.object
        context["page_title"] = operator.get_username()
        context["may_edit"] = self.request.user.has_perm("accesscontrol.change_operator") and Rights(
            self.request.user
        ).may_manage(operator)
        if self.request.user.has_perm("accesscontrol.view_systemauditentry"):
            context["actions"] = SystemAuditEntry.objects.filter(operator=operator).order_by("-at", "-pk")[:20]
        return context


class OperatorFormView(OperatorPage, FormView):
    form_class = OperatorForm
    template_name = "accesscontrol/operators/form.html"
    operator = None
    before: dict = {}  # the operator as it was, taken before the form changes the instance

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs.update(editor=self.request.user, instance=self.operator)
        return kwargs

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["cancel_url"] = reverse("operator", args=[self.operator.pk]) if self.operator else reverse("operators")
        return context

    def form_valid(self, form):
        creating = self.operator is None
        before = self.before
        with transaction.atomic():
            operator = form.save(commit=False)
            password = form.cleaned_data.get("password1")
            if password:
                operator.set_password(password)
            operator.save()
            if not form.fields["operator_groups"].disabled:
                operator.operator_groups.set(form.groups_to_store())
            after = operator_snapshot(operator)
            detail = {"changes": changes(before, after)}
            if password:
                detail["password_set"] = True  # that it was set, never what to
            audit(self.request, "create" if creating else "update", operator, detail)
        messages.success(self.request, f"Operator {operator.get_username()} {'created' if creating else 'saved'}.")
        return redirect("operator", pk=operator.pk)


class OperatorCreateView(OperatorFormView):
    permission_required = "accesscontrol.add_operator"
    page_title = "New operator"


class OperatorEditView(OperatorFormView):
    permission_required = "accesscontrol.change_operator"

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.operator = get_object_or_404(Operator, pk=kwargs["pk"])
            if request.user.has_perm(self.permission_required) and not Rights(request.user).may_manage(self.operator):
                raise PermissionDenied(
                    "This operator has rights you do not hold; only someone who holds them may edit."
                )
            self.before = operator_snapshot(self.operator)
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["page_title"] = f"Edit {self.operator.get_username()}"
        return context


# --- groups -------------------------------------------------------------------------------------------------


class GroupListView(OperatorPage, TemplateView):
    permission_required = "accesscontrol.view_operatorgroup"
    template_name = "accesscontrol/operators/group_list.html"
    page_title = "Operator groups"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        groups = (
            OperatorGroup.objects.annotate(
                member_count=Count("members", distinct=True), permission_count=Count("permissions", distinct=True)
            )
            .prefetch_related("partitions")
            .order_by("name")
        )
        filterset = OperatorGroupFilterSet(self.request.GET or None, queryset=groups, request=self.request)
        group_filter_form(filterset.form)
        rows = groups
        if filterset.is_bound:
            rows = filterset.qs if filterset.is_valid() else groups.none()
        context.update(filterset=filterset, form=filterset.form, **paginate(self.request, rows))
        return context


def permission_table(permissions) -> list[dict]:
    """A group's permissions by kind of object, for reading: [{"label", "actions": [...], "other": [...]}]."""
    rows: dict[str, dict] = {}
    for permission in permissions:
        content_type = permission.content_type
        model_class = content_type.model_class()
        label = str(model_class._meta.verbose_name_plural).capitalize() if model_class else content_type.model
        row = rows.setdefault(label, {"label": label, "actions": [], "other": []})
        action = permission.codename.split("_", 1)[0]
        if action in ACTIONS and permission.codename == f"{action}_{content_type.model}":
            row["actions"].append(action)
        else:
            row["other"].append(permission.name)
    for row in rows.values():
        row["actions"].sort(key=ACTIONS.index)
    return sorted(rows.values(), key=lambda row: row["label"])


class GroupDetailView(OperatorPage, DetailView):
    permission_required = "accesscontrol.view_operatorgroup"
    template_name = "accesscontrol/operators/group_detail.html"
    queryset = OperatorGroup.objects.prefetch_related("partitions", "members", "permissions__content_type")
    context_object_name = "group"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["page_title"] = self.object.name
        context["permission_rows"] = permission_table(self.object.permissions.all())
        return context


class GroupFormView(OperatorPage, FormView):
    form_class = OperatorGroupForm
    template_name = "accesscontrol/operators/form.html"
    group = None
    before: dict = {}

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs.update(editor=self.request.user, instance=self.group)
        return kwargs

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["cancel_url"] = (
            reverse("operator_group", args=[self.group.pk]) if self.group else reverse("operator_groups")
        )
        return context

    def form_valid(self, form):
        creating = self.group is None
        before = self.before
        with transaction.atomic():
            group = form.save()
            audit(
                self.request,
                "create" if creating else "update",
                group,
                {"changes": changes(before, group_snapshot(group))},
            )
        messages.success(self.request, f"Group {group.name} {'created' if creating else 'saved'}.")
        return redirect("operator_group", pk=group.pk)


class GroupCreateView(GroupFormView):
    permission_required = "accesscontrol.add_operatorgroup"
    page_title = "New operator group"


class GroupEditView(GroupFormView):
    permission_required = "accesscontrol.change_operatorgroup"

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            self.group = get_object_or_404(OperatorGroup, pk=kwargs["pk"])
            self.before = group_snapshot(self.group)
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["page_title"] = f"Edit {self.group.name}"
        return context
