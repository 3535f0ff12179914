"""The blacklist page: the cancelled keys offline locks must refuse, newest first, and how long the list is.

Site-wide, like the list the locks hold and the API (``/api/v1/blacklist/``):
every operator with the view permission sees every entry; a cardholder is named
only where the operator may see them.
"""

from django.utils import timezone
from django.views.generic import TemplateView

from accesscontrol import blacklist
from accesscontrol.models import Cardholder
from accesscontrol.views.base import OperatorPage, paginate
from accesscontrol.views.keys import uid_prefix


class BlacklistView(OperatorPage, TemplateView):
    permission_required = "accesscontrol.view_blacklistentry"
    page_title = "Blacklist"
    template_name = "accesscontrol/keys/blacklist.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        now = timezone.now()
        entries = blacklist.in_force(now).select_related("key").order_by("-id")
        query = self.request.GET.get("q", "").strip()
        if query:
            entries = uid_prefix(entries, query)
        context.update(paginate(self.request, entries))
        holder_ids = {entry.key.cardholder_id for entry in context["page_obj"] if entry.key}
        visible = self.restricted(Cardholder.objects.filter(pk__in=holder_ids), "view").in_bulk()
        for entry in context["page_obj"]:
            entry.cardholder = visible.get(entry.key.cardholder_id) if entry.key else None
        context["entry_count"], context["newest"] = blacklist.summary(now)
        context.update(q=query, filters={"q": query} if query else {})
        return context
