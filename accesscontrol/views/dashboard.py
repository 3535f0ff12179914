"""The dashboard: what an operator checks first, in a handful of cheap (indexed) queries."""

from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import Count, Q
from django.utils import timezone
from django.views.generic import TemplateView

from accesscontrol import extensions
from accesscontrol.choices import AuditKind
from accesscontrol.filtersets import valid_keys
from accesscontrol.models import AccessPoint, AuditEvent, Cardholder, Job, JobStatus
from accesscontrol.permissions import restrict

RECENT_EVENTS = 12


class DashboardView(LoginRequiredMixin, TemplateView):
    """Every signed-in operator has one; each figure shows only to those who may see what it counts."""

    template_name = "accesscontrol/dashboard/dashboard.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(page_title="Dashboard", **kwargs)
        operator = self.request.user
        now = timezone.now()
        stats = {}
        if operator.has_perm("accesscontrol.view_cardholder"):
            stats["cardholders"] = restrict(Cardholder.objects.all(), operator, "view").count()
        if operator.has_perm("accesscontrol.view_key"):
            stats["valid_keys"] = restrict(valid_keys(now), operator, "view").count()
        if operator.has_perm("accesscontrol.view_accesspoint"):
            stats.update(
                restrict(AccessPoint.objects.all(), operator, "view").aggregate(
                    access_points=Count("id"), locked_down=Count("id", filter=Q(lockdown=True))
                )
            )
        for part in extensions.registry.dashboard_stats:
            stats.update(part(operator))
        if operator.has_perm("accesscontrol.view_auditevent"):
            midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
            events = restrict(AuditEvent.objects.filter(at__gte=midnight), operator, "view")
            stats.update(
                events.aggregate(
                    events_today=Count("id"), denied_today=Count("id", filter=Q(kind=AuditKind.ACCESS_DENIED))
                )
            )
            context["events"] = restrict(AuditEvent.objects.all(), operator, "view").order_by("-at", "-id")[
                :RECENT_EVENTS
            ]
        context["stats"] = stats
        context["running_jobs"] = Job.objects.filter(
            operator=operator, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]
        ).count()
        return context
