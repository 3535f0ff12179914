"""The browser tests' own helpers that need no browser: TOTP codes, URL names."""

from tests.browser.helpers import login_path, totp_code, url_path

RFC_6238_KEY = b"12345678901234567890".hex()  # the SHA-1 key of RFC 6238's appendix B


def test_totp_codes_match_the_rfc_6238_test_vectors_with_leading_zeros_kept():
    assert totp_code(RFC_6238_KEY, at=59, digits=8) == "94287082"
    assert totp_code(RFC_6238_KEY, at=1111111109, digits=8) == "07081804"
    assert totp_code(RFC_6238_KEY, at=2000000000, digits=8) == "69279037"


def test_a_six_digit_code_is_the_last_six_digits_of_the_eight_digit_one():
    assert totp_code(RFC_6238_KEY, at=1111111109) == "081804"


def test_a_url_name_no_page_defines_yet_gives_none_and_the_login_page_falls_back_to_the_admin():
    assert url_path("no_such_page_anywhere") is None
    assert login_path() == (url_path("login") or "/admin/login/")
    assert url_path("admin:login") == "/admin/login/"
