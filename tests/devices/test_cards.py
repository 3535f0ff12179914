"""The server's side of data-on-card: the site card key, card data from the database, and updaters."""

import datetime as dt

import pytest
from django.utils import timezone

from accesscontrol import actions
from accesscontrol.choices import AuditKind, KeyStatus
from accesscontrol.models import AccessPoint, AuditEvent, BlacklistEntry, CardholderPermission, Key, SiteSettings
from devices import cards, carddata, vault
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
    assert (card.site, card.key_id, card.uid, card.cardholder_id, card.revision) == (site, key.pk, "04A1B2C3", holder.pk, 7)
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

    with pytest.raises(carddata.CardTooBig, match="remove at least .* access points or zones"):
        cards.card_bytes_for_key(make_key(holder), NOW)


def access_points(count: int) -> list[AccessPoint]:
    return AccessPoint.objects.bulk_create(AccessPoint(name=unique("Room")) for _ in range(count))


def give_permissions(holder, points, periods=(None,)) -> None:
    CardholderPermission.objects.bulk_create(
        CardholderPermission(cardholder=holder, access_point=point, time_period=periods[number % len(periods)])
        for number, point in enumerate(points)
    )


@pytest.mark.parametrize("count", [5, 500])
def test_building_card_data_takes_the_same_few_queries_for_5_or_500_access_points(
    count, django_assert_max_num_queries
):
    points = access_points(count)
    holder = make_cardholder(make_access_level(*points[: count // 2]))
    give_permissions(holder, points[count // 2 :])
    key = Key.objects.get(pk=make_key(holder).pk)  # as a caller has it: the cardholder not loaded
    BlacklistEntry.objects.create(key_number=1, uid="01", until=NOW + dt.timedelta(days=1))
    cards.site_card_key()  # made once per site, not per card

    with django_assert_max_num_queries(4):
        raw = cards.card_bytes_for_key(key, NOW)

    assert len(decoded(raw).grants) == count
