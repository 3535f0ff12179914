"""A simulated USB encoder: the device end of a pseudo-terminal pair, speaking docs/usb-encoder.md.

It stands in for the encoder on an operator's desk. ``start()`` opens a pty
pair; the local bridge opens ``port`` (the other end's /dev/pts name) as if it
were /dev/ttyUSB0. Its "card field" holds at most one card: ``place_card`` puts
one there (a UID, a card type, the data already on it), ``remove_card`` takes
it away; ``card`` is what is there now, with the data written on it.

Card types and the card files they hold (``CAPACITY``): a card of another type,
or one too small for the data, is ``wrong_card_type``; a locked card is
``write_failed``; a card other than the one the host asked for is
``wrong_card``. No card placed within the command's timeout is ``no_card``.
A frame with a bad CRC is answered ``checksum``; other bad frames are dropped
and counted (``counters``). Free of Django.

Run it alone to try a local bridge by hand:
``python -m simulation.usb_encoder --card 04A1B2C3D4E5F6:desfire_ev3_4k``.
"""

import argparse
import os
import select
import threading
import time
import tty
from dataclasses import dataclass

from devices import usbserial as wire

CAPACITY = {"desfire_ev3_2k": 2048, "desfire_ev3_4k": 4096, "desfire_ev3_8k": 8192}
IDENT = "Space simulated USB encoder 1.0"
IDLE_SECONDS = 0.1
POLL_SECONDS = 0.01


@dataclass
class Card:
    uid: bytes
    card_type: str
    data: bytes = b""
    locked: bool = False


class SimulatedUsbEncoder:
    def __init__(self, block: int = 512, block_seconds: float = 0.005):
        self.block = block
        self.block_seconds = block_seconds
        self.decoder = wire.Decoder()
        self.card: Card | None = None
        self.commands: list[wire.Message] = []
        self.port = ""
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._cancel = threading.Event()
        self._running: tuple[int, threading.Thread] | None = None
        self._garbled = 0

    @property
    def counters(self) -> dict[str, int]:
        return self.decoder.counters

    # --- the card field -------------------------------------------------------------------------

    def place_card(self, uid: bytes | str, card_type: str = "desfire_ev3_4k", data: bytes = b"", locked=False) -> Card:
        uid = bytes.fromhex(uid) if isinstance(uid, str) else uid
        self.card = Card(uid, card_type, data, locked)
        return self.card

    def remove_card(self) -> None:
        self.card = None

    def garble(self, frames: int = 1) -> None:
        """Line noise: the next ``frames`` frames received fail their CRC (and are answered ``checksum``)."""
        self._garbled = frames

    # --- the line -------------------------------------------------------------------------------

    def start(self) -> "SimulatedUsbEncoder":
        self.master, self.slave = os.openpty()
        # Raw: every byte passes as it is (no echo, no line discipline), as on a USB serial port.
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self._reader = threading.Thread(target=self._read_line, name="sim-usb-encoder", daemon=True)
        self._reader.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._cancel.set()
        self._reader.join(2)
        if self._running is not None:
            self._running[1].join(2)
        os.close(self.master)
        os.close(self.slave)

    def send(self, seq: int, message: wire.Message) -> None:
        self.write_raw(wire.encode(seq, message))

    def write_raw(self, data: bytes) -> None:
        with self._lock:
            if not self._stopping.is_set():
                os.write(self.master, data)

    def _read_line(self) -> None:
        quiet_since = time.monotonic()
        while not self._stopping.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                if self.decoder.buffer and time.monotonic() - quiet_since > IDLE_SECONDS:
                    self._handle_all(self.decoder.idle())
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:
                # The other end is not open (no bridge yet, or it closed): wait for it.
                time.sleep(0.05)
                continue
            quiet_since = time.monotonic()
            self._handle_all(self.decoder.feed(data))

    def _handle_all(self, frames: list[wire.Frame]) -> None:
        for frame in frames:
            self._handle(frame)

    def _handle(self, frame: wire.Frame) -> None:
        message = frame.message
        if message is not None and self._garbled > 0:
            self._garbled -= 1
            self.decoder.count("checksum")
            message, frame = None, wire.Frame(frame.seq, None, "checksum")
        if message is None:
            if frame.dropped == "checksum":
                self.send(frame.seq, wire.Error("checksum"))
            return
        self.commands.append(message)
        match message:
            case wire.Identify():
                self.send(frame.seq, wire.Ident(IDENT))
            case wire.Cancel():
                self._cancel.set()
            case wire.Write() | wire.Read():
                self._start(frame.seq, message)
            case _:
                self.send(frame.seq, wire.Error("bad_command", type(message).__name__))

    def _start(self, seq: int, message: wire.Write | wire.Read) -> None:
        if self._running is not None and self._running[1].is_alive():
            if self._running[0] != seq:
                self.send(seq, wire.Error("busy"))
            return  # the same SEQ again: the host resent a command that is under way
        self._cancel.clear()
        worker = threading.Thread(target=self._run, args=(seq, message), daemon=True)
        self._running = (seq, worker)
        worker.start()

    # --- commands -------------------------------------------------------------------------------

    def _run(self, seq: int, message: wire.Write | wire.Read) -> None:
        if isinstance(message, wire.Read):
            self.send(seq, wire.Progress("waiting_card"))
            card = self._wait_for_card(message.timeout_s)
            answer = card if isinstance(card, wire.Error) else wire.Ok(card.uid, card.data)
        else:
            answer = self._write(seq, message)
        self.send(seq, answer)

    def _wait_for_card(self, timeout_s: int) -> Card | wire.Error:
        deadline = time.monotonic() + timeout_s
        while (card := self.card) is None:
            if self._cancel.is_set():
                return wire.Error("cancelled")
            if time.monotonic() >= deadline:
                return wire.Error("no_card")
            time.sleep(POLL_SECONDS)
        return card

    def _write(self, seq: int, message: wire.Write) -> wire.Ok | wire.Error:
        self.send(seq, wire.Progress("waiting_card"))
        card = self._wait_for_card(message.timeout_s)
        if isinstance(card, wire.Error):
            return card
        if CAPACITY.get(card.card_type, 0) < len(message.data):
            return wire.Error("wrong_card_type", f"{card.card_type} cannot hold {len(message.data)} bytes")
        if message.uid and card.uid != message.uid:
            return wire.Error("wrong_card", f"card {card.uid.hex().upper()} is not {message.uid.hex().upper()}")
        if card.locked:
            return wire.Error("write_failed", "the card is write-protected")
        for start in range(0, len(message.data), self.block):
            if self.card is not card or self._cancel.is_set():
                return wire.Error("write_failed", "the card left the field while being written")
            time.sleep(self.block_seconds)
            card.data = message.data[: start + self.block] + card.data[start + self.block :]
            percent = min(100, (start + self.block) * 100 // len(message.data))
            self.send(seq, wire.Progress("writing", percent))
        card.data = message.data
        return wire.Ok(card.uid)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A simulated USB encoder on a pseudo-terminal.")
    parser.add_argument("--card", help="UID:TYPE of a card left on the encoder, e.g. 04A1B2C3D4E5F6:desfire_ev3_4k")
    args = parser.parse_args(argv)
    encoder = SimulatedUsbEncoder().start()
    if args.card:
        uid, _, card_type = args.card.partition(":")
        encoder.place_card(uid, card_type or "desfire_ev3_4k")
    print(f"Simulated USB encoder on {encoder.port}; Ctrl-C to stop.", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        encoder.stop()


if __name__ == "__main__":
    main()
