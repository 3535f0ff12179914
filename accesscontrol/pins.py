"""PIN codes: how they are checked and stored.

A PIN is 4 to 8 digits. It is stored as ``salt$sha256(salt + pin)``; a fast hash
because the decision engine checks it on the hot path. (Ten million PINs are
brute-forced from any hash in seconds, so a slow hash would add latency, not
safety: the protection of the stored value is the database's.)

A PIN typed alone at a keypad (a PIN-only access point) must find its cardholder
without a card, so each cardholder with a PIN also has a *PIN index*:
``HMAC-SHA256(index key, pin)``, where the index key is derived from the master
key (``core.vault.derive``) and never stored. The index is unique among
cardholders (two people cannot share a PIN), and a database dump alone cannot
be searched for a PIN without the master key.
"""

import hashlib
import hmac
import re
import secrets

PIN_PATTERN = re.compile(r"^[0-9]{4,8}$")
PIN_TAKEN = "Another cardholder has this PIN; choose another."


def is_valid_pin(pin: str) -> bool:
    return isinstance(pin, str) and PIN_PATTERN.match(pin) is not None


def hash_pin(pin: str, salt: str | None = None) -> str:
    if not is_valid_pin(pin):
        raise ValueError("A PIN is 4 to 8 digits.")
    salt = salt or secrets.token_hex(8)
    return f"{salt}${hashlib.sha256((salt + pin).encode()).hexdigest()}"


def pin_matches(stored: str, pin: str | None) -> bool:
    if not stored or pin is None or "$" not in stored:
        return False
    salt, _ = stored.split("$", 1)
    return hmac.compare_digest(stored, f"{salt}${hashlib.sha256((salt + pin).encode()).hexdigest()}")


def pin_index(index_key: bytes, pin: str) -> str:
    """The keyed digest that finds a cardholder by PIN alone (hex, 64 characters)."""
    return hmac.new(index_key, pin.encode(), hashlib.sha256).hexdigest()
