"""What every page of the operator web app shares.

Pages declare a permission and a queryset; the base narrows the queryset to
what the operator may see (``restrict``, as the API does), and every change
goes through ``accesscontrol.actions`` or :func:`audit`, so it lands in the
system auditor with the operator, the before/after and the source address.
"""

import ipaddress

from django.conf import settings
from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator

from accesscontrol import actions
from accesscontrol.permissions import restrict

VIA = "web"
PAGE_SIZE = 50
PAGE_SIZES = (10, 200)  # what ?per_page= may ask for


def page_size(request, default: int = PAGE_SIZE) -> int:
    try:
        asked = int(request.GET.get("per_page", default))
    except ValueError:
        return default
    return max(PAGE_SIZES[0], min(PAGE_SIZES[1], asked))


def client_address(request) -> str | None:
    """The address the request came from; behind a trusted reverse proxy, the one it saw (X-Forwarded-For)."""
    address = request.META.get("REMOTE_ADDR") or None
    if settings.SPACE_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            address = forwarded.split(",")[-1].strip()
    try:
        return str(ipaddress.ip_address(address)) if address else None
    except ValueError:
        return None


def audit(request, action: str, obj=None, detail: dict | None = None):
    """Record an operator's change made through the web app."""
    return actions.record_operator_action(
        request.user, action, obj, via=VIA, detail=detail, address=client_address(request)
    )


class OperatorPage(LoginRequiredMixin, PermissionRequiredMixin):
    """A page for operators holding ``permission_required``; without it, a 403 (never a redirect loop to login)."""

    page_title = ""
    raise_exception = False

    def handle_no_permission(self):
        if self.request.user.is_authenticated:
            raise PermissionDenied("You may not open this page.")
        return super().handle_no_permission()

    def restricted(self, queryset, action: str = "view"):
        return restrict(queryset, self.request.user, action)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("page_title", self.page_title)
        return context


def paginate(request, queryset, per_page: int | None = None, count: int | None = None) -> dict:
    """A page of ``queryset`` (``?page=``, ``?per_page=``) and what the pagination partial needs to link the others.

    ``count``: the number of rows when the caller has it already (one COUNT fewer on a large list).
    """
    paginator = Paginator(queryset, per_page or page_size(request))
    if count is not None:
        paginator.count = count  # a cached_property: set, it is not computed
    page = paginator.get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    encoded = query.urlencode()
    return {"page_obj": page, "querystring_without_page": f"{encoded}&" if encoded else ""}
