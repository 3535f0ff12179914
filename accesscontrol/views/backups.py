"""The backups page (administrators): the last backups, the newest one's age, the folder, the next run, and
"Back up now", which runs a backup as a job."""

from django.conf import settings
from django.shortcuts import redirect
from django.utils import timezone
from django.views import View
from django.views.generic import TemplateView

from accesscontrol import backups, jobs
from accesscontrol.models import Backup
from accesscontrol.views.base import OperatorPage, audit, paginate


class BackupListView(OperatorPage, TemplateView):
    permission_required = "accesscontrol.view_backup"
    template_name = "accesscontrol/backups/list.html"
    page_title = "Backups"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        now = timezone.now()
        state = backups.status(now)
        context.update(paginate(self.request, Backup.objects.select_related("operator")))
        context.update(
            state=state,
            folder=backups.folder(),
            next_run=backups.next_instant(now),
            max_age_hours=settings.SPACE_BACKUP_MAX_AGE_HOURS,
            keep=(
                settings.SPACE_BACKUP_KEEP_DAILY,
                settings.SPACE_BACKUP_KEEP_WEEKLY,
                settings.SPACE_BACKUP_KEEP_MONTHLY,
            ),
            may_back_up=self.request.user.has_perm("accesscontrol.add_backup"),
            count_label="backups",
        )
        return context


class BackupNowView(OperatorPage, View):
    permission_required = "accesscontrol.add_backup"

    def post(self, request):
        job = jobs.start("backup", request.user, {})
        audit(request, "back_up", detail={"job": job.pk})
        return redirect("job", pk=job.pk)
