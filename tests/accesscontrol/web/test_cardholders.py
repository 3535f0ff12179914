"""Cardholder pages: list with search and filters, detail, create, edit, delete and its changes."""

import datetime as dt

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accesscontrol.choices import KeyStatus
from accesscontrol.models import AuditEvent, BlacklistEntry, Cardholder, CardholderPermission, Key, SystemAuditEntry
from tests.factories import (
    give_permission,
    make_access_level,
    make_access_point,
    make_cardholder,
    make_key,
    make_operator,
    make_partition,
    make_time_period,
    make_zone,
)

pytestmark = pytest.mark.django_db

VIEW = "accesscontrol.view_cardholder"
ADD = "accesscontrol.add_cardholder"
CHANGE = "accesscontrol.change_cardholder"
DELETE = "accesscontrol.delete_cardholder"


def client_for(operator) -> Client:
    client = Client(REMOTE_ADDR="192.0.2.7")
    client.force_login(operator)
    return client


def admin() -> Client:
    return client_for(make_operator(is_superuser=True))


def names(response) -> list[str]:
    return [holder.last_name for holder in response.context["page_obj"].object_list]


def entries(action: str) -> list[SystemAuditEntry]:
    return list(SystemAuditEntry.objects.filter(action=action).order_by("id"))


def form_data(partition, **fields) -> dict:
    data = {
        "partition": partition.pk,
        "kind": "staff",
        "last_name": "Lindqvist",
        "first_name": "Maja",
        "key_revalidation_days": 0,
    }
    data.update(fields)
    return {name: value for name, value in data.items() if value is not None}


# --- the list ----------------------------------------------------------------------


def test_the_list_searches_names_emails_external_ids_and_key_uids():
    make_cardholder(last_name="Okafor", first_name="Chidi")
    make_cardholder(last_name="Lindqvist", email="maja@example.org")
    make_cardholder(last_name="Tanaka", ext_id="HR-0042")
    holder = make_cardholder(last_name="Novak")
    make_key(holder, uid="04A1B2C3")
    client = admin()

    assert names(client.get(reverse("cardholders"), {"q": "chidi oka"})) == ["Okafor"]
    assert names(client.get(reverse("cardholders"), {"q": "maja@"})) == ["Lindqvist"]
    assert names(client.get(reverse("cardholders"), {"q": "HR-0042"})) == ["Tanaka"]
    assert names(client.get(reverse("cardholders"), {"q": "04:a1:b2:c3"})) == ["Novak"]
    assert names(client.get(reverse("cardholders"), {"q": "nobody"})) == []


def test_the_list_filters_by_partition_level_activity_and_valid_key():
    north, south = make_partition(), make_partition()
    level = make_access_level()
    now = timezone.now()
    keyed = make_cardholder(level, last_name="Keyed", partition=north)
    make_key(keyed)
    lapsed = make_cardholder(last_name="Lapsed", partition=north, expiration=now - dt.timedelta(days=1))
    make_key(lapsed, status=KeyStatus.CANCELLED)
    make_cardholder(last_name="Banned", partition=south, banned=True)
    make_cardholder(level, last_name="Plain", partition=south)
    client = admin()
    url = reverse("cardholders")

    assert names(client.get(url, {"partition": north.pk})) == ["Keyed", "Lapsed"]
    assert names(client.get(url, {"access_level": level.pk})) == ["Keyed", "Plain"]
    assert names(client.get(url, {"active": "true"})) == ["Keyed", "Plain"]
    assert names(client.get(url, {"active": "false"})) == ["Banned", "Lapsed"]
    assert names(client.get(url, {"has_valid_key": "true"})) == ["Keyed"]
    assert names(client.get(url, {"has_valid_key": "false"})) == ["Banned", "Lapsed", "Plain"]
    assert names(client.get(url, {"sort": "-name"})) == ["Plain", "Lapsed", "Keyed", "Banned"]


def test_bad_filters_are_reported_not_a_crash():
    make_cardholder(last_name="Okafor")

    response = admin().get(reverse("cardholders"), {"partition": "north", "sort": "shoe size"})

    assert response.status_code == 200
    assert names(response) == []
    assert "Enter a whole number." in response.content.decode()


def test_htmx_live_search_gets_only_the_table():
    make_cardholder(last_name="Okafor")

    response = admin().get(
        reverse("cardholders"), {"q": "oka"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="cardholder-results"
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "Okafor" in page
    assert "<html" not in page
    assert 'id="cardholder-filters"' not in page


def test_the_list_pages_with_a_constant_number_of_queries():
    level = make_access_level()
    for number in range(120):
        holder = make_cardholder(level, last_name=f"Holder {number:03}")
        make_key(holder)
    operator = make_operator(VIEW, "accesscontrol.view_accesslevel", all_partitions=True)
    client = client_for(operator)
    client.get(reverse("cardholders"))  # the session, the content types: warm

    counts = {}
    for per_page in (10, 100):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(reverse("cardholders"), {"per_page": per_page, "q": "holder"})
        assert len(response.context["page_obj"].object_list) == per_page
        counts[per_page] = len(queries)

    assert counts[10] == counts[100]


def test_an_operator_lists_only_the_cardholders_of_their_partitions():
    mine, other = make_partition(), make_partition()
    make_cardholder(last_name="Mine", partition=mine)
    make_cardholder(last_name="Theirs", partition=other)
    client = client_for(make_operator(VIEW, partitions=[mine]))

    response = client.get(reverse("cardholders"))

    assert names(response) == ["Mine"]
    assert [p.pk for p in response.context["partitions"]] == [mine.pk]


def test_without_the_view_permission_the_list_is_forbidden():
    response = client_for(make_operator("accesscontrol.view_key")).get(reverse("cardholders"))

    assert response.status_code == 403


# --- the detail page ------------------------------------------------------------------


def test_the_detail_page_shows_keys_levels_permissions_events_and_changes():
    point = make_access_point(name="Server room")
    level = make_access_level(point, name="Engineering")
    holder = make_cardholder(level, last_name="Okafor")
    key = make_key(holder, uid="0A0B0C0D")
    give_permission(holder, point, make_time_period(name="Office hours"))
    AuditEvent.objects.create(
        at=timezone.now(),
        kind="access_granted",
        cardholder=holder,
        access_point=point,
        access_point_name="Server room",
        key_uid="0A0B0C0D",
    )
    client = admin()
    client.post(reverse("key_cancel", args=[key.pk]))

    response = client.get(reverse("cardholder", args=[holder.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    assert "0A0B0C0D" in page
    assert "Engineering" in page
    assert "Office hours" in page
    assert [event.access_point_name for event in response.context["events"]] == ["Server room"]
    assert [entry.action for entry in response.context["entries"]] == ["cancel_key"]


def test_a_cardholder_of_another_partition_is_not_found():
    mine, other = make_partition(), make_partition()
    holder = make_cardholder(partition=other)
    client = client_for(make_operator(VIEW, CHANGE, partitions=[mine]))

    assert client.get(reverse("cardholder", args=[holder.pk])).status_code == 404
    assert client.post(reverse("cardholder_edit", args=[holder.pk]), form_data(other)).status_code == 404


def test_the_detail_page_queries_do_not_grow_with_keys_and_permissions():
    points = [make_access_point() for _ in range(10)]
    few, many = make_cardholder(), make_cardholder()
    make_key(few)
    give_permission(few, points[0])
    for point in points:
        make_key(many)
        give_permission(many, point)
    client = admin()
    client.get(reverse("cardholder", args=[few.pk]))

    counts = []
    for holder in (few, many):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("cardholder", args=[holder.pk])).status_code == 200
        counts.append(len(queries))

    assert counts[0] == counts[1]


# --- create, edit, delete -----------------------------------------------------------


def test_an_operator_creates_a_cardholder_and_the_auditor_records_it():
    partition = make_partition()
    operator = make_operator(VIEW, ADD, partitions=[partition])

    response = client_for(operator).post(
        reverse("cardholder_create"), form_data(partition, email="maja@example.org", ext_id="")
    )

    holder = Cardholder.objects.get(last_name="Lindqvist")
    assert response.status_code == 302
    assert response["Location"] == reverse("cardholder", args=[holder.pk])
    assert (holder.first_name, holder.partition_id, holder.ext_id) == ("Maja", partition.pk, None)
    [entry] = entries("create")
    assert (entry.operator_id, entry.via, entry.address, entry.object_id) == (
        operator.pk,
        "web",
        "192.0.2.7",
        str(holder.pk),
    )
    assert entry.detail["fields"]["last_name"] == "Lindqvist"


def test_bad_input_gets_field_errors_and_creates_nothing():
    partition = make_partition()
    make_cardholder(ext_id="HR-1")
    client = client_for(make_operator(VIEW, ADD, partitions=[partition]))

    response = client.post(
        reverse("cardholder_create"),
        form_data(
            partition,
            last_name="",
            email="not an e-mail",
            ext_id="HR-1",
            activation="2030-01-02T00:00",
            expiration="2030-01-01T00:00",
        ),
    )

    errors = response.context["form"].errors
    assert response.status_code == 400
    assert errors["last_name"] == ["This field is required."]
    assert errors["email"] == ["Enter a valid email address."]
    assert errors["ext_id"] == ["Cardholder with this External id already exists."]
    assert errors["expiration"] == ["Expiration must come after activation."]
    assert Cardholder.objects.count() == 1
    assert entries("create") == []


def test_a_cardholder_cannot_be_put_in_a_partition_the_operator_may_not_use():
    mine, other = make_partition(), make_partition()
    client = client_for(make_operator(VIEW, ADD, partitions=[mine]))

    response = client.post(reverse("cardholder_create"), form_data(other))

    assert response.status_code == 400
    assert response.context["form"].errors["partition"] == [
        "Select a valid choice. That choice is not one of the available choices."
    ]
    assert not Cardholder.objects.exists()


def test_an_edit_is_recorded_with_its_before_and_after():
    partition = make_partition()
    holder = make_cardholder(last_name="Lindqvist", first_name="Maja", partition=partition)
    client = client_for(make_operator(VIEW, CHANGE, partitions=[partition]))

    response = client.post(
        reverse("cardholder_edit", args=[holder.pk]),
        form_data(partition, first_name="Maria", audit_openings="on", key_cancellable_through_blacklist="on"),
    )

    holder.refresh_from_db()
    assert response.status_code == 302
    assert holder.first_name == "Maria"
    [entry] = entries("update")
    assert entry.detail == {"changes": {"first_name": {"from": "Maja", "to": "Maria"}}}


def test_without_the_change_permission_an_edit_is_forbidden_and_changes_nothing():
    holder = make_cardholder(first_name="Maja")
    client = client_for(make_operator(VIEW, all_partitions=True))

    response = client.post(reverse("cardholder_edit", args=[holder.pk]), form_data(holder.partition, first_name="Eve"))

    holder.refresh_from_db()
    assert response.status_code == 403
    assert holder.first_name == "Maja"
    assert not SystemAuditEntry.objects.exists()


def test_a_cardholder_whose_keys_are_blacklisted_is_deleted_and_their_blacklist_entries_stay():
    holder = make_cardholder()
    key = make_key(holder, status=KeyStatus.CANCELLED)
    entry = BlacklistEntry.objects.create(
        key=key, key_number=key.pk, uid=key.uid, until=timezone.now() + dt.timedelta(days=5)
    )

    deleted = admin().post(reverse("cardholder_delete", args=[holder.pk]))

    assert deleted.status_code == 302
    assert not Cardholder.objects.filter(pk=holder.pk).exists()
    assert BlacklistEntry.objects.filter(pk=entry.pk, key=None, key_number=key.pk, uid=key.uid).exists()
    assert [entry.action for entry in SystemAuditEntry.objects.all()] == ["delete"]


def test_a_cardholder_whose_keys_are_blacklisted_may_be_deactivated():
    holder = make_cardholder()
    make_key(holder, status=KeyStatus.CANCELLED)

    deactivated = admin().post(reverse("cardholder_deactivate", args=[holder.pk]))

    holder.refresh_from_db()
    assert deactivated.status_code == 302
    assert holder.expiration is not None and holder.expiration <= timezone.now()
    assert [entry.action for entry in SystemAuditEntry.objects.all()] == ["deactivate"]


def test_a_cardholder_without_live_keys_is_deleted_and_recorded():
    holder = make_cardholder(last_name="Gone")
    make_key(holder, status=KeyStatus.CANCELLED, valid_until=timezone.now() - dt.timedelta(days=1))

    response = admin().post(reverse("cardholder_delete", args=[holder.pk]))

    assert response["Location"] == reverse("cardholders")
    assert not Cardholder.objects.exists()
    [entry] = entries("delete")
    assert entry.object_repr == "Alex Gone"


def test_without_the_delete_permission_nothing_is_deleted():
    holder = make_cardholder()

    response = client_for(make_operator(VIEW, CHANGE, all_partitions=True)).post(
        reverse("cardholder_delete", args=[holder.pk])
    )

    assert response.status_code == 403
    assert Cardholder.objects.filter(pk=holder.pk).exists()


# --- PIN, access levels, permissions, keys from the detail page -------------------------


def test_a_pin_is_set_and_cleared_and_never_recorded():
    holder = make_cardholder()
    client = admin()

    bad = client.post(reverse("cardholder_pin", args=[holder.pk]), {"pin": "12ab"})
    client.post(reverse("cardholder_pin", args=[holder.pk]), {"pin": "4821"})
    holder.refresh_from_db()
    had_pin = holder.check_pin("4821")
    client.post(reverse("cardholder_pin", args=[holder.pk]), {"clear": "1"})

    holder.refresh_from_db()
    assert bad.status_code == 400
    assert bad.context["pin_form"].errors["pin"] == ["A PIN is 4 to 8 digits."]
    assert had_pin
    assert not holder.has_pin
    assert [(e.action, e.detail, e.address) for e in SystemAuditEntry.objects.order_by("id")] == [
        ("set_pin", {"has_pin": True}, "192.0.2.7"),
        ("clear_pin", {"has_pin": False}, "192.0.2.7"),
    ]


def test_an_access_level_is_granted_and_removed_and_both_are_recorded():
    holder = make_cardholder()
    level = make_access_level(name="Lobby")
    client = admin()

    client.post(reverse("cardholder_level_grant", args=[holder.pk]), {"access_level": level.pk})
    granted = list(holder.access_levels.all())
    client.post(reverse("cardholder_level_remove", args=[holder.pk, level.pk]))

    assert granted == [level]
    assert not holder.access_levels.exists()
    assert [(e.action, e.detail) for e in SystemAuditEntry.objects.order_by("id")] == [
        ("grant_access_level", {"access_level": level.pk, "name": "Lobby"}),
        ("remove_access_level", {"access_level": level.pk, "name": "Lobby"}),
    ]


def test_a_level_of_another_partition_cannot_be_granted():
    mine, other = make_partition(), make_partition()
    holder = make_cardholder(partition=mine)
    level = make_access_level(partition=other)
    operator = make_operator(VIEW, CHANGE, "accesscontrol.view_accesslevel", partitions=[mine])

    response = client_for(operator).post(
        reverse("cardholder_level_grant", args=[holder.pk]), {"access_level": level.pk}
    )

    assert response.status_code == 400
    assert "access_level" in response.context["level_form"].errors
    assert not holder.access_levels.exists()


def test_an_individual_permission_is_added_and_removed():
    holder = make_cardholder()
    zone = make_zone(name="Floor 3")
    client = admin()

    added = client.post(reverse("cardholder_permission_add", args=[holder.pk]), {"zone": zone.pk})
    permission = CardholderPermission.objects.get()
    client.post(reverse("cardholder_permission_remove", args=[holder.pk, permission.pk]))

    assert added.status_code == 302
    assert (permission.cardholder_id, permission.zone_id, permission.access_point_id) == (holder.pk, zone.pk, None)
    assert not CardholderPermission.objects.exists()
    assert [e.action for e in SystemAuditEntry.objects.order_by("id")] == ["create", "delete"]


def test_a_permission_needs_an_access_point_or_a_zone_not_both():
    holder = make_cardholder()

    response = admin().post(
        reverse("cardholder_permission_add", args=[holder.pk]),
        {"zone": make_zone().pk, "access_point": make_access_point().pk},
    )

    assert response.status_code == 400
    assert "Name either an access point or a zone." in response.context["permission_form"].non_field_errors()
    assert not CardholderPermission.objects.exists()


def test_without_the_permission_to_add_permissions_nothing_is_added():
    holder = make_cardholder()
    client = client_for(make_operator(VIEW, CHANGE, all_partitions=True))

    response = client.post(reverse("cardholder_permission_add", args=[holder.pk]), {"zone": make_zone().pk})

    assert response.status_code == 403
    assert not CardholderPermission.objects.exists()


def test_a_key_is_issued_from_the_detail_page_with_field_errors_for_a_bad_uid():
    holder = make_cardholder()
    make_key(make_cardholder(), uid="DEADBEEF")
    client = admin()

    bad = client.post(reverse("cardholder_key_issue", args=[holder.pk]), {"uid": "xyz", "kind": "card"})
    taken = client.post(reverse("cardholder_key_issue", args=[holder.pk]), {"uid": "de:ad:be:ef", "kind": "card"})
    good = client.post(reverse("cardholder_key_issue", args=[holder.pk]), {"uid": "04 11 22 33", "kind": "card"})

    assert bad.context["key_form"].errors["uid"] == ["A UID is 2 to 64 hexadecimal digits."]
    assert taken.context["key_form"].errors["uid"] == ["An issued key already has this UID."]
    assert good.status_code == 302
    assert list(holder.keys.values_list("uid", "status")) == [("04112233", "issued")]
    [entry] = entries("issue_key")
    assert (entry.address, entry.detail) == ("192.0.2.7", {"cardholder": holder.pk})


def test_keys_of_another_partitions_cardholder_cannot_be_issued():
    mine, other = make_partition(), make_partition()
    holder = make_cardholder(partition=other)
    operator = make_operator(VIEW, "accesscontrol.add_key", partitions=[mine])
    from tests.support.api import grant

    grant(operator, VIEW, [other])

    response = client_for(operator).post(
        reverse("cardholder_key_issue", args=[holder.pk]), {"uid": "0102", "kind": "card"}
    )

    assert response.status_code == 403
    assert not Key.objects.exists()
