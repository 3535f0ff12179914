"""The offline lock simulator (simulation/offline_lock.py): decisions from the card alone, blacklist, audit, status."""

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from accesscontrol.engine import DAY_BITS, day_mask
from devices.carddata import POINT, ZONE, BlacklistItem, CardData, CardGrant, decode, encode
from devices.lockconfig import LockConfig, LockPeriod
from simulation.offline_lock import OfflineLock

KEY = bytes(range(32))
SITE = 4242
ZURICH = ZoneInfo("Europe/Zurich")
DOOR = 12
WING = 3  # a zone the door belongs to
OFFICE_HOURS, NIGHT_SHIFT, HOLIDAYS = 1, 2, 3
WEEKDAYS = day_mask("monday", "tuesday", "wednesday", "thursday", "friday")
CHRISTMAS = dt.date(2026, 12, 25)  # a Friday
BOXING_DAY = dt.date(2026, 12, 28)  # a Monday, marked a holiday by date


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    """Wall-clock time at the lock (Zurich)."""
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZURICH)


MONDAY = dt.date(2026, 11, 23)
TUESDAY, SATURDAY, SUNDAY = MONDAY + dt.timedelta(1), MONDAY + dt.timedelta(5), MONDAY + dt.timedelta(6)


def config(**changes) -> LockConfig:
    fields = {
        "lock_id": 7001,
        "access_point_id": DOOR,
        "site": SITE,
        "card_key": KEY,
        "revision": 5,
        "zone_ids": (WING, 4),
        "periods": (
            LockPeriod(OFFICE_HOURS, ((8 * 3600, 18 * 3600, WEEKDAYS),)),
            LockPeriod(NIGHT_SHIFT, ((22 * 3600, 6 * 3600, WEEKDAYS),)),
            LockPeriod(HOLIDAYS, ((0, 0, DAY_BITS["holiday"]),)),
        ),
        "calendar_dates": {BOXING_DAY.toordinal(): DAY_BITS["holiday"]},
        "calendar_recurring": {(12, 25): DAY_BITS["holiday"]},
        "time_zone": "Europe/Zurich",
    }
    fields.update(changes)
    return LockConfig(**fields)


def card(**changes) -> CardData:
    fields = {
        "site": SITE,
        "key_id": 41,
        "uid": "04A1B2C3D4E580",
        "cardholder_id": 9,
        "revision": 1,
        "issued_at": int(at(MONDAY, 7).timestamp()),
        "valid_until": int(at(MONDAY + dt.timedelta(days=60), 0).timestamp()),
        "grants": (CardGrant(POINT, DOOR, (OFFICE_HOURS,)),),
    }
    fields.update(changes)
    return CardData(**fields)


def present(lock: OfflineLock, data: CardData, when: dt.datetime):
    return lock.present(encode(data, KEY), when)


def reason(lock: OfflineLock, data: CardData, when: dt.datetime) -> str:
    return present(lock, data, when)[0].reason


# --- permission and schedules -------------------------------------------------------------------------------


def test_it_grants_a_card_for_its_door_in_its_time_period():
    outcome, _ = present(OfflineLock(config()), card(), at(MONDAY, 9))
    assert (outcome.granted, outcome.reason, outcome.key_id, outcome.cardholder_id) == (True, "granted", 41, 9)
    assert outcome.open_ms == 4000


def test_an_extended_open_time_card_keeps_the_door_open_longer():
    outcome, _ = present(OfflineLock(config()), card(extended_open_time=True), at(MONDAY, 9))
    assert outcome.open_ms == 10_000


def test_it_grants_a_card_for_one_of_the_doors_zones():
    assert reason(OfflineLock(config()), card(grants=(CardGrant(ZONE, WING, ()),)), at(SUNDAY, 3)) == "granted"


def test_it_refuses_a_card_without_this_door_or_its_zones():
    grants = (CardGrant(POINT, DOOR + 1, ()), CardGrant(ZONE, 99, ()))
    assert reason(OfflineLock(config()), card(grants=grants), at(MONDAY, 9)) == "no_permission"


def test_it_refuses_outside_the_time_periods_in_the_locks_time_zone():
    lock = OfflineLock(config())
    assert reason(lock, card(), at(MONDAY, 18, 1)) == "outside_schedule"
    assert reason(lock, card(), at(MONDAY, 7, 59)) == "outside_schedule"
    assert reason(lock, card(), at(MONDAY, 8, 0)) == "granted"
    # 07:30 UTC is 08:30 in Zurich in winter.
    assert reason(lock, card(), dt.datetime(2026, 11, 23, 7, 30, tzinfo=dt.UTC)) == "granted"
    assert reason(lock, card(), at(SATURDAY, 10)) == "outside_schedule"


def test_a_period_across_midnight_opens_after_midnight_of_its_day():
    lock = OfflineLock(config())
    night = card(grants=(CardGrant(POINT, DOOR, (NIGHT_SHIFT,)),))
    assert reason(lock, night, at(MONDAY, 23)) == "granted"
    assert reason(lock, night, at(TUESDAY, 5, 59)) == "granted"
    assert reason(lock, night, at(SATURDAY, 2)) == "granted"  # Friday's night
    assert reason(lock, night, at(SUNDAY, 2)) == "outside_schedule"  # Saturday has no night shift
    assert reason(lock, night, at(TUESDAY, 6)) == "outside_schedule"


def test_a_holiday_in_the_calendar_replaces_the_weekday():
    lock = OfflineLock(config())
    holidays = card(grants=(CardGrant(POINT, DOOR, (HOLIDAYS,)),))
    assert reason(lock, card(), at(BOXING_DAY, 10)) == "outside_schedule"  # a Monday, but a holiday
    assert reason(lock, holidays, at(BOXING_DAY, 10)) == "granted"
    assert reason(lock, holidays, at(CHRISTMAS, 10)) == "granted"  # recurring every year
    assert reason(lock, holidays, at(MONDAY, 10)) == "outside_schedule"


def test_a_night_shift_does_not_run_into_the_morning_after_a_holiday():
    # Boxing Day is a holiday: no night shift starts that evening, so none runs on into Tuesday morning.
    night = card(grants=(CardGrant(POINT, DOOR, (NIGHT_SHIFT,)),))
    assert reason(OfflineLock(config()), night, at(BOXING_DAY + dt.timedelta(1), 2)) == "outside_schedule"


def test_two_grants_for_the_door_add_up():
    grants = (CardGrant(POINT, DOOR, (OFFICE_HOURS,)), CardGrant(ZONE, WING, (NIGHT_SHIFT,)))
    lock = OfflineLock(config())
    assert reason(lock, card(grants=grants), at(MONDAY, 9)) == "granted"
    assert reason(lock, card(grants=grants), at(MONDAY, 23)) == "granted"
    assert reason(lock, card(grants=grants), at(MONDAY, 20)) == "outside_schedule"
    any_time = (*grants, CardGrant(POINT, DOOR, ()))
    assert reason(lock, card(grants=any_time), at(MONDAY, 20)) == "granted"


def test_it_refuses_a_card_before_and_after_its_validity():
    lock = OfflineLock(config())
    window = card(valid_from=int(at(MONDAY, 9).timestamp()), valid_until=int(at(MONDAY, 12).timestamp()))
    assert reason(lock, window, at(MONDAY, 8, 59)) == "not_yet_valid"
    assert reason(lock, window, at(MONDAY, 11, 59)) == "granted"
    assert reason(lock, window, at(MONDAY, 12)) == "expired"


# --- card data that cannot be read ----------------------------------------------------------------------------


def refused_raw(raw: bytes) -> tuple[str, bytes | None]:
    outcome, written = OfflineLock(config()).present(raw, at(MONDAY, 9))
    assert not outcome.granted
    return outcome.reason, written


def test_it_refuses_a_card_with_a_flipped_bit_as_tampered_and_writes_nothing():
    raw = bytearray(encode(card(), KEY))
    raw[40] ^= 0x10
    assert refused_raw(bytes(raw)) == ("tampered", None)


def test_it_refuses_truncated_card_data():
    assert refused_raw(encode(card(), KEY)[:50]) == ("truncated", None)


def test_it_refuses_a_card_of_another_site():
    assert refused_raw(encode(card(site=SITE + 1), KEY)) == ("wrong_site", None)


def test_card_data_of_another_site_handed_to_decide_card_is_refused():
    lock = OfflineLock(config())
    assert lock.decide_card(card(site=SITE + 1), at(MONDAY, 9)).reason == "wrong_site"
    assert lock.decide_card(card(), at(MONDAY, 9)).reason == "granted"


def test_it_refuses_a_card_of_an_unknown_version():
    raw = bytearray(encode(card(), KEY))
    raw[4] = 9
    assert refused_raw(bytes(raw)) == ("unsupported_version", None)


def test_it_refuses_card_data_copied_onto_another_card():
    lock = OfflineLock(config())
    raw = encode(card(), KEY)
    assert lock.present(raw, at(MONDAY, 9), uid="04:a1:b2:c3:d4:e5:80")[0].reason == "granted"
    assert lock.present(raw, at(MONDAY, 9), uid="04FFFFFFFFFFFF")[0].reason == "tampered"


# --- the blacklist ---------------------------------------------------------------------------------------------


def test_a_blacklist_entry_learned_from_one_card_refuses_another_card_later():
    lock = OfflineLock(config())
    lost = card(key_id=41, uid="04000000000041")
    messenger = card(key_id=77, uid="04000000000077", blacklist=(BlacklistItem(1, 41, int(at(SUNDAY, 0).timestamp())),))
    assert reason(lock, lost, at(MONDAY, 9)) == "granted"
    assert reason(lock, messenger, at(MONDAY, 10)) == "granted"
    assert lock.blacklist_number == 1
    assert reason(lock, lost, at(MONDAY, 11)) == "blacklisted"
    assert [event.reason for event in lock.collect_audit()] == ["granted", "granted", "blacklisted"]
    # Once the entry runs out (when the key would have expired anyway), it is forgotten.
    assert reason(lock, lost, at(SUNDAY, 9)) == "outside_schedule"
    assert not lock.blacklisted(41, at(SUNDAY, 9))


def test_a_card_carrying_its_own_cancellation_is_refused():
    lock = OfflineLock(config())
    own = card(blacklist=(BlacklistItem(3, 41, int(at(SUNDAY, 0).timestamp())),))
    assert reason(lock, own, at(MONDAY, 9)) == "blacklisted"


def test_expired_entries_on_a_card_are_not_taken():
    lock = OfflineLock(config())
    stale = card(key_id=77, blacklist=(BlacklistItem(1, 41, int(at(MONDAY, 8).timestamp())),))
    present(lock, stale, at(MONDAY, 9))
    assert lock.blacklist_size() == 0
    assert lock.blacklist_number == 1


def test_the_watermark_waits_for_a_card_that_joins_up_with_it():
    lock = OfflineLock(config())
    until = int(at(SUNDAY, 0).timestamp())
    gap = card(key_id=77, blacklist=(BlacklistItem(10, 501, until), BlacklistItem(11, 502, until)), blacklist_base=9)
    present(lock, gap, at(MONDAY, 9))
    assert lock.blacklist_number == 0  # entries 1-9 may be missing
    assert lock.blacklisted(501, at(MONDAY, 9))  # but what it carried is honoured
    whole = card(key_id=78, blacklist=(BlacklistItem(9, 500, until), BlacklistItem(10, 501, until)), blacklist_base=0)
    present(lock, whole, at(MONDAY, 10))
    assert lock.blacklist_number == 10
    assert lock.blacklisted(500, at(MONDAY, 10))
    assert lock.blacklisted(502, at(MONDAY, 10))


def test_loading_a_configuration_replaces_the_blacklist():
    lock = OfflineLock(config())
    until = int(at(SUNDAY, 0).timestamp())
    present(lock, card(key_id=77, blacklist=(BlacklistItem(1, 41, until),)), at(MONDAY, 9))
    lock.load(config(revision=6, blacklist=((2, 55, until), (3, 56, until))))
    assert not lock.blacklisted(41, at(MONDAY, 10))
    assert lock.blacklisted(55, at(MONDAY, 10))
    assert lock.blacklist_number == 3
    assert lock.status(at(MONDAY, 10)).config_revision == 6


def test_a_full_blacklist_forgets_the_entries_that_expire_soonest_and_counts_them():
    lock = OfflineLock(config(), blacklist_capacity=3)
    base = int(at(SUNDAY, 0).timestamp())
    items = tuple(BlacklistItem(n, 100 + n, base + n * 60) for n in range(1, 6))
    present(lock, card(key_id=77, blacklist=items), at(MONDAY, 9))
    assert lock.blacklist_size() == 3
    assert lock.blacklist_dropped == 2
    assert [lock.blacklisted(100 + n, at(MONDAY, 9)) for n in range(1, 6)] == [False, False, True, True, True]


# --- privacy ---------------------------------------------------------------------------------------------------


def test_a_rooms_privacy_latch_refuses_all_but_cards_that_override_it():
    lock = OfflineLock(config(is_room=True))
    lock.set_privacy(True, at(MONDAY, 8))
    assert reason(lock, card(), at(MONDAY, 9)) == "privacy"
    assert reason(lock, card(override_privacy=True), at(MONDAY, 9)) == "granted"
    lock.set_privacy(False, at(MONDAY, 10))
    assert reason(lock, card(), at(MONDAY, 11)) == "granted"
    kinds = [event.kind for event in lock.collect_audit()]
    assert kinds == ["privacy_on", "access_denied", "access_granted", "privacy_off", "access_granted"]


def test_a_door_that_is_not_a_room_has_no_privacy_latch():
    lock = OfflineLock(config(is_room=False))
    lock.set_privacy(True, at(MONDAY, 8))
    assert reason(lock, card(), at(MONDAY, 9)) == "granted"
    assert [event.kind for event in lock.collect_audit()] == ["access_granted"]


# --- the audit buffer ------------------------------------------------------------------------------------------


def test_the_audit_buffer_is_bounded_and_counts_what_it_dropped():
    lock = OfflineLock(config(), audit_capacity=5)
    for minute in range(8):
        present(lock, card(), at(MONDAY, 9, minute))
    events = lock.collect_audit()
    assert [event.id for event in events] == [4, 5, 6, 7, 8]
    assert lock.audit_dropped == 3


def test_collected_events_stay_until_acknowledged_and_ids_are_never_reused():
    lock = OfflineLock(config())
    for minute in range(4):
        present(lock, card(), at(MONDAY, 9, minute))
    first = lock.collect_audit()
    assert lock.collect_audit() == first  # a failed upload is simply collected again
    assert lock.acknowledge_audit(first[2].id) == 3
    assert [event.id for event in lock.collect_audit()] == [4]
    present(lock, card(), at(MONDAY, 10))
    assert [event.id for event in lock.collect_audit()] == [4, 5]
    event = lock.collect_audit()[-1]
    assert (event.at, event.kind, event.key_id, event.uid, event.reason) == (
        at(MONDAY, 10),
        "access_granted",
        41,
        "04A1B2C3D4E580",
        "granted",
    )


def test_openings_of_a_card_without_audit_openings_are_not_recorded_but_refusals_are():
    lock = OfflineLock(config())
    quiet = card(audit_openings=False)
    present(lock, quiet, at(MONDAY, 9))
    present(lock, quiet, at(MONDAY, 20))
    assert [event.reason for event in lock.collect_audit()] == ["outside_schedule"]


def test_unreadable_cards_are_recorded_too():
    lock = OfflineLock(config())
    lock.present(b"not a card", at(MONDAY, 9))
    assert [(event.kind, event.reason, event.key_id) for event in lock.collect_audit()] == [
        ("access_denied", "truncated", None)
    ]


# --- status on cards -------------------------------------------------------------------------------------------


def test_the_lock_writes_its_status_on_the_card():
    lock = OfflineLock(config(), battery=63)
    until = int(at(SUNDAY, 0).timestamp())
    present(lock, card(key_id=77, blacklist=(BlacklistItem(12, 500, until),)), at(MONDAY, 8, 30))
    outcome, written = present(lock, card(), at(MONDAY, 9))
    assert outcome.granted
    (status,) = decode(written, KEY, SITE).statuses
    assert dataclasses.astuple(status) == (7001, int(at(MONDAY, 9).timestamp()), 63, 12, 5, 2)


def test_a_refused_card_that_was_read_gets_the_status_too():
    outcome, written = present(OfflineLock(config()), card(), at(SATURDAY, 9))
    assert outcome.reason == "outside_schedule"
    assert [status.lock_id for status in decode(written, KEY, SITE).statuses] == [7001]


def test_statuses_from_several_locks_accumulate_on_a_card():
    raw = encode(card(), KEY)
    for lock_id in (1, 2, 3):
        _, raw = OfflineLock(config(lock_id=lock_id)).present(raw, at(MONDAY, 9, lock_id))
    assert [status.lock_id for status in decode(raw, KEY, SITE).statuses] == [1, 2, 3]


@pytest.mark.parametrize("battery", [0, 100])
def test_status_reports_the_battery(battery):
    assert OfflineLock(config(), battery=battery).status(at(MONDAY, 9)).battery == battery
