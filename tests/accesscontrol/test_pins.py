"""PIN digests: keyed, versioned, and refused in any other form (accesscontrol/pins.py)."""

import hashlib

import pytest

from accesscontrol.pins import hash_pin, pin_matches

KEY = b"k" * 32


def test_a_digest_matches_its_pin_under_its_key_only():
    stored = hash_pin(KEY, "20481024")
    assert pin_matches(KEY, stored, "20481024")
    assert not pin_matches(KEY, stored, "20481025")
    assert not pin_matches(b"another key", stored, "20481024")
    assert not pin_matches(b"", stored, "20481024")
    assert not pin_matches(KEY, stored, None)


def test_an_unkeyed_digest_of_before_never_matches():
    salt = "0123456789abcdef"
    unkeyed = f"{salt}${hashlib.sha256((salt + '1234').encode()).hexdigest()}"
    assert not pin_matches(KEY, unkeyed, "1234")
    assert not pin_matches(KEY, "", "1234")
    assert not pin_matches(KEY, "v2$broken", "1234")


def test_the_format_is_versioned_salted_and_fits_the_column():
    first, second = hash_pin(KEY, "1234"), hash_pin(KEY, "1234")
    assert first != second  # a fresh salt each time
    version, salt, digest = first.split("$")
    assert (version, len(salt), len(digest), len(first)) == ("v2", 16, 64, 84)
    assert hash_pin(KEY, "1234", salt) == first


@pytest.mark.parametrize("pin", ["123", "123456789", "12a4", ""])
def test_only_4_to_8_digits_are_a_pin(pin):
    with pytest.raises(ValueError, match="4 to 8 digits"):
        hash_pin(KEY, pin)


def test_a_digest_needs_its_key():
    with pytest.raises(ValueError, match="needs its key"):
        hash_pin(b"", "1234")
