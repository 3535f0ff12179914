"""A reader's keypad: PIN entry, card + PIN, and the lockout after wrong PINs.

Pure: the instant (monotonic seconds) is an argument. Keys arrive as the reader
sends them (one or several at a time): digits collect into the entry, ``#``
ends it, ``*`` clears it, and an entry left untouched for ``timeout`` seconds is
forgotten. A card that needs its PIN (card + PIN) waits ``timeout`` seconds
for it; the next completed entry is that card's PIN, otherwise the entry is a
PIN typed alone.

``max_wrong`` wrong PINs in a row (wrong for a card, or no cardholder's PIN)
lock the keypad for ``lockout`` seconds: every credential presented there is
refused meanwhile. A granted PIN resets the count.
"""

from dataclasses import dataclass

MAX_DIGITS = 8
END = "#"
CLEAR = "*"


@dataclass(frozen=True, slots=True)
class PinEntered:
    pin: str
    card_uid: str | None  # the card waiting for it, or None: a PIN typed alone


@dataclass(frozen=True, slots=True)
class CardTimedOut:
    card_uid: str


class Keypad:
    def __init__(self, *, timeout: float = 10.0, max_wrong: int = 3, lockout: float = 60.0):
        self.timeout = timeout
        self.max_wrong = max_wrong
        self.lockout = lockout
        self.entry = ""
        self.touched_at = 0.0
        self.card_uid: str | None = None
        self.card_at = 0.0
        self.wrong = 0
        self.locked_until = 0.0

    def locked(self, now: float) -> bool:
        return now < self.locked_until

    def await_pin(self, now: float, card_uid: str) -> None:
        """A card was read that needs its PIN: the next entry is for it (a newer card replaces it)."""
        self.card_uid = card_uid
        self.card_at = now
        self.entry = ""

    def keys(self, now: float, keys: str) -> list[PinEntered]:
        """Take keys; returns the entries they completed (usually none or one)."""
        if self.entry and now - self.touched_at > self.timeout:
            self.entry = ""
        self.touched_at = now
        done = []
        for key in keys:
            if key.isdigit():
                # Past the longest PIN the entry cannot be right: keep it too long, so it is refused as wrong.
                self.entry = (self.entry + key)[: MAX_DIGITS + 1]
            elif key == CLEAR:
                self.entry = ""
            elif key == END:
                if self.entry:
                    card, self.card_uid = self.card_uid, None
                    done.append(PinEntered(self.entry, card))
                self.entry = ""
        return done

    def tick(self, now: float) -> list[CardTimedOut]:
        if self.card_uid is not None and now - self.card_at > self.timeout:
            card, self.card_uid = self.card_uid, None
            self.entry = ""
            return [CardTimedOut(card)]
        return []

    def wrong_pin(self, now: float) -> bool:
        """Count a wrong PIN; True when this one locked the keypad."""
        self.wrong += 1
        if self.wrong >= self.max_wrong:
            self.wrong = 0
            self.locked_until = now + self.lockout
            self.card_uid = None
            self.entry = ""
            return True
        return False

    def right_pin(self) -> None:
        self.wrong = 0
