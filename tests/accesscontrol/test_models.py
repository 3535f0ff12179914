import hashlib

import pytest

from accesscontrol.models import AppendOnlyError, AuditEvent, Key, Partition
from accesscontrol.pins import DIGEST_PURPOSE, hash_pin
from core import vault
from tests.factories import make_cardholder, make_key

pytestmark = pytest.mark.django_db


def test_a_new_cardholder_lands_in_the_general_partition():
    cardholder = make_cardholder()
    assert cardholder.partition.name == Partition.GENERAL


def test_it_stores_a_pin_as_a_salted_digest_keyed_from_the_master_key():
    cardholder = make_cardholder(pin="4321")
    version, salt, digest = cardholder.pin_hash.split("$")
    assert version == "v2" and len(salt) == 16 and len(digest) == 64
    assert hash_pin(vault.derive(DIGEST_PURPOSE), "4321") != cardholder.pin_hash  # a fresh salt each time
    assert hash_pin(vault.derive(DIGEST_PURPOSE), "4321", salt) == cardholder.pin_hash
    # Not the unkeyed digest of before, and not made with another key.
    assert digest != hashlib.sha256(f"{salt}4321".encode()).hexdigest()
    assert hash_pin(b"another key", "4321", salt) != cardholder.pin_hash
    assert cardholder.check_pin("4321")
    assert not cardholder.check_pin("1234")
    # The index that finds the cardholder by PIN alone is keyed: no plain digest of the PIN.
    assert cardholder.pin_index and cardholder.pin_index != hashlib.sha256(b"4321").hexdigest()


def test_two_cardholders_cannot_share_a_pin():
    from django.db import IntegrityError, transaction

    first = make_cardholder(pin="4321")
    second = make_cardholder()
    assert second.pin_taken("4321") and not first.pin_taken("4321")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_cardholder(pin="4321")
    first.set_pin(None)
    first.save()
    assert not second.pin_taken("4321")


def test_two_issued_keys_cannot_share_a_uid():
    from django.db import IntegrityError, transaction

    make_key(make_cardholder(), uid="04A1B2C3")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_key(make_cardholder(), uid="04A1B2C3")


def test_a_cancelled_uid_can_be_issued_again():
    make_key(make_cardholder(), uid="04A1B2C3", status="cancelled")
    assert make_key(make_cardholder(), uid="04A1B2C3").status == "issued"
    assert Key.objects.filter(uid="04A1B2C3").count() == 2


def test_audit_events_cannot_be_changed_or_deleted():
    from django.utils import timezone

    event = AuditEvent.objects.create(at=timezone.now(), kind="door_opened")
    event.kind = "door_closed"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.update(kind="door_closed")
    assert AuditEvent.objects.get().kind == "door_opened"
