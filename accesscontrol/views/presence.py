"""Pages for who is inside: the roll-call (areas with their live counts, each area's people), the muster report
(a page to print, CSV, PDF), and a zone's presence actions (forgive anti-passback, correct the count).

Operators see roll-call areas where they hold ``accesscontrol.view_muster``; forgiving and correcting need
``accesscontrol.forgive_presence`` in the zone's partition. Both go through ``accesscontrol.presence``.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.views import View
from django.views.generic import TemplateView

from accesscontrol import muster, presence
from accesscontrol.forms.places import ForgiveForm, OccupancyForm
from accesscontrol.models import Cardholder, SiteSettings, Zone
from accesscontrol.permissions import restrict
from accesscontrol.views.base import VIA, OperatorPage, client_address, paginate


class RollCallView(OperatorPage, TemplateView):
    """Every roll-call area the operator may muster, with how many people are inside now."""

    permission_required = muster.VIEW_MUSTER
    template_name = "accesscontrol/presence/roll_call.html"
    page_title = "Roll-call"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        areas = muster.with_counts(muster.roll_call_areas(self.request.user))
        context.update(areas=areas, total=sum(area.count for area in areas), now=timezone.now())
        return context


def _area(request, pk) -> Zone:
    return get_object_or_404(muster.roll_call_areas(request.user), pk=pk)


class RollCallAreaView(OperatorPage, TemplateView):
    """Who is inside one roll-call area now and since when, newest first, paginated, searchable by name."""

    permission_required = muster.VIEW_MUSTER
    template_name = "accesscontrol/presence/roll_call_area.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        zone = _area(self.request, kwargs["pk"])
        query = self.request.GET.get("q", "").strip()[:100]
        counted = presence.counted_inside(zone)
        zone.count = presence.corrected(zone, counted)
        context.update(
            zone=zone,
            page_title=f"Roll-call: {zone.name}",
            q=query,
            now=timezone.now(),
            may_forgive=muster.may_forgive(self.request.user, zone),
            **paginate(self.request, muster.inside([zone.pk], query), count=None if query else counted),
        )
        return context


class MusterReportView(OperatorPage, TemplateView):
    """The muster report to print: every roll-call area (or ``?zone=``), its count, and everyone inside by name."""

    permission_required = muster.VIEW_MUSTER
    template_name = "accesscontrol/presence/muster.html"
    page_title = "Muster report"

    def areas(self):
        areas = muster.roll_call_areas(self.request.user)
        zone = self.request.GET.get("zone", "")
        if zone:
            if not zone.isdigit():
                raise Http404("No such roll-call area.")
            areas = areas.filter(pk=int(zone))
            if not areas.exists():
                raise Http404("No such roll-call area.")
        return areas

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        areas = muster.with_counts(self.areas())
        for area in areas:
            area.people = muster.people(area)
        zone = self.request.GET.get("zone", "")
        context.update(
            areas=areas,
            total=sum(area.count for area in areas),
            now=timezone.now(),
            site=SiteSettings.load(),
            export_query=f"?zone={zone}" if zone else "",
        )
        return context


class MusterCsvView(MusterReportView):
    def get(self, request, *args, **kwargs):
        areas = list(self.areas())
        response = StreamingHttpResponse(muster.csv_lines(areas), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="muster-{timezone.localtime():%Y%m%d-%H%M}.csv"'
        return response


class MusterPdfView(MusterReportView):
    def get(self, request, *args, **kwargs):
        areas = list(self.areas())
        chunks = muster.pdf_chunks(areas, site=SiteSettings.load().name, operator=request.user)
        response = StreamingHttpResponse(chunks, content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="muster-{timezone.localtime():%Y%m%d-%H%M}.pdf"'
        return response


# --- a zone's presence actions ------------------------------------------------------------------


class ZonePresenceAction(OperatorPage, View):
    permission_required = (muster.FORGIVE, "accesscontrol.view_zone")
    http_method_names = ["post"]

    def zone(self, pk) -> Zone:
        zone = get_object_or_404(restrict(Zone.objects.all(), self.request.user, "view"), pk=pk)
        if not muster.may_forgive(self.request.user, zone):
            raise PermissionDenied(f"You may not forgive or correct presence in {zone}.")
        return zone

    def back(self, zone):
        target = self.request.POST.get("next", "")
        if target.startswith("/") and not target.startswith("//"):
            return redirect(target)
        return redirect("zone", pk=zone.pk)


class ZoneForgiveView(ZonePresenceAction):
    """Forgive anti-passback in a zone: one cardholder (``cardholder``) or everyone inside."""

    def post(self, request, pk):
        zone = self.zone(pk)
        form = ForgiveForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Name a cardholder by number, or none for everyone inside.")
            return self.back(zone)
        holder = None
        if form.cleaned_data["cardholder"]:
            holder = Cardholder.objects.filter(pk=form.cleaned_data["cardholder"]).first()
            if holder is None:
                messages.error(request, "No such cardholder.")
                return self.back(zone)
        ended = presence.forgive(
            operator=request.user, via=VIA, cardholder=holder, zone=zone, address=client_address(request)
        )
        who = str(holder) if holder else "Everyone"
        messages.success(request, f"{who} forgiven in {zone}: {ended} presence{'s' if ended != 1 else ''} ended.")
        return self.back(zone)


class ZoneOccupancyView(ZonePresenceAction):
    """Correct the count of people in a zone to what the operator sees."""

    def post(self, request, pk):
        zone = self.zone(pk)
        form = OccupancyForm(request.POST)
        if not form.is_valid():
            messages.error(request, " ".join(form.errors["count"]))
            return self.back(zone)
        try:
            presence.correct_occupancy(
                zone, form.cleaned_data["count"], operator=request.user, via=VIA, address=client_address(request)
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return self.back(zone)
        messages.success(request, f"{zone} now counts {form.cleaned_data['count']} inside.")
        return self.back(zone)
