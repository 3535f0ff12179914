"""The one site generator (simulation/sitegen.py): what a spec asks for is what it writes and reports."""

import pytest
from django.db import transaction
from django.db.models import Count

from accesscontrol.choices import AccessPointKind, KeyStatus
from accesscontrol.models import AccessLevel, AccessPoint, Cardholder, Key, Partition, Room, SiteSettings, Zone
from devices.choices import DeviceKind
from devices.models import Device, DeviceDoor
from simulation import sitegen
from tests.factories import make_cardholder

pytestmark = pytest.mark.django_db

SPEC = sitegen.SiteSpec(
    seed=4,
    partitions=(("North building", 0.5),),
    time_periods=3,
    calendar=True,
    zones=4,
    access_points=12,
    online_share=0.5,
    levels=6,
    cardholders=40,
    keys_per_cardholder=2,
    cancelled_share=0.5,
    permission_share=0.5,
    rooms=5,
    offline_locks=3,
    common_level=True,
    encoders=("FD1", "FD2"),
    wide_cardholder=True,
    events=30,
)


def test_the_site_holds_the_sizes_the_spec_asks_for_and_reports_them():
    site = sitegen.generate(SPEC)

    counts = site.counts
    assert (counts["partitions"], Partition.objects.count()) == (2, 2)
    assert counts["zones"] == Zone.objects.count() == 4
    assert counts["access_points"] == AccessPoint.objects.filter(kind=AccessPointKind.DOOR).count() == 12
    assert counts["rooms"] == Room.objects.count() == AccessPoint.objects.filter(kind=AccessPointKind.ROOM).count() == 5
    assert counts["access_levels"] == 6
    assert AccessLevel.objects.count() == 6 + 2  # the common level and the wide cardholder's
    assert counts["cardholders"] == Cardholder.objects.count() - 1 == 40  # and the wide cardholder
    assert counts["keys"] == Key.objects.exclude(uid=sitegen.WIDE_UID).count()
    assert counts["audit_events"] == 30
    assert SiteSettings.load().default_calendar is not None


def test_every_cardholder_holds_as_many_issued_keys_as_asked_all_uids_distinct():
    sitegen.generate(SPEC)

    issued = Key.objects.filter(status=KeyStatus.ISSUED).exclude(uid=sitegen.WIDE_UID)
    per_holder = set(issued.values("cardholder").annotate(n=Count("id")).values_list("n", flat=True))
    assert per_holder == {2}
    assert Key.objects.values("uid").distinct().count() == Key.objects.count()
    assert Key.objects.filter(status=KeyStatus.CANCELLED).exists()


def test_offline_locks_sit_on_the_first_doors_and_encoders_have_their_stations():
    site = sitegen.generate(SPEC)

    locks = Device.objects.filter(kind=DeviceKind.OFFLINE_LOCK).order_by("device_id")
    assert [
        door.access_point for door in DeviceDoor.objects.filter(device__in=locks).order_by("device__device_id")
    ] == (site.points[:3])
    encoders = Device.objects.filter(kind=DeviceKind.ENCODER).order_by("device_id")
    assert [(device.station, device.has_key) for device in encoders] == [("FD1", True), ("FD2", True)]


def snapshot_of_a_generated_site() -> list:
    """The site's content, without primary keys; the site itself is rolled back."""
    with transaction.atomic():
        sitegen.generate(SPEC)
        content = [
            list(Cardholder.objects.order_by("id").values_list("last_name", "banned", "partition__name", "kind")),
            list(AccessPoint.objects.order_by("id").values_list("name", "connection", "pin_required")),
            list(Key.objects.order_by("id").values_list("uid", "status")),
            sorted(Cardholder.access_levels.through.objects.values_list("cardholder__last_name", "accesslevel__name")),
        ]
        transaction.set_rollback(True)
    return content


def test_the_same_seed_gives_the_same_site():
    first, second = snapshot_of_a_generated_site(), snapshot_of_a_generated_site()

    assert first == second
    assert len(first[0]) == 41


def test_it_refuses_a_database_that_holds_cardholders():
    make_cardholder()

    with pytest.raises(ValueError, match="already holds cardholders"):
        sitegen.generate(SPEC)
