"""Long work on many cardholders, run as jobs (accesscontrol.jobs): CSV import, CSV export, granting a level.

Every job acts as the operator who started it: it reaches only the cardholders,
partitions and access levels that operator may, and records what it changed in
the system auditor (one row per batch, naming the cardholders).
"""

import csv
import io
from pathlib import Path

from django import forms
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accesscontrol import actions, jobs
from accesscontrol.choices import CardholderKind
from accesscontrol.filtersets import CardholderSearchFilterSet
from accesscontrol.models import AccessLevel, Cardholder, Job, Partition
from accesscontrol.permissions import ALL, allowed_partitions, restrict
from accesscontrol.rulechanges import record_rule_changes

VIA = "web"
BATCH = 500
MAX_ROWS = 200_000
MAX_REPORTED_ERRORS = 1000
LEVEL_SEPARATOR = ";"

# The CSV columns, in the order an export writes them; the import reads the same file back.
COLUMNS = [
    ("last_name", "Last name (required)."),
    ("first_name", "First name."),
    ("title", "Title (Ms, Dr, ...)."),
    ("kind", "staff, visitor or guest; empty: staff."),
    ("ext_id", "External id (HR, PMS); unique when given."),
    ("email", "E-mail address."),
    ("phone_number", "Phone number (E.164, for mobile keys)."),
    ("activation", "When access starts: 2025-01-31 or 2025-01-31 08:00 (site time); empty: at once."),
    ("expiration", "When access ends, as activation; empty: never."),
    ("partition", "Partition name; empty: the partition chosen on upload."),
    ("access_levels", f"Access level names, separated by '{LEVEL_SEPARATOR}'."),
    ("notes", "Free text."),
]
COLUMN_NAMES = [name for name, _ in COLUMNS]
DATETIME_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"]


def imports_dir() -> Path:
    return Path(settings.VAR_DIR) / "imports"


def exports_dir() -> Path:
    return Path(settings.VAR_DIR) / "exports"


def _operator(job: Job):
    if job.operator is None or not job.operator.is_active:
        raise jobs.JobError("The operator who started this job no longer exists or is inactive.")
    return job.operator


# --- import ----------------------------------------------------------------------


class CardholderRow(forms.Form):
    """One row of an import file; errors name the CSV column."""

    last_name = forms.CharField(max_length=100)
    first_name = forms.CharField(max_length=100, required=False)
    title = forms.CharField(max_length=32, required=False)
    kind = forms.ChoiceField(choices=CardholderKind.choices, required=False)
    ext_id = forms.CharField(max_length=64, required=False)
    email = forms.EmailField(required=False)
    phone_number = forms.CharField(max_length=32, required=False)
    activation = forms.DateTimeField(required=False, input_formats=DATETIME_FORMATS)
    expiration = forms.DateTimeField(required=False, input_formats=DATETIME_FORMATS)
    partition = forms.CharField(max_length=100, required=False)
    access_levels = forms.CharField(required=False)
    notes = forms.CharField(required=False)

    def __init__(self, data, *, partitions: dict, allowed, levels: dict):
        super().__init__(data)
        self.partitions, self.allowed, self.levels = partitions, allowed, levels

    def clean_kind(self):
        return self.cleaned_data["kind"] or CardholderKind.STAFF

    def clean_partition(self):
        name = self.cleaned_data["partition"].strip()
        if not name:
            return None
        partition_id = self.partitions.get(name)
        if partition_id is None or (self.allowed is not ALL and partition_id not in self.allowed):
            raise forms.ValidationError(f"No partition named {name!r} that you may add cardholders to.")
        return partition_id

    def clean_access_levels(self):
        names = [name.strip() for name in self.cleaned_data["access_levels"].split(LEVEL_SEPARATOR) if name.strip()]
        unknown = [name for name in names if name not in self.levels]
        if unknown:
            raise forms.ValidationError(f"No access level named {', '.join(map(repr, unknown))}.")
        return sorted({self.levels[name] for name in names})

    def clean(self):
        data = super().clean()
        start, end = data.get("activation"), data.get("expiration")
        if start and end and end <= start:
            self.add_error("expiration", "Expiration must come after activation.")
        return data


def read_rows(raw: bytes) -> list[tuple[int, dict]]:
    """The file's rows as (line number, {column: value}); raises JobError for a file that is not a usable CSV."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise jobs.JobError(f"The file is not UTF-8 text (byte {error.start + 1}).") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise jobs.JobError("The file is empty: it needs a header row.") from None
    except csv.Error as error:
        raise jobs.JobError(f"Line 1: {error}") from None
    header = [name.strip().lower() for name in header]
    unknown = [name for name in header if name not in COLUMN_NAMES]
    if unknown:
        raise jobs.JobError(f"Unknown columns in the header row: {', '.join(unknown)}.")
    if "last_name" not in header:
        raise jobs.JobError("The header row has no last_name column.")
    if len(set(header)) != len(header):
        raise jobs.JobError("A column appears twice in the header row.")
    rows = []
    line = reader.line_num
    try:
        for values in reader:
            start, line = line + 1, reader.line_num
            if not any(value.strip() for value in values):
                continue  # blank lines (a trailing newline in a spreadsheet's export) are not rows
            if len(values) != len(header):
                rows.append((start, {"__columns__": len(values)}))
                continue
            rows.append((start, dict(zip(header, (value.strip() for value in values), strict=True))))
            if len(rows) > MAX_ROWS:
                raise jobs.JobError(f"The file has more than {MAX_ROWS} rows.")
    except csv.Error as error:
        raise jobs.JobError(f"Line {line + 1}: {error}") from None
    return rows


def import_cardholders(job: Job, progress: jobs.Progress) -> dict:
    """Validate every row; create the valid ones in batches; report each bad row by line and column."""
    operator = _operator(job)
    path = Path(job.parameters["file"])
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise jobs.JobError(f"The uploaded file cannot be read: {error.strerror}.") from None
    try:
        rows = read_rows(raw)
    finally:
        path.unlink(missing_ok=True)
    progress.set_total(len(rows))
    allowed = allowed_partitions(operator, "accesscontrol.add_cardholder")
    default_partition = job.parameters["partition"]
    if allowed is not ALL and default_partition not in allowed:
        raise jobs.JobError("You may no longer add cardholders to the chosen partition.")
    context = {
        "partitions": dict(Partition.objects.values_list("name", "pk")),
        "allowed": allowed,
        "levels": dict(restrict(AccessLevel.objects.all(), operator, "view").values_list("name", "pk")),
    }
    errors: list[dict] = []
    seen_ext_ids: set[str] = set()
    created = bad_rows = 0
    result = progress.partial_result
    for first in range(0, len(rows), BATCH):
        batch = rows[first : first + BATCH]
        ext_ids = {row.get("ext_id") for _, row in batch if row.get("ext_id")}
        taken = set(Cardholder.objects.filter(ext_id__in=ext_ids).values_list("ext_id", flat=True))
        valid = []
        for line, row in batch:
            row_errors = _row_errors(line, row, context, taken, seen_ext_ids, valid)
            if row_errors:
                bad_rows += 1
                errors.extend(row_errors[: max(0, MAX_REPORTED_ERRORS - len(errors))])
        created += _create(valid, operator, job, default_partition)
        result.update({"rows": len(rows), "created": created, "bad_rows": bad_rows, "errors": errors})
        progress.advance(len(batch), message=f"{created} created, {bad_rows} rows with errors")
    result["errors_truncated"] = len(errors) >= MAX_REPORTED_ERRORS
    result["message"] = f"{created} of {len(rows)} rows imported" + (
        f"; {bad_rows} rows with errors, not imported." if bad_rows else "."
    )
    return dict(result)


def _row_errors(line, row, context, taken, seen_ext_ids, valid) -> list[dict]:
    if "__columns__" in row:
        return [{"line": line, "field": "", "message": f"The row has {row['__columns__']} columns, not as the header."}]
    form = CardholderRow(row, **context)
    errors = [
        {"line": line, "field": field if field != "__all__" else "", "message": message}
        for field, messages in form.errors.items()
        for message in messages
    ]
    ext_id = form.cleaned_data.get("ext_id") if not errors else row.get("ext_id")
    if ext_id and (ext_id in taken or ext_id in seen_ext_ids):
        where = "another cardholder" if ext_id in taken else "an earlier row"
        errors.append({"line": line, "field": "ext_id", "message": f"The external id {ext_id!r} is {where}'s."})
    if ext_id:
        seen_ext_ids.add(ext_id)
    if not errors:
        valid.append(form.cleaned_data)
    return errors


def _create(valid: list[dict], operator, job: Job, default_partition: int) -> int:
    if not valid:
        return 0
    holders = [
        Cardholder(
            partition_id=data["partition"] or default_partition,
            kind=data["kind"],
            title=data["title"],
            first_name=data["first_name"],
            last_name=data["last_name"],
            ext_id=data["ext_id"] or None,
            email=data["email"],
            phone_number=data["phone_number"],
            activation=data["activation"],
            expiration=data["expiration"],
            notes=data["notes"],
        )
        for data in valid
    ]
    through = Cardholder.access_levels.through
    with transaction.atomic():
        holders = Cardholder.objects.bulk_create(holders)
        through.objects.bulk_create(
            [
                through(cardholder_id=holder.pk, accesslevel_id=level_id)
                for holder, data in zip(holders, valid, strict=True)
                for level_id in data["access_levels"]
            ]
        )
        ids = [holder.pk for holder in holders]
        # bulk_create sends no signals: the decision engine's snapshot is told here.
        record_rule_changes("cardholder", ids)
        actions.record_operator_action(
            operator, "import_cardholders", None, via=VIA, detail={"job": job.pk, "cardholders": ids}
        )
    return len(holders)


# --- export ----------------------------------------------------------------------


def filtered_cardholders(operator, action: str, filters: dict):
    """The cardholders ``operator`` may ``action`` that the list's ``filters`` (its query string) select."""
    queryset = restrict(Cardholder.objects.all(), operator, action)
    filterset = CardholderSearchFilterSet(filters, queryset=queryset)
    if not filterset.is_valid():
        raise jobs.JobError(f"The filters are not valid: {filterset.errors.as_text()}")
    return filterset.qs


def export_cardholders(job: Job, progress: jobs.Progress) -> dict:
    """The cardholders of the list's filters as a CSV file the import reads back."""
    operator = _operator(job)
    queryset = filtered_cardholders(operator, "view", job.parameters.get("filters", {}))
    progress.set_total(queryset.count())
    directory = exports_dir()
    directory.mkdir(parents=True, exist_ok=True)
    name = f"cardholders-{job.pk}-{timezone.now():%Y%m%d-%H%M%S}.csv"
    written = 0
    rows = queryset.select_related("partition").prefetch_related("access_levels")
    with open(directory / name, "w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMN_NAMES)
        for holder in rows.iterator(chunk_size=1000):
            writer.writerow(_export_row(holder))
            written += 1
            if written % 1000 == 0:
                progress.advance(1000)
    progress.advance(written % 1000)
    job.result_file = str(Path("exports") / name)
    actions.record_operator_action(
        operator,
        "export_cardholders",
        None,
        via=VIA,
        detail={"job": job.pk, "count": written, "filters": job.parameters.get("filters", {})},
    )
    return {"count": written, "message": f"{written} cardholders exported."}


def _export_row(holder: Cardholder) -> list:
    def when(value):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else ""

    return [
        holder.last_name,
        holder.first_name,
        holder.title,
        holder.kind,
        holder.ext_id or "",
        holder.email,
        holder.phone_number,
        when(holder.activation),
        when(holder.expiration),
        holder.partition.name,
        LEVEL_SEPARATOR.join(sorted(level.name for level in holder.access_levels.all())),
        holder.notes,
    ]


# --- bulk change -----------------------------------------------------------------


def grant_access_level(job: Job, progress: jobs.Progress) -> dict:
    """Give an access level to every cardholder of the list's filters that the operator may change."""
    operator = _operator(job)
    level = restrict(AccessLevel.objects.all(), operator, "view").filter(pk=job.parameters["access_level"]).first()
    if level is None:
        raise jobs.JobError("The access level no longer exists, or you may no longer see it.")
    queryset = filtered_cardholders(operator, "change", job.parameters.get("filters", {}))
    holding = set(level.cardholders.values_list("pk", flat=True))
    ids = [pk for pk in queryset.order_by("pk").values_list("pk", flat=True) if pk not in holding]
    progress.set_total(len(ids))
    for first in range(0, len(ids), BATCH):
        batch = ids[first : first + BATCH]
        actions.grant_access_level_to_many(level, batch, operator=operator, via=VIA, detail={"job": job.pk})
        progress.advance(len(batch))
    return {"granted": len(ids), "message": f"{level.name} granted to {len(ids)} cardholders."}
