"""The web app's column-map page of an HR feed: upload a sample, pick which header is which field, check, save.

The sample is read as the feed will read its files (table.py, people.py); only its header and first rows travel
with the map form, so nothing of it is stored. Saving goes through the kind's own validation and is recorded in
the system auditor.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views import View

from accesscontrol.models import CardholderSource
from accesscontrol.views.base import OperatorPage, audit
from integrations.hrfeeds.config import FIELDS, validate_settings
from integrations.hrfeeds.forms import ColumnMapForm, SampleForm, decode_sample, encode_sample, guess
from integrations.hrfeeds.people import read_people
from integrations.hrfeeds.reader import describe
from integrations.hrfeeds.table import TableError, read_table

READING = ("format", "encoding", "delimiter", "sheet")


class ColumnMapView(OperatorPage, View):
    permission_required = "accesscontrol.change_cardholdersource"

    def get(self, request, pk):
        source = self.source(pk)
        initial = {name: source.settings.get(name) for name in READING if source.settings.get(name) is not None}
        return self.page(source, sample_form=SampleForm(initial=initial))

    def post(self, request, pk):
        source = self.source(pk)
        if "sample" not in request.POST:
            return self.read_sample(source)
        try:
            table, reading = decode_sample(request.POST["sample"])
        except (ValueError, KeyError, TypeError):
            messages.error(request, "The sample was lost on the way: upload it again.")
            return self.page(source, sample_form=SampleForm(), status=400)
        form = ColumnMapForm(request.POST, header=table.header)
        if not form.is_valid():
            return self.page(source, map_form=form, table=table, status=400)
        candidate = {**source.settings, **reading, **form.options(), "columns": form.columns()}
        try:
            cleaned = validate_settings(candidate)
        except ValidationError as error:
            for name, problems in error.message_dict.items():
                form.add_error(name if name in form.fields else None, " ".join(problems))
            return self.page(source, map_form=form, table=table, status=400)
        preview = self.preview(table, cleaned)
        if request.POST.get("action") != "save":
            return self.page(source, map_form=form, table=table, preview=preview)
        before = source.settings
        source.settings = cleaned
        source.save(update_fields=["settings"])
        changed = {name: [before.get(name), cleaned[name]] for name in cleaned if before.get(name) != cleaned[name]}
        audit(request, "change", source, {"settings": changed, "page": "column map"})
        messages.success(request, f"The column map of {source} is saved; the next file is read with it.")
        return redirect("hr_feed_columns", pk=source.pk)

    def read_sample(self, source):
        form = SampleForm(self.request.POST, self.request.FILES)
        if not form.is_valid():
            return self.page(source, sample_form=form, status=400)
        reading = {name: form.cleaned_data[name] for name in READING}
        try:
            table = read_table(form.cleaned_data["file"].read(), reading)
        except TableError as error:
            form.add_error("file", str(error))
            return self.page(source, sample_form=form, status=400)
        initial = {"sample": encode_sample(table, reading)}
        for field, name in guess(table.header, source.settings.get("columns") or {}).items():
            initial[f"column_{field}"] = name
        for name in ("date_formats", "blocked_values"):
            if source.settings.get(name):
                initial[name] = ", ".join(source.settings[name])
        if "groups_separator" in source.settings:
            initial["groups_separator"] = source.settings["groups_separator"]
        form = ColumnMapForm(initial=initial, header=table.header)
        return self.page(source, map_form=form, table=table)

    @staticmethod
    def preview(table, settings) -> dict:
        """The sample's rows as the feed would read them: people and bad rows."""
        try:
            people, errors = read_people(table, settings, timezone.get_current_timezone())
        except TableError as error:
            return {"people": [], "errors": [str(error)]}
        return {"people": people, "errors": [str(error) for error in errors]}

    def source(self, pk) -> CardholderSource:
        return get_object_or_404(CardholderSource, pk=pk, kind="hr_feed")

    def page(self, source, *, sample_form=None, map_form=None, table=None, preview=None, status=200):
        current = source.settings.get("columns") or {}
        context = {
            "page_title": f"Column map of {source}",
            "source": source,
            "where": describe(source),
            "current": [(field, current[field]) for field in FIELDS if field in current],
            "reading": ", ".join(
                f"{name} {source.settings[name]!r}" for name in READING if source.settings.get(name) not in (None, "")
            ),
            "sample_form": sample_form,
            "map_form": map_form,
            "table": table,
            "sample_rows": table.rows[:5] if table else [],
            "preview": preview,
        }
        return render(self.request, "hrfeeds/columns.html", context, status=status)
