"""The web app's offline lock pages (list, a lock's detail) and the blacklist page."""

import datetime as dt

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accesscontrol.models import BlacklistEntry
from devices import locks
from devices.models import Device, DeviceDoor, LockState
from tests.accesscontrol.web.places_helpers import client_with, page_text
from tests.factories import make_access_point, make_cardholder, make_key, make_partition

pytestmark = pytest.mark.django_db

VIEW = ("devices.view_device", "accesscontrol.view_accesspoint")
BLACKLIST = ("accesscontrol.view_blacklistentry", "accesscontrol.view_cardholder")


def make_lock(device_id: int, point=None, **fields) -> Device:
    lock = Device.objects.create(
        device_id=device_id, name=fields.pop("name", f"Lock {device_id}"), kind="offline_lock", **fields
    )
    if point is not None:
        DeviceDoor.objects.create(device=lock, number=1, access_point=point)
    return lock


def load(lock, *, revision=None, blacklist_number=0, battery=90, at=None, **state) -> LockState:
    """A PPD loaded ``lock`` (with the configuration wanted now, unless ``revision``) at ``at``."""
    at = at or timezone.now() - dt.timedelta(hours=1)
    revision = revision or locks.lock_config(lock).revision
    locks.record_loaded(
        lock, config_revision=revision, blacklist_number=blacklist_number, battery=battery, at=at, operator=None
    )
    if state:
        LockState.objects.filter(device=lock).update(**state)
    return LockState.objects.get(device=lock)


def blacklist(holder, uid: str, *, made=None, until=None) -> BlacklistEntry:
    key = make_key(holder, uid=uid, status="cancelled", cancelled_at=timezone.now())
    entry = BlacklistEntry.objects.create(
        key=key, key_number=key.pk, uid=uid, until=until or timezone.now() + dt.timedelta(days=30)
    )
    BlacklistEntry.objects.filter(pk=entry.pk).update(created_at=made or timezone.now())
    return entry


def row_of(text: str, name: str) -> str:
    """The table row of the lock called ``name``."""
    start = text.index(f">{name}</a>")
    return text[text.rindex("<tr>", 0, start) : text.index("</tr>", start)]


# --- the offline locks page ----------------------------------------------------------------------


def test_each_lock_shows_what_it_runs_what_it_reported_and_why_it_needs_a_visit(partition):
    holder = make_cardholder(partition=partition)
    entry = blacklist(holder, "0A0A0A0A", made=timezone.now() - dt.timedelta(days=8))
    current = make_lock(1, make_access_point(name="Room 101", partition=partition), name="Lock 101")
    load(current, blacklist_number=entry.pk, collected_at=timezone.now() - dt.timedelta(minutes=5))
    behind = make_lock(2, make_access_point(name="Room 102", partition=partition), name="Lock 102")
    load(behind, revision=1234, battery=9, events_pending=600, clock_set_at=None)
    make_lock(3, make_access_point(name="Room 103", partition=partition), name="Lock 103")
    make_lock(4, name="Lock in a box")

    text = page_text(client_with(*VIEW, partitions=[partition]).get(reverse("offline_locks")))

    up_to_date = row_of(text, "Lock 101")
    assert "Room 101" in up_to_date and "90%" in up_to_date
    assert up_to_date.count("Up to date") == 2 and f"#{entry.pk}" in up_to_date
    assert "No visit needed" in up_to_date and "5\xa0minutes ago" in up_to_date
    wanted = locks.lock_config(behind).revision
    outdated = row_of(text, "Lock 102")
    assert f"000004d2 → {wanted:08x}" in outdated and "9%" in outdated and ">600<" in outdated
    assert f"#0 of #{entry.pk}" in outdated
    for words in (
        "Its configuration changed: load the new one",
        "Blacklist behind: cards cannot catch it up",
        "Battery low: replace it",
        "Audit trail to collect: its buffer is filling up",
        "Clock not set, or not for a long time",
    ):
        assert words in outdated
    assert "Never initialised: no PPD has loaded it yet" not in outdated
    never = row_of(text, "Lock 103")
    assert "Never initialised: no PPD has loaded it yet" in never and "Not loaded" in never
    assert "No door mapped" in row_of(text, "Lock in a box")
    assert "2 of 4 offline locks need a PPD visit." in text


def test_needs_update_only_leaves_out_the_locks_that_are_up_to_date(partition):
    current = make_lock(1, make_access_point(partition=partition), name="Current lock")
    load(current)
    make_lock(2, make_access_point(partition=partition), name="New lock")
    client = client_with(*VIEW, partitions=[partition])

    everything = client.get(reverse("offline_locks"))
    needing = client.get(reverse("offline_locks"), {"needs_update": "1"})

    assert [lock.device.name for lock in everything.context["page_obj"]] == ["Current lock", "New lock"]
    assert [lock.device.name for lock in needing.context["page_obj"]] == ["New lock"]
    assert 'name="needs_update" value="1" checked' in page_text(needing)


def test_only_offline_locks_are_listed(partition):
    make_lock(1, name="Store lock")
    Device.objects.create(device_id=2, name="Lobby controller", kind="control_unit")

    response = client_with(*VIEW, partitions=[partition]).get(reverse("offline_locks"))

    assert [lock.device.name for lock in response.context["page_obj"]] == ["Store lock"]


def test_a_site_without_offline_locks_says_so(partition):
    text = page_text(client_with(*VIEW, partitions=[partition]).get(reverse("offline_locks")))

    assert "No offline locks." in text and "need a PPD visit" not in text


def test_an_access_point_of_another_partition_is_not_named(partition):
    make_lock(1, make_access_point(name="Vault", partition=partition))

    text = page_text(client_with(*VIEW, partitions=[make_partition()]).get(reverse("offline_locks")))

    assert "Vault" not in text and "Another partition" in text


def test_without_the_device_view_permission_the_page_is_forbidden(partition):
    make_lock(1, make_access_point(name="Vault", partition=partition))
    client = client_with("accesscontrol.view_accesspoint", partitions=[partition])

    assert client.get(reverse("offline_locks")).status_code == 403
    anonymous = Client().get(reverse("offline_locks"))
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("login"))


def test_the_page_makes_as_many_queries_for_fifty_locks_as_for_five(partition, django_assert_max_num_queries):
    holder = make_cardholder(partition=partition)
    blacklist(holder, "0B0B0B0B")

    def add_locks(first, count):
        for number in range(first, first + count):
            lock = make_lock(number, make_access_point(name=f"Room {number}", partition=partition))
            if number % 2:
                load(lock, battery=number % 100)

    add_locks(1, 5)
    client = client_with(*VIEW, partitions=[partition])
    with CaptureQueriesContext(connection) as five:
        assert client.get(reverse("offline_locks")).status_code == 200
    add_locks(6, 45)

    with django_assert_max_num_queries(len(five)):
        response = client.get(reverse("offline_locks"))

    assert len(response.context["page_obj"]) == 50


# --- an offline lock's detail page ---------------------------------------------------------------


def test_a_locks_detail_page_shows_its_state_and_reasons(partition):
    lock = make_lock(1, make_access_point(name="Room 201", partition=partition))
    load(lock, battery=12)

    text = page_text(client_with(*VIEW, partitions=[partition]).get(reverse("device", args=[lock.pk])))

    section = text[text.index('id="lock-title"') :]
    assert "Room 201" in section and "12%" in section and "Battery low: replace it" in section
    assert section.count("Up to date") == 2


def test_other_devices_have_no_offline_lock_section(partition):
    unit = Device.objects.create(device_id=2, name="Lobby controller", kind="control_unit")

    text = page_text(client_with(*VIEW, partitions=[partition]).get(reverse("device", args=[unit.pk])))

    assert 'id="lock-title"' not in text


# --- the blacklist page --------------------------------------------------------------------------


def test_the_blacklist_shows_the_entries_in_force_newest_first_with_their_count(partition):
    holder = make_cardholder(partition=partition, first_name="Ada", last_name="Lovelace")
    old = blacklist(holder, "0A000001", made=timezone.now() - dt.timedelta(days=2))
    new = blacklist(holder, "0A000002", until=timezone.now() + dt.timedelta(days=3))
    blacklist(holder, "0A000003", until=timezone.now() - dt.timedelta(minutes=1))  # expired: not in force

    response = client_with(*BLACKLIST, partitions=[partition]).get(reverse("blacklist"))

    assert list(response.context["page_obj"]) == [new, old]
    assert (response.context["entry_count"], response.context["newest"]) == (2, new.pk)
    text = page_text(response)
    assert 'id="blacklist-count">2<' in text and f'id="blacklist-newest">#{new.pk}<' in text
    assert f'<a href="{reverse("cardholder", args=[holder.pk])}">{holder}</a>' in text
    assert "0A000003" not in text
    row = text[text.index("0A000002") :]
    assert timezone.localtime(new.until).strftime("%Y-%m-%d %H:%M") in row[: row.index("</tr>")]


def test_the_blacklist_is_paged_and_searched_by_uid(partition):
    holder = make_cardholder(partition=partition)
    entries = [blacklist(holder, f"0C{number:06X}") for number in range(12)]
    client = client_with(*BLACKLIST, partitions=[partition])

    first = client.get(reverse("blacklist"), {"per_page": 10})
    second = client.get(reverse("blacklist"), {"per_page": 10, "page": 2})
    found = client.get(reverse("blacklist"), {"q": "0c00000b"})

    assert list(first.context["page_obj"]) == entries[::-1][:10]
    assert list(second.context["page_obj"]) == entries[1::-1]
    assert list(found.context["page_obj"]) == [entries[11]]


def test_a_cardholder_of_another_partition_is_not_named(partition):
    blacklist(make_cardholder(partition=partition, last_name="Hopper"), "0D0D0D0D")

    text = page_text(client_with(*BLACKLIST, partitions=[make_partition()]).get(reverse("blacklist")))

    assert "0D0D0D0D" in text and "Hopper" not in text and "Another partition" in text


def test_without_the_blacklist_view_permission_the_page_is_forbidden(partition):
    response = client_with("accesscontrol.view_key", partitions=[partition]).get(reverse("blacklist"))

    assert response.status_code == 403


def test_the_menu_links_the_new_pages_for_those_who_may_open_them(partition):
    both = page_text(client_with(*VIEW, *BLACKLIST, partitions=[partition]).get(reverse("devices")))
    neither = page_text(client_with("devices.view_device", partitions=[partition]).get(reverse("devices")))

    assert f'href="{reverse("offline_locks")}"' in both and f'href="{reverse("blacklist")}"' in both
    assert f'href="{reverse("blacklist")}"' not in neither
