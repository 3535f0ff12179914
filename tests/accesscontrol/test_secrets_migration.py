"""Migration 0012: stored PIN digests keyed, django-otp's clear TOTP seeds and backup codes moved and deleted.

The rows are written as the code before 0012 wrote them (``salt$sha256(salt + pin)``,
a TOTPDevice with its hex key, StaticTokens as typed); after the migration each PIN
and each second factor still works, through today's code, and the clear rows are gone.
"""

import hashlib
import importlib
import time

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django_otp.oath import TOTP

from accesscontrol import twofactor
from accesscontrol.models import Authenticator, BackupCode, Cardholder, Operator
from accesscontrol.pins import DIGEST_PURPOSE, hash_pin
from core import vault

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [
    ("accesscontrol", "0011_modes_presence"),
    ("otp_totp", "0003_add_timestamps"),
    ("otp_static", "0003_add_timestamps"),
]
AFTER = [("accesscontrol", "0012_secrets_at_rest")]
SEED_HEX = "3132333435363738393031323334353637383930"  # RFC 6238's test seed


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def salt_of(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:16]  # 16 hex digits, as hash_pin made them


def unkeyed(pin: str, salt: str) -> str:
    return f"{salt}${hashlib.sha256((salt + pin).encode()).hexdigest()}"


@pytest.fixture
def before_0012():
    old = migrate(BEFORE)
    yield old
    migrate(executor_leaves())


def executor_leaves():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


def test_pin_digests_are_keyed_in_batches_and_every_pin_still_checks(before_0012, monkeypatch):
    old = before_0012
    partition = old.get_model("accesscontrol", "Partition").objects.get_or_create(name="General")[0]
    holders = old.get_model("accesscontrol", "Cardholder").objects
    pins = {f"Holder {i}": f"{1000 + i * 37:04d}" for i in range(7)}
    for name, pin in pins.items():
        holders.create(last_name=name, partition=partition, pin_hash=unkeyed(pin, salt_of(name)))
    holders.create(last_name="No PIN", partition=partition, pin_hash="")
    migration = importlib.import_module("accesscontrol.migrations.0012_secrets_at_rest")
    monkeypatch.setattr(migration, "BATCH", 3)  # 7 digests: three batches

    migrate(AFTER)

    for name, pin in pins.items():
        # Only the columns 0012 knows: later migrations add others this database does not have yet.
        holder = Cardholder.objects.only("last_name", "pin_hash").get(last_name=name)
        version, salt, digest = holder.pin_hash.split("$")
        assert (version, salt) == ("v2", salt_of(name))
        assert digest != hashlib.sha256((salt + pin).encode()).hexdigest()
        assert holder.check_pin(pin)
        assert not holder.check_pin("9999")
        # A digest made today for the same PIN and salt is the one the migration made: one format.
        assert hash_pin(vault.derive(DIGEST_PURPOSE), pin, salt) == holder.pin_hash
    assert Cardholder.objects.only("pin_hash").get(last_name="No PIN").pin_hash == ""


def test_clear_totp_seeds_and_backup_codes_move_sealed_and_are_deleted(before_0012):
    old = before_0012
    operator = old.get_model("accesscontrol", "Operator").objects.create(username="ada", password="!")
    old.get_model("otp_totp", "TOTPDevice").objects.create(
        user_id=operator.pk, name="Authenticator app", key=SEED_HEX, confirmed=True, drift=1, last_t=12
    )
    static = old.get_model("otp_static", "StaticDevice").objects.create(
        user_id=operator.pk, name="Backup codes", confirmed=True
    )
    for code in ("abcd2345", "efgh6723"):
        static.token_set.create(token=code)

    migrate(AFTER)

    from django_otp.plugins.otp_static.models import StaticToken
    from django_otp.plugins.otp_totp.models import TOTPDevice

    assert not TOTPDevice.objects.exists() and not StaticToken.objects.exists()
    ada = Operator.objects.get(username="ada")
    device = Authenticator.objects.get(user=ada)
    assert device.confirmed and (device.drift, device.last_t) == (1, 12)
    assert device.bin_key == bytes.fromhex(SEED_HEX)
    assert bytes.fromhex(SEED_HEX) not in bytes(device.seed_sealed)
    assert twofactor.has_second_factor(ada) and twofactor.backup_codes_left(ada) == 2
    assert not BackupCode.objects.filter(digest__in=["abcd2345", "efgh6723"]).exists()
    # The migrated authenticator accepts the code of now, the drift it had applied; a backup code works once.
    totp = TOTP(bytes.fromhex(SEED_HEX), drift=1)
    totp.time = time.time()
    assert twofactor.verify(ada, f"{totp.token():06d}") == device
    assert twofactor.verify(ada, "ABCD-2345") is not None
    assert twofactor.verify(ada, "abcd2345") is None
