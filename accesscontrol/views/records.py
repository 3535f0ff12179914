"""The audit trail and the system auditor: filtered lists that stay fast on a million rows, and CSV exports.

Both lists page by keyset on (at, id), newest first: "older" and "newer" links
carry the last row's position, so a page costs one indexed range scan whatever
its depth, and no COUNT(*) runs over the table. Exports stream the filtered rows
in chunks (constant memory) and are themselves recorded in the system auditor.
"""

import csv
import datetime as dt
import json

from django.conf import settings
from django.db.models import Q
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.views.generic import TemplateView, View

from accesscontrol.choices import AuditKind
from accesscontrol.forms.records import AuditTrailFilterSet, SystemAuditWebFilterSet
from accesscontrol.models import AuditEvent, SystemAuditEntry
from accesscontrol.views.base import OperatorPage, audit, page_size

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
EXPORT_CHUNK = 2000
# Events an operator should not miss in a list: shown highlighted here and in the live monitor.
ALERT_KINDS = frozenset(
    {
        AuditKind.ACCESS_DENIED,
        AuditKind.DOOR_FORCED,
        AuditKind.DOOR_LEFT_OPEN,
        AuditKind.TAMPER,
        AuditKind.DEVICE_OFFLINE,
        AuditKind.BACKUP_FAILED,
        AuditKind.BACKUP_OVERDUE,
        AuditKind.SYNC_HELD,
        AuditKind.SYNC_FAILED,
    }
)
# A spreadsheet runs a cell starting with these as a formula; the export makes it text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# --- keyset pagination -------------------------------------------------------------------------------


def cursor_of(row) -> str:
    """A row's place in (at, id) order, as text for a link: microseconds since the epoch and the id."""
    return f"{(row.at - EPOCH) // dt.timedelta(microseconds=1)}.{row.pk}"


def parse_cursor(text: str) -> tuple[dt.datetime, int] | None:
    micros, _, pk = text.partition(".")
    try:
        return EPOCH + dt.timedelta(microseconds=int(micros)), int(pk)
    except (ValueError, OverflowError):
        return None


def keyset_page(request, queryset, per_page: int | None = None) -> dict:
    """One page of ``queryset`` newest first, from ``?older=`` or ``?newer=`` cursors, and the links to the next.

    Rows with equal timestamps are told apart by id, so paging never skips nor repeats one.
    """
    per_page = per_page or page_size(request)
    older = parse_cursor(request.GET.get("older", ""))
    newer = None if older else parse_cursor(request.GET.get("newer", ""))
    has_newer = False
    rows = None
    if newer is not None:
        at, pk = newer
        ahead = list(queryset.filter(Q(at__gt=at) | Q(at=at, pk__gt=pk)).order_by("at", "pk")[: per_page + 1])
        has_newer = len(ahead) > per_page
        rows = ahead[:per_page][::-1]
        has_older = True
        if not has_newer:
            rows = None  # back at the top: show the newest page, full
    if rows is None:
        page = queryset
        if older is not None:
            at, pk = older
            page = page.filter(Q(at__lt=at) | Q(at=at, pk__lt=pk))
        rows = list(page.order_by("-at", "-pk")[: per_page + 1])
        has_older = len(rows) > per_page
        rows = rows[:per_page]
        has_newer = older is not None
    query = request.GET.copy()
    for name in ("older", "newer"):
        query.pop(name, None)
    base = query.urlencode()
    prefix = f"?{base}&" if base else "?"
    return {
        "rows": rows,
        "per_page": per_page,
        "newest_url": f"?{base}" if base else "?",
        "older_url": f"{prefix}older={cursor_of(rows[-1])}" if has_older and rows else None,
        "newer_url": f"{prefix}newer={cursor_of(rows[0])}" if has_newer and rows else None,
        "is_newest": not has_newer,
        "query": base,
    }


# --- CSV ------------------------------------------------------------------------------------------------


def safe_cell(value) -> str:
    """A CSV cell a spreadsheet shows as text, never runs: a leading = + - @ (or tab, CR) gets a quote before it."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).isoformat()
    text = str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


class _Lines:
    """What csv.writer writes to: each row comes back as its text, for streaming."""

    def write(self, line: str) -> str:
        return line


def csv_response(filename: str, header: list[str], rows) -> StreamingHttpResponse:
    """A streamed UTF-8 CSV (with a byte-order mark, for spreadsheets) of ``rows`` (iterables of values)."""
    writer = csv.writer(_Lines())

    def lines():
        yield "\ufeff" + writer.writerow(header)
        for row in rows:
            yield writer.writerow([safe_cell(value) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def used_filters(filterset) -> dict:
    """The filters a list was narrowed by, as the operator gave them: what an export's system auditor row keeps."""
    return {
        name: values if len(values) > 1 else values[0]
        for name, values in filterset.data.lists()
        if name in filterset.filters and any(values)
    }


def _stamp() -> str:
    return timezone.localtime().strftime("%Y%m%d-%H%M%S")


# --- the audit trail --------------------------------------------------------------------------------------


# What the list and the export read: the names are copied into each row, so no join is needed for them.
AUDIT_COLUMNS = (
    "id",
    "at",
    "kind",
    "reason",
    "access_point_id",
    "access_point_name",
    "cardholder_id",
    "cardholder_name",
    "key_uid",
    "device_id",
    "operator_id",
)


class AuditTrailMixin(OperatorPage):
    permission_required = "accesscontrol.view_auditevent"

    def filtered(self):
        events = self.restricted(AuditEvent.objects.all())
        filterset = AuditTrailFilterSet(self.request.GET or None, queryset=events, request=self.request)
        if not filterset.is_bound:
            return filterset, events
        # Bad input (a date that is none, a door not theirs) shows field errors and no rows, never all of them.
        return filterset, filterset.qs if filterset.is_valid() else events.none()


class AuditTrailView(AuditTrailMixin, TemplateView):
    template_name = "accesscontrol/records/audit_trail.html"
    page_title = "Audit trail"

    def get_template_names(self):
        if self.request.headers.get("HX-Request") and self.request.headers.get("HX-Target") == "audit-results":
            return ["accesscontrol/records/audit_trail_results.html"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        filterset, events = self.filtered()
        page = keyset_page(self.request, events.only(*AUDIT_COLUMNS))
        context.update(
            filterset=filterset, form=filterset.form, page=page, alert_kinds=ALERT_KINDS, time_zone=settings.TIME_ZONE
        )
        return context


class AuditTrailExportView(AuditTrailMixin, View):
    def get(self, request, *args, **kwargs):
        filterset, events = self.filtered()
        audit(request, "export_audit_trail", None, {"filters": used_filters(filterset)})
        rows = (
            (
                event.at,
                event.id,
                event.get_kind_display(),
                event.get_reason_display() if event.reason else "",
                event.access_point_name,
                event.access_point_id,
                event.cardholder_name,
                event.cardholder_id,
                event.key_uid,
                event.device_id,
            )
            for event in events.only(*AUDIT_COLUMNS).order_by("-at", "-pk").iterator(chunk_size=EXPORT_CHUNK)
        )
        header = ["at", "id", "kind", "reason", "access point", "access point id", "cardholder", "cardholder id"]
        header += ["key UID", "device id"]
        return csv_response(f"audit-trail-{_stamp()}.csv", header, rows)


# --- the system auditor -------------------------------------------------------------------------------------


class SystemAuditMixin(OperatorPage):
    permission_required = "accesscontrol.view_systemauditentry"

    def filtered(self):
        entries = self.restricted(SystemAuditEntry.objects.all())
        filterset = SystemAuditWebFilterSet(self.request.GET or None, queryset=entries, request=self.request)
        if not filterset.is_bound:
            return filterset, entries
        return filterset, filterset.qs if filterset.is_valid() else entries.none()


def readable_changes(detail: dict) -> list[dict]:
    """``detail["changes"]`` ({field: {"from": x, "to": y}}) as rows a template can show."""
    changes = detail.get("changes") if isinstance(detail, dict) else None
    if not isinstance(changes, dict):
        return []
    rows = []
    for field, change in changes.items():
        if isinstance(change, dict) and ("from" in change or "to" in change):
            rows.append({"field": field.replace("_", " "), "before": change.get("from"), "after": change.get("to")})
        else:
            rows.append({"field": field.replace("_", " "), "before": None, "after": change})
    return rows


def other_detail(detail: dict) -> dict:
    return {key: value for key, value in detail.items() if key != "changes"} if isinstance(detail, dict) else {}


class SystemAuditView(SystemAuditMixin, TemplateView):
    template_name = "accesscontrol/records/system_audit.html"
    page_title = "System auditor"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        filterset, entries = self.filtered()
        page = keyset_page(self.request, entries)
        for entry in page["rows"]:
            entry.changes = readable_changes(entry.detail)
            entry.other = other_detail(entry.detail)
        context.update(filterset=filterset, form=filterset.form, page=page, time_zone=settings.TIME_ZONE)
        return context


class SystemAuditExportView(SystemAuditMixin, View):
    def get(self, request, *args, **kwargs):
        filterset, entries = self.filtered()
        audit(request, "export_system_audit", None, {"filters": used_filters(filterset)})
        rows = (
            (
                entry.at,
                entry.id,
                entry.operator_name,
                entry.action,
                entry.object_type,
                entry.object_id,
                entry.object_repr,
                entry.via,
                entry.address,
                json.dumps(entry.detail, ensure_ascii=False, sort_keys=True, default=str),
            )
            for entry in entries.order_by("-at", "-pk").iterator(chunk_size=EXPORT_CHUNK)
        )
        header = ["at", "id", "operator", "action", "object type", "object id", "object", "via", "address", "detail"]
        return csv_response(f"system-audit-{_stamp()}.csv", header, rows)
