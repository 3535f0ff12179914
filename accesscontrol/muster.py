"""Roll-call areas and the muster report: who is inside each area now, for the web pages and the API.

A roll-call area is a zone marked ``roll_call``; an operator sees the areas of the partitions where they
hold ``accesscontrol.view_muster``, and in each area *everyone* inside, whatever the cardholder's
partition: in an evacuation every person counts. The report is read, never written: counts come from one
aggregate over the presence index, lists are paginated (pages) or streamed (CSV, PDF).
"""

import csv
from collections.abc import Iterable, Iterator

from django.db.models import Q, QuerySet
from django.utils import timezone

from accesscontrol.models import Presence, Zone
from accesscontrol.permissions import ALL, allowed_partitions, may_use_partition
from accesscontrol.presence import occupancies
from core import pdf

VIEW_MUSTER = "accesscontrol.view_muster"
FORGIVE = "accesscontrol.forgive_presence"
CSV_HEADER = ["area", "last_name", "first_name", "cardholder_id", "kind", "phone_number", "inside_since", "entered_by"]
PDF_COLUMNS = [
    pdf.Column("Name", 170),
    pdf.Column("Kind", 60),
    pdf.Column("Phone", 90),
    pdf.Column("Inside since", 95),
    pdf.Column("Entered by", 100),
]


def in_partitions(queryset: QuerySet, operator, permission: str) -> QuerySet:
    """Zones of ``queryset`` in the partitions where ``operator`` holds ``permission`` (none without it)."""
    if not operator.is_authenticated or not operator.is_active or not operator.has_perm(permission):
        return queryset.none()
    partitions = allowed_partitions(operator, permission)
    return queryset if partitions is ALL else queryset.filter(partition__in=partitions)


def roll_call_areas(operator) -> QuerySet[Zone]:
    """The roll-call areas the operator may muster, by name."""
    return in_partitions(Zone.objects.filter(roll_call=True), operator, VIEW_MUSTER).order_by("name")


def may_forgive(operator, zone: Zone) -> bool:
    """Whether ``operator`` may forgive anti-passback in ``zone`` and correct its count."""
    return operator.has_perm(FORGIVE) and may_use_partition(operator, FORGIVE, zone.partition_id)


def with_counts(zones: Iterable[Zone]) -> list[Zone]:
    """``zones`` with ``count`` (people inside, with the operators' correction) and ``full`` set: one query."""
    zones = list(zones)
    counts = occupancies(zones)
    for zone in zones:
        zone.count = counts.get(zone.pk, 0)
        zone.full = zone.max_occupancy is not None and zone.count >= zone.max_occupancy
    return zones


def inside(zone_ids: Iterable[int], query: str = "") -> QuerySet[Presence]:
    """Who is inside the zones now, newest entry first; ``query`` narrows by name (first, last, or both)."""
    rows = Presence.objects.filter(zone_id__in=list(zone_ids), inside=True)
    for word in query.split()[:4]:
        rows = rows.filter(Q(cardholder__first_name__icontains=word) | Q(cardholder__last_name__icontains=word))
    return rows.select_related("cardholder", "access_point").order_by("-since", "-id")


def people(zone: Zone) -> QuerySet[Presence]:
    """Who is inside ``zone``, by name: the order a roll-call is read in."""
    return (
        Presence.objects.filter(zone=zone, inside=True)
        .select_related("cardholder", "access_point")
        .order_by("cardholder__last_name", "cardholder__first_name", "cardholder_id")
    )


def _row(presence: Presence) -> list:
    holder = presence.cardholder
    since = timezone.localtime(presence.since)
    return [
        holder.last_name,
        holder.first_name,
        holder.pk,
        holder.get_kind_display(),
        holder.phone_number,
        since.strftime("%Y-%m-%d %H:%M"),
        presence.access_point.name if presence.access_point else "",
    ]


class _Echo:
    def write(self, value):
        return value


def csv_lines(zones: Iterable[Zone]) -> Iterator[str]:
    """The report as CSV lines, streamed: a header, then everyone inside each area by name."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    for zone in zones:
        for presence in people(zone).iterator(chunk_size=2000):
            yield writer.writerow([_safe(zone.name), *(_safe(cell) for cell in _row(presence))])


def _safe(value):
    """A cell a spreadsheet will not run as a formula."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def pdf_chunks(zones: Iterable[Zone], *, site: str, operator) -> Iterator[bytes]:
    """The report as a PDF, streamed: per area its count, then everyone inside by name."""
    now = timezone.localtime()
    zones = with_counts(zones)
    sections = (
        pdf.Section(
            heading=zone.name,
            note=f"{zone.count} inside" + (f" (limit {zone.max_occupancy})" if zone.max_occupancy is not None else ""),
            rows=(
                [f"{row[0]}, {row[1]}", *row[3:]]
                for row in (_row(presence) for presence in people(zone).iterator(chunk_size=2000))
            ),
        )
        for zone in zones
    )
    footer = f"{site} - printed {now:%Y-%m-%d %H:%M} by {operator.get_username()}"
    yield from pdf.render(f"Muster report - {now:%Y-%m-%d %H:%M}", PDF_COLUMNS, sections, footer=footer)
