import pytest

from accesscontrol.models import AppendOnlyError, AuditEvent, Key, Partition
from tests.factories import make_cardholder, make_key

pytestmark = pytest.mark.django_db


def test_a_new_cardholder_lands_in_the_general_partition():
    cardholder = make_cardholder()
    assert cardholder.partition.name == Partition.GENERAL


def test_it_stores_a_pin_as_a_salted_hash():
    cardholder = make_cardholder(pin="4321")
    other = make_cardholder(pin="4321")
    salt, digest = cardholder.pin_hash.split("$")
    assert len(salt) == 16 and len(digest) == 64
    assert other.pin_hash != cardholder.pin_hash
    assert cardholder.check_pin("4321")
    assert not cardholder.check_pin("1234")


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
