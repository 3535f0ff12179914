import csv
import datetime as dt
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse

from accesscontrol.models import AuditEvent, SystemAuditEntry
from tests.factories import make_access_point, make_cardholder, make_operator, make_partition, make_zone

pytestmark = pytest.mark.django_db

VIEW = "accesscontrol.view_auditevent"
NOON = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def events(point, count, *, at=NOON, step=dt.timedelta(seconds=-1), **fields):
    """``count`` events at ``point``, the first at ``at``, each ``step`` after the one before (stored in one go)."""
    rows = [
        AuditEvent(
            at=at + step * n,
            kind=fields.get("kind", "access_granted"),
            reason=fields.get("reason", "granted"),
            access_point=point,
            access_point_name=point.name if point else "",
            cardholder_name=fields.get("cardholder_name", ""),
            cardholder=fields.get("cardholder"),
            key_uid=fields.get("key_uid", ""),
        )
        for n in range(count)
    ]
    return AuditEvent.objects.bulk_create(rows)


def ids_on(response) -> list[int]:
    return [event.pk for event in response.context["page"]["rows"]]


def csv_rows(response) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


@pytest.fixture
def viewer(client, partition):
    operator = make_operator(VIEW, partitions=[partition])
    client.force_login(operator)
    return operator


def test_an_operator_without_the_permission_gets_403_for_the_page_and_the_export(client):
    client.force_login(make_operator("accesscontrol.view_cardholder", all_partitions=True))

    assert client.get(reverse("audit_trail")).status_code == 403
    assert client.get(reverse("audit_trail_export")).status_code == 403
    assert not SystemAuditEntry.objects.filter(action="export_audit_trail").exists()


def test_an_operator_of_one_partition_sees_only_its_events_in_the_page_and_the_export(client, viewer, partition):
    ours = events(make_access_point(partition=partition, name="Lobby"), 3)
    events(make_access_point(partition=make_partition(), name="Vault"), 4)
    events(None, 1, kind="device_offline")

    page = client.get(reverse("audit_trail"))
    export = client.get(reverse("audit_trail_export"))

    assert page.status_code == 200
    assert sorted(ids_on(page)) == sorted(event.pk for event in ours)
    assert b"Vault" not in page.content
    rows = csv_rows(export)
    assert rows[0][:3] == ["at", "id", "kind"]
    assert sorted(int(row[1]) for row in rows[1:]) == sorted(event.pk for event in ours)
    assert {row[4] for row in rows[1:]} == {"Lobby"}


def test_the_partition_filter_cannot_reach_a_partition_the_operator_does_not_have(client, viewer):
    other = make_partition()
    events(make_access_point(partition=other), 2)

    response = client.get(reverse("audit_trail"), {"partition": other.pk})

    assert response.status_code == 200
    assert "partition" in response.context["form"].errors
    assert ids_on(response) == []


def test_filters_narrow_by_kind_key_uid_cardholder_name_and_zone(client, partition):
    client.force_login(
        make_operator(VIEW, "accesscontrol.view_cardholder", "accesscontrol.view_zone", partitions=[partition])
    )
    zone = make_zone(partition=partition)
    lobby = make_access_point(partition=partition, zones=[zone])
    garage = make_access_point(partition=partition)
    ada = make_cardholder(partition=partition, first_name="Ada", last_name="Lovelace")
    denied = events(garage, 2, kind="access_denied", reason="no_permission")
    by_key = events(garage, 1, key_uid="04A1B2C3", at=NOON + dt.timedelta(hours=1))
    by_ada = events(garage, 1, cardholder=ada, cardholder_name="Ada Lovelace", at=NOON + dt.timedelta(hours=2))
    in_zone = events(lobby, 2, at=NOON - dt.timedelta(hours=1))

    def shown(**query):
        return sorted(ids_on(client.get(reverse("audit_trail"), query)))

    assert shown(kind="access_denied") == sorted(e.pk for e in denied)
    assert shown(key_uid="04:a1:b2:c3") == [by_key[0].pk]
    assert shown(cardholder_name="love") == [by_ada[0].pk]
    assert shown(zone=zone.pk) == sorted(e.pk for e in in_zone)
    assert shown(reason="no_permission") == sorted(e.pk for e in denied)


@override_settings(TIME_ZONE="Europe/Paris")
def test_from_and_to_are_read_in_the_site_time_zone(client, viewer, partition):
    point = make_access_point(partition=partition)
    # 12:00 UTC is 13:00 in Paris (winter time).
    inside = events(point, 1, at=NOON)
    events(point, 1, at=NOON - dt.timedelta(minutes=30))

    response = client.get(reverse("audit_trail"), {"at_from": "2026-03-02T12:50", "at_to": "2026-03-02T13:10"})

    assert ids_on(response) == [inside[0].pk]


def test_a_date_that_is_none_is_a_field_error_not_a_500(client, viewer):
    response = client.get(reverse("audit_trail"), {"at_from": "yesterday-ish", "access_point": "abc"})

    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"at_from", "access_point"}
    assert ids_on(response) == []


def test_keyset_pages_show_every_event_once_even_when_many_share_a_timestamp(client, viewer, partition):
    point = make_access_point(partition=partition)
    same_time = events(point, 25, step=dt.timedelta(0))  # 25 events in the same microsecond
    earlier = events(point, 8, at=NOON - dt.timedelta(minutes=1))
    later = events(point, 4, at=NOON + dt.timedelta(minutes=1))
    expected = [e.pk for e in sorted(same_time + earlier + later, key=lambda e: (e.at, e.pk), reverse=True)]

    seen, pages, url = [], [], reverse("audit_trail") + "?per_page=10"
    while url:
        response = client.get(url)
        pages.append(ids_on(response))
        seen += ids_on(response)
        older = response.context["page"]["older_url"]
        url = reverse("audit_trail") + older if older else None

    assert seen == expected
    assert [len(page) for page in pages] == [10, 10, 10, 7]
    # And back up: "newer" from the last page gives the page before it, exactly.
    newer = response.context["page"]["newer_url"]
    assert ids_on(client.get(reverse("audit_trail") + newer)) == pages[-2]


def test_the_newest_page_has_no_newer_link_and_a_bad_cursor_shows_the_newest_page(client, viewer, partition):
    point = make_access_point(partition=partition)
    made = events(point, 3)

    first = client.get(reverse("audit_trail"))
    bad = client.get(reverse("audit_trail"), {"older": "x.y"})

    assert first.context["page"]["newer_url"] is None
    assert first.context["page"]["older_url"] is None
    assert ids_on(bad) == [e.pk for e in made]


def test_the_query_count_does_not_grow_with_the_page_size(client, viewer, partition):
    point = make_access_point(partition=partition)
    events(point, 120)

    with CaptureQueriesContext(connection) as small:
        assert len(ids_on(client.get(reverse("audit_trail"), {"per_page": 10, "kind": "access_granted"}))) == 10
    with CaptureQueriesContext(connection) as large:
        assert len(ids_on(client.get(reverse("audit_trail"), {"per_page": 100, "kind": "access_granted"}))) == 100

    assert len(small.captured_queries) == len(large.captured_queries)


def test_the_export_is_a_streamed_csv_whose_formula_cells_are_made_text_and_is_recorded(client, viewer, partition):
    point = make_access_point(partition=partition, name='=HYPERLINK("http://evil")')
    events(point, 1, cardholder_name="+SUM(A1:A9)", key_uid="@ABC")
    events(point, 1, cardholder_name="-2+3", at=NOON - dt.timedelta(seconds=5), kind="access_denied")

    response = client.get(reverse("audit_trail_export"), {"kind": "access_granted"})

    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-trail-')
    rows = csv_rows(response)
    assert rows[0] == [
        "at",
        "id",
        "kind",
        "reason",
        "access point",
        "access point id",
        "cardholder",
        "cardholder id",
        "key UID",
        "device id",
    ]
    assert len(rows) == 2
    assert rows[1][2:] == [
        "Access granted",
        "Granted",
        '\'=HYPERLINK("http://evil")',
        str(point.pk),
        "'+SUM(A1:A9)",
        "",
        "'@ABC",
        "",
    ]
    assert rows[1][0] == "2026-03-02T12:00:00+00:00"
    entry = SystemAuditEntry.objects.get(action="export_audit_trail")
    assert (entry.operator, entry.via, entry.address) == (viewer, "web", "127.0.0.1")
    assert entry.detail == {"filters": {"kind": "access_granted"}}
