"""The column-map page's forms: a sample file, then which of its headers fills which cardholder field."""

import datetime as dt
import json

from django import forms

from integrations.hrfeeds.config import DEFAULT_BLOCKED_VALUES, DEFAULT_DATE_FORMATS, FIELDS, REQUIRED_FIELDS
from integrations.hrfeeds.table import Table, cell_text

SAMPLE_MAX_BYTES = 20 * 1024 * 1024
SAMPLE_ROWS = 20
FORMAT_CHOICES = [("auto", "Recognise (XLSX or CSV)"), ("csv", "CSV"), ("xlsx", "XLSX workbook")]
ENCODING_CHOICES = [
    ("utf-8-sig", "UTF-8 (with or without BOM)"),
    ("utf-8", "UTF-8"),
    ("latin-1", "Latin-1 (ISO 8859-1)"),
    ("cp1252", "Windows-1252"),
]
DELIMITER_CHOICES = [(",", "Comma ,"), (";", "Semicolon ;"), ("\t", "Tab"), ("|", "Pipe |")]
# Headers an HR export commonly uses for a field, matched whatever their case, to preselect the map.
GUESSES = {
    "key": ["employee id", "employee number", "personnel number", "staff id", "id", "personalnummer", "matricule"],
    "last_name": ["last name", "surname", "family name", "name", "nachname", "nom"],
    "first_name": ["first name", "given name", "forename", "vorname", "prénom"],
    "email": ["email", "e-mail", "mail", "email address", "e-mail address"],
    "phone_number": ["phone", "mobile", "phone number", "telephone", "telefon"],
    "department": ["department", "dept", "abteilung", "service"],
    "job_title": ["job title", "title", "position", "role", "funktion"],
    "activation": ["start date", "hire date", "entry date", "eintritt", "start"],
    "expiration": ["leaving date", "end date", "termination date", "exit date", "austritt", "end"],
    "groups": ["groups", "teams", "team", "access groups"],
    "card_uid": ["card", "card uid", "badge", "card number", "badge number"],
    "blocked": ["status", "blocked", "active", "employment status"],
}


class SampleForm(forms.Form):
    file = forms.FileField(label="Sample file", help_text="A recent export from HR (CSV or XLSX, up to 20 MB).")
    format = forms.ChoiceField(choices=FORMAT_CHOICES, initial="auto")
    encoding = forms.ChoiceField(choices=ENCODING_CHOICES, initial="utf-8-sig", help_text="CSV only.")
    delimiter = forms.ChoiceField(choices=DELIMITER_CHOICES, initial=",", help_text="CSV only.")
    sheet = forms.CharField(required=False, max_length=100, help_text="XLSX: the worksheet; empty: the first.")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > SAMPLE_MAX_BYTES:
            raise forms.ValidationError("A sample of at most 20 MB: the first few hundred rows are enough.")
        return upload


def encode_sample(table: Table, reading: dict) -> str:
    """The header and the first rows, as the map form carries them from page to page (dates kept as dates)."""

    def cell(value):
        if isinstance(value, dt.datetime | dt.date):
            return {"date": value.isoformat()}
        return cell_text(value)

    rows = [[where, [cell(value) for value in cells]] for where, cells in table.rows[:SAMPLE_ROWS]]
    return json.dumps({"header": table.header, "rows": rows, "kind": table.kind, "reading": reading})


def decode_sample(text: str) -> tuple[Table, dict]:
    """ValueError for anything but what :func:`encode_sample` wrote."""
    data = json.loads(text)
    header, rows = data["header"], data["rows"]
    if not isinstance(header, list) or not all(isinstance(name, str) for name in header):
        raise ValueError("header")

    def cell(value):
        if isinstance(value, dict):
            return dt.datetime.fromisoformat(value["date"])
        if not isinstance(value, str):
            raise ValueError("cell")
        return value

    table = Table(header, [(str(where), [cell(value) for value in cells]) for where, cells in rows], data["kind"])
    return table, dict(data["reading"])


def guess(header: list[str], current: dict[str, str]) -> dict[str, str]:
    """The map to preselect: the feed's own where its headers are in the sample, else a common header's name."""
    by_case = {name.casefold(): name for name in header if name}
    chosen, taken = {}, set()
    for field, name in current.items():
        if name.casefold() in by_case:
            chosen[field] = by_case[name.casefold()]
            taken.add(name.casefold())
    for field, candidates in GUESSES.items():
        if field in chosen:
            continue
        for candidate in [field.replace("_", " "), *candidates]:
            if candidate in by_case and candidate not in taken:
                chosen[field] = by_case[candidate]
                taken.add(candidate)
                break
    return chosen


class ColumnMapForm(forms.Form):
    """One choice of header per field (key and last name required), and how dates, groups and blocked read."""

    sample = forms.CharField(widget=forms.HiddenInput)
    date_formats = forms.CharField(
        initial=", ".join(DEFAULT_DATE_FORMATS),
        help_text="Tried in order, separated by commas: %Y-%m-%d, %d.%m.%Y, %d/%m/%Y %H:%M …",
    )
    groups_separator = forms.CharField(
        required=False, initial=";", strip=False, max_length=3, help_text="Between several groups in one cell."
    )
    blocked_values = forms.CharField(
        initial=", ".join(DEFAULT_BLOCKED_VALUES),
        help_text="Values of the blocked column that mean blocked (a leaver), separated by commas.",
    )

    def __init__(self, *args, header: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        choices = [("", "— not in the file —")] + [(name, name) for name in header if name]
        for field, help_text in FIELDS.items():
            self.fields[f"column_{field}"] = forms.ChoiceField(
                label=field.replace("_", " ").capitalize(),
                choices=choices,
                required=field in REQUIRED_FIELDS,
                help_text=help_text,
            )
        self.order_fields([f"column_{field}" for field in FIELDS])

    def column_fields(self):
        return [self[f"column_{field}"] for field in FIELDS]

    def option_fields(self):
        return [self["date_formats"], self["groups_separator"], self["blocked_values"]]

    def clean(self):
        data = super().clean()
        chosen = [data.get(f"column_{field}") for field in FIELDS if data.get(f"column_{field}")]
        twice = sorted({name for name in chosen if chosen.count(name) > 1})
        if twice:
            raise forms.ValidationError(f"A column fills one field only: {', '.join(twice)} is chosen twice.")
        return data

    def columns(self) -> dict[str, str]:
        return {
            field: self.cleaned_data[f"column_{field}"] for field in FIELDS if self.cleaned_data.get(f"column_{field}")
        }

    def options(self) -> dict:
        def listed(text):
            return [part.strip() for part in text.split(",") if part.strip()]

        return {
            "date_formats": listed(self.cleaned_data["date_formats"]),
            "groups_separator": self.cleaned_data["groups_separator"],
            "blocked_values": listed(self.cleaned_data["blocked_values"]),
        }
