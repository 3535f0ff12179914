"""devices.osdp.bus against libosdp's own peripheral device, over a pseudo-terminal and over TCP.

Install mode and KEYSET, the secure channel and a wrong key, what readers report
(cards, keys, inputs, tamper, identity), the commands that reach them with the
right fields, readers and lines that come and go, eight readers on one line, and
line noise.
"""

import random
import threading

import osdp
import pytest

from devices.osdp.bus import (
    Bus,
    CardRead,
    Identity,
    Inputs,
    Keypad,
    KeySet,
    Link,
    Local,
    Outputs,
    ReaderSpec,
    SecureFailed,
)
from simulation.osdp_readers import SimulatedReader
from tests.support.waiting import wait_until

KEY = bytes(range(16))
OTHER_KEY = bytes(range(100, 116))
WIEGAND_26 = bytes([0x5A, 0x3C, 0x81, 0x40])  # 26 bits, left-aligned


def online_reader(line, run_bus, address=1, key=KEY, **spec):
    """A reader that already holds ``key``, and a bus that has it online over the secure channel."""
    reader = line.add_reader(address, key)
    running = run_bus(line.url, [ReaderSpec(address, key, **spec)])
    running.wait_link(address)
    return reader, running


# --- install mode, KEYSET and the secure channel


def test_a_new_reader_in_install_mode_takes_its_key_and_the_secure_channel_comes_up(line, run_bus):
    reader = line.add_reader(1)  # no key: install mode

    running = run_bus(line.url, [ReaderSpec(1, KEY)])
    running.wait_link(1, online=True, secure=True)

    assert running.of(KeySet) == [KeySet(1)]
    assert running.of(SecureFailed) == []
    assert reader.received("keyset")[0].fields == {"type": 1, "data": KEY}
    assert reader.scbk == KEY and not reader.install_mode
    assert running.bus.is_online(1) and running.bus.is_secure(1)
    # Events reach the handler on the event loop's thread, never on the bus thread.
    assert running.handler_threads == {running.thread.ident}


def test_the_reader_keeps_the_new_key_and_refuses_a_wrong_one(pty_line, run_bus):
    reader = pty_line.add_reader(1)
    first = run_bus(pty_line.url, [ReaderSpec(1, KEY)])
    first.wait_event(lambda e: e == KeySet(1))
    first.stop()

    # A control panel started again with the key that was set gets the secure channel at once, without KEYSET.
    again = run_bus(pty_line.url, [ReaderSpec(1, KEY)])
    again.wait_link(1, online=True, secure=True)
    assert again.of(KeySet) == []
    again.stop()

    # One with another key does not: reported, and with enforce_secure the reader is never used in clear.
    wrong = run_bus(pty_line.url, [ReaderSpec(1, OTHER_KEY)])
    wrong.wait_event(lambda e: e == SecureFailed(1))
    reader.present_card(WIEGAND_26, 26)
    assert wrong.bus.output(1, 0, True) is False
    wrong.stop()
    assert wrong.of(Link) == [] and wrong.of(CardRead) == []
    assert wrong.bus.counters["secure_channel_failed"] >= 1
    assert len(reader.received("keyset")) == 1  # the key was set once, and never replaced


def test_without_enforce_secure_a_reader_on_a_wrong_key_is_used_in_clear_and_reported(pty_line, run_bus):
    reader = pty_line.add_reader(1, OTHER_KEY)

    running = run_bus(pty_line.url, [ReaderSpec(1, KEY, enforce_secure=False)])
    running.wait_link(1, online=True, secure=False)
    reader.present_card(WIEGAND_26, 26)

    running.wait_event(lambda e: isinstance(e, CardRead))
    assert SecureFailed(1) in running.events
    assert running.bus.is_online(1) and not running.bus.is_secure(1)


def test_the_bus_reads_the_readers_identity_once_online(pty_line, run_bus):
    reader, running = online_reader(pty_line, run_bus)

    identity = running.wait_event(lambda e: isinstance(e, Identity))

    assert identity.address == 1
    assert identity.serial_number == reader.serial_number
    assert identity.firmware == "1.2.0"
    assert identity.capabilities["output_control"] == (1, 2)
    assert identity.capabilities["contact_status_monitoring"] == (1, 2)
    assert identity.capabilities["communication_security"][0] == 1


# --- what readers report


@pytest.mark.parametrize(
    ("data", "bits", "card_format"),
    [(WIEGAND_26, 26, "wiegand"), (bytes([0xDE, 0xAD, 0xBE, 0xEF, 0x80]), 37, "raw")],
)
def test_a_card_read_arrives_with_its_bits(line, run_bus, data, bits, card_format):
    reader, running = online_reader(line, run_bus)

    assert reader.present_card(data, bits, card_format)

    card = running.wait_event(lambda e: isinstance(e, CardRead))
    assert card == CardRead(1, 0, card_format, bits, data)


def test_keypad_keys_arrive_with_star_and_hash(pty_line, run_bus):
    reader, running = online_reader(pty_line, run_bus)

    reader.press("1234#")
    reader.press("*0")

    running.wait_event(lambda e: e == Keypad(1, "*0"))
    assert running.of(Keypad) == [Keypad(1, "1234#"), Keypad(1, "*0")]


def test_input_changes_arrive_as_inputs(pty_line, run_bus):
    reader, running = online_reader(pty_line, run_bus)

    reader.set_inputs([True, False])  # the door opens
    reader.set_inputs([False, True])  # it closes, and the exit button is pressed

    running.wait_event(lambda e: e == Inputs(1, (False, True)))
    assert running.of(Inputs) == [Inputs(1, (True, False)), Inputs(1, (False, True))]


def test_tamper_and_power_failure_arrive_as_local(pty_line, run_bus):
    reader, running = online_reader(pty_line, run_bus)

    reader.set_tamper(True)
    reader.set_power(True)
    reader.set_tamper(False)

    running.wait_event(lambda e: e == Local(1, tamper=False, power=True))
    assert running.of(Local) == [Local(1, True, False), Local(1, True, True), Local(1, False, True)]


# --- commands


def test_an_output_pulse_reaches_the_reader_with_its_duration(line, run_bus):
    reader, running = online_reader(line, run_bus)

    assert running.bus.output(1, 1, True, pulse_ms=1450)

    command = reader.wait_for(lambda c: c.kind == "output")
    assert command.fields == {"output_no": 1, "control_code": 5, "timer_count": 15}  # on for 15 x 100 ms
    # The reader reports its output on, and off again when the pulse ends.
    running.wait_event(lambda e: e == Outputs(1, (False, True)))
    off = running.wait_event(lambda e: e == Outputs(1, (False, False)))
    assert off is not None


def test_a_permanent_output_state_reaches_the_reader(pty_line, run_bus):
    reader, running = online_reader(pty_line, run_bus)

    assert running.bus.output(1, 0, True)
    assert running.bus.output(1, 0, False)

    reader.wait_for(lambda c: c.kind == "output" and c.fields["control_code"] == 1)
    assert [c.fields for c in reader.received("output")] == [
        {"output_no": 0, "control_code": 2, "timer_count": 0},
        {"output_no": 0, "control_code": 1, "timer_count": 0},
    ]


def test_led_colours_reach_the_reader(pty_line, run_bus):
    reader, running = online_reader(pty_line, run_bus)

    assert running.bus.led(1, "red")
    assert running.bus.led(1, "green", seconds=3)
    assert running.bus.led(1, "amber", on_ms=200, off_ms=300)

    reader.wait_for(lambda c: c.kind == "led" and c.fields["on_color"] == osdp.CommandLEDColor.Amber)
    red, green, amber = (c.fields for c in reader.received("led"))
    assert (red["temporary"], red["control_code"], red["on_color"]) == (False, 1, osdp.CommandLEDColor.Red)
    assert red["off_count"] == 0 and red["off_color"] == osdp.CommandLEDColor.Red  # steady
    assert (green["temporary"], green["on_color"], green["timer_count"]) == (True, osdp.CommandLEDColor.Green, 30)
    assert (amber["on_count"], amber["off_count"], amber["off_color"]) == (2, 3, osdp.CommandLEDColor.Black)


def test_buzzer_and_text_reach_the_reader(pty_line, run_bus):
    reader, running = online_reader(pty_line, run_bus)

    assert running.bus.buzzer(1, on_ms=200, off_ms=100, count=3)
    assert running.bus.text(1, "Welcome")

    text = reader.wait_for(lambda c: c.kind == "text")
    assert text.fields["data"] == "Welcome"
    buzzer = reader.received("buzzer")[0].fields
    assert (buzzer["control_code"], buzzer["on_count"], buzzer["off_count"], buzzer["rep_count"]) == (2, 2, 1, 3)


def test_commands_for_a_reader_that_is_not_online_return_false(pty_line, run_bus):
    running = run_bus(pty_line.url, [ReaderSpec(5, KEY)])  # nobody at address 5

    assert running.bus.output(5, 0, True, pulse_ms=500) is False
    assert running.bus.led(5, "green") is False
    assert running.bus.counters["commands_offline"] == 2


# --- readers and lines that come and go


def test_a_reader_that_stops_goes_offline_and_comes_back(pty_line, run_bus):
    reader, running = online_reader(pty_line, run_bus)

    reader.stop()
    running.wait_link(1, online=False, secure=False, timeout=20)  # libosdp retries for about 8 s first
    assert running.bus.output(1, 0, True) is False
    reader.start()

    running.wait_link(1, online=True, secure=True, timeout=15)
    assert running.of(Link, 1) == [Link(1, True, True), Link(1, False, False), Link(1, True, True)]


def test_a_tcp_converter_going_down_takes_every_reader_offline_until_it_is_back(tcp_line, run_bus):
    for address in (1, 2):
        tcp_line.add_reader(address, KEY)
    running = run_bus(tcp_line.url, [ReaderSpec(1, KEY), ReaderSpec(2, KEY)])
    running.wait_link(1)
    running.wait_link(2)

    tcp_line.disconnect()
    running.wait_link(1, online=False, secure=False)
    running.wait_link(2, online=False, secure=False)
    wait_until(lambda: running.bus.counters["line_open_failed"] >= 1)  # refused while it is down
    tcp_line.reconnect()

    running.wait_link(1)
    running.wait_link(2)
    assert running.bus.counters["line_lost"] == 1


def test_a_serial_port_that_vanishes_is_counted_and_nothing_raises(pty_line, run_bus, tmp_path):
    # Through a link of the test's own: pseudo-terminal numbers are reused at once, and a bus opening the same
    # /dev/pts/N again could land on another test's line.
    port = tmp_path / "ttyOSDP0"
    port.symlink_to(pty_line.path)
    pty_line.add_reader(1, KEY)
    running = run_bus(str(port), [ReaderSpec(1, KEY)])
    running.wait_link(1)

    port.unlink()
    pty_line.stop()  # the adapter unplugged: the port is gone for good

    running.wait_link(1, online=False, secure=False)
    wait_until(lambda: running.bus.counters["line_open_failed"] >= 1)
    assert running.bus.counters["line_lost"] == 1
    assert running.bus.counters["loop_errors"] == 0
    running.stop()  # and it stops cleanly


def test_a_reader_built_by_hand_runs_on_a_thread_of_its_own(pty_line, run_bus):
    reader = SimulatedReader(9, KEY, False, pty_line.channel()).start()
    try:
        running = run_bus(pty_line.url, [ReaderSpec(9, KEY)])
        running.wait_link(9)
        reader.press("5")
        running.wait_event(lambda e: e == Keypad(9, "5"))
    finally:
        reader.stop()


def test_eight_readers_on_one_line_are_all_online_and_each_card_has_its_address(pty_line, run_bus):
    readers = [pty_line.add_reader(address, None if address % 2 else KEY) for address in range(1, 9)]
    running = run_bus(pty_line.url, [ReaderSpec(address, KEY) for address in range(1, 9)])

    for address in range(1, 9):
        running.wait_link(address)
    for reader in readers:
        reader.present_card(bytes([reader.address, 0, 0, 0]), 26)

    wait_until(lambda: len(running.of(CardRead)) == 8, message=lambda: f"{running.events}")
    assert sorted(card.address for card in running.of(CardRead)) == list(range(1, 9))
    assert all(card.data[0] == card.address for card in running.of(CardRead))
    assert sorted(e.address for e in running.of(KeySet)) == [1, 3, 5, 7]


def test_noise_on_the_line_never_crashes_the_bus_and_it_recovers(pty_line, run_bus):
    for address in (1, 2, 3):
        pty_line.add_reader(address, KEY)
    running = run_bus(pty_line.url, [ReaderSpec(address, KEY) for address in (1, 2, 3)])
    for address in (1, 2, 3):
        running.wait_link(address)
    noise = random.Random(485)
    paced = threading.Event()

    pty_line.garble(40, seed=7)  # and 40 frames with a byte flipped, either way
    for _ in range(300):
        pty_line.inject(bytes(noise.randrange(256) for _ in range(noise.randrange(1, 48))))
        paced.wait(0.005)  # paced, not awaited: noise keeps coming while libosdp talks
    wait_until(lambda: pty_line.counters["chunks_garbled"] == 40)

    assert running.bus.running
    for address in (1, 2, 3):
        running.wait_link(address, timeout=30)
    pty_line.readers[0].present_card(WIEGAND_26, 26)
    running.wait_event(lambda e: isinstance(e, CardRead))
    assert running.bus.counters["loop_errors"] == 0
    assert running.bus.counters["events_malformed"] == 0


def test_a_failing_handler_is_counted_and_the_bus_goes_on(pty_line, run_bus):
    def fail_on_cards(event):
        if isinstance(event, CardRead):
            raise RuntimeError("the runtime failed")

    reader = pty_line.add_reader(1, KEY)
    running = run_bus(pty_line.url, [ReaderSpec(1, KEY)], on_event=fail_on_cards)
    running.wait_link(1)

    reader.present_card(WIEGAND_26, 26)
    reader.press("7")

    running.wait_event(lambda e: isinstance(e, Keypad))
    assert running.bus.counters["handler_errors"] == 1


# --- bad arguments are clear errors


def test_bad_reader_specs_and_command_arguments_are_refused():
    with pytest.raises(ValueError, match=r"0\.\.126"):
        ReaderSpec(127, KEY)
    with pytest.raises(ValueError, match="16 bytes"):
        ReaderSpec(1, b"short")
    with pytest.raises(ValueError, match="share an address"):
        Bus("/dev/null", 9600, [ReaderSpec(1, KEY), ReaderSpec(1, OTHER_KEY)], print)
    with pytest.raises(ValueError, match="at most 32"):
        Bus("/dev/null", 9600, [ReaderSpec(address, KEY) for address in range(33)], print)

    bus = Bus("/dev/null", 9600, [ReaderSpec(1, KEY)], print)
    with pytest.raises(ValueError, match="pulse_ms"):
        bus.output(1, 0, True, pulse_ms=30_000)  # libosdp's binding carries a byte of tenths: 25.5 s at most
    with pytest.raises(ValueError, match="colour"):
        bus.led(1, "purple")
    with pytest.raises(ValueError, match="both"):
        bus.led(1, "red", on_ms=100)
    with pytest.raises(ValueError, match="no reader 2"):
        bus.output(2, 0, True)
    with pytest.raises(ValueError, match="printable"):
        bus.text(1, "x" * 33)
    assert "scbk" not in repr(ReaderSpec(1, KEY)) and KEY.hex() not in repr(ReaderSpec(1, KEY))
