"""Pages for access levels: their entries (access point or zone, at the times of a time period) and members."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.views import View

from accesscontrol import actions, filtersets
from accesscontrol.actions import describe_entry
from accesscontrol.forms.access_levels import AccessLevelEntryForm, AccessLevelForm
from accesscontrol.models import AccessLevel, AccessLevelEntry, Cardholder
from accesscontrol.permissions import restrict
from accesscontrol.views.base import VIA, OperatorPage, client_address
from accesscontrol.views.editing import CreatePage, DeletePage, DetailPage, EditPage, ListPage, visible_partitions
from accesscontrol.views.places import count_of


def members_url(level) -> str | None:
    """The cardholder list filtered by this level, where that page exists."""
    try:
        return f"{reverse('cardholders')}?access_level={level.pk}"
    except NoReverseMatch:
        return None


class AccessLevelPage:
    model = AccessLevel
    detail_url_name = "access_level"
    list_url_name = "access_levels"


class AccessLevelList(AccessLevelPage, ListPage):
    template_name = "accesscontrol/access_levels/access_level_list.html"
    page_title = "Access levels"
    filterset_class = filtersets.AccessLevelFilterSet

    def base_queryset(self):
        # Members are counted among the cardholders the operator may see.
        visible = restrict(Cardholder.objects.all(), self.request.user, "view").values("pk")
        members = Cardholder.access_levels.through.objects.filter(cardholder_id__in=visible)
        return AccessLevel.objects.select_related("partition").annotate(
            entry_count=count_of(AccessLevelEntry.objects.all(), "access_level_id"),
            member_count=count_of(members, "accesslevel_id"),
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["partitions"] = visible_partitions(self.request.user, AccessLevel)
        context["may_see_cardholders"] = self.request.user.has_perm("accesscontrol.view_cardholder")
        try:
            context["cardholders_url"] = reverse("cardholders")
        except NoReverseMatch:
            context["cardholders_url"] = None
        return context


class AccessLevelDetail(AccessLevelPage, DetailPage):
    template_name = "accesscontrol/access_levels/access_level_detail.html"

    def base_queryset(self):
        return AccessLevel.objects.select_related("partition")

    def get_context_data(self, entry_form=None, **kwargs):
        context = super().get_context_data(**kwargs)
        level, user = self.object, self.request.user
        members = restrict(Cardholder.objects.filter(access_levels=level), user, "view")
        context.update(
            page_title=level.name,
            entries=level.entries.select_related("access_point", "zone", "time_period").order_by("id"),
            member_count=members.count(),
            may_see_cardholders=user.has_perm("accesscontrol.view_cardholder"),
            members_url=members_url(level),
        )
        if context["may_change"]:
            context["entry_form"] = entry_form or AccessLevelEntryForm(access_level=level, operator=user)
        return context


class AccessLevelEntries(OperatorPage, View):
    """Add an entry to a level or remove one; recorded on the level as a change of its entries."""

    permission_required = ("accesscontrol.change_accesslevel",)

    def post(self, request, pk):
        level = get_object_or_404(restrict(AccessLevel.objects.all(), request.user, "change"), pk=pk)
        if "remove" in request.POST:
            entry = get_object_or_404(
                level.entries.select_related("access_point", "zone", "time_period"), pk=_int(request.POST.get("remove"))
            )
            actions.remove_access_level_entry(entry, operator=request.user, via=VIA, address=client_address(request))
            messages.success(request, f"Entry removed: {describe_entry(entry)}.")
            return redirect("access_level", pk=level.pk)
        form = AccessLevelEntryForm(request.POST, access_level=level, operator=request.user)
        if not form.is_valid():
            page = AccessLevelDetail(request=request, kwargs={"pk": pk}, object=level)
            context = page.get_context_data(object=level, entry_form=form)
            return TemplateResponse(request, AccessLevelDetail.template_name, context)
        grant = {name: form.cleaned_data.get(name) for name in actions.PERMISSION_FIELDS}
        entry = actions.add_access_level_entry(
            level, **grant, operator=request.user, via=VIA, address=client_address(request)
        )
        messages.success(request, f"Entry added: {describe_entry(entry)}.")
        return redirect("access_level", pk=level.pk)


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


class AccessLevelCreate(AccessLevelPage, CreatePage):
    form_class = AccessLevelForm
    page_title = "New access level"


class AccessLevelEdit(AccessLevelPage, EditPage):
    form_class = AccessLevelForm
    page_title = "Edit access level"


class AccessLevelDelete(AccessLevelPage, DeletePage):
    page_title = "Delete access level"
