"""The door state machine: every way a door moves, and what each asks for."""

from accesscontrol.choices import AuditKind
from devices.choices import AlarmKind
from devices.runtime.doors import AlarmCleared, AlarmRaised, Door, DoorTimes, Record, Relay, StateChanged


def door(**times) -> Door:
    return Door(DoorTimes(**{"open_time": 4, "held_open_time": 30, **times}))


def kinds(effects) -> list:
    return [effect.kind for effect in effects if isinstance(effect, Record)]


def test_a_grant_pulses_the_relay_and_a_passage_locks_when_the_door_closes():
    d = door()
    assert d.release(0, 4) == [Relay(True, 4), StateChanged("released")]
    assert kinds(d.contact(1, True)) == [AuditKind.DOOR_OPENED]
    assert d.state == "open"
    closed = d.contact(2, False)
    assert kinds(closed) == [AuditKind.DOOR_CLOSED]
    # One passage per grant: the rest of the open time is not left for a follower.
    assert Relay(False) in closed and d.state == "locked"


def test_a_release_nobody_uses_ends_by_itself():
    d = door()
    d.release(0, 4)
    assert d.tick(3.9) == []
    assert d.tick(4.0) == [StateChanged("locked")]
    assert d.lock == "locked"


def test_opening_a_locked_door_is_forced_and_raises_an_alarm_until_it_closes():
    d = door()
    effects = d.contact(10, True)
    assert kinds(effects) == [AuditKind.DOOR_FORCED]
    assert AlarmRaised(AlarmKind.FORCED) in effects and d.state == "forced"
    # A forced door left open stays "forced": no second alarm.
    assert kinds(d.tick(100)) == []
    closed = d.contact(101, False)
    assert AlarmCleared(AlarmKind.FORCED) in closed and d.state == "locked"
    assert Relay(False) not in closed


def test_opening_after_the_release_ended_is_forced():
    d = door()
    d.release(0, 4)
    d.tick(5)
    assert kinds(d.contact(6, True)) == [AuditKind.DOOR_FORCED]


def test_a_door_open_past_its_held_open_time_raises_one_alarm():
    d = door(held_open_time=30)
    d.release(0, 4)
    d.contact(1, True)
    assert kinds(d.tick(30.9)) == []
    effects = d.tick(31)
    assert kinds(effects) == [AuditKind.DOOR_LEFT_OPEN]
    assert AlarmRaised(AlarmKind.HELD_OPEN) in effects and d.state == "left_open"
    assert d.tick(60) == []
    closed = d.contact(61, False)
    assert AlarmCleared(AlarmKind.HELD_OPEN) in closed and d.state == "locked"


def test_no_held_open_alarm_when_its_time_is_zero_or_the_door_is_held_open():
    d = door(held_open_time=0)
    d.release(0, 4)
    d.contact(1, True)
    assert kinds(d.tick(1000)) == []
    held = door()
    held.hold_released(0)
    held.contact(1, True)
    assert kinds(held.tick(1000)) == []


def test_the_exit_button_releases_for_the_open_time_and_is_recorded():
    d = door(open_time=6)
    effects = d.exit_request(0)
    assert kinds(effects) == [AuditKind.EXIT_REQUEST] and Relay(True, 6) in effects
    assert kinds(d.contact(1, True)) == [AuditKind.DOOR_OPENED]


def test_a_held_door_stays_released_through_passages_until_the_hold_ends():
    d = door()
    assert d.hold_released(0) == [Relay(True), StateChanged("released")]
    assert d.release(1, 4) == []  # a grant changes nothing on a held door
    d.contact(2, True)
    assert Relay(False) not in d.contact(3, False)
    assert d.tick(100) == [] and d.lock == "released"
    assert d.end_hold(101) == [Relay(False), StateChanged("locked")]
    assert kinds(d.contact(102, True)) == [AuditKind.DOOR_FORCED]


def test_a_contact_report_that_changes_nothing_is_ignored():
    d = door()
    assert d.contact(0, False) == []
    d.contact(1, True)
    assert d.contact(2, True) == []
