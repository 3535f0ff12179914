"""Alarms: acknowledged once, with an audit event and a system auditor row; seen and acknowledged by partition."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accesscontrol.events import register_sink, unregister_sink
from accesscontrol.models import AuditEvent, SystemAuditEntry
from devices import actions, alarms
from devices.models import Alarm
from tests.devices.osdp_support import make_alarm, make_osdp_reader
from tests.factories import make_access_point, make_operator, make_partition

pytestmark = pytest.mark.django_db

NOON = dt.datetime(2030, 3, 4, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def guard():
    return make_operator("devices.view_alarm", "devices.acknowledge_alarm", username="guard", all_partitions=True)


def test_acknowledging_stamps_the_alarm_and_records_an_audit_event_and_an_auditor_row(guard):
    point = make_access_point(name="Loading bay")
    device = make_osdp_reader(point=point)
    alarm = make_alarm(point, device, kind="held_open", raised_at=NOON - dt.timedelta(minutes=3))

    actions.acknowledge_alarm(alarm, operator=guard, via="web", note="  Door closed by the guard  ", now=NOON)

    alarm.refresh_from_db()
    assert (alarm.acknowledged_at, alarm.acknowledged_by, alarm.note) == (NOON, guard, "Door closed by the guard")
    event = AuditEvent.objects.get(kind="alarm_acknowledged")
    assert (event.at, event.access_point_id, event.access_point_name, event.device_id, event.operator_id) == (
        NOON,
        point.pk,
        "Loading bay",
        device.pk,
        guard.pk,
    )
    assert event.detail == {
        "alarm": alarm.pk,
        "alarm_kind": "held_open",
        "raised_at": (NOON - dt.timedelta(minutes=3)).isoformat(),
        "note": "Door closed by the guard",
    }
    [row] = SystemAuditEntry.objects.exclude(action="commission_osdp_reader")
    assert (row.action, row.object_type, row.object_id, row.operator_name, row.via) == (
        "acknowledge_alarm",
        "devices.alarm",
        str(alarm.pk),
        "guard",
        "web",
    )


def test_the_acknowledgement_event_reaches_the_sinks_once_committed(guard, django_capture_on_commit_callbacks):
    seen = []
    register_sink("test-alarms", committed=seen.extend)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            actions.acknowledge_alarm(make_alarm(make_access_point()), operator=guard, via="api")
    finally:
        unregister_sink("test-alarms")

    assert [payload["kind"] for payload in seen] == ["alarm_acknowledged"]


def test_acknowledging_twice_is_a_clear_error_that_changes_nothing(guard):
    other = make_operator("devices.acknowledge_alarm", username="nightshift", all_partitions=True)
    alarm = make_alarm(make_access_point())
    actions.acknowledge_alarm(alarm, operator=guard, via="web", note="seen", now=NOON)

    with pytest.raises(ValidationError) as refused:
        actions.acknowledge_alarm(Alarm.objects.get(), operator=other, via="api", note="me too")

    assert refused.value.code == actions.ALREADY_ACKNOWLEDGED
    assert "acknowledged already, by guard at" in refused.value.messages[0]
    alarm.refresh_from_db()
    assert (alarm.acknowledged_by, alarm.note) == (guard, "seen")
    assert AuditEvent.objects.filter(kind="alarm_acknowledged").count() == 1
    assert SystemAuditEntry.objects.count() == 1


def test_a_note_too_long_is_refused(guard):
    alarm = make_alarm(make_access_point())

    with pytest.raises(ValidationError) as refused:
        actions.acknowledge_alarm(alarm, operator=guard, via="web", note="x" * 201)

    assert list(refused.value.message_dict) == ["note"]
    assert Alarm.objects.get().acknowledged_at is None


def test_an_alarm_of_a_device_alone_is_acknowledged_without_an_access_point(guard):
    alarm = make_alarm(device=make_osdp_reader(), kind="tamper")

    actions.acknowledge_alarm(alarm, operator=guard, via="web")

    assert AuditEvent.objects.get().access_point_id is None


def test_operators_see_and_acknowledge_the_alarms_of_their_partitions_only():
    mine, theirs = make_partition(), make_partition()
    here = make_alarm(make_access_point(partition=mine))
    there = make_alarm(make_access_point(partition=theirs))
    deviceless = make_alarm(device=make_osdp_reader(), kind="offline")
    watcher = make_operator("devices.view_alarm", partitions=[mine])
    guard = make_operator("devices.view_alarm", "devices.acknowledge_alarm", partitions=[mine])
    chief = make_operator("devices.view_alarm", all_partitions=True)

    assert list(alarms.visible_alarms(Alarm.objects.all(), watcher)) == [here]
    assert list(alarms.visible_alarms(Alarm.objects.all(), watcher, "acknowledge")) == []
    assert (alarms.may_acknowledge(guard, here), alarms.may_acknowledge(guard, there)) == (True, False)
    assert set(alarms.visible_alarms(Alarm.objects.all(), chief)) == {here, there, deviceless}


def test_open_alarms_are_the_unacknowledged_ones_newest_first(guard):
    now = timezone.now()
    old = make_alarm(make_access_point(), raised_at=now - dt.timedelta(hours=1))
    new = make_alarm(make_access_point(), raised_at=now, cleared_at=now)
    done = make_alarm(make_access_point(), raised_at=now)
    actions.acknowledge_alarm(done, operator=guard, via="web")

    assert list(alarms.open_alarms()) == [new, old]
