"""Forms for operators and operator groups, with the rules that keep them from being a way up.

- Only a superuser makes staff or superusers.
- No one changes their own groups or rights, nor deactivates themselves.
- An operator who is not a superuser gives only what they hold, where they hold it:
  a group's permissions must be theirs in every partition the group covers, and
  they may put operators only in such groups. The same rule the API applies.
"""

from collections import OrderedDict

from django import forms
from django.apps import apps
from django.contrib.auth import password_validation
from django.contrib.auth.models import Permission
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from accesscontrol.models import Operator, OperatorGroup, Partition
from accesscontrol.permissions import ALL

# The apps whose permissions groups give (Django's own and the OTP devices' are for the admin and superusers).
PERMISSION_APPS = ("accesscontrol", "devices", "integrations")
ACTIONS = ("view", "add", "change", "delete")


def permission_label(permission: Permission) -> str:
    return f"{permission.content_type.app_label}.{permission.codename}"


def held_rights(operator) -> dict[str, set[int] | None]:
    """Each permission ``operator`` holds through their groups ("app.codename") and where: partition ids, or ALL.

    The same answer as ``allowed_partitions`` for each, in two queries for all of them.
    """
    held: dict[str, set[int] | None] = {}
    groups = OperatorGroup.objects.filter(members=operator).prefetch_related("permissions__content_type", "partitions")
    for group in groups:
        partitions = ALL if group.all_partitions else {partition.pk for partition in group.partitions.all()}
        for permission in group.permissions.all():
            name = permission_label(permission)
            if name in held and held[name] is ALL:
                continue
            held[name] = ALL if partitions is ALL else held.get(name, set()) | partitions
    return held


class Rights:
    """What an editor may give: checked against what they hold themselves (a superuser: anything)."""

    def __init__(self, operator):
        self.operator = operator
        self.held = {} if operator.is_superuser else held_rights(operator)

    def refused(self, permissions, partition_ids: set[int], all_partitions: bool) -> list[str]:
        """Those of ``permissions`` the editor may not give to a group covering these partitions."""
        if self.operator.is_superuser:
            return []
        refused = []
        for permission in permissions:
            name = permission_label(permission)
            held = self.held.get(name, set())
            if held is ALL:
                continue
            if not held or all_partitions or not partition_ids <= held:
                refused.append(name)
        return refused

    def may_grant(self, group: OperatorGroup) -> bool:
        """Whether the editor may put someone in ``group`` (its rights are within theirs)."""
        partition_ids = {partition.pk for partition in group.partitions.all()}
        return not self.refused(group.permissions.all(), partition_ids, group.all_partitions)

    def may_manage(self, target: Operator) -> bool:
        """Whether the editor may edit ``target``: a superuser anyone; others only operators with no more rights.

        Setting the password of an operator with more rights would be a way to those rights.
        """
        if self.operator.is_superuser:
            return True
        if target.is_superuser or target.is_staff:
            return False
        groups = target.operator_groups.prefetch_related("permissions__content_type", "partitions")
        return all(self.may_grant(group) for group in groups)


class OperatorForm(forms.ModelForm):
    password1 = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}, render_value=False),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password again",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}, render_value=False),
    )
    operator_groups = forms.ModelMultipleChoiceField(
        queryset=OperatorGroup.objects.none(), required=False, widget=forms.CheckboxSelectMultiple, label="Groups"
    )

    class Meta:
        model = Operator
        fields = ["username", "first_name", "last_name", "email", "is_active", "is_staff", "is_superuser"]

    def __init__(self, *args, editor, **kwargs):
        super().__init__(*args, **kwargs)
        self.editor = editor
        creating = self.instance.pk is None
        self.fields["password1"].required = creating
        self.fields["password2"].required = creating
        if not creating:
            self.fields["password1"].help_text = "Leave empty to keep the current password. " + str(
                self.fields["password1"].help_text
            )
        rights = Rights(editor)
        groups = list(OperatorGroup.objects.prefetch_related("permissions__content_type", "partitions"))
        self.grantable = [group for group in groups if rights.may_grant(group)]
        self.fields["operator_groups"].queryset = OperatorGroup.objects.filter(pk__in=[g.pk for g in self.grantable])
        if not creating:
            self.initial["operator_groups"] = list(self.instance.operator_groups.values_list("pk", flat=True))
        if not editor.is_superuser:
            del self.fields["is_staff"]
            del self.fields["is_superuser"]
        if self.instance.pk is not None and self.instance.pk == editor.pk:
            # Nobody raises their own rights or locks themselves out.
            for name in ("operator_groups", "is_active", "is_staff", "is_superuser"):
                if name in self.fields:
                    self.fields[name].disabled = True
                    self.fields[name].help_text = "You cannot change this for yourself."

    def clean_password2(self):
        first, second = self.cleaned_data.get("password1"), self.cleaned_data.get("password2")
        if first != second:
            raise forms.ValidationError("The two passwords differ.")
        return second

    def _post_clean(self):
        super()._post_clean()
        password = self.cleaned_data.get("password1")
        if password:
            try:
                password_validation.validate_password(password, self.instance)
            except forms.ValidationError as error:
                self.add_error("password1", error)

    def groups_to_store(self) -> list[OperatorGroup]:
        """The chosen groups among those the editor may give, plus the operator's others, which stay."""
        chosen = set(self.cleaned_data.get("operator_groups") or [])
        grantable = {group.pk for group in self.grantable}
        kept = (
            []
            if self.instance.pk is None
            else [g for g in self.instance.operator_groups.all() if g.pk not in grantable]
        )
        return sorted(chosen | set(kept), key=lambda group: group.name)


def _permission_choices():
    return (
        Permission.objects.filter(content_type__app_label__in=PERMISSION_APPS)
        .select_related("content_type")
        .order_by("content_type__app_label", "content_type__model", "codename")
    )


class PermissionGridWidget(forms.CheckboxSelectMultiple):
    """Permissions as a table: one row per kind of object, a column per action (view, add, change, delete)."""

    template_name = "accesscontrol/operators/permission_grid.html"

    def render(self, name, value, attrs=None, renderer=None):
        # The project's templates, not the form renderer's (which sees only Django's and the apps' own).
        return mark_safe(render_to_string(self.template_name, self.get_context(name, value, attrs)))  # noqa: S308

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        chosen = {str(item) for item in (value or [])}
        areas: OrderedDict = OrderedDict()
        for permission in self.choices.queryset:
            content_type = permission.content_type
            model = apps.get_model(content_type.app_label, content_type.model) if content_type.model else None
            area = apps.get_app_config(content_type.app_label).verbose_name
            rows = areas.setdefault(area, OrderedDict())
            label = str(model._meta.verbose_name_plural).capitalize() if model else content_type.model
            row = rows.setdefault(label, {"label": label, "cells": {}, "other": []})
            action = permission.codename.split("_", 1)[0]
            entry = {
                "value": permission.pk,
                "id": f"{attrs.get('id', name)}_{permission.pk}",
                "checked": str(permission.pk) in chosen,
                "label": permission.name,
                "code": permission_label(permission),
            }
            if action in ACTIONS and permission.codename == f"{action}_{content_type.model}":
                row["cells"][action] = entry
            else:
                row["other"].append(entry)
        context["areas"] = [
            {"name": area, "rows": [{**row, "cells": [row["cells"].get(a) for a in ACTIONS]} for row in rows.values()]}
            for area, rows in areas.items()
        ]
        context["actions"] = ACTIONS
        context["name"] = name
        return context


class OperatorGroupForm(forms.ModelForm):
    permissions = forms.ModelMultipleChoiceField(
        queryset=Permission.objects.none(), required=False, widget=PermissionGridWidget
    )
    partitions = forms.ModelMultipleChoiceField(
        queryset=Partition.objects.all(), required=False, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = OperatorGroup
        fields = ["name", "description", "permissions", "all_partitions", "partitions", "require_two_factor"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, editor, **kwargs):
        super().__init__(*args, **kwargs)
        self.editor = editor
        self.fields["permissions"].queryset = _permission_choices()
        self.fields["all_partitions"].label = "All partitions"
        self.fields["require_two_factor"].label = "Require two-factor login for members"

    def clean(self):
        cleaned = super().clean()
        permissions = cleaned.get("permissions") or []
        partitions = {partition.pk for partition in cleaned.get("partitions") or []}
        refused = Rights(self.editor).refused(permissions, partitions, bool(cleaned.get("all_partitions")))
        if refused:
            names = ", ".join(refused[:5]) + (" and others" if len(refused) > 5 else "")
            self.add_error("permissions", f"You cannot give {names} beyond the partitions where you hold it.")
        return cleaned
