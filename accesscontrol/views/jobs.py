"""Jobs: long work an operator started, with a progress bar that htmx polls while the job runs."""

from pathlib import Path

from django.conf import settings
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.views import View
from django.views.generic import TemplateView

from accesscontrol import jobs
from accesscontrol.models import Job
from accesscontrol.views.base import paginate


def jobs_of(operator):
    """An operator's own jobs; a superuser sees everyone's."""
    visible = Job.objects.select_related("operator").defer("parameters")
    return visible if operator.is_superuser else visible.filter(operator=operator)


class JobListView(LoginRequiredMixin, TemplateView):
    template_name = "accesscontrol/jobs/list.html"

    def get_context_data(self, **kwargs):
        jobs.fail_stalled()
        context = super().get_context_data(page_title="Jobs", **kwargs)
        context.update(paginate(self.request, jobs_of(self.request.user)))
        context.update(labels=jobs.LABELS, count_label="jobs")
        return context


class JobDetailView(LoginRequiredMixin, TemplateView):
    """The job's page; htmx asks for its progress partial every second until the job has finished."""

    template_name = "accesscontrol/jobs/detail.html"

    def get_template_names(self):
        if self.request.headers.get("HX-Request"):
            return ["accesscontrol/jobs/_job.html"]
        return [self.template_name]

    def get_context_data(self, pk, **kwargs):
        job = get_object_or_404(jobs_of(self.request.user), pk=pk)
        label = jobs.LABELS.get(job.kind, job.kind)
        context = super().get_context_data(page_title=f"{label} #{job.pk}", **kwargs)
        context.update(job=job, label=label, may_download=_may_download(self.request.user, job))
        return context


def _may_download(operator, job: Job) -> bool:
    return bool(job.result_file) and job.status == "succeeded" and job.operator_id == operator.pk


class JobDownloadView(LoginRequiredMixin, View):
    """The file an export wrote: for the operator who asked for it, no one else."""

    def get(self, request, pk):
        job = get_object_or_404(Job.objects.filter(operator=request.user), pk=pk)
        if not _may_download(request.user, job):
            raise Http404("This job has no file.")
        base = Path(settings.VAR_DIR).resolve()
        path = (base / job.result_file).resolve()
        if base not in path.parents or not path.is_file():
            raise Http404("The file is gone.")
        return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name, content_type="text/csv")
