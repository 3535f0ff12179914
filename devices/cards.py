"""The server's side of data-on-card: the site card key, card data built from the database, updaters.

devices/carddata.py is the format (pure); this module knows the models.
"""

import datetime as dt
from dataclasses import dataclass

from accesscontrol.models import Key
from devices.carddata import CardData


def site_card_key() -> tuple[int, bytes]:
    """(site code, card key): made on first use, sealed under the master key, cached in the process."""
    raise NotImplementedError


def card_data_for_key(key: Key, now: dt.datetime) -> CardData:
    """What ``key``'s card carries now: its validity, the cardholder's flags, the access list (levels
    and individual grants, expanded to access points and zones with their time periods) and the
    newest blacklist entries."""
    raise NotImplementedError


def card_bytes_for_key(key: Key, now: dt.datetime | None = None) -> bytes:
    """The card file for ``key``; raises carddata.CardTooBig with a message naming what to reduce."""
    raise NotImplementedError


@dataclass(frozen=True)
class UpdateResult:
    outcome: str  # "updated", "unchanged", or a refusal: a carddata reason, "unknown_key", "cancelled", "expired"
    raw: bytes | None = None  # the new card file to write; None when nothing is to be written
    key_id: int | None = None


def update_card(raw: bytes, *, uid: str, updater_id: int | None, now: dt.datetime) -> UpdateResult:
    """What an updater does with a card presented to it (see the module docs)."""
    raise NotImplementedError
