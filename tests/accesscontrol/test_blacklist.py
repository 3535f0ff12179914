"""The blacklist: cancelling a key adds it until the key would have expired; the purge takes it off again."""

import asyncio
import datetime as dt

import pytest
from django.utils import timezone

from accesscontrol import actions, blacklist, housekeeping
from accesscontrol.models import BlacklistEntry, Key
from accesscontrol.tasks import purge_blacklist
from core.periodic import PeriodicService
from space.celery import PURGE_BLACKLIST_EVERY_SECONDS, app
from space.services import embedded_services
from tests.factories import make_cardholder, make_key
from tests.support.api import client_with
from tests.support.waiting import until

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def cancel(key: Key, at: dt.datetime = NOW) -> BlacklistEntry | None:
    actions.cancel_key(key, operator=None, via="test", at=at)
    return BlacklistEntry.objects.filter(key=key).first()


def issued(key: Key, at: dt.datetime) -> Key:
    Key.objects.filter(pk=key.pk).update(issued_at=at)
    return Key.objects.get(pk=key.pk)


# --- cancelling --------------------------------------------------------------------------------------------


def test_a_cancelled_key_is_blacklisted_until_its_own_end():
    key = make_key(make_cardholder(), uid="04AABBCC", valid_until=NOW + 30 * DAY)

    entry = cancel(key)

    assert (entry.key_id, entry.key_number, entry.uid, entry.until) == (key.pk, key.pk, "04AABBCC", NOW + 30 * DAY)


def test_a_cardholder_expiring_before_the_key_ends_the_entry_then():
    key = make_key(make_cardholder(expiration=NOW + 5 * DAY), valid_until=NOW + 30 * DAY)

    assert cancel(key).until == NOW + 5 * DAY


def test_without_an_end_of_its_own_the_key_is_blacklisted_until_the_cardholder_expires():
    key = make_key(make_cardholder(expiration=NOW + 9 * DAY))

    assert cancel(key).until == NOW + 9 * DAY


def test_a_key_to_revalidate_is_blacklisted_until_its_revalidation_window_ends():
    key = issued(make_key(make_cardholder(key_revalidation_days=7)), NOW - 2 * DAY)

    assert cancel(key).until == NOW + 5 * DAY


def test_the_revalidation_window_runs_from_the_last_revalidation():
    key = issued(make_key(make_cardholder(key_revalidation_days=7), last_revalidated_at=NOW - DAY), NOW - 20 * DAY)

    assert cancel(key).until == NOW + 6 * DAY


def test_a_key_with_no_end_at_all_is_blacklisted_for_the_default_days(settings):
    settings.SPACE_BLACKLIST_DEFAULT_DAYS = 90
    key = make_key(make_cardholder())

    assert cancel(key).until == NOW + 90 * DAY


def test_an_expired_key_is_not_blacklisted():
    key = make_key(make_cardholder(), valid_until=NOW - DAY)

    assert cancel(key) is None
    assert Key.objects.get(pk=key.pk).status == "cancelled"


def test_a_key_not_cancellable_through_the_blacklist_is_not_blacklisted():
    key = make_key(make_cardholder(key_cancellable_through_blacklist=False), valid_until=NOW + DAY)

    assert cancel(key) is None
    assert not BlacklistEntry.objects.exists()


def test_cancelling_twice_makes_one_entry():
    key = make_key(make_cardholder(), valid_until=NOW + DAY)

    cancel(key)
    cancel(key, at=NOW + dt.timedelta(minutes=1))

    assert BlacklistEntry.objects.filter(key=key).count() == 1


def test_blacklisting_a_key_already_listed_adds_nothing():
    key = make_key(make_cardholder(), valid_until=NOW + DAY)
    cancel(key)

    assert blacklist.blacklist_key(key, NOW) is None
    assert BlacklistEntry.objects.count() == 1


def test_the_cancellation_names_the_entry_in_the_system_auditor():
    from accesscontrol.models import SystemAuditEntry

    key = make_key(make_cardholder(), valid_until=NOW + DAY)

    entry = cancel(key)

    assert SystemAuditEntry.objects.get(action="cancel_key").detail["blacklist_entry"] == entry.pk


# --- the purge ---------------------------------------------------------------------------------------------


def entry(until: dt.datetime, number: int = 1) -> BlacklistEntry:
    return BlacklistEntry.objects.create(key_number=number, uid=f"{number:02X}", until=until)


def test_the_purge_deletes_the_entries_whose_keys_would_have_expired():
    gone, also_gone, kept = entry(NOW - DAY), entry(NOW), entry(NOW + dt.timedelta(seconds=1))

    assert blacklist.purge_expired(NOW) == 2

    assert list(BlacklistEntry.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not BlacklistEntry.objects.filter(pk__in=[gone.pk, also_gone.pk]).exists()


def test_entry_numbers_keep_rising_after_the_newest_entry_was_purged():
    older = entry(NOW + DAY)
    newest = entry(NOW - DAY)
    blacklist.purge_expired(NOW)

    added = entry(NOW + DAY)

    assert added.pk > newest.pk > older.pk


def test_the_purge_task_purges(settings):
    entry(timezone.now() - DAY)
    kept = entry(timezone.now() + DAY)

    assert purge_blacklist.run() == "purged 1 blacklist entries, 0 rule changes, 0 presence changes, 0 photo files"
    assert list(BlacklistEntry.objects.values_list("pk", flat=True)) == [kept.pk]


def test_beat_purges_every_hour():
    schedule = app.conf.beat_schedule["purge-blacklist"]

    assert schedule["task"] == purge_blacklist.name == "accesscontrol.tasks.purge_blacklist"
    assert schedule["schedule"] == PURGE_BLACKLIST_EVERY_SECONDS == 3600


def test_runspace_purges_when_no_beat_runs(settings):
    settings.CELERY_BROKER_URL = "memory://"

    [purge] = [service for service in embedded_services() if getattr(service, "name", None) == "blacklist-purge"]

    assert (purge.function, purge.every) == (housekeeping.purge, PURGE_BLACKLIST_EVERY_SECONDS)


@pytest.mark.django_db(transaction=True)
def test_the_periodic_service_purges_at_start_on_its_own_thread_and_stops():
    entry(timezone.now() - DAY)
    kept = entry(timezone.now() + DAY)
    service = PeriodicService("blacklist-purge", blacklist.purge_expired, every=3600)

    async def run():
        await service.start()
        await until(lambda: service.runs, timeout=2)
        await service.stop()

    asyncio.run(run())

    assert service.runs == 1
    assert list(BlacklistEntry.objects.values_list("pk", flat=True)) == [kept.pk]


# --- the API -----------------------------------------------------------------------------------------------


def test_the_api_lists_the_entries_in_force_oldest_first():
    expired = entry(timezone.now() - dt.timedelta(seconds=1), number=1)
    first, second = entry(timezone.now() + DAY, number=2), entry(timezone.now() + 2 * DAY, number=3)
    client = client_with("accesscontrol.view_blacklistentry")

    response = client.get("/api/v1/blacklist/")

    rows = response.json()["results"]
    assert response.status_code == 200
    assert [row["number"] for row in rows] == [first.pk, second.pk]
    assert expired.pk not in [row["id"] for row in rows]
    assert rows[0]["key_number"] == 2
    assert rows[0]["uid"] == "02"


def test_the_api_lists_what_a_lock_holding_up_to_a_number_lacks():
    first, second = entry(timezone.now() + DAY, number=2), entry(timezone.now() + DAY, number=3)
    client = client_with("accesscontrol.view_blacklistentry")

    response = client.get("/api/v1/blacklist/", {"after": first.pk})

    assert [row["id"] for row in response.json()["results"]] == [second.pk]


def test_the_api_finds_an_entry_by_uid_however_it_is_written():
    entry(timezone.now() + DAY, number=0xAB)
    client = client_with("accesscontrol.view_blacklistentry")

    response = client.get("/api/v1/blacklist/", {"uid": "ab"})

    assert [row["uid"] for row in response.json()["results"]] == ["AB"]


def test_without_the_view_permission_the_api_refuses_the_blacklist():
    entry(timezone.now() + DAY)
    client = client_with("accesscontrol.view_key")

    assert client.get("/api/v1/blacklist/").status_code == 403


# --- the admin ---------------------------------------------------------------------------------------------


def test_the_blacklist_is_read_only_in_the_admin(client):
    from tests.factories import make_operator

    listed = entry(timezone.now() + DAY)
    client.force_login(make_operator(is_superuser=True, is_staff=True))

    page = client.get("/admin/accesscontrol/blacklistentry/")
    change = client.post(f"/admin/accesscontrol/blacklistentry/{listed.pk}/change/", {"uid": "FF"})

    assert page.status_code == 200
    assert listed.uid in page.content.decode()
    assert client.get("/admin/accesscontrol/blacklistentry/add/").status_code == 403
    assert change.status_code == 403
    assert BlacklistEntry.objects.get(pk=listed.pk).uid == listed.uid
