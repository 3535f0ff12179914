"""Opening modes at doors the runtime runs: open holds the door released, timed while its period is active,
toggle and office by grants, standard and locked end the hold; emergencies win; cards are still decided."""

import datetime as dt

import pytest
from django.utils import timezone

from accesscontrol.choices import AuditKind
from accesscontrol.choices import Decision as Reason
from accesscontrol.models import AccessPoint
from devices.choices import CommandOp
from tests.devices.runtime.test_runtime import IO, READER, runtime_for
from tests.factories import give_permission, make_access_point, make_cardholder, make_key, make_time_period

pytestmark = pytest.mark.django_db

HELD, ENDED = (IO, 3, True, None), (IO, 3, False, None)


@pytest.fixture
def door():
    point = make_access_point(open_time=5, held_open_time=20)
    clerk = make_cardholder(office=True)
    give_permission(clerk, point)
    make_key(clerk, uid="0FF1CE00")
    visitor = make_cardholder()
    give_permission(visitor, point)
    make_key(visitor, uid="B0B0B0B0")
    return point


def set_mode(runtime, mode, **extra):
    assert runtime.command(IO, CommandOp.SET_MODE, {"door": 1, "mode": mode, **extra}) is None


def mode_events(store):
    return [(e.kind, e.detail.get("mode")) for e in store.events if e.kind in ("door_released", "door_locked")]


def test_open_mode_holds_the_door_released_until_standard(door):
    runtime, hands, store, _, shown = runtime_for(door)

    set_mode(runtime, "open")
    held = list(hands.relays)
    set_mode(runtime, "standard")

    assert held == [HELD] and hands.relays[-1] == ENDED
    assert mode_events(store) == [(AuditKind.DOOR_RELEASED, "open"), (AuditKind.DOOR_LOCKED, "standard")]
    assert shown[-1]["state"] == "locked"


def test_a_card_at_a_door_held_open_is_decided_and_recorded_without_a_pulse(door):
    runtime, hands, store, _, _ = runtime_for(door)
    set_mode(runtime, "open")

    decision = runtime.card(READER, 1, "B0B0B0B0")

    assert decision.granted
    assert hands.relays == [HELD]
    assert store.kinds()[-1] == (AuditKind.ACCESS_GRANTED, Reason.GRANTED)


def test_locked_mode_ends_the_hold_and_the_engine_refuses(door):
    AccessPoint.objects.filter(pk=door.pk).update(opening_mode="locked")
    runtime, hands, _, _, _ = runtime_for(door)
    set_mode(runtime, "open")

    set_mode(runtime, "locked")
    decision = runtime.card(READER, 1, "B0B0B0B0")

    assert hands.relays == [HELD, ENDED]
    assert (decision.granted, decision.reason) == (False, Reason.DOOR_LOCKED)


def test_toggle_mode_each_grant_holds_or_ends_the_hold(door):
    runtime, hands, _, _, _ = runtime_for(door)
    set_mode(runtime, "toggle")

    runtime.card(READER, 1, "B0B0B0B0")
    runtime.card(READER, 1, "B0B0B0B0")
    runtime.card(READER, 1, "B0B0B0B0")

    assert hands.relays == [HELD, ENDED, HELD]


def test_office_mode_only_office_rights_toggle_and_the_next_mode_change_ends_it(door):
    runtime, hands, _, _, _ = runtime_for(door)
    set_mode(runtime, "office")

    runtime.card(READER, 1, "B0B0B0B0")  # no office rights: an ordinary passage
    runtime.card(READER, 1, "0FF1CE00")  # office rights: held released
    runtime.card(READER, 1, "B0B0B0B0")  # the door is held: no pulse
    set_mode(runtime, "standard")

    assert hands.relays == [(IO, 3, True, 5), HELD, ENDED]


def test_an_office_hold_ends_with_a_change_to_another_mode_and_does_not_come_back(door):
    runtime, hands, _, _, _ = runtime_for(door)
    set_mode(runtime, "office")
    runtime.card(READER, 1, "0FF1CE00")

    set_mode(runtime, "standard")
    set_mode(runtime, "office")

    assert hands.relays == [HELD, ENDED]


def timed_around_now(door, before: int, after: int) -> None:
    """Timed mode with a period from ``before`` minutes ago to ``after`` minutes from now (negative: past).

    Every day is marked, so a period that crosses midnight (an interval ending before it starts) holds too."""
    now = timezone.localtime()
    start = (now - dt.timedelta(minutes=before)).time().replace(second=0, microsecond=0)
    end = (now + dt.timedelta(minutes=after)).time().replace(second=0, microsecond=0)
    days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    period = make_time_period((start.strftime("%H:%M"), end.strftime("%H:%M"), *days))
    AccessPoint.objects.filter(pk=door.pk).update(timed_period=period, opening_mode="timed")


def test_timed_mode_holds_the_door_inside_its_period_whatever_set_mode_said(door):
    timed_around_now(door, 5, 30)
    runtime, hands, store, _, _ = runtime_for(door)

    set_mode(runtime, "timed", open=False)  # the runtime knows the period: it decides
    runtime.tick()

    assert hands.relays == [HELD]
    assert mode_events(store) == [(AuditKind.DOOR_RELEASED, "timed")]


def test_timed_mode_outside_its_period_leaves_the_door_locked(door):
    timed_around_now(door, 60, -30)
    runtime, hands, _, _, _ = runtime_for(door)

    set_mode(runtime, "timed", open=True)
    runtime.tick()

    assert hands.relays == []


def test_timed_mode_without_a_period_known_follows_what_set_mode_says(door):
    runtime, hands, _, _, _ = runtime_for(door)

    set_mode(runtime, "timed", open=True)
    runtime.tick()
    set_mode(runtime, "timed", open=False)

    assert hands.relays == [HELD, ENDED]


def test_an_emergency_wins_over_the_mode_and_the_mode_is_back_when_it_ends(door):
    runtime, hands, _, _, _ = runtime_for(door)
    set_mode(runtime, "open")

    runtime.command(IO, CommandOp.EMERGENCY_CLOSE, {"door": 1})
    set_mode(runtime, "open")  # stored, the door stays closed
    closed = list(hands.relays)
    runtime.command(IO, CommandOp.END_EMERGENCY, {"door": 1})

    assert closed == [HELD, ENDED]
    assert hands.relays == [HELD, ENDED, HELD]
