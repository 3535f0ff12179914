"""Pages for access points, zones and locations."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, OuterRef, Prefetch, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.views import View

from accesscontrol import actions, engine, filtersets, muster
from accesscontrol.choices import AccessPointKind, Connection
from accesscontrol.forms.places import AccessPointForm, LocationForm, OccupancyForm, ZoneForm, ZoneMemberForm
from accesscontrol.models import AccessPoint, AuditEvent, Cardholder, Location, Zone
from accesscontrol.permissions import restrict
from accesscontrol.snapshot import get_store
from accesscontrol.views.base import VIA, OperatorPage, audit, client_address
from accesscontrol.views.editing import (
    CreatePage,
    DeletePage,
    DetailPage,
    EditPage,
    ListPage,
    changes_between,
    field_values,
    visible_partitions,
)

RECENT_EVENTS = 20
WHO_MAY_OPEN_SHOWN = 100
PRESENCES_SHOWN = 20


def count_of(queryset, field: str):
    """A subquery counting ``queryset``'s rows whose ``field`` is the outer row: one query for a whole page."""
    counted = queryset.filter(**{field: OuterRef("pk")}).order_by().values(field).annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted), 0)


# --- access points ---------------------------------------------------------------------------


class AccessPointPage:
    model = AccessPoint
    detail_url_name = "access_point"
    list_url_name = "access_points"


class AccessPointList(AccessPointPage, ListPage):
    template_name = "accesscontrol/places/access_point_list.html"
    page_title = "Access points"
    filterset_class = filtersets.AccessPointFilterSet
    search_fields = ("name", "ext_id", "description")

    def base_queryset(self):
        zones = restrict(Zone.objects.only("id", "name"), self.request.user, "view")
        return AccessPoint.objects.select_related("partition", "location").prefetch_related(Prefetch("zones", zones))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user = self.request.user
        context.update(
            partitions=visible_partitions(user, AccessPoint),
            kinds=AccessPointKind.choices,
            connections=Connection.choices,
            locations=restrict(Location.objects.only("id", "name"), user, "view"),
            zones=restrict(Zone.objects.only("id", "name"), user, "view"),
        )
        return context


class AccessPointDetail(AccessPointPage, DetailPage):
    template_name = "accesscontrol/places/access_point_detail.html"

    def base_queryset(self):
        return AccessPoint.objects.select_related("partition", "location", "timed_period", "calendar", "mode_schedule")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        point, user = self.object, self.request.user
        context["page_title"] = point.name
        context["zones"] = restrict(point.zones.all(), user, "view")
        context["hidden_zones"] = point.zones.count() - len(context["zones"])
        context["doors"] = point.device_doors.select_related("device")
        context["readers"] = point.device_readers.select_related("device")
        context["may_see_devices"] = user.has_perm("devices.view_device")
        events = restrict(AuditEvent.objects.filter(access_point=point), user, "view")
        context["events"] = events.order_by("-at", "-id")[:RECENT_EVENTS]
        context["may_see_events"] = user.has_perm("accesscontrol.view_auditevent")
        context["may_see_cardholders"] = user.has_perm("accesscontrol.view_cardholder")
        return context


class AccessPointWhoMayOpen(AccessPointPage, DetailPage):
    """Who may open the access point now: the decision engine's answer, for the cardholders the operator may see.

    Loaded on request (a link, or htmx into the detail page): it reads the whole rules snapshot.
    """

    template_name = "accesscontrol/places/who_may_open.html"
    permission_required = ("accesscontrol.view_accesspoint", "accesscontrol.view_cardholder")

    def get_permission_required(self):
        return self.permission_required

    def get_template_names(self):
        if self.request.headers.get("HX-Request"):
            return ["accesscontrol/places/who_may_open_partial.html"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        at = timezone.now()
        ids = engine.who_may_open(get_store().refresh(), self.object.pk, at)
        holders = restrict(Cardholder.objects.filter(pk__in=ids), self.request.user, "view")
        context.update(
            at=at,
            holders=holders.order_by("last_name", "first_name", "id")[:WHO_MAY_OPEN_SHOWN],
            holder_count=holders.count(),
            shown=WHO_MAY_OPEN_SHOWN,
            page_title=f"Who may open {self.object.name}",
        )
        return context


class AccessPointCreate(AccessPointPage, CreatePage):
    form_class = AccessPointForm
    page_title = "New access point"


class AccessPointEdit(AccessPointPage, EditPage):
    form_class = AccessPointForm
    page_title = "Edit access point"

    def form_valid(self, form):
        with transaction.atomic():
            response = super().form_valid(form)
            if self.before.get("opening_mode") != self.object.opening_mode:
                actions.opening_mode_edited(
                    self.object, operator=self.request.user, via=VIA, address=client_address(self.request)
                )
        return response


class AccessPointDelete(AccessPointPage, DeletePage):
    page_title = "Delete access point"


# --- zones -----------------------------------------------------------------------------------


class ZonePage:
    model = Zone
    detail_url_name = "zone"
    list_url_name = "zones"


class ZoneList(ZonePage, ListPage):
    template_name = "accesscontrol/places/zone_list.html"
    page_title = "Zones"
    filterset_class = filtersets.ZoneFilterSet

    def base_queryset(self):
        visible_points = restrict(AccessPoint.objects.all(), self.request.user, "view").values("pk")
        members = AccessPoint.zones.through.objects.filter(accesspoint_id__in=visible_points)
        return Zone.objects.select_related("partition").annotate(access_point_count=count_of(members, "zone_id"))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["partitions"] = visible_partitions(self.request.user, Zone)
        return context


class ZoneDetail(ZonePage, DetailPage):
    template_name = "accesscontrol/places/zone_detail.html"

    def base_queryset(self):
        return Zone.objects.select_related("partition", "mode_schedule")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        zone, user = self.object, self.request.user
        context["page_title"] = zone.name
        if zone.tracks_presence or zone.occupancy_correction:
            context.update(self.presence_context(zone, user))
        members = restrict(zone.access_points.select_related("location"), user, "view")
        changeable = set(restrict(zone.access_points.all(), user, "change").values_list("pk", flat=True))
        context["members"] = [(point, point.pk in changeable) for point in members]
        context["hidden_members"] = zone.access_points.count() - len(context["members"])
        if user.has_perm("accesscontrol.change_accesspoint"):
            context["member_form"] = ZoneMemberForm(zone=zone, operator=user)
        return context

    def presence_context(self, zone, user) -> dict:
        """Who is inside (for operators who may see presence there), and the forgive and correct forms."""
        may_see = (
            user.has_perm("accesscontrol.view_presence")
            and muster.in_partitions(Zone.objects.filter(pk=zone.pk), user, "accesscontrol.view_presence").exists()
        )
        (zone,) = muster.with_counts([zone])
        context = {
            "shows_presence": True,
            "presence_count": zone.count,
            "presence_full": zone.full,
            "may_see_presence": may_see,
            "may_forgive": muster.may_forgive(user, zone),
            "may_muster": zone.roll_call and muster.roll_call_areas(user).filter(pk=zone.pk).exists(),
        }
        if may_see:
            context["presences"] = muster.inside([zone.pk])[:PRESENCES_SHOWN]
        if context["may_forgive"]:
            context["occupancy_form"] = OccupancyForm(initial={"count": zone.count})
        return context


class ZoneMembers(OperatorPage, View):
    """Put an access point into a zone or take it out: a change of the access point's zones, recorded on it."""

    permission_required = ("accesscontrol.view_zone", "accesscontrol.change_accesspoint")

    def post(self, request, pk):
        zone = get_object_or_404(restrict(Zone.objects.all(), request.user, "view"), pk=pk)
        if "remove" in request.POST:
            changeable = restrict(zone.access_points.all(), request.user, "change")
            point = changeable.filter(pk=request.POST.get("remove")).first()
            if point is None:
                raise PermissionDenied("You may not change this access point.")
            self._change(point, lambda: point.zones.remove(zone))
            messages.success(request, f"“{point}” is no longer in {zone}.")
            return redirect("zone", pk=zone.pk)
        form = ZoneMemberForm(request.POST, zone=zone, operator=request.user)
        if not form.is_valid():
            messages.error(request, " ".join(form.errors["access_point"]))
            return redirect("zone", pk=zone.pk)
        point = form.cleaned_data["access_point"]
        self._change(point, lambda: point.zones.add(zone))
        messages.success(request, f"“{point}” is now in {zone}.")
        return redirect("zone", pk=zone.pk)

    def _change(self, point, change):
        with transaction.atomic():
            before = field_values(point, ["zones"])
            change()  # m2m signals note the rule change for the decision engine
            audit(self.request, "update", point, {"changes": changes_between(before, field_values(point, ["zones"]))})


class ZoneCreate(ZonePage, CreatePage):
    form_class = ZoneForm
    page_title = "New zone"


class ZoneEdit(ZonePage, EditPage):
    form_class = ZoneForm
    page_title = "Edit zone"


class ZoneDelete(ZonePage, DeletePage):
    page_title = "Delete zone"


# --- locations -------------------------------------------------------------------------------


class LocationPage:
    model = Location
    detail_url_name = "location"
    list_url_name = "locations"


class LocationList(LocationPage, ListPage):
    template_name = "accesscontrol/places/location_list.html"
    page_title = "Locations"
    filterset_class = filtersets.LocationFilterSet

    def base_queryset(self):
        points = restrict(AccessPoint.objects.all(), self.request.user, "view")
        return Location.objects.select_related("partition", "parent").annotate(
            access_point_count=count_of(points, "location_id")
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["partitions"] = visible_partitions(self.request.user, Location)
        return context


class LocationDetail(LocationPage, DetailPage):
    template_name = "accesscontrol/places/location_detail.html"

    def base_queryset(self):
        return Location.objects.select_related("partition", "parent")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        location, user = self.object, self.request.user
        context["page_title"] = location.name
        context["children"] = restrict(location.children.all(), user, "view")
        context["access_points"] = restrict(location.access_points.all(), user, "view")[:50]
        return context


class LocationCreate(LocationPage, CreatePage):
    form_class = LocationForm
    page_title = "New location"


class LocationEdit(LocationPage, EditPage):
    form_class = LocationForm
    page_title = "Edit location"


class LocationDelete(LocationPage, DeletePage):
    page_title = "Delete location"
