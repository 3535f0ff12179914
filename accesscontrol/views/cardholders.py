"""Cardholder pages: the list (search, filters, CSV import/export, bulk grant), the detail page and its changes.

Every change is recorded in the system auditor: edits with their before/after,
keys and PINs through ``accesscontrol.actions``.
"""

import datetime as dt
import uuid

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Prefetch, ProtectedError, Q
from django.db.models.functions import Lower
from django.http import FileResponse, Http404, HttpResponseNotModified, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views import View
from django.views.generic import TemplateView

from accesscontrol import actions, extensions, faces, jobs, photos
from accesscontrol.cardholder_jobs import COLUMNS, imports_dir
from accesscontrol.choices import CardholderKind, KeyKind, KeyStatus
from accesscontrol.filtersets import CardholderSearchFilterSet
from accesscontrol.forms.people import (
    AccessLevelGrantForm,
    BulkGrantForm,
    CardholderForm,
    CardholderImportForm,
    CardholderPermissionForm,
    PhotoForm,
    PinForm,
    partitions_for,
)
from accesscontrol.models import (
    AccessLevel,
    AuditEvent,
    Cardholder,
    CardholderPermission,
    Key,
    SourcedCardholder,
    SystemAuditEntry,
)
from accesscontrol.permissions import may_use_partition, restrict
from accesscontrol.photofiles import photo_storage, thumbnail_name
from accesscontrol.views.base import VIA, OperatorPage, audit, client_address, paginate
from accesscontrol.views.keys import issue_from_form

RECENT = 20
# Query-string keys that are the list's filters (what an export or a bulk change applies to).
FILTER_KEYS = ("q", "partition", "kind", "access_level", "active", "has_valid_key", "banned", "sort")


def list_filters(query) -> dict:
    return {key: query.get(key) for key in FILTER_KEYS if query.get(key) not in (None, "")}


def _json(value):
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if hasattr(value, "pk"):
        return value.pk
    return value


def snapshot(instance, fields) -> dict:
    return {name: _json(getattr(instance, name)) for name in fields}


def is_active(holder: Cardholder, now: dt.datetime) -> bool:
    return (
        not holder.banned
        and (holder.activation is None or holder.activation <= now)
        and (holder.expiration is None or holder.expiration > now)
    )


def cardholder_for(request, pk, action: str = "view") -> Cardholder:
    """The cardholder ``pk`` if the operator may see it (else 404) and ``action`` it (else 403)."""
    visible = restrict(Cardholder.objects.select_related("partition"), request.user, "view")
    holder = get_object_or_404(visible, pk=pk)
    if action != "view" and not restrict(Cardholder.objects.filter(pk=pk), request.user, action).exists():
        raise PermissionDenied(f"You may not {action} this cardholder.")
    return holder


# --- the list ----------------------------------------------------------------------


LIST_ORDER = ("last_name", "first_name", "id")
# For a search, by expressions the name index cannot serve: the database then sorts the matches it found
# (through the table or, on PostgreSQL, the trigram index) instead of walking the whole index in name order
# and testing each row, which planners choose and which costs hundreds of milliseconds for a late letter.
SEARCH_ORDER = (Lower("last_name"), Lower("first_name"), "id")
SEARCH_COUNTED = 1000


class CardholderListView(OperatorPage, TemplateView):
    permission_required = "accesscontrol.view_cardholder"
    page_title = "Cardholders"
    template_name = "accesscontrol/cardholders/list.html"

    def get_template_names(self):
        # htmx live search swaps only the results.
        if self.request.headers.get("HX-Target") == "cardholder-results":
            return ["accesscontrol/cardholders/_table.html"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        operator = self.request.user
        queryset = self.restricted(Cardholder.objects.select_related("partition"), "view")
        filterset = CardholderSearchFilterSet(self.request.GET, queryset=queryset)
        results = filterset.qs if filterset.is_valid() else queryset.none()
        if "sort" not in self.request.GET:
            results = results.order_by(*SEARCH_ORDER if self.request.GET.get("q", "").strip() else LIST_ORDER)
        related = (
            Prefetch("keys", Key.objects.filter(status=KeyStatus.ISSUED).order_by("-id"), to_attr="issued_keys"),
            Prefetch("access_levels", AccessLevel.objects.order_by("name").only("id", "name")),
        )
        results = results.prefetch_related(*related)
        # A search counts its matches up to SEARCH_COUNTED: past that, "more than 1,000 cardholders", and a
        # page is read as ids first, so the search for a common name neither counts its matches nor sorts
        # them as whole rows to show ten of them.
        searching = bool(self.request.GET.get("q", "").strip())
        context.update(
            paginate(
                self.request,
                results,
                count_up_to=SEARCH_COUNTED if searching else None,
                rows=lambda ids: (
                    Cardholder.objects.select_related("partition").filter(pk__in=ids).prefetch_related(*related)
                ),
            )
        )
        now = timezone.now()
        for holder in context["page_obj"]:
            holder.active_now = is_active(holder, now)
        filters = list_filters(self.request.GET)
        unsorted = QueryDict(mutable=True)
        unsorted.update({key: value for key, value in filters.items() if key != "sort"})
        if "per_page" in self.request.GET:
            unsorted["per_page"] = self.request.GET["per_page"]
        context.update(
            filterset=filterset,
            filters=filters,
            sort_query=f"{unsorted.urlencode()}&" if unsorted else "",
            sort=self.request.GET.get("sort", "name"),
            partitions=partitions_for(operator, "accesscontrol.view_cardholder"),
            levels=restrict(AccessLevel.objects.order_by("name").only("id", "name"), operator, "view"),
            kinds=CardholderKind.choices,
            may_add=operator.has_perm("accesscontrol.add_cardholder"),
            may_change=operator.has_perm("accesscontrol.change_cardholder"),
            count_label="cardholders",
        )
        if context["may_add"]:
            context.setdefault("import_form", CardholderImportForm(operator=operator))
            context["columns"] = COLUMNS
        if context["may_change"]:
            context.setdefault("grant_form", BulkGrantForm(operator=operator))
        return context


# --- create, edit, delete ----------------------------------------------------------


class CardholderCreateView(OperatorPage, View):
    permission_required = "accesscontrol.add_cardholder"

    def get(self, request):
        return self.show(CardholderForm(operator=request.user))

    def post(self, request):
        form = CardholderForm(request.POST, operator=request.user)
        if not form.is_valid():
            return self.show(form, status=400)
        with transaction.atomic():
            holder = form.save()
            audit(request, "create", holder, {"fields": snapshot(holder, form.changed_data)})
        messages.success(request, f"Cardholder {holder} created.")
        return redirect("cardholder", pk=holder.pk)

    def show(self, form, status=200):
        context = {"form": form, "page_title": "New cardholder", "cancel_url": reverse("cardholders")}
        return render(self.request, "accesscontrol/cardholders/form.html", context, status=status)


class CardholderEditView(OperatorPage, View):
    permission_required = "accesscontrol.change_cardholder"

    def get(self, request, pk):
        holder = cardholder_for(request, pk, "change")
        return self.show(holder, CardholderForm(instance=holder, operator=request.user))

    def post(self, request, pk):
        holder = cardholder_for(request, pk, "change")
        form = CardholderForm(request.POST, instance=holder, operator=request.user)
        before = snapshot(holder, form.fields)
        if not form.is_valid():
            return self.show(holder, form, status=400)
        with transaction.atomic():
            holder = form.save()
            after = snapshot(holder, form.fields)
            changes = {name: {"from": before[name], "to": after[name]} for name in after if before[name] != after[name]}
            if changes:
                audit(request, "update", holder, {"changes": changes})
        messages.success(request, f"Cardholder {holder} saved." if changes else "Nothing changed.")
        return redirect("cardholder", pk=holder.pk)

    def show(self, holder, form, status=200):
        context = {
            "form": form,
            "cardholder": holder,
            "page_title": f"Edit {holder}",
            "cancel_url": reverse("cardholder", args=[holder.pk]),
        }
        return render(self.request, "accesscontrol/cardholders/form.html", context, status=status)


class CardholderDeactivateView(OperatorPage, View):
    """Access ends now: the cardholder stays, with their history and their keys' blacklist entries."""

    permission_required = "accesscontrol.change_cardholder"

    def post(self, request, pk):
        holder = cardholder_for(request, pk, "change")
        actions.deactivate_cardholder(holder, operator=request.user, via=VIA, address=client_address(request))
        messages.success(request, f"{holder} is deactivated: their access ended now and their keys are cancelled.")
        return redirect("cardholder", pk=holder.pk)


class CardholderDeleteView(OperatorPage, View):
    permission_required = "accesscontrol.delete_cardholder"

    def post(self, request, pk):
        holder = cardholder_for(request, pk, "delete")
        try:
            actions.delete_cardholder(holder, operator=request.user, via=VIA, address=client_address(request))
        except ProtectedError as error:
            users = ", ".join(sorted({str(obj) for obj in error.protected_objects})[:5])
            messages.error(request, f"{holder} is still in use ({users}); they were not deleted.")
            return redirect("cardholder", pk=holder.pk)
        messages.success(request, f"Cardholder {holder} deleted; their keys are cancelled and blacklisted.")
        return redirect("cardholders")


# --- the detail page ----------------------------------------------------------------


class CardholderDetailView(OperatorPage, View):
    permission_required = "accesscontrol.view_cardholder"

    def get(self, request, pk):
        return show_detail(request, cardholder_for(request, pk))


def show_detail(request, holder: Cardholder, status: int = 200, **forms):
    """The detail page; the change views render it again with their bound form to show its field errors."""
    operator = request.user
    may = {
        "change": restrict(Cardholder.objects.filter(pk=holder.pk), operator, "change").exists(),
        "delete": operator.has_perm("accesscontrol.delete_cardholder"),
        "add_key": may_use_partition(operator, "accesscontrol.add_key", holder.partition_id),
        "change_key": may_use_partition(operator, "accesscontrol.change_key", holder.partition_id),
        "add_permission": may_use_partition(operator, "accesscontrol.add_cardholderpermission", holder.partition_id),
        "delete_permission": may_use_partition(
            operator, "accesscontrol.delete_cardholderpermission", holder.partition_id
        ),
        "audit": operator.has_perm("accesscontrol.view_auditevent"),
        "system_audit": operator.has_perm("accesscontrol.view_systemauditentry"),
    }
    keys = list(holder.keys.order_by("-issued_at", "-id"))
    context = {
        "page_title": str(holder),
        "cardholder": holder,
        "active_now": is_active(holder, timezone.now()),
        "may": may,
        "keys": keys,
        "mobile_keys": [key for key in keys if key.kind == KeyKind.MOBILE],
        "levels": holder.access_levels.select_related("partition").order_by("name"),
        "permissions": holder.permissions.select_related("access_point", "zone", "time_period").order_by("id"),
        "key_form": forms.get("key_form") or extensions.key_issue_form_class()(),
        "level_form": forms.get("level_form") or AccessLevelGrantForm(operator=operator, cardholder=holder),
        "permission_form": forms.get("permission_form") or CardholderPermissionForm(operator=operator),
        "pin_form": forms.get("pin_form") or PinForm(),
        "photo_form": forms.get("photo_form") or PhotoForm(),
        "photo_url": photos.photo_url(holder.pk, holder.photo.name) if holder.photo else "",
    }
    context.update(face_panel(holder))
    for part in extensions.registry.cardholder_page:
        context.update(part(holder, keys))
    if may["audit"]:
        events = AuditEvent.objects.filter(cardholder_id=holder.pk).order_by("-at", "-id")
        context["events"] = restrict(events, operator, "view")[:RECENT]
    if may["system_audit"]:
        about = Q(object_type="accesscontrol.cardholder", object_id=str(holder.pk)) | Q(
            object_type="accesscontrol.key", object_id__in=[str(key.pk) for key in keys]
        )
        context["entries"] = SystemAuditEntry.objects.filter(about).order_by("-at", "-id")[:RECENT]
    context["source_link"] = SourcedCardholder.objects.select_related("source").filter(cardholder=holder).first()
    context["may_view_sources"] = operator.has_perm("accesscontrol.view_cardholdersource")
    return render(request, "accesscontrol/cardholders/detail.html", context, status=status)


def face_panel(holder: Cardholder) -> dict:
    """The face panel's consent and templates: when, by whom, model, quality, terminal; never a vector."""
    consent = faces.live_consent(holder)
    templates = holder.face_templates.defer("vector_sealed").order_by("-created_at", "-id")
    return {"face_consent": consent, "face_templates": list(templates)}


class CardholderChangeView(OperatorPage, View):
    """A POST that changes one part of a cardholder, then goes back to its page."""

    permission_required = "accesscontrol.change_cardholder"
    action = "change"

    def post(self, request, pk, **kwargs):
        holder = cardholder_for(request, pk, self.action)
        return self.change(request, holder, **kwargs) or redirect("cardholder", pk=holder.pk)


class CardholderPinView(CardholderChangeView):
    def change(self, request, holder):
        if "clear" in request.POST:
            actions.set_cardholder_pin(holder, None, operator=request.user, via=VIA, address=client_address(request))
            messages.success(request, "PIN removed.")
            return None
        form = PinForm(request.POST, cardholder=holder)
        if not form.is_valid():
            return show_detail(request, holder, status=400, pin_form=form)
        pin = form.cleaned_data["pin"]
        actions.set_cardholder_pin(holder, pin, operator=request.user, via=VIA, address=client_address(request))
        messages.success(request, "PIN set.")
        return None


class CardholderFaceConsentView(CardholderChangeView):
    """POST: the cardholder consents to face matching (recorded once, with the operator and the time)."""

    def change(self, request, holder):
        faces.record_consent(holder, operator=request.user, via=VIA, address=client_address(request))
        messages.success(request, f"{holder}'s consent to face matching is recorded.")
        return redirect(f"{reverse('cardholder', args=[holder.pk])}#face")


class CardholderFaceWithdrawView(CardholderChangeView):
    """POST: the cardholder withdraws their consent; every face template of theirs is erased."""

    def change(self, request, holder):
        erased = faces.withdraw_consent(holder, operator=request.user, via=VIA, address=client_address(request))
        messages.success(request, f"Consent withdrawn; {erased} face template{'s' if erased != 1 else ''} erased.")
        return redirect(f"{reverse('cardholder', args=[holder.pk])}#face")


class CardholderPhotoUploadView(CardholderChangeView):
    def change(self, request, holder):
        form = PhotoForm(request.POST, request.FILES)
        if form.is_valid():
            # One byte past the limit is enough to refuse it: a large upload is never read whole into memory.
            data = form.cleaned_data["photo"].read(settings.SPACE_PHOTO_MAX_BYTES + 1)
            try:
                photos.set_photo(holder, data, operator=request.user, via=VIA, address=client_address(request))
            except photos.PhotoError as error:
                form.add_error("photo", str(error))
        if form.errors:
            return show_detail(request, holder, status=400, photo_form=form)
        messages.success(request, "Photo saved.")
        return None


class CardholderPhotoRemoveView(CardholderChangeView):
    def change(self, request, holder):
        photos.remove_photo(holder, operator=request.user, via=VIA, address=client_address(request))
        messages.success(request, "Photo removed.")
        return None


class CardholderPhotoView(OperatorPage, View):
    """The photo (or its thumbnail) of a cardholder the operator may see; 404 for any other.

    Private to the operator's browser. Asked for with its version (``?v=``, as the pages link it), it is
    kept for good: a new photo has a new version. Asked for without, the browser checks its ETag each time.
    """

    permission_required = "accesscontrol.view_cardholder"
    thumbnail = False

    def get(self, request, pk):
        holder = cardholder_for(request, pk)
        name = holder.photo.name
        if not name:
            raise Http404("This cardholder has no photo.")
        version = holder.photo_version
        headers = {
            "ETag": f'"{version}-thumbnail"' if self.thumbnail else f'"{version}"',
            "Cache-Control": "private, max-age=31536000, immutable"
            if request.GET.get("v") == version
            else "private, no-cache",
        }
        if headers["ETag"] in request.headers.get("If-None-Match", ""):
            return HttpResponseNotModified(headers=headers)
        try:
            file = photo_storage.open(thumbnail_name(name) if self.thumbnail else name, "rb")
        except FileNotFoundError:
            raise Http404("The photo's file is missing.") from None
        return FileResponse(file, content_type="image/jpeg", headers=headers)


class CardholderLevelGrantView(CardholderChangeView):
    def change(self, request, holder):
        form = AccessLevelGrantForm(request.POST, operator=request.user, cardholder=holder)
        if not form.is_valid():
            return show_detail(request, holder, status=400, level_form=form)
        level = form.cleaned_data["access_level"]
        actions.grant_access_level(holder, level, operator=request.user, via=VIA, address=client_address(request))
        messages.success(request, f"{level} granted.")
        return None


class CardholderLevelRemoveView(CardholderChangeView):
    def change(self, request, holder, level_pk):
        level = get_object_or_404(holder.access_levels.all(), pk=level_pk)
        actions.revoke_access_level(holder, level, operator=request.user, via=VIA, address=client_address(request))
        messages.success(request, f"{level} removed.")
        return None


class CardholderPermissionAddView(CardholderChangeView):
    permission_required = "accesscontrol.add_cardholderpermission"
    action = "view"

    def change(self, request, holder):
        if not may_use_partition(request.user, "accesscontrol.add_cardholderpermission", holder.partition_id):
            raise PermissionDenied("You may not give this cardholder permissions.")
        form = CardholderPermissionForm(
            request.POST, operator=request.user, instance=CardholderPermission(cardholder=holder)
        )
        if not form.is_valid():
            return show_detail(request, holder, status=400, permission_form=form)
        grant = {name: form.cleaned_data.get(name) for name in actions.PERMISSION_FIELDS}
        permission = actions.add_cardholder_permission(
            holder, **grant, operator=request.user, via=VIA, address=client_address(request)
        )
        messages.success(request, f"Permission for {permission.target} added.")
        return None


class CardholderPermissionRemoveView(CardholderChangeView):
    permission_required = "accesscontrol.delete_cardholderpermission"
    action = "view"

    def change(self, request, holder, permission_pk):
        if not may_use_partition(request.user, "accesscontrol.delete_cardholderpermission", holder.partition_id):
            raise PermissionDenied("You may not remove this cardholder's permissions.")
        permission = get_object_or_404(holder.permissions.all(), pk=permission_pk)
        actions.remove_cardholder_permission(
            permission, operator=request.user, via=VIA, address=client_address(request)
        )
        messages.success(request, "Permission removed.")
        return None


class CardholderKeyIssueView(CardholderChangeView):
    permission_required = "accesscontrol.add_key"
    action = "view"

    def change(self, request, holder):
        if not may_use_partition(request.user, "accesscontrol.add_key", holder.partition_id):
            raise PermissionDenied("You may not issue keys to this cardholder.")
        form = extensions.key_issue_form_class()(request.POST)
        if not (form.is_valid() and issue_from_form(request, holder, form)):
            return show_detail(request, holder, status=400, key_form=form)
        return None


# --- long work: import, export, bulk grant --------------------------------------------


class CardholderImportView(OperatorPage, View):
    permission_required = "accesscontrol.add_cardholder"

    def get(self, request):
        return self.show(CardholderImportForm(operator=request.user))

    def post(self, request):
        form = CardholderImportForm(request.POST, request.FILES, operator=request.user)
        if not form.is_valid():
            return self.show(form, status=400)
        directory = imports_dir()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{uuid.uuid4().hex}.csv"
        with open(path, "wb") as out:
            for chunk in form.cleaned_data["file"].chunks():
                out.write(chunk)
        parameters = {
            "file": str(path),
            "filename": form.cleaned_data["file"].name[:200],
            "partition": form.cleaned_data["partition"].pk,
        }
        job = jobs.start("cardholder_import", request.user, parameters)
        messages.info(request, f"Importing {parameters['filename']}.")
        return redirect("job", pk=job.pk)

    def show(self, form, status=200):
        context = {"import_form": form, "columns": COLUMNS, "page_title": "Import cardholders"}
        return render(self.request, "accesscontrol/cardholders/import.html", context, status=status)


class CardholderExportView(OperatorPage, View):
    permission_required = "accesscontrol.view_cardholder"

    def post(self, request):
        filters = list_filters(request.POST)
        job = jobs.start("cardholder_export", request.user, {"filters": filters})
        return redirect("job", pk=job.pk)


class CardholderBulkGrantView(OperatorPage, View):
    permission_required = "accesscontrol.change_cardholder"

    def post(self, request):
        form = BulkGrantForm(request.POST, operator=request.user)
        if not form.is_valid():
            messages.error(request, "Choose an access level to grant.")
            return redirect(f"{reverse('cardholders')}?{request.POST.get('query', '')}")
        level = form.cleaned_data["grant_level"]
        parameters = {"filters": list_filters(request.POST), "access_level": level.pk}
        job = jobs.start("cardholder_grant_level", request.user, parameters)
        messages.info(request, f"Granting {level} to the cardholders of the list.")
        return redirect("job", pk=job.pk)
