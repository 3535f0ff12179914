"""List, detail, create, edit and delete pages for the domain's objects, on ``OperatorPage``.

A page names its model and what it does (``action``: view, add, change,
delete); the permission is that action on the model, the objects are those
``restrict`` gives for it, and each change is written with the system
auditor row in one transaction: a create with the fields given, an edit with
each changed field's before and after (as the API records them), a delete
with what was deleted.
"""

import datetime as dt
from decimal import Decimal

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import ProtectedError, Q
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from django.views.generic import CreateView, DeleteView, DetailView, TemplateView, UpdateView

from accesscontrol.permissions import ALL, allowed_partitions, permission_name, restrict
from accesscontrol.views.base import OperatorPage, audit, paginate


def plain(value):
    """A field value as the system auditor stores it (JSON)."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def field_values(obj, names) -> dict:
    """The stored values of ``obj``'s fields ``names``: related objects by id, many-to-many as sorted ids."""
    values = {}
    for name in names:
        field = obj._meta.get_field(name)
        if field.many_to_many:
            values[name] = sorted(getattr(obj, name).values_list("pk", flat=True)) if obj.pk else []
        elif field.is_relation:
            values[name] = getattr(obj, field.attname)
        else:
            values[name] = plain(getattr(obj, name))
    return values


def changes_between(before: dict, after: dict) -> dict:
    return {name: {"from": before.get(name), "to": value} for name, value in after.items() if before.get(name) != value}


def visible_partitions(operator, model):
    """The partitions the operator may view ``model`` in, for a filter's choices."""
    from accesscontrol.models import Partition

    allowed = allowed_partitions(operator, permission_name(model, "view"))
    return Partition.objects.all() if allowed is ALL else Partition.objects.filter(pk__in=allowed)


class ModelPage(OperatorPage):
    """A page about ``model``; the operator needs ``action`` on it."""

    model = None
    action = "view"
    detail_url_name = ""
    list_url_name = ""

    def get_permission_required(self):
        return (permission_name(self.model, self.action),)

    def base_queryset(self):
        return self.model.objects.all()

    def get_queryset(self):
        return self.restricted(self.base_queryset(), self.action)

    def get_object(self, queryset=None):
        try:
            return super().get_object(queryset)
        except Http404:
            # Visible but not theirs to change or delete: a 403, as the API answers.
            if self.action != "view" and self._visible().filter(pk=self.kwargs.get("pk")).exists():
                raise PermissionDenied(f"You may not {self.action} this {self.model._meta.verbose_name}.") from None
            raise

    def _visible(self):
        return restrict(self.model.objects.all(), self.request.user, "view")

    def detail_url(self, obj) -> str:
        return reverse(self.detail_url_name, args=[obj.pk])


class ListPage(ModelPage, TemplateView):
    """A filtered, searched, paginated list (``?q=`` searches ``search_fields``; the filterset takes the rest)."""

    filterset_class = None
    search_fields = ("name", "description")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        queryset = self.get_queryset()
        context["may_add"] = self.request.user.has_perm(permission_name(self.model, "add"))
        query = self.request.GET.get("q", "").strip()
        if query:
            condition = Q()
            for name in self.search_fields:
                condition |= Q(**{f"{name}__icontains": query})
            queryset = queryset.filter(condition)
        filterset = None
        if self.filterset_class is not None:
            filterset = self.filterset_class(self.request.GET, queryset=queryset)
            queryset = filterset.qs
        context.update(paginate(self.request, queryset))
        context.update(q=query, filterset=filterset, filters=self.request.GET)
        return context


class DetailPage(ModelPage, DetailView):
    def may(self, action: str, obj=None) -> bool:
        """Whether the operator may ``action`` the object shown (or ``obj``)."""
        obj = obj or self.object
        return restrict(type(obj).objects.filter(pk=obj.pk), self.request.user, action).exists()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["may_change"] = self.may("change")
        context["may_delete"] = self.may("delete")
        return context


class FormPage(ModelPage):
    """Create and edit pages: the form knows the operator (partitions they may use, objects they may see)."""

    template_name = "accesscontrol/places/form.html"

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["operator"] = self.request.user
        return kwargs

    def get_success_url(self):
        return self.detail_url(self.object)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["cancel_url"] = self.detail_url(self.object) if self.object else reverse(self.list_url_name)
        return context


class CreatePage(FormPage, CreateView):
    action = "add"

    def get_queryset(self):
        return self.model.objects.none()

    def form_valid(self, form):
        with transaction.atomic():
            self.object = form.save()
            audit(self.request, "create", self.object, {"fields": sorted(form.cleaned_data)})
        messages.success(self.request, f"{self.model._meta.verbose_name.capitalize()} “{self.object}” created.")
        return HttpResponseRedirect(self.get_success_url())


class EditPage(FormPage, UpdateView):
    action = "change"

    def post(self, request, *args, **kwargs):
        self.object = self.get_object()
        # Read before validation: a model form writes the cleaned values onto its instance.
        self.before = field_values(self.object, self.get_form_class()._meta.fields)
        form = self.get_form()
        return self.form_valid(form) if form.is_valid() else self.form_invalid(form)

    def form_valid(self, form):
        with transaction.atomic():
            self.object = form.save()
            changes = changes_between(self.before, field_values(self.object, form._meta.fields))
            if changes:
                audit(self.request, "update", self.object, {"changes": changes})
        messages.success(self.request, f"“{self.object}” saved." if changes else "Nothing changed.")
        return HttpResponseRedirect(self.get_success_url())


class DeletePage(ModelPage, DeleteView):
    action = "delete"
    template_name = "accesscontrol/places/confirm_delete.html"

    def form_valid(self, form):
        name = str(self.object)
        try:
            with transaction.atomic():
                audit(self.request, "delete", self.object)
                self.object.delete()
        except ProtectedError as error:
            users = ", ".join(sorted({str(obj) for obj in error.protected_objects})[:5])
            messages.error(self.request, f"“{name}” is still in use ({users}); it was not deleted.")
            return HttpResponseRedirect(self.detail_url(self.object))
        messages.success(self.request, f"“{name}” deleted.")
        return HttpResponseRedirect(reverse(self.list_url_name))
