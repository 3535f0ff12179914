"""A reader's keypad: entries, card + PIN and its timeout, the lockout."""

from devices.runtime.keypad import CardTimedOut, Keypad, PinEntered


def test_digits_end_with_hash_and_star_clears():
    pad = Keypad()
    assert pad.keys(0, "12") == []
    assert pad.keys(1, "34#") == [PinEntered("1234", None)]
    assert pad.keys(2, "99*5678#") == [PinEntered("5678", None)]
    assert pad.keys(3, "#") == []  # an empty entry is nothing


def test_an_entry_left_untouched_is_forgotten():
    pad = Keypad(timeout=10)
    pad.keys(0, "12")
    assert pad.keys(10.5, "34#") == [PinEntered("34", None)]


def test_too_many_digits_cannot_be_a_pin():
    pad = Keypad()
    (entry,) = pad.keys(0, "1234567890123#")
    assert len(entry.pin) == 9  # refused as a wrong PIN by the engine, never cut into a right one


def test_a_card_waits_for_its_pin_and_times_out():
    pad = Keypad(timeout=10)
    pad.await_pin(0, "CARD")
    assert pad.keys(5, "1234#") == [PinEntered("1234", "CARD")]
    pad.await_pin(20, "CARD")
    assert pad.tick(29) == []
    assert pad.tick(30.5) == [CardTimedOut("CARD")]
    assert pad.keys(31, "1234#") == [PinEntered("1234", None)]


def test_wrong_pins_lock_the_keypad_for_a_while_and_a_right_one_resets_the_count():
    pad = Keypad(max_wrong=3, lockout=60)
    assert not pad.wrong_pin(0)
    assert not pad.wrong_pin(1)
    pad.right_pin()
    assert not pad.wrong_pin(2) and not pad.wrong_pin(3)
    assert pad.wrong_pin(4)
    assert pad.locked(4) and pad.locked(63.9) and not pad.locked(64)
