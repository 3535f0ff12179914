"""An HR feed's column-map page: a sample uploaded, its headers picked per field, checked, saved."""

import datetime as dt
import io
import json

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from accesscontrol import sync
from accesscontrol.models import CardholderSource, SystemAuditEntry
from tests.factories import make_operator, make_partition

pytestmark = pytest.mark.django_db

CHANGE = "accesscontrol.change_cardholdersource"
SAMPLE = (
    "Personalnummer;Nachname;Vorname;E-Mail;Austritt;Status\r\n"
    "1001;Müller;Jörg;jorg@example.com;31.12.2026;aktiv\r\n"
    "1002;Näf;Zoë;not-mail;;ausgetreten\r\n"
).encode("latin-1")


@pytest.fixture
def source(tmp_path):
    feed = CardholderSource(
        name="HR",
        kind="hr_feed",
        default_partition_id=make_partition("Main").pk,
        settings={"location": "folder", "path": str(tmp_path), "columns": {"key": "ID", "last_name": "Name"}},
    )
    sync.validate_source(feed)
    feed.save()
    return feed


def client_for(*permissions) -> Client:
    client = Client(REMOTE_ADDR="192.0.2.7")
    client.force_login(make_operator(*permissions))
    return client


def url(source) -> str:
    return reverse("hr_feed_columns", args=[source.pk])


def upload(client, source, data=SAMPLE, name="sample.csv", **reading):
    fields = {"format": "auto", "encoding": "latin-1", "delimiter": ";", "sheet": "", **reading}
    return client.post(url(source), {"file": SimpleUploadedFile(name, data), **fields})


def map_data(page, **choices) -> dict:
    """What the map form posts back: its hidden sample, the choices given, the reading options as shown."""
    form = page.context["map_form"]
    data = {"sample": form.initial["sample"], "date_formats": "%d.%m.%Y", "groups_separator": ";",
            "blocked_values": "ausgetreten"}  # fmt: skip
    data.update({f"column_{field}": header for field, header in choices.items()})
    return data


def test_a_sample_is_read_with_its_encoding_and_its_headers_are_offered_and_guessed(source):
    client = client_for(CHANGE)

    page = upload(client, source)

    assert page.status_code == 200
    form = page.context["map_form"]
    assert [label for label, _ in form.fields["column_key"].choices][1:] == [
        "Personalnummer", "Nachname", "Vorname", "E-Mail", "Austritt", "Status",
    ]  # fmt: skip
    assert form.initial["column_key"] == "Personalnummer" and form.initial["column_last_name"] == "Nachname"
    assert form.initial["column_email"] == "E-Mail" and form.initial["column_expiration"] == "Austritt"
    assert "Müller" in page.content.decode()


def test_checking_shows_the_sample_as_the_feed_reads_it_and_saving_stores_the_map(source):
    client = client_for(CHANGE)
    page = upload(client, source)
    choices = {"key": "Personalnummer", "last_name": "Nachname", "first_name": "Vorname", "email": "E-Mail",
               "expiration": "Austritt", "blocked": "Status"}  # fmt: skip

    checked = client.post(url(source), {**map_data(page, **choices), "action": "check"})

    assert checked.status_code == 200
    preview = checked.context["preview"]
    assert [person.key for person in preview["people"]] == ["1001"]
    assert preview["errors"] == ["line 3, email: 'not-mail' is not an e-mail address"]
    source.refresh_from_db()
    assert source.settings["columns"] == {"key": "ID", "last_name": "Name"}  # a check saves nothing

    saved = client.post(url(source), {**map_data(page, **choices), "action": "save"})

    assert saved.status_code == 302
    source.refresh_from_db()
    assert source.settings["columns"] == choices
    assert (source.settings["encoding"], source.settings["delimiter"]) == ("latin-1", ";")
    assert source.settings["date_formats"] == ["%d.%m.%Y"] and source.settings["blocked_values"] == ["ausgetreten"]
    entry = SystemAuditEntry.objects.get(action="change", object_id=str(source.pk))
    assert entry.detail["settings"]["columns"][1] == choices
    page = client.get(url(source))
    assert "Personalnummer" in page.content.decode()


def test_a_map_without_a_key_or_with_a_column_twice_or_a_bad_date_format_is_refused(source):
    client = client_for(CHANGE)
    page = upload(client, source)

    answer = client.post(url(source), {**map_data(page, last_name="Nachname"), "action": "save"})
    assert answer.status_code == 400 and answer.context["map_form"].errors["column_key"]

    answer = client.post(url(source), {**map_data(page, key="Personalnummer", last_name="Personalnummer"),
                                       "action": "save"})  # fmt: skip
    assert answer.status_code == 400 and "chosen twice" in answer.content.decode()

    data = {**map_data(page, key="Personalnummer", last_name="Nachname"), "date_formats": "%d.%m.%q"}
    answer = client.post(url(source), {**data, "action": "save"})
    assert answer.status_code == 400 and "date formats" in " ".join(answer.context["map_form"].errors["date_formats"])

    source.refresh_from_db()
    assert source.settings["columns"] == {"key": "ID", "last_name": "Name"}


def test_a_sample_that_is_not_a_table_or_a_lost_sample_is_an_error_not_a_crash(source):
    client = client_for(CHANGE)

    answer = upload(client, source, data=SAMPLE, encoding="utf-8")
    assert answer.status_code == 400 and "not utf-8 text" in " ".join(answer.context["sample_form"].errors["file"])

    answer = upload(client, source, data=b"PK\x03\x04 broken", name="people.xlsx")
    assert answer.status_code == 400 and "not a readable XLSX workbook" in answer.content.decode()

    answer = client.post(url(source), {"sample": "{not json", "action": "save"})
    assert answer.status_code == 400 and "upload it again" in answer.content.decode()


def test_an_xlsx_sample_keeps_its_dates(source):
    book = openpyxl.Workbook()
    book.active.append(["Employee ID", "Surname", "Leaving date"])
    book.active.append([7, "Ng", dt.datetime(2027, 1, 31)])
    out = io.BytesIO()
    book.save(out)
    client = client_for(CHANGE)
    page = upload(client, source, data=out.getvalue(), name="people.xlsx")
    assert json.loads(page.context["map_form"].initial["sample"])["rows"][0][1][2] == {"date": "2027-01-31T00:00:00"}

    checked = client.post(url(source), {**map_data(page, key="Employee ID", last_name="Surname",
                                                   expiration="Leaving date"), "action": "check"})  # fmt: skip

    (person,) = checked.context["preview"]["people"]
    assert (person.key, person.expiration.date()) == ("7", dt.date(2027, 1, 31))


def test_the_sources_page_links_an_hr_feed_to_its_column_map(source):
    page = client_for("accesscontrol.view_cardholdersource", CHANGE).get(reverse("source", args=[source.pk]))

    assert page.status_code == 200 and url(source) in page.content.decode()


def test_only_operators_who_may_change_sources_open_the_page_and_nothing_changes_otherwise(source):
    client = client_for("accesscontrol.view_cardholder")

    assert client.get(url(source)).status_code == 403
    answer = client.post(url(source), {"sample": json.dumps({"header": ["A"], "rows": [], "kind": "csv",
                                       "reading": {}}), "column_key": "A", "column_last_name": "A"})  # fmt: skip
    assert answer.status_code == 403
    source.refresh_from_db()
    assert source.settings["columns"] == {"key": "ID", "last_name": "Name"}
    assert client_for(CHANGE).get(reverse("hr_feed_columns", args=[source.pk + 1])).status_code == 404
