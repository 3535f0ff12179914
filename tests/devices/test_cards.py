"""The server's side of data-on-card: the site card key, card data from the database, and updaters."""

import datetime as dt
import threading

import pytest
from django.db import connection

from accesscontrol import actions
from accesscontrol.choices import AuditKind, KeyStatus
from accesscontrol.models import AccessPoint, AuditEvent, BlacklistEntry, CardholderPermission, Key, SiteSettings
from core import vault
from devices import carddata, cards
from devices.carddata import POINT, ZONE, BlacklistItem, CardGrant, LockStatus
from devices.choices import DeviceKind
from devices.models import Device, LockState
from tests.factories import (
    give_permission,
    make_access_level,
    make_access_point,
    make_cardholder,
    make_key,
    make_time_period,
    make_zone,
    unique,
)

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
UPDATER = None  # most tests present cards to an updater the audit event need not name


def seconds(moment: dt.datetime) -> int:
    return int(moment.timestamp())


def decoded(raw: bytes) -> carddata.CardData:
    site, key = cards.site_card_key()
    return carddata.decode(raw, key, site)


def present(key: Key, raw: bytes, at: dt.datetime = NOW, uid: str | None = None, updater=UPDATER):
    return cards.update_card(raw, uid=uid or key.uid, updater_id=updater, now=at)


def issued(key: Key, at: dt.datetime) -> Key:
    """The key as if issued at ``at`` (issued_at is set by the database on creation)."""
    Key.objects.filter(pk=key.pk).update(issued_at=at)
    return Key.objects.select_related("cardholder").get(pk=key.pk)


def with_status(raw: bytes, status: LockStatus) -> bytes:
    site, key = cards.site_card_key()
    return carddata.write_status(raw, key, site, status)


# --- the site card key -----------------------------------------------------------------------------------


def test_the_site_card_key_is_made_once_and_sealed_at_rest():
    site, key = cards.site_card_key()

    stored = SiteSettings.objects.get(pk=1)
    assert 0 < site < 2**32
    assert len(key) == carddata.SITE_KEY_SIZE
    assert cards.site_card_key() == (site, key)
    assert stored.site_code == site
    assert key not in bytes(stored.card_key_sealed)
    assert vault.unseal(stored.card_key_sealed, cards.CARD_KEY_PURPOSE) == key


def test_an_existing_site_row_gets_a_card_key_without_losing_its_settings():
    SiteSettings.objects.create(name="Hotel Nord", lockdown=True)

    site, _ = cards.site_card_key()

    stored = SiteSettings.objects.get(pk=1)
    assert (stored.name, stored.lockdown, stored.site_code) == ("Hotel Nord", True, site)


def test_a_card_key_stored_by_another_process_is_picked_up_at_once():
    cards.site_card_key()
    other = bytes(range(32))
    SiteSettings.objects.filter(pk=1).update(card_key_sealed=vault.seal(other, cards.CARD_KEY_PURPOSE))

    assert cards.site_card_key()[1] == other


@pytest.mark.django_db(transaction=True)
def test_processes_racing_to_make_the_card_key_all_get_the_one_stored():
    barrier = threading.Barrier(4)
    results = []

    def first_use():
        barrier.wait()
        try:
            results.append(cards.site_card_key())
        finally:
            connection.close()

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    stored = SiteSettings.objects.get(pk=1)
    assert len(results) == 4
    assert set(results) == {(stored.site_code, vault.unseal(stored.card_key_sealed, cards.CARD_KEY_PURPOSE))}


# --- card data -------------------------------------------------------------------------------------------


def test_the_access_list_merges_levels_and_permissions_per_target_and_any_time_wins():
    office_hours, nights, weekends = make_time_period(), make_time_period(), make_time_period()
    lobby, lab, store = make_access_point(), make_access_point(), make_access_point()
    wing = make_zone()
    level = make_access_level((lobby, office_hours), (lab, office_hours), (wing, weekends))
    other_level = make_access_level((lobby, nights), store)
    holder = make_cardholder(level, other_level)
    give_permission(holder, lab)  # at any time: wins over the level's office hours
    give_permission(holder, wing, nights)
    key = make_key(holder)

    card = cards.card_data_for_key(key, NOW)

    assert card.grants == (
        CardGrant(POINT, lobby.pk, tuple(sorted((office_hours.pk, nights.pk)))),
        CardGrant(POINT, lab.pk, ()),
        CardGrant(POINT, store.pk, ()),
        CardGrant(ZONE, wing.pk, tuple(sorted((nights.pk, weekends.pk)))),
    )


def test_the_same_rights_give_the_same_access_list_whatever_order_they_were_given_in():
    points = [make_access_point() for _ in range(6)]
    first = make_cardholder(make_access_level(*points[:3]), make_access_level(*points[3:]))
    second = make_cardholder(make_access_level(*reversed(points[3:])))
    for point in reversed(points[:3]):
        give_permission(second, point)

    assert cards.card_grants(first.pk) == cards.card_grants(second.pk)


def test_a_cardholder_without_rights_carries_an_empty_access_list():
    assert cards.card_data_for_key(make_key(make_cardholder()), NOW).grants == ()


def test_the_card_carries_the_cardholders_flags_and_the_keys_identity():
    holder = make_cardholder(
        office=True, override_privacy=True, audit_openings=False, use_anti_passback=True, extended_open_time=True
    )
    key = make_key(holder, uid="04A1B2C3", revision=7)

    card = cards.card_data_for_key(key, NOW)

    site, _ = cards.site_card_key()
    assert (card.site, card.key_id, card.uid, card.cardholder_id) == (site, key.pk, "04A1B2C3", holder.pk)
    assert card.revision == 7
    assert card.issued_at == seconds(NOW)
    assert (card.office, card.override_privacy, card.override_lockdown) == (True, True, False)
    assert (card.audit_openings, card.anti_passback, card.extended_open_time) == (False, True, True)


def test_the_validity_is_the_keys_bounded_by_the_cardholders_activation_and_expiration():
    holder = make_cardholder(activation=NOW - dt.timedelta(days=10), expiration=NOW + dt.timedelta(days=20))
    early = make_key(holder, valid_from=NOW - dt.timedelta(days=30), valid_until=NOW + dt.timedelta(days=40))
    narrow = make_key(holder, valid_from=NOW - dt.timedelta(days=2), valid_until=NOW + dt.timedelta(days=3))
    open_ended = make_key(make_cardholder())

    assert _validity(early) == (NOW - dt.timedelta(days=10), NOW + dt.timedelta(days=20))
    assert _validity(narrow) == (NOW - dt.timedelta(days=2), NOW + dt.timedelta(days=3))
    assert _validity(open_ended) == (None, None)


def _validity(key: Key) -> tuple:
    card = cards.card_data_for_key(key, NOW)
    return tuple(moment(value) for value in (card.valid_from, card.valid_until))


def moment(value: int | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.UTC)


def test_with_a_revalidation_period_the_card_ends_that_long_after_the_issue_or_the_last_revalidation():
    holder = make_cardholder(key_revalidation_days=7)
    fresh = issued(make_key(holder), NOW - dt.timedelta(days=2))
    revalidated = issued(make_key(holder, last_revalidated_at=NOW - dt.timedelta(days=1)), NOW - dt.timedelta(days=30))
    short = issued(make_key(holder, valid_until=NOW + dt.timedelta(days=1)), NOW)

    assert _validity(fresh)[1] == NOW + dt.timedelta(days=5)
    assert _validity(revalidated)[1] == NOW + dt.timedelta(days=6)
    assert _validity(short)[1] == NOW + dt.timedelta(days=1)


def test_the_card_carries_the_newest_blacklist_entries_in_force_ascending():
    holder = make_cardholder()
    entries = [
        BlacklistEntry.objects.create(key_number=1000 + i, uid=f"{i:08X}", until=NOW + dt.timedelta(days=1 + i))
        for i in range(cards.BLACKLIST_ON_CARD + 6)
    ]
    BlacklistEntry.objects.create(key_number=999, uid="DEAD", until=NOW - dt.timedelta(seconds=1))  # expired

    card = cards.card_data_for_key(make_key(holder), NOW)

    newest = entries[-cards.BLACKLIST_ON_CARD :]
    assert card.blacklist == tuple(BlacklistItem(e.pk, e.key_number, seconds(e.until)) for e in newest)


def test_the_card_file_decodes_to_the_card_data_built_for_the_key():
    holder = make_cardholder(make_access_level(make_access_point(), make_zone()), key_revalidation_days=3)
    key = make_key(holder)

    raw = cards.card_bytes_for_key(key, NOW)

    assert len(raw) <= carddata.CARD_FILE_SIZE
    assert decoded(raw) == cards.card_data_for_key(key, NOW)


def test_rights_that_do_not_fit_on_a_card_raise_card_too_big_naming_what_to_reduce():
    holder = make_cardholder()
    periods = [make_time_period() for _ in range(3)]
    give_permissions(holder, access_points(2500), periods)

    with pytest.raises(carddata.CardTooBig, match=r"remove at least [\d,]+ access points or zones"):
        cards.card_bytes_for_key(make_key(holder), NOW)


def access_points(count: int) -> list[AccessPoint]:
    return AccessPoint.objects.bulk_create(AccessPoint(name=unique("Room")) for _ in range(count))


def give_permissions(holder, points, periods=(None,)) -> None:
    CardholderPermission.objects.bulk_create(
        CardholderPermission(cardholder=holder, access_point=point, time_period=periods[number % len(periods)])
        for number, point in enumerate(points)
    )


@pytest.mark.parametrize("count", [5, 500])
def test_building_card_data_takes_the_same_few_queries_for_5_or_500_access_points(count, django_assert_max_num_queries):
    points = access_points(count)
    holder = make_cardholder(make_access_level(*points[: count // 2]))
    give_permissions(holder, points[count // 2 :])
    key = Key.objects.get(pk=make_key(holder).pk)  # as a caller has it: the cardholder not loaded
    BlacklistEntry.objects.create(key_number=1, uid="01", until=NOW + dt.timedelta(days=1))
    cards.site_card_key()  # made once per site, not per card

    with django_assert_max_num_queries(4):
        raw = cards.card_bytes_for_key(key, NOW)

    assert len(decoded(raw).grants) == count


# --- updaters ----------------------------------------------------------------------------------------------


def a_card(holder=None, at: dt.datetime = NOW, **key_fields) -> tuple[Key, bytes]:
    """A key issued at ``at`` and the card written for it then."""
    holder = holder or make_cardholder(make_access_level(make_access_point()))
    key = issued(make_key(holder, **key_fields), at)
    return key, cards.card_bytes_for_key(key, at)


def an_updater() -> Device:
    return Device.objects.create(device_id=5001, name="Updater lobby", kind=DeviceKind.UPDATER)


def test_an_updater_revalidates_the_key_and_extends_the_card_by_the_revalidation_period():
    holder = make_cardholder(make_access_level(make_access_point()), key_revalidation_days=7)
    key, raw = a_card(holder, at=NOW - dt.timedelta(days=6))
    updater = an_updater()

    result = present(key, raw, updater=updater.pk)

    key.refresh_from_db()
    card = decoded(result.raw)
    assert (result.outcome, result.key_id) == (cards.UPDATED, key.pk)
    assert moment(card.valid_until) == NOW + dt.timedelta(days=7) == key.valid_until
    assert (key.last_revalidated_at, key.revision, card.revision) == (NOW, 2, 2)
    [event] = AuditEvent.objects.filter(kind=AuditKind.KEY_UPDATED)
    assert (event.at, event.device_id, event.cardholder_id, event.key_uid) == (NOW, updater.pk, holder.pk, key.uid)
    assert event.detail["revalidated"]["valid_until"]["to"] == (NOW + dt.timedelta(days=7)).isoformat()
    assert event.detail["validity"]["to"] == [None, seconds(NOW + dt.timedelta(days=7))]


def test_a_revalidation_never_goes_past_the_cardholders_expiration():
    holder = make_cardholder(key_revalidation_days=7, expiration=NOW + dt.timedelta(days=3))
    key, raw = a_card(holder, at=NOW - dt.timedelta(days=6))

    result = present(key, raw)

    assert moment(decoded(result.raw).valid_until) == NOW + dt.timedelta(days=3)


def test_a_card_presented_again_soon_after_is_left_unchanged():
    holder = make_cardholder(make_access_level(make_access_point()), key_revalidation_days=7)
    key, raw = a_card(holder, at=NOW - dt.timedelta(days=6))
    updated = present(key, raw)

    again = present(key, updated.raw, at=NOW + dt.timedelta(minutes=5))

    key.refresh_from_db()
    assert (again.outcome, again.raw, again.key_id) == (cards.UNCHANGED, None, key.pk)
    assert (key.revision, key.last_revalidated_at) == (2, NOW)
    assert AuditEvent.objects.filter(kind=AuditKind.KEY_UPDATED).count() == 1


def test_a_current_card_without_revalidation_is_unchanged():
    key, raw = a_card()

    result = present(key, raw, at=NOW + dt.timedelta(days=30))

    key.refresh_from_db()
    assert (result.outcome, result.raw, key.revision) == (cards.UNCHANGED, None, 1)
    assert not AuditEvent.objects.exists()


def test_an_updater_rewrites_an_access_list_that_changed():
    lobby, lab = make_access_point(), make_access_point()
    holder = make_cardholder(make_access_level(lobby))
    key, raw = a_card(holder)
    give_permission(holder, lab)

    result = present(key, raw)

    key.refresh_from_db()
    assert result.outcome == cards.UPDATED
    assert {grant.id for grant in decoded(result.raw).grants} == {lobby.pk, lab.pk}
    assert key.revision == decoded(result.raw).revision == 2
    assert AuditEvent.objects.get().detail["access_list"] == {"from": 1, "to": 2}


def test_an_updater_rewrites_changed_flags():
    holder = make_cardholder()
    key, raw = a_card(holder)
    holder.office = True
    holder.save()

    result = present(key, raw)

    assert decoded(result.raw).office is True
    assert AuditEvent.objects.get().detail["flags"] == ["office"]


def test_an_updater_adds_the_blacklist_entries_the_card_lacks():
    key, raw = a_card()
    lost = make_key(make_cardholder(), valid_until=NOW + dt.timedelta(days=30))
    actions.cancel_key(lost, operator=None, via="test", at=NOW - dt.timedelta(minutes=1))
    entry = BlacklistEntry.objects.get(key=lost)

    result = present(key, raw)

    assert result.outcome == cards.UPDATED
    assert decoded(result.raw).blacklist == (BlacklistItem(entry.pk, lost.pk, seconds(lost.valid_until)),)
    assert AuditEvent.objects.get().detail["blacklist_added"] == [entry.pk]


def test_a_card_holding_entries_since_purged_is_not_rewritten_for_them():
    entry = BlacklistEntry.objects.create(key_number=77, uid="77", until=NOW + dt.timedelta(hours=1))
    key, raw = a_card()
    assert decoded(raw).blacklist[0].number == entry.pk

    result = present(key, raw, at=NOW + dt.timedelta(hours=2))

    assert result.outcome == cards.UNCHANGED


def test_a_rewritten_card_carries_no_lock_statuses():
    lock = Device.objects.create(device_id=42, name="Room 101", kind=DeviceKind.OFFLINE_LOCK)
    holder = make_cardholder()
    key, raw = a_card(holder)
    raw = with_status(raw, LockStatus(lock.device_id, seconds(NOW), 80, 0, 1))
    holder.office = True
    holder.save()

    result = present(key, raw)

    assert decoded(result.raw).statuses == ()


def test_a_cancelled_key_is_refused_and_nothing_is_written():
    key, raw = a_card()
    actions.cancel_key(key, operator=None, via="test", at=NOW - dt.timedelta(minutes=1))

    result = present(key, raw)

    key.refresh_from_db()
    assert (result.outcome, result.raw, result.key_id) == (cards.CANCELLED, None, key.pk)
    assert key.revision == 1
    assert not AuditEvent.objects.exists()


def test_a_card_of_a_deleted_key_is_refused_as_unknown():
    key, raw = a_card()
    key.delete()

    assert present(key, raw).outcome == cards.UNKNOWN_KEY


def test_card_data_copied_onto_another_card_is_refused_as_unknown():
    key, raw = a_card()

    result = present(key, raw, uid="04FFFFFFFF")

    assert (result.outcome, result.raw) == (cards.UNKNOWN_KEY, None)


def test_card_data_of_a_key_whose_uid_was_reissued_elsewhere_is_refused():
    key, raw = a_card()
    Key.objects.filter(pk=key.pk).update(uid="0A0B0C0D")

    assert present(key, raw).outcome == cards.UNKNOWN_KEY


def test_a_tampered_card_is_refused_with_its_reason():
    key, raw = a_card()
    flipped = bytearray(raw)
    flipped[40] ^= 0x01

    result = present(key, bytes(flipped))

    assert (result.outcome, result.raw, result.key_id) == (carddata.TAMPERED, None, None)


def test_a_truncated_card_is_refused_with_its_reason():
    key, raw = a_card()

    assert present(key, raw[:100]).outcome == carddata.TRUNCATED


def test_a_card_of_another_site_is_refused():
    key, _ = a_card()
    site, _ = cards.site_card_key()
    other = carddata.encode(cards.card_data_for_key(key, NOW), bytes(32)).replace(
        site.to_bytes(4, "big"), ((site % (2**32 - 1)) + 1).to_bytes(4, "big"), 1
    )

    assert present(key, other).outcome == carddata.WRONG_SITE


def test_a_card_of_another_site_with_our_site_code_is_refused_as_tampered():
    key, _ = a_card()
    forged = carddata.encode(cards.card_data_for_key(key, NOW), bytes(32))

    assert present(key, forged).outcome == carddata.TAMPERED


@pytest.mark.parametrize(
    ("holder_fields", "key_fields"),
    [
        ({"expiration": NOW - dt.timedelta(seconds=1)}, {}),
        ({}, {"valid_until": NOW - dt.timedelta(seconds=1)}),
        ({}, {"status": KeyStatus.EXPIRED}),
    ],
    ids=["cardholder expired", "key ended", "key expired"],
)
def test_an_expired_key_is_refused_and_not_revalidated(holder_fields, key_fields):
    key, raw = a_card(make_cardholder(**holder_fields), at=NOW - dt.timedelta(days=10))
    Key.objects.filter(pk=key.pk).update(**key_fields)

    result = present(key, raw)

    key.refresh_from_db()
    assert (result.outcome, result.raw) == (cards.EXPIRED, None)
    assert key.last_revalidated_at is None


def test_a_lapsed_key_is_revalidated_when_the_cardholder_has_a_revalidation_period():
    holder = make_cardholder(key_revalidation_days=7)
    key, raw = a_card(holder, at=NOW - dt.timedelta(days=30))

    result = present(key, raw)

    assert result.outcome == cards.UPDATED
    assert moment(decoded(result.raw).valid_until) == NOW + dt.timedelta(days=7)


def test_a_banned_cardholders_key_is_neither_revalidated_nor_rewritten():
    holder = make_cardholder(key_revalidation_days=7)
    key, raw = a_card(holder, at=NOW - dt.timedelta(days=6))
    holder.banned = True
    holder.save()

    result = present(key, raw)

    assert (result.outcome, result.raw) == (cards.BANNED, None)


def test_a_key_whose_rights_no_longer_fit_is_left_as_it_was():
    holder = make_cardholder(key_revalidation_days=7)
    key, raw = a_card(holder, at=NOW - dt.timedelta(days=6))
    give_permissions(holder, access_points(2500), [make_time_period() for _ in range(3)])

    result = present(key, raw)

    key.refresh_from_db()
    assert (result.outcome, result.raw) == (cards.TOO_BIG, None)
    assert (key.revision, key.last_revalidated_at) == (1, None)


# --- lock statuses -----------------------------------------------------------------------------------------


def test_the_lock_statuses_a_card_carries_are_stored_and_unknown_locks_counted():
    room = Device.objects.create(device_id=42, name="Room 101", kind=DeviceKind.OFFLINE_LOCK)
    updater = an_updater()
    key, raw = a_card()
    raw = with_status(raw, LockStatus(42, seconds(NOW - dt.timedelta(minutes=3)), 61, 17, 4, events_pending=9))
    raw = with_status(raw, LockStatus(43, seconds(NOW - dt.timedelta(minutes=2)), 50, 1, 1))  # no such lock
    raw = with_status(raw, LockStatus(updater.device_id, seconds(NOW), 50, 1, 1))  # not an offline lock

    result = present(key, raw)

    state = LockState.objects.get(device=room)
    assert (result.lock_statuses, result.unknown_lock_statuses) == (1, 2)
    assert (state.battery, state.blacklist_number, state.events_pending) == (61, 17, 9)
    assert state.reported_at == NOW - dt.timedelta(minutes=3)
    assert state.config_revision == 0  # only a PPD loads configuration
    assert LockState.objects.count() == 1


def test_an_older_lock_status_does_not_replace_a_newer_one():
    room = Device.objects.create(device_id=42, name="Room 101", kind=DeviceKind.OFFLINE_LOCK)
    key, raw = a_card()
    present(key, with_status(raw, LockStatus(42, seconds(NOW), 40, 20, 1)))

    present(key, with_status(raw, LockStatus(42, seconds(NOW - dt.timedelta(hours=1)), 90, 10, 1)))

    state = LockState.objects.get(device=room)
    assert (state.battery, state.blacklist_number, state.reported_at) == (40, 20, NOW)


def test_a_lock_clock_running_ahead_does_not_date_its_report_in_the_future():
    room = Device.objects.create(device_id=42, name="Room 101", kind=DeviceKind.OFFLINE_LOCK)
    key, raw = a_card()

    present(key, with_status(raw, LockStatus(42, seconds(NOW + dt.timedelta(days=365)), 40, 20, 1)))

    assert LockState.objects.get(device=room).reported_at == NOW


def test_the_statuses_of_a_cancelled_keys_card_are_still_read():
    room = Device.objects.create(device_id=42, name="Room 101", kind=DeviceKind.OFFLINE_LOCK)
    key, raw = a_card()
    actions.cancel_key(key, operator=None, via="test", at=NOW)

    result = present(key, with_status(raw, LockStatus(42, seconds(NOW), 40, 20, 1)))

    assert (result.outcome, result.lock_statuses) == (cards.CANCELLED, 1)
    assert LockState.objects.get(device=room).battery == 40
