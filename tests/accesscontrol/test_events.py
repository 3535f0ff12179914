"""One exit for audit events: record() and record_many() store them and hand them to every registered sink once."""

import ast
import pathlib

import pytest
from django.db import transaction
from django.utils import timezone

from accesscontrol import events
from accesscontrol.models import AuditEvent
from devices.models import Device
from integrations.models import WebhookDelivery
from tests.event_sinks import Sinks
from tests.factories import make_access_point, make_partition

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def sinks():
    observed = Sinks()
    yield observed
    observed.close()


@pytest.fixture
def counting_sink():
    """A sink of the test's own, registered like the apps' sinks: what it was handed, per part."""
    calls = {"stored": [], "committed": []}
    yield calls
    events.unregister_sink("test")


def register_counting(calls) -> None:
    events.register_sink(
        "test",
        stored=lambda payloads: calls["stored"].append([p["id"] for p in payloads]),
        committed=lambda payloads: calls["committed"].append([p["id"] for p in payloads]),
    )


def test_the_apps_register_the_outbox_and_the_monitor_when_they_start():
    assert events.sink_names() == ["monitor", "outbox"]


def test_one_recorded_event_reaches_the_webhooks_the_event_stream_and_the_monitor_once(sinks):
    event = events.record(at=timezone.now(), kind="door_forced", access_point_name="Back door")

    assert AuditEvent.objects.filter(pk=event.pk).count() == 1
    assert sinks.reached(1) == {"webhook": [event.pk], "stream": [event.pk], "monitor": [event.pk]}


def test_a_batch_reaches_every_sink_once_per_event_in_one_monitor_message(sinks):
    point = make_access_point(name="Gate", partition=make_partition("East"))
    batch = [AuditEvent(at=timezone.now(), kind="access_denied", access_point=point) for _ in range(3)]

    stored = events.record_many(batch)

    ids = sorted(event.pk for event in stored)
    assert len(ids) == 3 and AuditEvent.objects.count() == 3
    assert sinks.reached(3) == {"webhook": ids, "stream": ids, "monitor": ids}


def test_the_payload_names_the_partition_of_the_access_point(sinks):
    east = make_partition("East")
    point = make_access_point(name="East door", partition=east)

    by_id = events.record(at=timezone.now(), kind="door_opened", access_point_id=point.pk)
    by_object = events.record_many([AuditEvent(at=timezone.now(), kind="door_opened", access_point=point)])[0]

    partitions = dict(WebhookDelivery.objects.values_list("payload__id", "payload__partition"))
    assert partitions == {by_id.pk: east.pk, by_object.pk: east.pk}


def test_a_device_event_sent_again_is_stored_once_and_reaches_the_sinks_once(sinks):
    device = Device.objects.create(device_id=77, name="Door unit", kind="control_unit")

    def resend():
        return events.record_many(
            [AuditEvent(at=timezone.now(), kind="door_opened", device_id=device.pk, device_event_id=9)]
        )

    first, again = resend(), resend()

    assert (len(first), again) == (1, [])
    assert sinks.reached(1) == {"webhook": [first[0].pk], "stream": [first[0].pk], "monitor": [first[0].pk]}


def test_nothing_reaches_a_sink_when_the_transaction_rolls_back(sinks, counting_sink):
    register_counting(counting_sink)

    with pytest.raises(RuntimeError), transaction.atomic():
        events.record(at=timezone.now(), kind="door_forced")
        events.record_many([AuditEvent(at=timezone.now(), kind="tamper")])
        raise RuntimeError("the batch failed")

    assert AuditEvent.objects.count() == 0
    assert sinks.reached(0) == {"webhook": [], "stream": [], "monitor": []}
    assert len(counting_sink["stored"]) == 2  # it ran inside, and its rows went with the rollback
    assert counting_sink["committed"] == []


def test_the_committed_part_runs_only_when_the_outermost_transaction_commits(counting_sink):
    register_counting(counting_sink)

    with transaction.atomic():
        event = events.record(at=timezone.now(), kind="door_forced")
        assert (counting_sink["stored"], counting_sink["committed"]) == ([[event.pk]], [])

    assert counting_sink["committed"] == [[event.pk]]


def test_a_sink_that_fails_inside_the_transaction_leaves_no_event(sinks):
    def refuse(payloads):
        raise RuntimeError("the outbox is full")

    events.register_sink("refusing", stored=refuse)
    try:
        with pytest.raises(RuntimeError):
            events.record(at=timezone.now(), kind="door_forced")
    finally:
        events.unregister_sink("refusing")

    assert AuditEvent.objects.count() == 0
    assert sinks.reached(0) == {"webhook": [], "stream": [], "monitor": []}


def test_a_sink_that_fails_after_the_commit_stops_neither_the_event_nor_the_other_sinks(sinks, caplog):
    def broken(payloads):
        raise RuntimeError("the channel is down")

    events.register_sink("broken", committed=broken)
    try:
        event = events.record(at=timezone.now(), kind="door_forced")
    finally:
        events.unregister_sink("broken")

    assert sinks.reached(1) == {"webhook": [event.pk], "stream": [event.pk], "monitor": [event.pk]}
    assert "The broken sink failed on 1 committed audit events" in caplog.text


def test_a_sink_registered_twice_is_called_once(counting_sink):
    register_counting(counting_sink)
    register_counting(counting_sink)

    event = events.record(at=timezone.now(), kind="door_forced")

    assert counting_sink == {"stored": [[event.pk]], "committed": [[event.pk]]}


def test_a_sink_with_no_part_is_refused():
    with pytest.raises(ValueError, match="neither a stored nor a committed part"):
        events.register_sink("empty")


# --- the one exit, kept: nothing else stores audit events, and the domain imports no app above it -------------

PRODUCTION = ("accesscontrol", "core", "devices", "hotel", "integrations", "space", "simulation")
WRITES = {"create", "bulk_create", "get_or_create", "update_or_create"}


def production_modules():
    for package in PRODUCTION:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def test_no_module_but_accesscontrol_events_writes_audit_event_rows():
    writers = []
    for path in production_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in WRITES
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "objects"
                and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "AuditEvent"
            ):
                writers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert [w for w in writers if not w.startswith("accesscontrol/events.py:")] == []


@pytest.mark.parametrize("module", ["accesscontrol/events.py", "accesscontrol/live.py"])
def test_the_event_exit_imports_no_app_above_the_domain(module):
    imported = set()
    for node in ast.walk(ast.parse((ROOT / module).read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
    assert imported & {"devices", "hotel", "integrations", "simulation", "space"} == set()
