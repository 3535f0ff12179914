"""Key pages: the list with UID search and filters, issue, cancel behind a confirmation, revalidate."""

import datetime as dt

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accesscontrol.choices import KeyStatus
from accesscontrol.models import Key, SystemAuditEntry
from tests.factories import make_cardholder, make_key, make_operator, make_partition
from tests.support.api import client_for as api_client_for

pytestmark = pytest.mark.django_db

VIEW = "accesscontrol.view_key"
ADD = "accesscontrol.add_key"
CHANGE = "accesscontrol.change_key"


def client_for(operator) -> Client:
    client = Client(REMOTE_ADDR="192.0.2.9")
    client.force_login(operator)
    return client


def admin() -> Client:
    return client_for(make_operator(is_superuser=True))


def uids(response) -> list[str]:
    return sorted(key.uid for key in response.context["page_obj"].object_list)


def local_input(moment: dt.datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%dT%H:%M")


# --- the list ----------------------------------------------------------------------


def test_the_list_finds_keys_by_their_uid_or_its_beginning():
    holder = make_cardholder()
    make_key(holder, uid="04A1B2C3")
    make_key(holder, uid="04A1FFFF")
    make_key(holder, uid="0500AAAA")
    client = admin()

    assert uids(client.get(reverse("keys"), {"q": "04:a1"})) == ["04A1B2C3", "04A1FFFF"]
    assert uids(client.get(reverse("keys"), {"q": "04A1B2C3"})) == ["04A1B2C3"]
    assert uids(client.get(reverse("keys"), {"q": "not hex"})) == []


def test_the_list_filters_by_status_kind_and_partition():
    north, south = make_partition(), make_partition()
    make_key(make_cardholder(partition=north), uid="0001", kind="card")
    make_key(make_cardholder(partition=north), uid="0002", kind="mobile", status=KeyStatus.CANCELLED)
    make_key(make_cardholder(partition=south), uid="0003", kind="fob")
    client = admin()

    assert uids(client.get(reverse("keys"), {"status": "cancelled"})) == ["0002"]
    assert uids(client.get(reverse("keys"), {"kind": "fob"})) == ["0003"]
    assert uids(client.get(reverse("keys"), {"partition": north.pk})) == ["0001", "0002"]
    assert uids(client.get(reverse("keys"), {"status": "lost", "partition": "x"})) == ["0001", "0002", "0003"]


def test_an_operator_lists_only_keys_of_their_partitions_cardholders():
    mine, other = make_partition(), make_partition()
    make_key(make_cardholder(partition=mine), uid="AA01")
    make_key(make_cardholder(partition=other), uid="BB02")

    response = client_for(make_operator(VIEW, partitions=[mine])).get(reverse("keys"))

    assert uids(response) == ["AA01"]


def test_the_key_list_has_a_constant_number_of_queries():
    for _ in range(110):
        make_key(make_cardholder())
    client = client_for(make_operator(VIEW, CHANGE, "accesscontrol.view_cardholder", all_partitions=True))
    client.get(reverse("keys"))

    counts = []
    for per_page in (10, 100):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(reverse("keys"), {"per_page": per_page})
        assert len(response.context["page_obj"].object_list) == per_page
        counts.append(len(queries))

    assert counts[0] == counts[1]


def test_without_the_view_permission_the_key_list_is_forbidden():
    assert client_for(make_operator("accesscontrol.view_cardholder")).get(reverse("keys")).status_code == 403


# --- issue ----------------------------------------------------------------------------


def test_a_key_is_issued_to_a_cardholder_named_by_number_or_external_id():
    by_number = make_cardholder()
    by_ext_id = make_cardholder(ext_id="HR-7")
    client = admin()

    first = client.post(reverse("key_issue"), {"cardholder": str(by_number.pk), "uid": "0A0B", "kind": "card"})
    second = client.post(reverse("key_issue"), {"cardholder": "HR-7", "uid": "0C0D", "kind": "mobile"})

    assert first["Location"] == reverse("cardholder", args=[by_number.pk])
    assert second["Location"] == reverse("cardholder", args=[by_ext_id.pk])
    assert list(Key.objects.order_by("uid").values_list("cardholder_id", "uid", "kind")) == [
        (by_number.pk, "0A0B", "card"),
        (by_ext_id.pk, "0C0D", "mobile"),
    ]
    assert SystemAuditEntry.objects.filter(action="issue_key", address="192.0.2.9").count() == 2


def test_issuing_gives_field_errors_for_an_unknown_cardholder_and_a_bad_window():
    holder = make_cardholder()
    now = timezone.now()

    response = admin().post(
        reverse("key_issue"),
        {
            "cardholder": "nobody",
            "uid": "0A0B",
            "kind": "card",
            "valid_from": local_input(now + dt.timedelta(days=2)),
            "valid_until": local_input(now + dt.timedelta(days=1)),
        },
    )

    errors = response.context["form"].errors
    assert response.status_code == 400
    assert errors["cardholder"] == ["No cardholder you may see has this number or external id."]
    assert errors["valid_until"] == ["The end of validity must come after its start."]
    assert not holder.keys.exists()


def test_keys_cannot_be_issued_to_cardholders_of_another_partition():
    mine, other = make_partition(), make_partition()
    holder = make_cardholder(partition=other)
    operator = make_operator(VIEW, ADD, "accesscontrol.view_cardholder", partitions=[mine])

    response = client_for(operator).post(
        reverse("key_issue"), {"cardholder": str(holder.pk), "uid": "0A0B", "kind": "card"}
    )

    assert response.status_code == 400
    assert response.context["form"].errors["cardholder"] == [
        "No cardholder you may see has this number or external id."
    ]
    assert not Key.objects.exists()


# --- cancel ---------------------------------------------------------------------------


def test_a_key_is_cancelled_behind_a_confirmation_and_recorded():
    key = make_key(make_cardholder(), uid="CAFE01")
    client = admin()

    page = client.get(reverse("keys")).content.decode()
    response = client.post(reverse("key_cancel", args=[key.pk]), {"next": reverse("keys") + "?q=CA"})

    key.refresh_from_db()
    assert 'data-confirm="Cancel key CAFE01?' in page
    assert response["Location"] == reverse("keys") + "?q=CA"
    assert key.status == KeyStatus.CANCELLED
    [entry] = SystemAuditEntry.objects.filter(action="cancel_key")
    assert (entry.via, entry.address, entry.object_id) == ("web", "192.0.2.9", str(key.pk))


def test_cancel_does_not_follow_a_next_address_elsewhere():
    key = make_key(make_cardholder())

    response = admin().post(reverse("key_cancel", args=[key.pk]), {"next": "https://evil.example/"})

    assert response["Location"] == reverse("keys")


def test_without_the_change_permission_a_key_is_not_cancelled():
    key = make_key(make_cardholder())
    client = client_for(make_operator(VIEW, all_partitions=True))

    response = client.post(reverse("key_cancel", args=[key.pk]))

    key.refresh_from_db()
    assert response.status_code == 403
    assert key.status == KeyStatus.ISSUED
    assert not SystemAuditEntry.objects.exists()


def test_a_key_of_another_partition_cannot_be_cancelled():
    mine, other = make_partition(), make_partition()
    key = make_key(make_cardholder(partition=other))
    client = client_for(make_operator(VIEW, CHANGE, partitions=[mine]))

    response = client.post(reverse("key_cancel", args=[key.pk]))

    key.refresh_from_db()
    assert response.status_code == 404
    assert key.status == KeyStatus.ISSUED


# --- revalidate -------------------------------------------------------------------------


def test_a_key_is_revalidated_to_a_chosen_end_and_the_change_recorded():
    key = make_key(make_cardholder(), valid_until=timezone.now() + dt.timedelta(days=1))
    end = (timezone.now() + dt.timedelta(days=30)).replace(second=0, microsecond=0)
    old_end = key.valid_until

    response = admin().post(reverse("key_revalidate", args=[key.pk]), {"valid_until": local_input(end)})

    key.refresh_from_db()
    assert response.status_code == 302
    assert (key.valid_until, key.revision, key.status) == (end, 2, KeyStatus.ISSUED)
    assert key.last_revalidated_at is not None
    [entry] = SystemAuditEntry.objects.filter(action="revalidate_key")
    assert entry.address == "192.0.2.9"
    assert entry.detail["changes"] == {
        "valid_until": {"from": old_end.isoformat(), "to": end.isoformat()},
        "revision": {"from": 1, "to": 2},
    }


def test_revalidation_without_a_date_follows_the_cardholders_period_within_their_expiration():
    now = timezone.now()
    periodic = make_key(make_cardholder(key_revalidation_days=7))
    capped = make_key(make_cardholder(key_revalidation_days=30, expiration=now + dt.timedelta(days=3)))
    client = admin()

    client.post(reverse("key_revalidate", args=[periodic.pk]), {"valid_until": ""})
    client.post(reverse("key_revalidate", args=[capped.pk]), {"valid_until": ""})

    periodic.refresh_from_db()
    capped.refresh_from_db()
    assert (
        dt.timedelta(days=7) - dt.timedelta(minutes=1) < periodic.valid_until - now <= dt.timedelta(days=7, minutes=1)
    )
    assert capped.valid_until == capped.cardholder.expiration


def test_an_expired_key_is_issued_again_by_revalidation():
    key = make_key(make_cardholder(), status=KeyStatus.EXPIRED)

    admin().post(reverse("key_revalidate", args=[key.pk]), {"valid_until": ""})

    key.refresh_from_db()
    assert (key.status, key.valid_until) == (KeyStatus.ISSUED, None)


def test_revalidation_refuses_a_past_end_and_a_cancelled_key():
    key = make_key(make_cardholder())
    cancelled = make_key(make_cardholder(), status=KeyStatus.CANCELLED)
    client = admin()

    past = client.post(reverse("key_revalidate", args=[key.pk]), {"valid_until": "2020-01-01T00:00"})
    refused = client.post(reverse("key_revalidate", args=[cancelled.pk]), {"valid_until": ""})

    key.refresh_from_db()
    assert past.status_code == refused.status_code == 400
    assert past.context["form"].errors["valid_until"] == ["The new end of validity must be in the future."]
    assert refused.context["form"].non_field_errors() == ["A cancelled key cannot be revalidated: issue a new key."]
    assert key.revision == 1
    assert not SystemAuditEntry.objects.exists()


def test_without_the_change_permission_a_key_is_not_revalidated():
    key = make_key(make_cardholder())

    response = client_for(make_operator(VIEW, all_partitions=True)).post(reverse("key_revalidate", args=[key.pk]), {})

    key.refresh_from_db()
    assert response.status_code == 403
    assert key.revision == 1


def test_the_api_revalidates_a_key_too():
    key = make_key(make_cardholder())
    end = timezone.now() + dt.timedelta(days=10)
    client = api_client_for(make_operator(VIEW, CHANGE, all_partitions=True))

    response = client.post(f"/api/v1/keys/{key.pk}/revalidate/", {"valid_until": end.isoformat()}, format="json")
    refused = client.post(f"/api/v1/keys/{key.pk}/revalidate/", {"valid_until": "2020-01-01T00:00:00Z"}, format="json")

    assert response.status_code == 200
    assert response.json()["revision"] == 2
    assert refused.status_code == 400
    assert refused.json()["valid_until"] == ["The new end of validity must be in the future."]
    assert SystemAuditEntry.objects.get(action="revalidate_key").via == "api"
