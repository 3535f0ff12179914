"""What every page of the operator web app shares.

Pages declare a permission and a queryset; the base narrows the queryset to
what the operator may see (``restrict``, as the API does), and every change
goes through ``accesscontrol.actions`` or :func:`audit`, so it lands in the
system auditor with the operator, the before/after and the source address.
"""

import ipaddress
import math

from django.conf import settings
from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, PageNotAnInteger, Paginator
from django.utils.functional import cached_property

from accesscontrol import actions
from accesscontrol.permissions import restrict

VIA = "web"
PAGE_SIZE = 50
PAGE_SIZES = (10, 200)  # what ?per_page= may ask for
FARTHEST_PAGE = 10**9


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


class CountedUpTo(Paginator):
    """A paginator that counts at most ``limit`` rows, so a long list costs no full count.

    One query reads the ids of the first ``limit + 1`` rows in order (``head``): their number is the count
    when it is at most ``limit``, and the pages within them are sliced from it, so a page costs that query
    and the read of its own rows (``rows``: given ids in order, their rows; the database sorts the matches
    as narrow (id, sort key) rows). Past ``limit`` the total is left open (``open_ended``: the page says
    "more than 1,000"): a page beyond the head reads one id more than it shows to know whether another
    follows, and a page past the end is answered with the last page, counted then.
    """

    def __init__(self, object_list, per_page, limit: int, rows):
        super().__init__(object_list, per_page)
        self.limit = limit
        self.rows = rows

    @cached_property
    def head(self) -> list:
        return list(self.object_list.values_list("pk", flat=True)[: self.limit + 1])

    @cached_property
    def count(self) -> int:
        return len(self.head)

    @property
    def open_ended(self) -> bool:
        return self.count > self.limit

    @cached_property
    def num_pages(self) -> int:
        return math.ceil(self.limit / self.per_page) + 1 if self.open_ended else super().num_pages

    def validate_number(self, number):
        if not self.open_ended:
            return super().validate_number(number)
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger(self.error_messages["invalid_page"]) from None
        return min(max(number, 1), FARTHEST_PAGE)  # past the end anyway; the offset stays a 64-bit integer

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top < len(self.head) or not self.open_ended:
            ids, following = self.head[bottom:top], top < len(self.head)
        else:
            ids = list(self.object_list.values_list("pk", flat=True)[bottom : top + 1])
            ids, following = ids[: self.per_page], len(ids) > self.per_page
            if not ids:  # past the end: count them after all, and show the last page
                self.limit = self.__dict__["count"] = self.object_list.count()
                self.__dict__["num_pages"] = number = max(1, math.ceil(self.count / self.per_page))
                bottom = (number - 1) * self.per_page
                ids, following = (
                    list(self.object_list.values_list("pk", flat=True)[bottom : bottom + self.per_page]),
                    False,
                )
        found = {row.pk: row for row in self.rows(ids)} if ids else {}
        return OpenPage([found[pk] for pk in ids if pk in found], number, self, following=following)


class OpenPage(Page):
    def __init__(self, object_list, number, paginator, *, following: bool):
        super().__init__(object_list, number, paginator)
        self.following = following

    def has_next(self) -> bool:
        return self.following


def paginate(
    request,
    queryset,
    per_page: int | None = None,
    count: int | None = None,
    count_up_to: int | None = None,
    rows=None,
) -> dict:
    """A page of ``queryset`` (``?page=``, ``?per_page=``) and what the pagination partial needs to link the others.

    ``count``: the number of rows when the caller has it already (one COUNT fewer on a large list).
    ``count_up_to``: count no further than this (:class:`CountedUpTo`, with its ``rows``); past it the page
    says "more than" it.
    """
    size = per_page or page_size(request)
    if count_up_to is None:
        paginator = Paginator(queryset, size)
    else:
        paginator = CountedUpTo(queryset, size, count_up_to, rows or (lambda ids: queryset.filter(pk__in=ids)))
    if count is not None:
        paginator.count = count  # a cached_property: set, it is not computed
    page = paginator.get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    encoded = query.urlencode()
    more_than = f"{paginator.limit:,}" if count_up_to is not None and paginator.open_ended else None
    return {
        "page_obj": page,
        "querystring_without_page": f"{encoded}&" if encoded else "",
        "count_more_than": more_than,
    }
