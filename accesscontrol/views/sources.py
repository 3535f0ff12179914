"""Cardholder sources (directories, HR feeds): their runs, each run's diff, and Preview / Sync now / Approve.

The sources are configured in the admin; here operators see what a run would change (a dry run) or
changed, approve a run the safety limit held, and follow a run's progress as a job.
"""

from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect
from django.views import View
from django.views.generic import TemplateView

from accesscontrol import jobs, sync
from accesscontrol.models import CardholderSource, SyncRun, SyncStatus
from accesscontrol.views.base import OperatorPage, audit, paginate

REASONS = {
    "gone": "Gone from the source",
    "blocked": "Blocked at the source",
    "out_of_scope": "Out of the synced groups",
}


def _sources():
    return CardholderSource.objects.annotate(
        active=Count("links", filter=Q(links__left_at__isnull=True)),
        left=Count("links", filter=Q(links__left_at__isnull=False)),
    )


class SourceListView(OperatorPage, TemplateView):
    permission_required = "accesscontrol.view_cardholdersource"
    template_name = "accesscontrol/sources/list.html"
    page_title = "Cardholder sources"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        kinds = sync.kinds()
        sources = list(_sources())
        newest = {}
        for run in SyncRun.objects.filter(source__in=sources).order_by("source_id", "-started_at", "-id"):
            newest.setdefault(run.source_id, run)
        for source in sources:
            source.newest = newest.get(source.pk)
            source.kind_label = kinds[source.kind].label if source.kind in kinds else source.kind
        context.update(sources=sources, may_run=self.request.user.has_perm("accesscontrol.change_cardholdersource"))
        return context


class SourceDetailView(OperatorPage, TemplateView):
    permission_required = "accesscontrol.view_cardholdersource"
    template_name = "accesscontrol/sources/detail.html"

    def get_context_data(self, pk, **kwargs):
        source = get_object_or_404(_sources(), pk=pk)
        context = super().get_context_data(page_title=f"Cardholder source {source}", **kwargs)
        kind = sync.kinds().get(source.kind)
        context.update(paginate(self.request, source.runs.select_related("operator", "approved_by")))
        context.update(
            source=source,
            kind_label=kind.label if kind else source.kind,
            location=kind.describe(source) if kind and kind.describe else "",
            held=sync.held(source),
            may_run=self.request.user.has_perm("accesscontrol.change_cardholdersource"),
            count_label="runs",
        )
        return context


class SyncRunView(OperatorPage, TemplateView):
    permission_required = "accesscontrol.view_cardholdersource"
    template_name = "accesscontrol/sources/run.html"

    def get_context_data(self, pk, **kwargs):
        run = get_object_or_404(SyncRun.objects.select_related("source", "operator", "approved_by", "job"), pk=pk)
        context = super().get_context_data(page_title=f"{run.source} run #{run.pk}", **kwargs)
        newest = SyncRun.objects.filter(source=run.source, dry_run=False).order_by("-started_at", "-id").first()
        for person in run.diff.get("left", []):
            person["reason_label"] = REASONS.get(person["reason"], person["reason"])
        context.update(
            run=run,
            diff=run.diff,
            may_approve=(
                run.status == SyncStatus.HELD
                and newest is not None
                and newest.pk == run.pk
                and self.request.user.has_perm("accesscontrol.change_cardholdersource")
            ),
            may_run=self.request.user.has_perm("accesscontrol.change_cardholdersource"),
        )
        return context


class SourceRunView(OperatorPage, View):
    """Preview (a dry run), Sync now, or Approve a held run: each runs as a job whose page shows its progress."""

    permission_required = "accesscontrol.change_cardholdersource"

    def post(self, request, pk):
        source = get_object_or_404(CardholderSource, pk=pk)
        what = request.POST.get("what")
        parameters = {"source": source.pk, "dry_run": what == "preview"}
        if request.POST.get("full"):
            parameters["full"] = True
        if what == "approve":
            held = get_object_or_404(SyncRun, pk=request.POST.get("run"), source=source, status=SyncStatus.HELD)
            parameters["approves"] = held.pk
        elif what not in ("preview", "sync"):
            return redirect("source", pk=source.pk)
        job = jobs.start("cardholder_sync", request.user, parameters)
        audit(request, f"sync_{what}", source, detail={"job": job.pk, **parameters})
        return redirect("job", pk=job.pk)
