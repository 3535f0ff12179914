import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accesscontrol.actions import record_operator_action
from accesscontrol.models import SystemAuditEntry
from tests.factories import make_cardholder, make_operator

pytestmark = pytest.mark.django_db

VIEW = "accesscontrol.view_systemauditentry"


def ids_on(response) -> list[int]:
    return [entry.pk for entry in response.context["page"]["rows"]]


@pytest.fixture
def auditor(client):
    operator = make_operator(VIEW, username="auditor")
    client.force_login(operator)
    return operator


def test_an_operator_without_the_permission_gets_403_for_the_page_and_the_export(client):
    client.force_login(make_operator("accesscontrol.view_auditevent", all_partitions=True))
    before = SystemAuditEntry.objects.count()

    assert client.get(reverse("system_audit")).status_code == 403
    assert client.get(reverse("system_audit_export")).status_code == 403
    assert SystemAuditEntry.objects.count() == before


def test_the_page_shows_who_what_before_and_after_via_and_from_where(client, auditor):
    someone = make_operator(username="mallory")
    cardholder = make_cardholder(first_name="Ada", last_name="Lovelace")
    record_operator_action(
        someone,
        "update",
        cardholder,
        via="web",
        address="192.0.2.7",
        detail={"changes": {"last_name": {"from": "Byron", "to": "Lovelace"}}},
    )

    response = client.get(reverse("system_audit"))

    assert response.status_code == 200
    text = response.content.decode()
    assert "mallory" in text
    assert "<dt>last name</dt>" in text
    assert "<del>Byron</del> → <ins>Lovelace</ins>" in text
    assert "192.0.2.7" in text
    assert "accesscontrol.cardholder" in text


def test_filters_narrow_by_operator_action_object_type_and_text(client, auditor):
    alice, bob = make_operator(username="alice"), make_operator(username="bob")
    cardholder = make_cardholder(last_name="Turing")
    a = record_operator_action(alice, "update", cardholder, via="web")
    b = record_operator_action(bob, "issue_key", None, via="api")
    c = record_operator_action(bob, "update", alice, via="web")

    def shown(**query):
        return sorted(ids_on(client.get(reverse("system_audit"), query)))

    assert shown(operator=alice.pk) == [a.pk]
    assert shown(action="update") == sorted([a.pk, c.pk])
    assert shown(object_type="accesscontrol.operator") == [c.pk]
    assert shown(q="turing") == [a.pk]
    assert shown(via="api") == [b.pk]


def test_bad_filter_input_is_a_field_error_not_a_500(client, auditor):
    response = client.get(reverse("system_audit"), {"operator": "nobody", "at_to": "31/31/2026"})

    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"operator", "at_to"}
    assert ids_on(response) == []


def test_keyset_pages_show_every_entry_once(client, auditor):
    made = [record_operator_action(auditor, f"action{n}", None, via="web") for n in range(23)]

    seen, url = [], reverse("system_audit") + "?per_page=10"
    while url:
        response = client.get(url)
        seen += ids_on(response)
        older = response.context["page"]["older_url"]
        url = reverse("system_audit") + older if older else None

    assert sorted(seen) == sorted(entry.pk for entry in made)
    assert len(seen) == len(set(seen)) == 23


def test_the_query_count_does_not_grow_with_the_page_size(client, auditor):
    for n in range(110):
        record_operator_action(auditor, "update", None, via="web", detail={"changes": {"n": {"from": n, "to": n + 1}}})

    with CaptureQueriesContext(connection) as small:
        client.get(reverse("system_audit"), {"per_page": 10})
    with CaptureQueriesContext(connection) as large:
        client.get(reverse("system_audit"), {"per_page": 100})

    assert len(small.captured_queries) == len(large.captured_queries)


def test_the_export_streams_the_filtered_rows_made_safe_and_is_recorded(client, auditor):
    evil = make_operator(username="=cmd")
    record_operator_action(evil, "update", None, via="web", detail={"note": "é"})
    record_operator_action(auditor, "other", None, via="api")

    response = client.get(reverse("system_audit_export"), {"via": "web", "action": "update"})

    assert response.streaming
    text = b"".join(response.streaming_content).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0] == [
        "at",
        "id",
        "operator",
        "action",
        "object type",
        "object id",
        "object",
        "via",
        "address",
        "detail",
    ]
    assert [row[2:4] for row in rows[1:]] == [["'=cmd", "update"]]
    assert rows[1][9] == '{"note": "é"}'
    entry = SystemAuditEntry.objects.get(action="export_system_audit")
    assert entry.operator == auditor
    assert entry.detail == {"filters": {"via": "web", "action": "update"}}
