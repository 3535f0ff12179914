"""Stand-in pages for tests of ``simulation.benchmarks.web.measure``: one with a constant number of queries, one that
makes a query per row (the mistake the benchmark must show), one that refuses; the detail page is left out."""

from django.http import HttpResponse, HttpResponseForbidden
from django.urls import path

from accesscontrol.models import AuditEvent, Cardholder
from accesscontrol.views.base import paginate


def cardholders(request):
    holders = Cardholder.objects.order_by("last_name", "id")
    if request.GET.get("q"):
        holders = holders.filter(last_name__icontains=request.GET["q"])
    page = paginate(request, holders)["page_obj"]
    return HttpResponse("\n".join(str(holder) for holder in page))


def audit_trail_one_query_per_row(request):
    page = paginate(request, AuditEvent.objects.order_by("-at", "-id"))["page_obj"]
    return HttpResponse("\n".join(f"{event} {event.access_point}" for event in page))  # access_point: a query each


def refused(request):
    return HttpResponseForbidden("no")


urlpatterns = [
    path("cardholders/", cardholders, name="cardholders"),
    path("audit/", audit_trail_one_query_per_row, name="audit_trail"),
]
refusing_urlpatterns = [
    path("cardholders/", cardholders, name="cardholders"),
    path("audit/", refused, name="audit_trail"),
]
