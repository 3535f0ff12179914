"""Key pages: the list (search by UID, filters), issue, cancel (behind a confirmation) and revalidate.

Issuing, here and on a cardholder's page, may write the key on a card on an
encoder at once (:func:`issue_from_form`); the cardholder's page then shows
the encode job's progress.
"""

import functools
import re

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.generic import TemplateView

from accesscontrol import actions, extensions
from accesscontrol.choices import KeyKind, KeyStatus
from accesscontrol.forms.people import KeyRevalidateForm, partitions_for
from accesscontrol.models import Cardholder, Key, normalize_uid
from accesscontrol.permissions import may_use_partition, restrict
from accesscontrol.views.base import VIA, OperatorPage, client_address, paginate

HEX = re.compile(r"^[0-9A-F]{1,64}$")


def uid_prefix(queryset, value: str):
    """Keys whose UID starts with ``value``: UIDs are upper-case hex, so a range scan on the index finds them."""
    uid = normalize_uid(value)
    if not uid:
        return queryset
    if not HEX.match(uid):
        return queryset.none()
    return queryset.filter(uid__gte=uid, uid__lt=uid + "G")


def key_for(request, pk, action: str = "view") -> Key:
    visible = restrict(Key.objects.select_related("cardholder"), request.user, "view")
    key = get_object_or_404(visible, pk=pk)
    if action != "view" and not restrict(Key.objects.filter(pk=pk), request.user, action).exists():
        raise PermissionDenied(f"You may not {action} this key.")
    return key


def back(request, default: str):
    """Where a form asked to go back to (its own page: the key list or a cardholder's page), if it is ours."""
    target = request.POST.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(target)
    return redirect(default)


class KeyListView(OperatorPage, TemplateView):
    permission_required = "accesscontrol.view_key"
    page_title = "Keys"
    template_name = "accesscontrol/keys/list.html"

    def get_template_names(self):
        if self.request.headers.get("HX-Target") == "key-results":
            return ["accesscontrol/keys/_table.html"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        query = self.request.GET
        keys = self.restricted(Key.objects.select_related("cardholder__partition"), "view")
        if query.get("q", "").strip():
            keys = uid_prefix(keys, query["q"])
        if query.get("status") in KeyStatus.values:
            keys = keys.filter(status=query["status"])
        if query.get("kind") in KeyKind.values:
            keys = keys.filter(kind=query["kind"])
        if query.get("partition", "").isdigit():
            keys = keys.filter(cardholder__partition_id=int(query["partition"]))
        context.update(paginate(self.request, keys.order_by("-id")))
        context.update(
            statuses=KeyStatus.choices,
            kinds=KeyKind.choices,
            partitions=partitions_for(self.request.user, "accesscontrol.view_key"),
            may_change=self.request.user.has_perm("accesscontrol.change_key"),
            may_add=self.request.user.has_perm("accesscontrol.add_key"),
            count_label="keys",
            next_url=self.request.get_full_path(),
        )
        return context


def issue_typed_key(request, holder: Cardholder, form) -> bool:
    """Issue the key a valid form asks for, with the UID as typed (the domain's default, accesscontrol.extensions)."""
    data = dict(form.cleaned_data)
    data.pop("cardholder", None)
    key = actions.issue_key(holder, operator=request.user, via=VIA, address=client_address(request), **data)
    messages.success(request, f"Key {key.uid} issued to {holder}.")
    return True


def issue_from_form(request, holder: Cardholder, form) -> bool:
    """Issue the key a valid form asks for, the way the site issues keys (with an encoder when devices plug one in).
    False (nothing issued, the reason on the form) when the form's choices turn out unfit."""
    issue = extensions.registry.key_issuing.issue or issue_typed_key
    return issue(request, holder, form)


class CardholderChoiceForm(forms.Form):
    """The cardholder field of the key issuing page, mixed into whichever key issuing form the site uses."""

    cardholder = forms.CharField(
        label="Cardholder", max_length=64, help_text="The cardholder's number (on their page) or external id."
    )

    def __init__(self, *args, operator, **kwargs):
        super().__init__(*args, **kwargs)
        self.operator = operator

    def clean_cardholder(self):
        value = self.cleaned_data["cardholder"].strip()
        match = Q(ext_id=value)
        if value.isdigit() and int(value) < 2**63:
            match |= Q(pk=int(value))
        holder = restrict(Cardholder.objects.filter(match), self.operator, "view").first()
        if holder is None:
            raise forms.ValidationError("No cardholder you may see has this number or external id.")
        if not may_use_partition(self.operator, "accesscontrol.add_key", holder.partition_id):
            raise forms.ValidationError("You may not issue keys to this cardholder.")
        return holder


@functools.cache
def _page_form_class(base: type) -> type:
    order = ["cardholder", "uid", "kind", "valid_from", "valid_until", "encoder"]
    return type("KeyIssuePageForm", (CardholderChoiceForm, base), {"field_order": order})


def KeyIssuePageForm(*args, operator, **kwargs):
    """The key issuing page's form: a cardholder field, then the site's key issuing form."""
    return _page_form_class(extensions.key_issue_form_class())(*args, operator=operator, **kwargs)


class KeyIssueView(OperatorPage, View):
    permission_required = "accesscontrol.add_key"

    def get(self, request):
        initial = {"cardholder": request.GET.get("cardholder", "")}
        return self.show(KeyIssuePageForm(initial=initial, operator=request.user))

    def post(self, request):
        form = KeyIssuePageForm(request.POST, operator=request.user)
        if not (form.is_valid() and issue_from_form(request, form.cleaned_data["cardholder"], form)):
            return self.show(form, status=400)
        # The cardholder's page follows the encode job, if there is one.
        return redirect("cardholder", pk=form.cleaned_data["cardholder"].pk)

    def show(self, form, status=200):
        context = {"form": form, "page_title": "Issue a key"}
        return render(self.request, "accesscontrol/keys/issue.html", context, status=status)


class KeyCancelView(OperatorPage, View):
    permission_required = "accesscontrol.change_key"

    def post(self, request, pk):
        key = key_for(request, pk, "change")
        if key.status != KeyStatus.CANCELLED:
            actions.cancel_key(key, operator=request.user, via=VIA, address=client_address(request))
            messages.success(request, f"Key {key.uid} cancelled: it is blacklisted until it expires.")
        return back(request, reverse("keys"))


class KeyRevalidateView(OperatorPage, View):
    permission_required = "accesscontrol.change_key"

    def get(self, request, pk):
        key = key_for(request, pk, "change")
        return self.show(key, KeyRevalidateForm())

    def post(self, request, pk):
        key = key_for(request, pk, "change")
        form = KeyRevalidateForm(request.POST)
        if form.is_valid():
            try:
                key = actions.revalidate_key(
                    key,
                    operator=request.user,
                    via=VIA,
                    valid_until=form.cleaned_data["valid_until"],
                    address=client_address(request),
                )
            except ValidationError as error:
                if hasattr(error, "error_dict"):
                    for field, errors in error.message_dict.items():
                        form.add_error(field if field in form.fields else None, errors)
                else:
                    form.add_error(None, error.messages)
            else:
                until = key.valid_until.strftime("%Y-%m-%d %H:%M") if key.valid_until else "no end"
                messages.success(request, f"Key {key.uid} revalidated: valid until {until}.")
                return back(request, reverse("cardholder", args=[key.cardholder_id]))
        return self.show(key, form, status=400)

    def show(self, key, form, status=200):
        context = {
            "form": form,
            "key": key,
            "page_title": f"Revalidate key {key.uid}",
            "suggested": actions.revalidation_end(key, timezone.now()),
            "next": self.request.GET.get("next") or self.request.POST.get("next") or "",
        }
        return render(self.request, "accesscontrol/keys/revalidate.html", context, status=status)
