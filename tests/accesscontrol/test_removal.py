"""Removing people and keys: one rule at every entrance (accesscontrol.actions).

Whoever deletes or deactivates a cardholder, or deletes a key, a key that could
still open a lock is cancelled and blacklisted first; the blacklist entry
outlives the rows. Each test removes Alice's card through one entrance, then
Bob's card, written afterwards, carries the blacklist to a software offline
lock loaded before the removal, which refuses Alice's card from then on.
"""

import datetime as dt
from types import SimpleNamespace

import pytest
from django.contrib import admin
from django.db import transaction
from django.db.models import ProtectedError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accesscontrol import actions
from accesscontrol.choices import KeyStatus
from accesscontrol.models import BlacklistEntry, Cardholder, Key, Stay, SystemAuditEntry
from devices import cards, locks
from integrations.ship import operations
from integrations.ship import xml as ship
from simulation.offline_lock import OfflineLock
from tests.devices.test_locks import make_lock
from tests.factories import make_access_level, make_access_point, make_cardholder, make_key, make_operator
from tests.hotel.support import days, make_room

pytestmark = pytest.mark.django_db

ALICE_UID = "04A11CE0000001"
BOB_UID = "04B0B000000002"


@pytest.fixture
def site():
    point = make_access_point(name="Store room")
    stores = make_access_level((point, None), name="Stores")
    alice = make_key(make_cardholder(stores, first_name="Alice", last_name="Archer", ext_id="ALICE"), uid=ALICE_UID)
    bob = make_key(make_cardholder(stores, first_name="Bob", last_name="Baker"), uid=BOB_UID)
    lock = OfflineLock(locks.lock_config(make_lock(point, device_id=7001)))
    alice_card = cards.card_bytes_for_key(alice)
    # The lock opens for Alice's card as written: what each removal must end.
    assert lock.present(alice_card, timezone.now(), uid=ALICE_UID)[0].granted
    return SimpleNamespace(alice=alice, bob=bob, lock=lock, alice_card=alice_card)


def refused_offline(site) -> str:
    """Bob's card, written now, visits the lock; then Alice's old card is presented: the reason it gets."""
    bob_card = cards.card_bytes_for_key(Key.objects.get(pk=site.bob.pk))
    assert site.lock.present(bob_card, timezone.now(), uid=BOB_UID)[0].granted
    outcome, _ = site.lock.present(site.alice_card, timezone.now(), uid=ALICE_UID)
    assert outcome.key_id == site.alice.pk
    return outcome.reason


def alices_entry(site) -> BlacklistEntry:
    return BlacklistEntry.objects.get(key_number=site.alice.pk, uid=ALICE_UID, until__gt=timezone.now())


def superuser():
    return make_operator(is_superuser=True, is_staff=True)


def web_client() -> Client:
    client = Client()
    client.force_login(superuser())
    return client


def api_client() -> APIClient:
    client = APIClient()
    client.force_login(superuser())
    return client


def admin_url(model, view, *args) -> str:
    return reverse(f"admin:accesscontrol_{model._meta.model_name}_{view}", args=args)


def actions_on(obj) -> list[str]:
    rows = SystemAuditEntry.objects.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk)).order_by("id")
    return list(rows.values_list("action", flat=True))


# --- the entrances ---------------------------------------------------------------------------------


def test_deleting_a_cardholder_in_the_web_app_blacklists_their_card(site):
    holder = site.alice.cardholder

    response = web_client().post(reverse("cardholder_delete", args=[holder.pk]))

    assert response.status_code == 302
    assert not Cardholder.objects.filter(pk=holder.pk).exists()
    assert not Key.objects.filter(pk=site.alice.pk).exists()
    assert alices_entry(site).key_id is None
    assert actions_on(site.alice) == ["cancel_key"]
    assert actions_on(holder) == ["delete"]
    assert refused_offline(site) == "blacklisted"


def test_deactivating_a_cardholder_in_the_web_app_blacklists_their_card_until_its_written_end(site):
    holder = site.alice.cardholder

    response = web_client().post(reverse("cardholder_deactivate", args=[holder.pk]))

    holder.refresh_from_db()
    site.alice.refresh_from_db()
    assert response.status_code == 302
    assert holder.expiration <= timezone.now()
    assert site.alice.status == KeyStatus.CANCELLED
    # The card carries no end, so neither does the entry (the site's default, a year), not the new expiration.
    assert alices_entry(site).until > timezone.now() + dt.timedelta(days=300)
    assert actions_on(holder) == ["deactivate"]
    assert refused_offline(site) == "blacklisted"


def test_deleting_a_cardholder_over_the_api_blacklists_their_card(site):
    response = api_client().delete(f"/api/v1/cardholders/{site.alice.cardholder_id}/")

    assert response.status_code == 204
    assert not Cardholder.objects.filter(pk=site.alice.cardholder_id).exists()
    assert alices_entry(site).key_id is None
    assert refused_offline(site) == "blacklisted"


def test_deleting_a_key_over_the_api_blacklists_it(site):
    response = api_client().delete(f"/api/v1/keys/{site.alice.pk}/")

    assert response.status_code == 204
    assert not Key.objects.filter(pk=site.alice.pk).exists()
    assert Cardholder.objects.filter(pk=site.alice.cardholder_id).exists()
    entry = alices_entry(site)
    assert actions_on(site.alice) == ["cancel_key", "delete"]
    cancelled = SystemAuditEntry.objects.get(action="cancel_key")
    assert cancelled.detail == {"cardholder": site.alice.cardholder_id, "blacklist_entry": entry.pk}
    assert refused_offline(site) == "blacklisted"


def test_deleting_a_cardholder_in_the_django_admin_blacklists_their_card(site):
    client = Client()
    client.force_login(superuser())
    holder = site.alice.cardholder

    page = client.get(admin_url(Cardholder, "delete", holder.pk))
    response = client.post(admin_url(Cardholder, "delete", holder.pk), {"post": "yes"})

    assert page.status_code == 200
    assert page.context["protected"] == []
    assert response.status_code == 302
    assert not Cardholder.objects.filter(pk=holder.pk).exists()
    assert alices_entry(site).key_id is None
    assert actions_on(holder) == ["delete"]
    assert refused_offline(site) == "blacklisted"


def test_bulk_deleting_cardholders_in_the_django_admin_blacklists_their_cards(site):
    carol = make_key(make_cardholder(last_name="Carter"), uid="04CA201000003")
    client = Client()
    client.force_login(superuser())
    selected = [site.alice.cardholder_id, carol.cardholder_id]

    response = client.post(
        admin_url(Cardholder, "changelist"),
        {"action": "delete_selected", "_selected_action": selected, "post": "yes"},
    )

    assert response.status_code == 302
    assert not Cardholder.objects.filter(pk__in=selected).exists()
    assert sorted(BlacklistEntry.objects.values_list("uid", flat=True)) == sorted([ALICE_UID, "04CA201000003"])
    assert SystemAuditEntry.objects.filter(action="delete", via="admin").count() == 2
    assert refused_offline(site) == "blacklisted"


def test_bulk_deleting_keys_in_the_django_admin_blacklists_them(site):
    client = Client()
    client.force_login(superuser())

    response = client.post(
        admin_url(Key, "changelist"), {"action": "delete_selected", "_selected_action": [site.alice.pk], "post": "yes"}
    )

    assert response.status_code == 302
    assert not Key.objects.filter(pk=site.alice.pk).exists()
    assert alices_entry(site).key_id is None
    assert actions_on(site.alice) == ["cancel_key", "delete"]
    assert refused_offline(site) == "blacklisted"


def test_deleting_a_user_over_ship_blacklists_their_card(site):
    operator = make_operator(
        "accesscontrol.view_cardholder", "accesscontrol.delete_cardholder", "accesscontrol.change_key",
        all_partitions=True,
    )  # fmt: skip
    request = ship.parse_request(ship.build_request("SaltoDBUser.Delete", [("ExtUserID", "ALICE")]))

    answer = ship.parse_response(operations.handle(request, operator, "192.0.2.7"))

    assert answer.error is None
    assert not Cardholder.objects.filter(ext_id="ALICE").exists()
    assert alices_entry(site).key_id is None
    assert refused_offline(site) == "blacklisted"


def test_a_key_marked_expired_whose_card_still_opens_is_blacklisted_on_deactivation(site):
    end = timezone.now() + dt.timedelta(days=3)
    Key.objects.filter(pk=site.alice.pk).update(status=KeyStatus.EXPIRED, valid_until=end)

    actions.deactivate_cardholder(site.alice.cardholder, operator=None, via="test")

    assert Key.objects.get(pk=site.alice.pk).status == KeyStatus.CANCELLED
    assert alices_entry(site).until == end
    assert refused_offline(site) == "blacklisted"


# --- what no entrance may do -------------------------------------------------------------------------


def test_a_raw_delete_of_a_cardholder_with_keys_is_refused(site):
    with pytest.raises(ProtectedError), transaction.atomic():
        site.alice.cardholder.delete()

    assert Key.objects.get(pk=site.alice.pk).status == KeyStatus.ISSUED
    assert not BlacklistEntry.objects.exists()


def test_a_guest_whose_stay_holds_on_to_them_is_not_deleted_and_keeps_their_key_issued(site):
    Stay.objects.create(
        room=make_room("101"), cardholder=site.alice.cardholder, arrival=timezone.now(), departure=days(2)
    )

    response = api_client().delete(f"/api/v1/cardholders/{site.alice.cardholder_id}/")

    # The cancellation is rolled back with the refused delete: one transaction.
    assert response.status_code == 409
    assert response.json()["used_by"] == ["Guest in Room 101"]
    assert Key.objects.get(pk=site.alice.pk).status == KeyStatus.ISSUED
    assert not BlacklistEntry.objects.exists()
    assert not SystemAuditEntry.objects.exists()


def test_the_admin_cannot_set_a_keys_status_and_cancels_through_the_blacklist(site):
    client = Client()
    client.force_login(superuser())

    response = client.post(
        admin_url(Key, "changelist"), {"action": "cancel_selected", "_selected_action": [site.alice.pk]}
    )

    assert response.status_code == 302
    assert "status" in admin_readonly_fields(Key)
    assert Key.objects.get(pk=site.alice.pk).status == KeyStatus.CANCELLED
    assert alices_entry(site).key_id == site.alice.pk
    assert refused_offline(site) == "blacklisted"


def admin_readonly_fields(model) -> list[str]:
    return list(admin.site.get_model_admin(model).readonly_fields)
