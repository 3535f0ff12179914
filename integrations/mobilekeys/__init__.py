"""Mobile keys: a key that lives on a phone (docs/mobile-keys.md).

The server mints a token that only the site's locks can open (devices/mobiletoken.py)
and hands it to the phone app of the phone enrolled for the key; the phone and
any service in between only carry it. ``services`` holds the operations, ``api``
the operator endpoints and the phone app's.
"""
