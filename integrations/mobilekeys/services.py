"""Mobile key operations: issue, invite a phone, enrol it, hand it its tokens, cancel.

A mobile key is a Key of kind ``mobile`` whose UID is a random 8-byte id. Its
rights travel as a token (devices/mobiletoken.py) minted over the same card
data a card would carry (devices/cards.py), so the lock decides alike for both.

Delivery: the operator asks for an invitation and gives its one-time code to the
guest (by hand, SMS, e-mail: not our concern); the phone app redeems the code
for a phone credential, then fetches its tokens with it. Each fetch mints a
fresh token from the rights of that moment, so a change of rights reaches the
phone at its next fetch, and a cancelled or expired key gets none (its phone
stays enrolled and sees an empty list). Cancelling is the normal
``actions.cancel_key``: the key goes on the blacklist, which cards and PPDs take
to the locks, and they refuse the tokens the phone still holds. A new
invitation for a key revokes the phones enrolled before: one phone per key.
"""

import datetime as dt
import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from accesscontrol import actions
from accesscontrol.choices import KeyKind, KeyStatus
from accesscontrol.models import Cardholder, Key
from devices import cards, mobiletoken
from integrations.mobilekeys.models import MobileKey, PhoneEnrolment, digest

INVITATION_LIFETIME = dt.timedelta(hours=24)
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read out over the phone
CODE_LENGTH = 12  # 60 bits: not guessable within its lifetime, easy to type
CREDENTIAL_PREFIX = "spm"
UID_BYTES = 8


def new_uid() -> str:
    """A random 8-byte key id, in hex, that no issued key has."""
    while True:
        uid = secrets.token_hex(UID_BYTES).upper()
        if not Key.objects.filter(uid=uid, status=KeyStatus.ISSUED).exists():
            return uid


def issue(
    cardholder: Cardholder,
    *,
    operator,
    via: str,
    phone_number: str = "",
    valid_from: dt.datetime | None = None,
    valid_until: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> tuple[MobileKey, bytes]:
    """A new mobile key and its first token. Raises carddata.CardTooBig (nothing is kept) when the
    cardholder's rights do not fit in a token."""
    with transaction.atomic():
        key = actions.issue_key(
            cardholder,
            new_uid(),
            operator=operator,
            via=via,
            kind=KeyKind.MOBILE,
            valid_from=valid_from,
            valid_until=valid_until,
        )
        mobile = MobileKey.objects.create(key=key, phone_number=phone_number)
        token = mint(key, now or timezone.now()).minted.token
    return mobile, token


@dataclass(frozen=True)
class PhoneToken:
    key: Key
    minted: mobiletoken.MintedToken  # the token and the phone secret the phone proves it holds


def mint(key: Key, now: dt.datetime) -> PhoneToken:
    """A token over the key's card data of this moment, sealed with the site card key."""
    _, card_key = cards.site_card_key()
    return PhoneToken(key, mobiletoken.mint(cards.card_data_for_key(key, now), card_key))


def invite(mobile: MobileKey, *, operator, via: str, now: dt.datetime | None = None) -> tuple[PhoneEnrolment, str]:
    """A one-time code the guest's phone app redeems; phones enrolled for this key before are revoked."""
    now = now or timezone.now()
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    with transaction.atomic():
        mobile.enrolments.filter(revoked_at__isnull=True).update(revoked_at=now)
        enrolment = PhoneEnrolment.objects.create(
            mobile_key=mobile, code_digest=digest(code), code_expires_at=now + INVITATION_LIFETIME
        )
        actions.record_operator_action(
            operator, "invite_phone", mobile.key, via=via, detail={"expires_at": enrolment.code_expires_at.isoformat()}
        )
    return enrolment, code


def invite_key(key: Key, *, operator, via: str, now: dt.datetime | None = None) -> tuple[PhoneEnrolment, str]:
    """:func:`invite` for a key of kind mobile, also one issued as a plain key (with no MobileKey yet)."""
    with transaction.atomic():
        mobile, _ = MobileKey.objects.get_or_create(key=key)
        return invite(mobile, operator=operator, via=via, now=now)


def with_phones(keys: list[Key]) -> list[Key]:
    """``keys`` (mobile ones), each given ``phone_number`` and ``phone``: its newest enrolment, or None."""
    mobiles = MobileKey.objects.filter(key__in=keys).prefetch_related("enrolments")
    by_key = {mobile.key_id: mobile for mobile in mobiles}
    for key in keys:
        mobile = by_key.get(key.pk)
        key.phone_number = mobile.phone_number if mobile else ""
        # Enrolments are ordered newest first.
        key.phone = next(iter(mobile.enrolments.all()), None) if mobile else None
    return keys


def normalize_code(code: str) -> str:
    return code.replace("-", "").replace(" ", "").upper()


def enrol(code: str, now: dt.datetime | None = None) -> tuple[PhoneEnrolment, str] | None:
    """Redeem an invitation code: the phone's credential (shown this once), or None for a code that is
    unknown, used, revoked or expired (the phone app is not told which)."""
    now = now or timezone.now()
    with transaction.atomic():
        enrolment = (
            PhoneEnrolment.objects.select_for_update()
            .filter(code_digest=digest(normalize_code(code)), enrolled_at__isnull=True, revoked_at__isnull=True)
            .first()
        )
        if enrolment is None or enrolment.code_expires_at <= now:
            return None
        lookup = secrets.token_hex(6)
        credential = f"{CREDENTIAL_PREFIX}_{lookup}_{secrets.token_urlsafe(32)}"
        enrolment.enrolled_at = now
        enrolment.credential_lookup = lookup
        enrolment.credential_digest = digest(credential)
        enrolment.save(update_fields=["enrolled_at", "credential_lookup", "credential_digest"])
    return enrolment, credential


def authenticate(credential: str) -> PhoneEnrolment | None:
    """The enrolment a phone credential belongs to, while it is in force."""
    parts = credential.split("_", 2)
    if len(parts) != 3 or parts[0] != CREDENTIAL_PREFIX:
        return None
    enrolment = (
        PhoneEnrolment.objects.select_related("mobile_key__key__cardholder").filter(credential_lookup=parts[1]).first()
    )
    if enrolment is None or not secrets.compare_digest(enrolment.credential_digest, digest(credential)):
        return None
    return enrolment if enrolment.is_active else None


def phone_tokens(enrolment: PhoneEnrolment, now: dt.datetime | None = None) -> list[PhoneToken]:
    """Fresh tokens for the phone: none once its key is cancelled or has expired."""
    now = now or timezone.now()
    key = enrolment.mobile_key.key
    PhoneEnrolment.objects.filter(pk=enrolment.pk).update(last_fetched_at=now)
    if key.status != KeyStatus.ISSUED or (key.valid_until is not None and key.valid_until <= now):
        return []
    return [mint(key, now)]


def cardholder_mobile_keys(holder, keys) -> dict:
    """The cardholder page's mobile keys with their phones (registered in accesscontrol.extensions)."""
    return {"mobile_keys": with_phones([key for key in keys if key.kind == KeyKind.MOBILE])}
