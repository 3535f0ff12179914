"""No secret in a database dump (DESIGN.md, "Security"): a populated site is dumped and searched.

The site gets every kind of secret Space holds, each made through the path an
operator or integrator uses (actions, the API, the enrolment and login pages):
device keys (SDP/1 devices, a USB encoder's local bridge key), an OSDP reader's
secure channel key, the site card key, webhook secrets, operators' TOTP seeds
and backup codes, PINs, mobile-key invitation codes, phone credentials and
phone secrets, API keys, operators' passwords, and the keys derived from the
master key. Committed (a transactional test), the database is dumped the ways
an attacker would: on SQLite Python's ``iterdump()`` and the raw bytes of the
database file and its write-ahead log; on PostgreSQL a real ``pg_dump``. Each
dump is searched for each secret in every encoding a careless store would use.

So the test can fail, the same searcher must find values planted in clear in
each dump, and the sealed forms of the secrets must be there (the dump covers
the rows that hold them).
"""

import base64
import hashlib
import os
import re
import secrets
import sqlite3
import subprocess
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accesscontrol import actions, twofactor
from accesscontrol.models import Authenticator, BackupCode, Cardholder, Operator, SiteSettings
from accesscontrol.models.secondfactor import BACKUP_CODE_PURPOSE
from accesscontrol.pins import DIGEST_PURPOSE, INDEX_PURPOSE
from core import vault
from devices import actions as device_actions
from devices import cards
from devices.encoding import create_encode_job
from devices.models import Device, EncodeJob, OsdpReader
from integrations.mobilekeys import services as mobile
from integrations.models import WebhookSubscription
from integrations.webhooks.actions import rotate_secret
from tests.accesscontrol.web.logins import PASSWORD, code_for, log_in, send_code, signed_in_operator_id
from tests.devices.osdp_support import make_bus
from tests.factories import make_access_level, make_access_point, make_cardholder, make_key, make_operator
from tests.support.api import client_for

pytestmark = pytest.mark.django_db(transaction=True)

VIA = "test"


# --- the searcher ---------------------------------------------------------------------------------------------


def byte_forms(secret: bytes) -> dict[str, bytes]:
    """How a careless store would write a binary secret: raw, hex, base64, base32 (TOTP's)."""
    forms = {
        "raw": secret,
        "hex": secret.hex().encode(),
        "HEX": secret.hex().upper().encode(),
        "base64": base64.b64encode(secret).rstrip(b"="),
        "base64url": base64.urlsafe_b64encode(secret).rstrip(b"="),
        "base32": base64.b32encode(secret).rstrip(b"="),
        "base32 lower": base64.b32encode(secret).rstrip(b"=").lower(),
    }
    return {name: form for name, form in forms.items() if len(form) >= 8}


def text_forms(secret: str) -> dict[str, bytes]:
    """A text secret: as typed, in either case, hex and base64 of it, and its unkeyed sha256 (reversible when short)."""
    raw = secret.encode()
    return {
        "text": raw,
        "upper": raw.upper(),
        "lower": raw.lower(),
        "hex": raw.hex().encode(),
        "base64": base64.b64encode(raw).rstrip(b"="),
        "sha256": hashlib.sha256(raw).hexdigest().encode(),
    }


def pin_forms(pin: str, salt: str) -> dict[str, bytes]:
    """A PIN: its digits (not within a longer run of hex digits: a random hex string would hold them by chance),
    its unkeyed sha256, and the unkeyed salted digest PINs were stored as before they were keyed."""
    return {
        "digits": pin.encode(),
        "sha256": hashlib.sha256(pin.encode()).hexdigest().encode(),
        "salted sha256": hashlib.sha256((salt + pin).encode()).hexdigest().encode(),
    }


def found(dump: bytes, form: bytes) -> bool:
    if form.isdigit():  # a PIN's digits: alone, not inside a longer hex string
        return re.search(rb"(?<![0-9A-Fa-f])" + form + rb"(?![0-9A-Fa-f])", dump) is not None
    return form in dump


def leaks(dump: bytes, secrets_by_name: dict[str, dict[str, bytes]]) -> list[str]:
    return [f"{name} ({encoding})" for name, forms in secrets_by_name.items() for encoding, form in forms.items()
            if found(dump, form)]  # fmt: skip


# --- the dumps ------------------------------------------------------------------------------------------------


def sqlite_dumps() -> dict[str, bytes]:
    """The files as a copy of a running site's would be (the database and its write-ahead log, which holds the
    newest pages until a checkpoint), and ``iterdump()`` of another connection."""
    path = Path(connection.settings_dict["NAME"])
    wal = Path(f"{path}-wal")
    files = path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    reader = sqlite3.connect(path)
    try:
        logical = "\n".join(reader.iterdump()).encode()
    finally:
        reader.close()
    return {"database and write-ahead log files": files, "iterdump": logical}


def postgresql_dumps() -> dict[str, bytes]:
    db = connection.settings_dict
    command = ["pg_dump", "--format=plain", "--no-owner", "--dbname", db["NAME"]]
    for option, value in (("--host", db["HOST"]), ("--port", db["PORT"]), ("--username", db["USER"])):
        if value:
            command += [option, str(value)]
    env = {**os.environ, "PGPASSWORD": db["PASSWORD"] or ""}
    done = subprocess.run(command, capture_output=True, env=env, check=True, timeout=120)
    return {"pg_dump": done.stdout}


def dumps() -> dict[str, bytes]:
    return sqlite_dumps() if connection.vendor == "sqlite" else postgresql_dumps()


# --- the site -------------------------------------------------------------------------------------------------


def populated_site(client) -> dict:
    """Every kind of secret, made the way Space makes it; returns the secrets (name -> forms) and what it made."""
    found_secrets: dict[str, dict[str, bytes]] = {}
    admin = make_operator(username="admin", is_superuser=True, is_staff=True)
    door = make_access_point(name="Main door")
    level = make_access_level(door)

    # Devices: SDP/1 devices with a generated and a given key, a USB encoder (its local bridge key), an OSDP reader.
    for number, kind, given in (
        (4660, "control_unit", None),
        (4661, "online_lock", secrets.token_bytes(16)),
        (4662, "usb_encoder", None),
        (4663, "updater", None),
    ):
        device = Device(device_id=number, name=f"Device {number}", kind=kind)
        key = device_actions.commission_device(device, key=given, operator=admin, via=VIA)
        found_secrets[f"{kind} key"] = byte_forms(key)
    osdp = device_actions.commission_osdp_reader(
        Device(name="Lobby reader", kind="osdp_reader"), OsdpReader(bus=make_bus(), address=3), operator=admin, via=VIA
    )
    found_secrets["OSDP reader SCBK"] = byte_forms(Device.objects.get(pk=osdp.pk).key())

    # The site card key, and a card file made with it (kept in the encode job that writes it).
    _, card_key = cards.site_card_key()
    found_secrets["site card key"] = byte_forms(card_key)
    card_holder = make_cardholder(level)
    card = make_key(card_holder, uid="04A1B2C3D4E5F6")
    job = create_encode_job(card, Device.objects.get(device_id=4662), admin, via=VIA)
    assert len(job.data) > 0

    # Webhooks: a generated secret (API), a given one (API), a rotated one (action).
    api = client_for(admin)
    for name, body in (("SIEM", {}), ("Given", {"secret": "whsec_given-secret-of-sufficient-length-0451"})):
        created = api.post(
            "/api/v1/webhooks/",
            {"name": name, "url": "https://192.0.2.10/hooks/space", "all_partitions": True, **body},
            format="json",
        )
        assert created.status_code == 201, created.content
        found_secrets[f"webhook secret {name}"] = text_forms(created.json()["secret"])
    rotated = WebhookSubscription.objects.get(name="SIEM")
    found_secrets["webhook secret rotated"] = text_forms(rotate_secret(rotated, operator=admin, via=VIA))

    # Operators: enrolment through the account page (QR code and secret shown), then a login with a code.
    ada = make_operator(username="ada", password=PASSWORD)
    client.force_login(ada)
    page = client.get(reverse("account_two_factor"))
    shown_secret = page.context["secret"].replace(" ", "")
    device = Authenticator.objects.get(user=ada)
    confirmed = client.post(reverse("account_two_factor"), {"code": code_for(device)})
    codes = confirmed.context["codes"]
    client.post(reverse("logout"))
    log_in(client, "ada")
    send_code(client, code_for(device, steps_ahead=1))
    assert signed_in_operator_id(client) == str(ada.pk)  # a session row in django_session
    found_secrets["TOTP seed"] = byte_forms(device.bin_key)
    assert base64.b32encode(device.bin_key).decode().rstrip("=") == shown_secret
    for number, code in enumerate(codes):
        found_secrets[f"backup code {number}"] = text_forms(code)
    # A second operator enrolled the way the API-less admin path would: the twofactor functions.
    grace = make_operator(username="grace")
    pending = twofactor.start_enrolment(grace)
    grace_codes = twofactor.confirm_enrolment(pending, code_for(pending))
    found_secrets["TOTP seed (grace)"] = byte_forms(Authenticator.objects.get(user=grace).bin_key)
    for number, code in enumerate(grace_codes):
        found_secrets[f"backup code {number} (grace)"] = text_forms(code)
    found_secrets["operator password"] = {"text": PASSWORD.encode()}

    # Cardholders with distinctive 8-digit PINs: through the action, the API and the model (as a CSV import does).
    pins = [f"{secrets.randbelow(10**8):08d}" for _ in range(4)]
    holders = []
    for pin in pins[:2]:
        holder = make_cardholder(level)
        actions.set_cardholder_pin(holder, pin, operator=admin, via=VIA)
        holders.append(holder)
    created = api.post("/api/v1/cardholders/", {"last_name": "Api", "pin": pins[2]}, format="json")
    assert created.status_code == 201, created.content
    holders.append(Cardholder.objects.get(pk=created.json()["id"]))
    holders.append(make_cardholder(level, pin=pins[3]))
    for pin, holder in zip(pins, holders, strict=True):
        holder.refresh_from_db()
        assert holder.check_pin(pin)
        found_secrets[f"PIN {pin}"] = pin_forms(pin, holder.pin_hash.split("$")[1])

    # Mobile keys: issued, an invitation code, the phone's credential, its tokens' phone secrets.
    guest = make_cardholder(level, first_name="Ada", last_name="Guest")
    mobile_key, _token = mobile.issue(guest, operator=admin, via=VIA)
    enrolment, code = mobile.invite(mobile_key, operator=admin, via=VIA)
    found_secrets["invitation code"] = text_forms(code)
    enrolment, credential = mobile.enrol(code)
    found_secrets["phone credential"] = text_forms(credential)
    for number, phone_token in enumerate(mobile.phone_tokens(enrolment)):
        found_secrets[f"phone secret {number}"] = byte_forms(phone_token.minted.phone_secret)
    pending_code = mobile.invite_key(mobile_key.key, operator=admin, via=VIA)[1]
    found_secrets["pending invitation code"] = text_forms(pending_code)

    # API keys.
    _, token = actions.issue_api_key(admin, "PMS", operator=admin, via=VIA)
    found_secrets["API key"] = text_forms(token)

    # What never leaves the environment, and the keys derived from it.
    found_secrets["master key"] = text_forms(settings.SPACE_MASTER_KEY)
    found_secrets["Django secret key"] = text_forms(settings.SECRET_KEY)
    for purpose in (DIGEST_PURPOSE, INDEX_PURPOSE, BACKUP_CODE_PURPOSE):
        found_secrets[f"derived key {purpose}"] = byte_forms(vault.derive(purpose))
    for name, forms in found_secrets.items():
        if name.startswith(("API key", "phone credential", "invitation", "pending", "webhook", "Django", "master")):
            # Random tokens of 60 bits (invitation codes, which expire within days) to 256: a plain sha256 is the
            # designed digest of the first three, and out of reach of a search.
            forms.pop("sha256", None)
    return {"secrets": found_secrets, "holders": holders, "operators": [ada, grace]}


def sealed_values() -> dict[str, bytes]:
    """What the rows hold instead: sealed bytes and keyed digests, which a dump must show (it covers those rows)."""
    values = {}
    for device in Device.objects.all():
        values[f"{device.name} sealed key"] = bytes(device.key_sealed)
    values["sealed card key"] = bytes(SiteSettings.objects.get(pk=1).card_key_sealed)
    for subscription in WebhookSubscription.objects.all():
        values[f"{subscription.name} sealed secret"] = bytes(subscription.secret_sealed)
    for device in Authenticator.objects.all():
        values[f"{device.user} sealed seed"] = bytes(device.seed_sealed)
    for job in EncodeJob.objects.all():
        values[f"card file of job {job.pk}"] = bytes(job.data)[:64]
    for code in BackupCode.objects.all():
        values[f"backup code digest {code.pk}"] = code.digest.encode()
    for holder in Cardholder.objects.exclude(pin_hash=""):
        values[f"{holder} PIN digest"] = holder.pin_hash.encode()
    return values


def appears(dump: bytes, value: bytes) -> bool:
    # Text values are written as they are; bytes as raw (file), X'HEX' (iterdump) or \x hex (pg_dump).
    return value in dump or value.hex().encode() in dump or value.hex().upper().encode() in dump


def plant_clear_values() -> dict[str, dict[str, bytes]]:
    """A careless store, on purpose: a key in clear in a binary column, a PIN and a TOTP seed in text columns."""
    key, seed, pin = secrets.token_bytes(16), secrets.token_bytes(20), f"{secrets.randbelow(10**8):08d}"
    device = Device.objects.create(device_id=9999, name="Careless", kind="control_unit", key_sealed=key)
    device.description = f"seed {base64.b32encode(seed).decode()}"
    device.save()
    make_cardholder(notes=f"PIN: {pin}")
    return {"planted key": {"raw or hex": key}, "planted seed": {"base32": base64.b32encode(seed)}, "planted PIN":
            {"digits": pin.encode()}}  # fmt: skip


# --- the test -------------------------------------------------------------------------------------------------


def test_a_dump_of_a_populated_site_reveals_no_key_pin_or_second_factor(client):
    site = populated_site(client)
    planted = plant_clear_values()

    # The secrets are really stored, sealed or keyed.
    assert Device.objects.exclude(key_sealed=b"").count() == Device.objects.count() == 6
    assert all(holder.pin_hash.startswith("v2$") and holder.pin_index for holder in site["holders"])
    assert Authenticator.objects.filter(confirmed=True).count() == 2
    assert BackupCode.objects.count() == 20
    assert WebhookSubscription.objects.exclude(secret_sealed=b"").count() == 2
    assert not TOTPDevice.objects.exists() and not StaticToken.objects.exists()  # django-otp's clear stores: unused
    sealed = sealed_values()

    for dump_name, dump in dumps().items():
        assert not leaks(dump, site["secrets"]), f"{dump_name} reveals {leaks(dump, site['secrets'])}"
        # The searcher finds what is there: planted clear values in every form a test plants them...
        for name, forms in planted.items():
            for form in forms.values():
                assert appears(dump, form) or found(dump, form), f"{dump_name} misses the {name}"
        # ...and the sealed values, so the dump covers the rows that hold the secrets.
        missing = [name for name, value in sealed.items() if not appears(dump, value)]
        assert not missing, f"{dump_name} misses {missing}"


def test_the_searcher_finds_each_encoding_of_a_secret():
    secret = secrets.token_bytes(20)
    for encoding, form in byte_forms(secret).items():
        assert f"seed ({encoding})" in leaks(b"...'" + form + b"'...", {"seed": byte_forms(secret)})
    assert leaks(b"notes\t31415926\t", {"PIN": pin_forms("31415926", "ab")}) == ["PIN (digits)"]
    assert not leaks(b"...", {"seed": byte_forms(secret)})
    assert not leaks(b"digest 9f31415926a0", {"PIN": pin_forms("31415926", "ab")})  # inside a hex string: chance


def test_no_model_stores_a_password_but_the_operators_hash():
    """The LDAP bind password and the SHIP host key live in the environment only: no column could hold them."""
    suspicious = re.compile(r"password|passwd|bind|secret|api_key|host_key|token", re.IGNORECASE)
    columns = {
        f"{model._meta.label}.{field.name}"
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if suspicious.search(field.name)
    }
    assert columns == {
        "accesscontrol.Operator.password",  # Argon2 hash
        "accesscontrol.CardholderSource.secret_sealed",  # sealed (a directory's bind password, a feed's token)
        "integrations.WebhookSubscription.secret_sealed",  # sealed
        "otp_static.StaticToken.token",  # django-otp's own, unused: emptied by migration 0012, as TOTPDevice
    }
    assert Operator._meta.get_field("password").max_length == 128
