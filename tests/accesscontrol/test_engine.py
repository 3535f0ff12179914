"""The decision engine, from plain rules: every reason, the precedence between them, and schedules."""

import dataclasses
import datetime as dt

import pytest

from accesscontrol import engine
from accesscontrol.choices import Decision as Reason
from accesscontrol.engine import FOREVER, ZoneRule, decide, decide_pin, passback_after, who_may_open
from accesscontrol.pins import hash_pin, pin_index
from tests.accesscontrol.rules import (
    PIN_DIGEST_KEY,
    calendar,
    cardholder,
    interval,
    key,
    level,
    local,
    period,
    point,
    snapshot,
    utc,
)

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
OFFICE, SATURDAYS = 1, 2
LOBBY, PARKING, LABS = 10, 11, 12
MAIN, KEYPAD, GATE_IN, GATE_OUT, LAB, ROOM = 100, 101, 102, 103, 104, 105
ALICE, BOB, CAROL, DAN, ERIN, FRANK, GRACE = 1, 2, 3, 4, 5, 6, 7

MONDAY_10 = local("2024-03-04 10:00")
SUNDAY_10 = local("2024-03-10 10:00")
SATURDAY_10 = local("2024-03-09 10:00")
SPRING = utc("2024-03-01 00:00")
SUMMER = utc("2024-06-01 00:00")
EVERYWHERE = (
    ("point", MAIN, None),
    ("point", KEYPAD, None),
    ("zone", PARKING, None),
    ("zone", LABS, None),
    ("point", ROOM, None),
)


def site(**changes) -> engine.Snapshot:
    everyone = {"level_ids": (1,)}
    rules = snapshot(
        periods=[
            period(OFFICE, interval("08:00", "18:00", *WEEKDAYS)),
            period(SATURDAYS, interval("00:00", "00:00", "saturday")),
        ],
        zones=[ZoneRule(LOBBY), ZoneRule(PARKING, anti_passback=True), ZoneRule(LABS)],
        points=[
            point(MAIN, LOBBY, open_time=4, extended_open_time=10),
            point(KEYPAD, pin_required=True),
            point(GATE_IN, PARKING, direction="entry"),
            point(GATE_OUT, PARKING, direction="exit"),
            point(LAB, LABS),
            point(ROOM),
        ],
        levels=[level(1, *EVERYWHERE), level(2, ("point", MAIN, SATURDAYS))],
        cardholders=[
            cardholder(ALICE, pin_hash=hash_pin(PIN_DIGEST_KEY, "1234"), **everyone),
            cardholder(BOB, banned=True, **everyone),
            cardholder(CAROL, valid_from=SPRING.timestamp(), valid_until=SUMMER.timestamp(), **everyone),
            cardholder(DAN, use_anti_passback=True, **everyone),
            cardholder(ERIN, override_lockdown=True, override_privacy=True, extended_open_time=True, **everyone),
            cardholder(FRANK, ("point", MAIN, OFFICE), level_ids=(2,)),
            cardholder(GRACE),
        ],
        keys=[
            key("A1", ALICE),
            key("B2", BOB),
            key("C3", CAROL),
            key("D4", DAN),
            key("E5", ERIN),
            key("F6", FRANK),
            key("07", GRACE),
            key("0A", ALICE, key_id=10, valid_from=SPRING.timestamp(), valid_until=SUMMER.timestamp()),
        ],
        blacklist={"DEAD": FOREVER, "BEEF": SUMMER.timestamp()},
    )
    return dataclasses.replace(rules, **changes)


def just_before(moment: dt.datetime) -> dt.datetime:
    return moment - dt.timedelta(microseconds=1)


REASON_CASES = [
    ("a permitted key opens", "A1", MAIN, MONDAY_10, {}, Reason.GRANTED),
    ("a key no one issued", "FFFF", MAIN, MONDAY_10, {}, Reason.UNKNOWN_KEY),
    ("a cancelled key without an end", "DEAD", MAIN, MONDAY_10, {}, Reason.BLACKLISTED),
    ("a cancelled key before its end", "BEEF", MAIN, just_before(SUMMER), {}, Reason.BLACKLISTED),
    ("a cancelled key after its end", "BEEF", MAIN, SUMMER, {}, Reason.UNKNOWN_KEY),
    ("a key before its validity", "0A", MAIN, just_before(SPRING), {}, Reason.NOT_YET_VALID),
    ("a key at the start of its validity", "0A", MAIN, SPRING, {}, Reason.GRANTED),
    ("a key just before its end", "0A", MAIN, just_before(SUMMER), {}, Reason.GRANTED),
    ("a key at its end", "0A", MAIN, SUMMER, {}, Reason.EXPIRED),
    ("a banned cardholder", "B2", MAIN, MONDAY_10, {}, Reason.BANNED),
    ("a cardholder before activation", "C3", MAIN, just_before(SPRING), {}, Reason.NOT_YET_VALID),
    ("a cardholder at activation", "C3", MAIN, SPRING, {}, Reason.GRANTED),
    ("a cardholder at expiration", "C3", MAIN, SUMMER, {}, Reason.EXPIRED),
    ("an unknown access point", "A1", 999, MONDAY_10, {}, Reason.UNKNOWN_ACCESS_POINT),
    ("a cardholder with no grant", "07", MAIN, MONDAY_10, {}, Reason.NO_PERMISSION),
    ("a door outside the cardholder's grants", "F6", LAB, MONDAY_10, {}, Reason.NO_PERMISSION),
    ("an own permission in its period", "F6", MAIN, MONDAY_10, {}, Reason.GRANTED),
    ("a level's period adds to an own permission", "F6", MAIN, SATURDAY_10, {}, Reason.GRANTED),
    ("no period active", "F6", MAIN, SUNDAY_10, {}, Reason.OUTSIDE_SCHEDULE),
    ("a grant through a zone", "A1", LAB, SUNDAY_10, {}, Reason.GRANTED),
    ("a PIN door without a PIN", "A1", KEYPAD, MONDAY_10, {}, Reason.PIN_REQUIRED),
    ("a PIN door with a wrong PIN", "A1", KEYPAD, MONDAY_10, {"pin": "9999"}, Reason.WRONG_PIN),
    ("a PIN door with the PIN", "A1", KEYPAD, MONDAY_10, {"pin": "1234"}, Reason.GRANTED),
    ("a PIN door for a cardholder without a PIN", "D4", KEYPAD, MONDAY_10, {"pin": "1234"}, Reason.WRONG_PIN),
    ("a room whose privacy latch is on", "A1", ROOM, MONDAY_10, {"privacy": True}, Reason.PRIVACY),
    ("privacy overridden", "E5", ROOM, MONDAY_10, {"privacy": True}, Reason.GRANTED),
    (
        "entering again without leaving",
        "D4",
        GATE_IN,
        MONDAY_10,
        {"inside_zones": frozenset({PARKING})},
        Reason.ANTI_PASSBACK,
    ),
    ("entering when outside", "D4", GATE_IN, MONDAY_10, {"inside_zones": frozenset({LOBBY})}, Reason.GRANTED),
    ("leaving when inside", "D4", GATE_OUT, MONDAY_10, {"inside_zones": frozenset({PARKING})}, Reason.GRANTED),
    (
        "no anti-passback for whom it is off",
        "A1",
        GATE_IN,
        MONDAY_10,
        {"inside_zones": frozenset({PARKING})},
        Reason.GRANTED,
    ),
    ("a UID in another spelling", "a1", MAIN, MONDAY_10, {}, Reason.GRANTED),
    ("a blacklisted UID in another spelling", "de:ad", MAIN, MONDAY_10, {}, Reason.BLACKLISTED),
]


@pytest.mark.parametrize(
    ("uid", "point_id", "at", "options", "reason"),
    [case[1:] for case in REASON_CASES],
    ids=[case[0] for case in REASON_CASES],
)
def test_it_gives_the_reason(uid, point_id, at, options, reason):
    decision = decide(site(), uid, point_id, at, **options)
    assert decision.reason == reason
    assert decision.granted is (reason == Reason.GRANTED)


LOCKDOWN_CASES = [
    ("the site", {"lockdown": True}, MAIN),
    ("the access point", {"access_points": {**site().access_points, MAIN: point(MAIN, LOBBY, lockdown=True)}}, MAIN),
    ("a zone of the access point", {"zones": {**site().zones, LABS: ZoneRule(LABS, lockdown=True)}}, LAB),
]


@pytest.mark.parametrize(
    ("changes", "point_id"), [case[1:] for case in LOCKDOWN_CASES], ids=[c[0] for c in LOCKDOWN_CASES]
)
def test_a_lockdown_refuses_all_but_its_overriders(changes, point_id):
    locked = site(**changes)
    assert decide(locked, "A1", point_id, MONDAY_10).reason == Reason.LOCKDOWN
    assert decide(locked, "E5", point_id, MONDAY_10).granted
    assert decide(site(), "A1", point_id, MONDAY_10).granted


def test_a_zone_lockdown_leaves_other_zones_open():
    locked = site(zones={**site().zones, LABS: ZoneRule(LABS, lockdown=True)})
    assert decide(locked, "A1", MAIN, MONDAY_10).granted


PRECEDENCE_CASES = [
    (
        "an issued key beats a blacklisted one of the same UID",
        {"blacklist": {"A1": FOREVER}},
        "A1",
        MAIN,
        {},
        "granted",
    ),
    (
        "key validity before banned",
        {"keys_by_uid": {"0B": key("0B", BOB, valid_until=SPRING.timestamp())}},
        "0B",
        MAIN,
        {},
        "expired",
    ),
    (
        "banned before cardholder validity",
        {"cardholders": {CAROL: cardholder(CAROL, banned=True, valid_until=SPRING.timestamp())}},
        "C3",
        MAIN,
        {},
        "banned",
    ),
    ("cardholder validity before the access point", {}, "C3", 999, {"at": SUMMER}, "expired"),
    ("banned before an unknown access point", {}, "B2", 999, {}, "banned"),
    ("lockdown before permission", {"lockdown": True}, "07", MAIN, {}, "lockdown"),
    ("privacy before permission", {}, "07", ROOM, {"privacy": True}, "privacy"),
    ("permission before PIN", {}, "F6", KEYPAD, {}, "no_permission"),
    (
        "anti-passback before PIN",
        {},
        "D4",
        GATE_IN,
        {"inside_zones": frozenset({PARKING}), "pin": "0000"},
        "anti_passback",
    ),
]


@pytest.mark.parametrize(
    ("changes", "uid", "point_id", "options", "reason"),
    [case[1:] for case in PRECEDENCE_CASES],
    ids=[case[0] for case in PRECEDENCE_CASES],
)
def test_the_first_failing_check_gives_the_reason(changes, uid, point_id, options, reason):
    options = {"at": MONDAY_10, **options}
    at = options.pop("at")
    if "inside_zones" in options:
        # A keypad on the entry gate, to see anti-passback win over the PIN.
        gate = point(GATE_IN, PARKING, direction="entry", pin_required=True)
        changes = {**changes, "access_points": {**site().access_points, GATE_IN: gate}}
    assert decide(site(**changes), uid, point_id, at, **options).reason == reason


def test_a_grant_carries_the_cardholder_the_key_and_the_open_time():
    decision = decide(site(), "a1", MAIN, MONDAY_10)
    assert decision == engine.Decision(True, "granted", ALICE, "A1", 4)


def test_a_cardholder_with_extended_open_time_gets_the_longer_time():
    assert decide(site(), "E5", MAIN, MONDAY_10).open_time == 10


def test_a_refusal_opens_for_no_time_and_names_the_cardholder():
    assert decide(site(), "F6", MAIN, SUNDAY_10) == engine.Decision(False, "outside_schedule", FRANK, "F6", 0)
    assert decide(site(), "ff ff", MAIN, SUNDAY_10) == engine.Decision(False, "unknown_key", None, "FFFF", 0)


def test_passback_after_an_entry_adds_the_anti_passback_zones_and_an_exit_removes_them():
    rules = site(access_points={**site().access_points, GATE_IN: point(GATE_IN, PARKING, LOBBY, direction="entry")})
    entered = passback_after(rules, decide(rules, "D4", GATE_IN, MONDAY_10), GATE_IN, frozenset())
    assert entered == {PARKING}
    assert decide(rules, "D4", GATE_IN, MONDAY_10, inside_zones=entered).reason == "anti_passback"
    left = passback_after(rules, decide(rules, "D4", GATE_OUT, MONDAY_10, inside_zones=entered), GATE_OUT, entered)
    assert left == frozenset()
    assert passback_after(rules, decide(rules, "D4", MAIN, MONDAY_10), MAIN, entered) == entered


def test_a_refusal_changes_nobody_s_whereabouts():
    refused = decide(site(), "07", GATE_IN, MONDAY_10)
    assert passback_after(site(), refused, GATE_IN, frozenset()) == frozenset()


def test_who_may_open_lists_the_cardholders_decide_would_let_in():
    assert who_may_open(site(), MAIN, MONDAY_10) == [ALICE, CAROL, DAN, ERIN, FRANK]
    assert who_may_open(site(), MAIN, SUNDAY_10) == [ALICE, CAROL, DAN, ERIN]
    assert who_may_open(site(), KEYPAD, MONDAY_10) == [ALICE, CAROL, DAN, ERIN]
    assert who_may_open(site(lockdown=True), MAIN, MONDAY_10) == [ERIN]
    assert who_may_open(site(), 999, MONDAY_10) == []


# --- schedules ------------------------------------------------------------------

HOLIDAYS = calendar(
    1,
    ("2024-12-25", "holiday"),
    ("2020-01-06", "holiday", True),
    ("2024-03-19", "special1"),
    ("2024-02-29", "special2", True),
    ("2024-03-09", "holiday"),
    ("2024-11-01", "holiday"),
)
OTHER_CALENDAR = calendar(2, ("2024-03-04", "special1"))


def schedule_reason(*intervals, at, point_calendar=None, default_calendar=1) -> str:
    rules = snapshot(
        periods=[period(1, *intervals)],
        points=[point(1, calendar_id=point_calendar)],
        cardholders=[cardholder(1, ("point", 1, 1))],
        keys=[key("01", 1)],
        calendars=[HOLIDAYS, OTHER_CALENDAR],
        default_calendar_id=default_calendar,
    )
    return decide(rules, "01", 1, at).reason


NIGHT = interval("22:00", "06:00", "friday")
WHOLE_SATURDAY = interval("00:00", "00:00", "saturday")
OFFICE_HOURS = interval("08:00", "18:00", *WEEKDAYS)
SCHEDULE_CASES = [
    ("office hours on a Monday", OFFICE_HOURS, local("2024-03-04 08:00"), True),
    ("the end of an interval is outside it", OFFICE_HOURS, local("2024-03-04 18:00"), False),
    ("one second before the end", OFFICE_HOURS, local("2024-03-04 17:59:59"), True),
    ("a weekday not marked", OFFICE_HOURS, local("2024-03-10 10:00"), False),
    ("a night shift starts on its day", NIGHT, local("2024-03-08 22:00"), True),
    ("a night shift before it starts", NIGHT, local("2024-03-08 21:59:59"), False),
    ("a night shift runs into the next day", NIGHT, local("2024-03-09 05:59:59"), True),
    ("a night shift ends on the next day", NIGHT, local("2024-03-09 06:00"), False),
    ("a night shift does not start on an unmarked day", NIGHT, local("2024-03-09 23:00"), False),
    ("nor run into a day after an unmarked one", NIGHT, local("2024-03-08 03:00"), False),
    ("00:00-00:00 is the whole day, from its start", WHOLE_SATURDAY, local("2024-03-16 00:00"), True),
    ("00:00-00:00 is the whole day, to its end", WHOLE_SATURDAY, local("2024-03-16 23:59:59"), True),
    ("00:00-00:00 is only that day", WHOLE_SATURDAY, local("2024-03-17 00:00"), False),
    ("a holiday replaces its weekday", OFFICE_HOURS, local("2024-12-25 10:00"), False),
    ("a holiday interval on a holiday", interval("10:00", "14:00", "holiday"), local("2024-12-25 11:00"), True),
    ("a holiday interval on a plain day", interval("10:00", "14:00", "holiday"), local("2024-12-24 11:00"), False),
    ("a one-off holiday is not repeated", OFFICE_HOURS, local("2025-12-25 10:00"), True),
    ("a recurring holiday repeats", OFFICE_HOURS, local("2025-01-06 10:00"), False),
    ("a recurring holiday in its own year", interval("10:00", "14:00", "holiday"), local("2020-01-06 10:00"), True),
    ("special day 1", interval("09:00", "12:00", "special1"), local("2024-03-19 10:00"), True),
    ("special day 1 replaces its Tuesday", OFFICE_HOURS, local("2024-03-19 10:00"), False),
    ("a recurring 29 February in a leap year", interval("09:00", "12:00", "special2"), local("2028-02-29 10:00"), True),
    ("no 29 February in other years", interval("09:00", "12:00", "special2"), local("2025-02-28 10:00"), False),
    ("the 28th stays a weekday", OFFICE_HOURS, local("2025-02-28 10:00"), True),
    ("a night shift runs into a holiday", NIGHT, local("2024-03-09 03:00"), True),
    ("a night shift does not start on a holiday Friday", NIGHT, local("2024-11-01 23:00"), False),
    ("nor run into its Saturday", NIGHT, local("2024-11-02 03:00"), False),
    # Spring forward in Madrid: 2024-03-31 02:00 CET jumps to 03:00 CEST.
    ("the skipped hour never happens", interval("02:00", "03:00", "sunday"), utc("2024-03-31 00:59:59"), False),
    ("nor just after the jump", interval("02:00", "03:00", "sunday"), utc("2024-03-31 01:00"), False),
    ("the hour after the jump", interval("03:00", "04:00", "sunday"), utc("2024-03-31 01:00"), True),
    ("wall-clock office hours in summer time", OFFICE_HOURS, utc("2024-04-01 06:00"), True),
    ("not by the winter offset", OFFICE_HOURS, utc("2024-04-01 16:30"), False),
    # Fall back in Madrid: 2024-10-27 03:00 CEST goes back to 02:00 CET; 02:00-03:00 happens twice.
    ("the repeated hour, first time", interval("02:00", "03:00", "sunday"), utc("2024-10-27 00:30"), True),
    ("the repeated hour, second time", interval("02:00", "03:00", "sunday"), utc("2024-10-27 01:30"), True),
    ("after the repeated hour", interval("02:00", "03:00", "sunday"), utc("2024-10-27 02:00"), False),
    ("before the repeated hour", interval("02:00", "03:00", "sunday"), utc("2024-10-26 23:59:59"), False),
    (
        "a recurring 29 February replaces its Thursday",
        interval("09:00", "12:00", "thursday"),
        local("2024-02-29 10:00"),
        False,
    ),
]


@pytest.mark.parametrize(
    ("rule", "at", "granted"), [case[1:] for case in SCHEDULE_CASES], ids=[case[0] for case in SCHEDULE_CASES]
)
def test_schedules(rule, at, granted):
    assert schedule_reason(rule, at=at) == ("granted" if granted else "outside_schedule")


def test_an_access_point_s_own_calendar_replaces_the_site_default():
    monday = local("2024-03-04 10:00")
    assert schedule_reason(OFFICE_HOURS, at=monday) == "granted"
    assert schedule_reason(OFFICE_HOURS, at=monday, point_calendar=2) == "outside_schedule"
    assert schedule_reason(interval("09:00", "12:00", "special1"), at=monday, point_calendar=2) == "granted"


def test_without_any_calendar_weekdays_rule():
    assert schedule_reason(OFFICE_HOURS, at=local("2024-12-25 10:00"), default_calendar=None) == "granted"


def test_a_grant_without_a_period_opens_at_any_time_even_next_to_a_scheduled_one():
    rules = site(levels={**site().levels, 2: level(2, ("point", MAIN, SATURDAYS), ("point", MAIN, None))})
    assert decide(rules, "F6", MAIN, SUNDAY_10).granted


def test_a_period_named_but_missing_opens_nothing():
    rules = site(periods={})
    assert decide(rules, "F6", MAIN, MONDAY_10).reason == "outside_schedule"


# --- a PIN typed alone ----------------------------------------------------------------------------------

PIN_KEY = b"k" * 32
PIN_PAD, PIN_GATE = 106, 107


def pin_site(**changes) -> engine.Snapshot:
    """The site, plus a PIN-only keypad (in the lobby) and a PIN-only entry gate to the parking."""
    rules = site()
    holders = dict(rules.cardholders)
    for holder_id, pin in ((ALICE, "1234"), (BOB, "2222"), (DAN, "4444"), (GRACE, "7777"), (ERIN, "5555")):
        holders[holder_id] = dataclasses.replace(holders[holder_id], pin_index=pin_index(PIN_KEY, pin))
    points = {
        **rules.access_points,
        PIN_PAD: point(PIN_PAD, LOBBY, pin_only=True, pin_required=True),
        PIN_GATE: point(PIN_GATE, PARKING, direction="entry", pin_only=True),
    }
    levels = {**rules.levels, 1: level(1, *EVERYWHERE, ("point", PIN_PAD, None))}
    changes = {"pin_key": PIN_KEY, **changes}
    return dataclasses.replace(rules, cardholders=holders, access_points=points, levels=levels, **changes)


PIN_CASES = [
    ("a cardholder's PIN at a PIN-only keypad", "1234", PIN_PAD, MONDAY_10, {}, Reason.GRANTED),
    ("a PIN no cardholder has", "9999", PIN_PAD, MONDAY_10, {}, Reason.UNKNOWN_PIN),
    ("a PIN at a door that takes cards only", "1234", MAIN, MONDAY_10, {}, Reason.PIN_NOT_ACCEPTED),
    ("a PIN at an unknown access point", "1234", 999, MONDAY_10, {}, Reason.UNKNOWN_ACCESS_POINT),
    ("a banned cardholder's PIN", "2222", PIN_PAD, MONDAY_10, {}, Reason.BANNED),
    ("a PIN of a cardholder without the grant", "7777", PIN_PAD, MONDAY_10, {}, Reason.NO_PERMISSION),
    (
        "anti-passback holds for a PIN too",
        "4444",
        PIN_GATE,
        MONDAY_10,
        {"inside_zones": frozenset({PARKING})},
        Reason.ANTI_PASSBACK,
    ),
    ("a PIN during a lockdown", "1234", PIN_PAD, MONDAY_10, {"lockdown": True}, Reason.LOCKDOWN),
    ("a lockdown overrider's PIN", "5555", PIN_PAD, MONDAY_10, {"lockdown": True}, Reason.GRANTED),
]


@pytest.mark.parametrize(
    ("pin", "point_id", "at", "changes", "reason"),
    [case[1:] for case in PIN_CASES],
    ids=[case[0] for case in PIN_CASES],
)
def test_a_pin_alone_gives_the_reason(pin, point_id, at, changes, reason):
    inside = changes.pop("inside_zones", frozenset())
    rules = pin_site(**changes)
    decision = decide_pin(rules, pin, point_id, at, inside_zones=inside)
    assert decision.reason == reason
    assert decision.granted is (reason == Reason.GRANTED)
    assert decision.key_uid == ""


def test_a_pin_alone_names_its_cardholder_and_needs_the_index_key():
    decision = decide_pin(pin_site(), "1234", PIN_PAD, MONDAY_10)
    assert decision.cardholder_id == ALICE and decision.open_time == 4
    # Without the key the indexes cannot be matched: no PIN is known.
    assert decide_pin(pin_site(pin_key=b""), "1234", PIN_PAD, MONDAY_10).reason == Reason.UNKNOWN_PIN
    assert decide_pin(pin_site(pin_key=b"x" * 32), "1234", PIN_PAD, MONDAY_10).reason == Reason.UNKNOWN_PIN


def test_a_pin_checks_only_with_the_digest_key_it_was_stored_under():
    assert decide(pin_site(), "A1", KEYPAD, MONDAY_10, pin="1234").granted
    # Without the key (or with another) no stored digest matches: the dump alone checks no PIN either.
    assert decide(pin_site(pin_digest_key=b""), "A1", KEYPAD, MONDAY_10, pin="1234").reason == Reason.WRONG_PIN
    assert decide(pin_site(pin_digest_key=b"x" * 32), "A1", KEYPAD, MONDAY_10, pin="1234").reason == Reason.WRONG_PIN


def test_a_card_at_a_pin_only_keypad_with_card_and_pin_still_needs_its_pin():
    assert decide(pin_site(), "A1", PIN_PAD, MONDAY_10).reason == Reason.PIN_REQUIRED
    assert decide(pin_site(), "A1", PIN_PAD, MONDAY_10, pin="1234").granted


def test_a_readers_own_direction_rules_anti_passback():
    rules = site()
    inside = frozenset({PARKING})
    # GATE_OUT is an exit; a reader there set to "entry" refuses one who is inside.
    assert decide(rules, "D4", GATE_OUT, MONDAY_10, inside_zones=inside).granted
    assert decide(rules, "D4", GATE_OUT, MONDAY_10, inside_zones=inside, direction="entry").reason == (
        Reason.ANTI_PASSBACK
    )
    granted = decide(rules, "D4", GATE_OUT, MONDAY_10)
    assert passback_after(rules, granted, GATE_OUT, frozenset(), direction="entry") == inside


# --- anti-passback kinds, occupancy limits, opening modes ---------------------------------------------------


def zoned(**zone) -> engine.Snapshot:
    """The site with the parking zone's anti-passback and occupancy set as given."""
    parking = dataclasses.replace(site().zones[PARKING], **zone)
    return site(zones={**site().zones, PARKING: parking})


ENTERED_AT_9 = {PARKING: (MONDAY_10 - dt.timedelta(hours=1)).timestamp()}


def test_hard_anti_passback_refuses_a_second_entry_and_soft_grants_it_with_a_warning():
    hard = decide(zoned(), "D4", GATE_IN, MONDAY_10, inside_zones=ENTERED_AT_9)
    assert (hard.granted, hard.reason) == (False, "anti_passback")
    soft = decide(zoned(passback_kind="soft"), "D4", GATE_IN, MONDAY_10, inside_zones=ENTERED_AT_9)
    assert (soft.granted, soft.reason, soft.warning) == (True, "granted", "anti_passback")
    # Someone who does not use anti-passback is not held to it; nor is anyone leaving.
    assert decide(zoned(), "A1", GATE_IN, MONDAY_10, inside_zones=ENTERED_AT_9).warning == ""
    assert decide(zoned(), "D4", GATE_OUT, MONDAY_10, inside_zones=ENTERED_AT_9).granted


def test_timed_anti_passback_lets_a_cardholder_in_again_once_its_minutes_have_passed():
    rules = zoned(passback_seconds=3600)
    assert decide(rules, "D4", GATE_IN, MONDAY_10, inside_zones=ENTERED_AT_9).granted
    assert decide(rules, "D4", GATE_IN, MONDAY_10 - dt.timedelta(seconds=1), inside_zones=ENTERED_AT_9).reason == (
        "anti_passback"
    )


def test_a_full_zone_refuses_entry_but_not_exit_nor_someone_already_counted_inside():
    rules = zoned(max_occupancy=3)
    assert decide(rules, "A1", GATE_IN, MONDAY_10, occupancy={PARKING: 2}).granted
    full = decide(rules, "A1", GATE_IN, MONDAY_10, occupancy={PARKING: 3})
    assert (full.granted, full.reason, full.cardholder_id) == (False, "zone_full", ALICE)
    assert decide(rules, "A1", GATE_OUT, MONDAY_10, occupancy={PARKING: 3}).granted
    assert decide(rules, "A1", GATE_IN, MONDAY_10, occupancy={PARKING: 3}, inside_zones={PARKING: 0.0}).granted
    # An operator's correction counts: two counted, corrected up by one.
    corrected = zoned(max_occupancy=3, occupancy_correction=1)
    assert decide(corrected, "A1", GATE_IN, MONDAY_10, occupancy={PARKING: 2}).reason == "zone_full"
    # A zone of no places is closed to entry.
    assert decide(zoned(max_occupancy=0), "A1", GATE_IN, MONDAY_10).reason == "zone_full"


def test_anti_passback_outranks_a_full_zone_and_the_pin_comes_after_both():
    rules = zoned(max_occupancy=1)
    gate = point(GATE_IN, PARKING, direction="entry", pin_required=True)
    rules = dataclasses.replace(rules, access_points={**rules.access_points, GATE_IN: gate})
    assert decide(rules, "D4", GATE_IN, MONDAY_10, inside_zones=ENTERED_AT_9, occupancy={PARKING: 1}).reason == (
        "anti_passback"
    )
    assert decide(rules, "A1", GATE_IN, MONDAY_10, occupancy={PARKING: 1}).reason == "zone_full"
    assert decide(rules, "A1", GATE_IN, MONDAY_10, occupancy={PARKING: 0}).reason == "pin_required"


def test_a_locked_door_refuses_everyone_but_those_who_override_lockdown():
    rules = site(access_points={**site().access_points, MAIN: point(MAIN, LOBBY, mode="locked")})
    assert decide(rules, "A1", MAIN, MONDAY_10).reason == "door_locked"
    assert decide(rules, "E5", MAIN, MONDAY_10).granted
    # Its own reason comes after the key's and the cardholder's.
    assert decide(rules, "B2", MAIN, MONDAY_10).reason == "banned"


def test_the_passage_of_a_granted_decision_enters_or_leaves_the_tracked_zones():
    rules = site(zones={**site().zones, LOBBY: ZoneRule(LOBBY, roll_call=True)})
    rules = dataclasses.replace(
        rules, access_points={**rules.access_points, GATE_IN: point(GATE_IN, PARKING, LOBBY, LABS, direction="entry")}
    )
    granted = decide(rules, "A1", GATE_IN, MONDAY_10)
    assert engine.passage(rules, granted, GATE_IN) == ({PARKING, LOBBY}, frozenset())
    assert engine.passage(rules, granted, GATE_IN, "exit") == (frozenset(), {PARKING, LOBBY})
    assert engine.passage(rules, granted, GATE_IN, "both") == (frozenset(), frozenset())
    assert engine.passage(rules, decide(rules, "07", GATE_IN, MONDAY_10), GATE_IN) == (frozenset(), frozenset())


def test_the_opening_mode_releases_a_door_when_open_or_timed_within_its_period():
    points = site().access_points
    rules = site(
        access_points={
            **points,
            MAIN: point(MAIN, mode="timed", timed_period_id=OFFICE),
            LAB: point(LAB, mode="open"),
            ROOM: point(ROOM, mode="office", timed_period_id=OFFICE),
        }
    )
    assert engine.released_by_mode(rules, MAIN, MONDAY_10)
    assert not engine.released_by_mode(rules, MAIN, SUNDAY_10)
    assert engine.released_by_mode(rules, LAB, SUNDAY_10)
    assert not engine.released_by_mode(rules, ROOM, MONDAY_10)
    assert not engine.released_by_mode(rules, 999, MONDAY_10)
    # A timed door still decides every card: the event is recorded as for any other door.
    assert decide(rules, "07", MAIN, MONDAY_10).reason == "no_permission"
