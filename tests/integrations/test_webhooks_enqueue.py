"""Enqueue: in the transaction that stores events, one delivery row per event and matching subscription."""

import math

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accesscontrol import events
from accesscontrol.models import AuditEvent
from integrations import outbox, webhooks
from integrations.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from integrations.webhooks import wakeup
from simulation.benchmarks.webhooks import synthetic_payloads
from tests.factories import make_access_point, make_partition

pytestmark = pytest.mark.django_db


def subscribe(name: str, partitions=(), **fields) -> WebhookSubscription:
    fields.setdefault("url", "http://127.0.0.1:9/hooks")
    fields.setdefault("allow_private_target", True)
    subscription = WebhookSubscription(name=name, **fields)
    subscription.set_secret()
    subscription.save()
    subscription.partitions.set(partitions)
    return subscription


def event_at(point, kind="access_denied") -> AuditEvent:
    return events.record(at=timezone.now(), kind=kind, access_point=point, access_point_name=point.name)


def deliveries(subscription) -> list[str]:
    return sorted(
        WebhookDelivery.objects.filter(subscription=subscription).values_list("payload__access_point_name", flat=True)
    )


def test_an_event_gets_a_delivery_for_each_subscription_that_wants_its_kind_and_partition():
    east, west = make_partition("East"), make_partition("West")
    east_door = make_access_point(name="East door", partition=east)
    west_door = make_access_point(name="West door", partition=west)
    everything = subscribe("everything", all_partitions=True)
    east_only = subscribe("east", partitions=[east])
    forced_only = subscribe("forced", all_partitions=True, kinds=["door_forced"])
    event_at(east_door)
    event_at(west_door, kind="door_forced")
    events.record(at=timezone.now(), kind="device_offline")  # no access point, no partition

    assert deliveries(everything) == ["", "East door", "West door"]
    assert deliveries(east_only) == ["East door"]
    assert deliveries(forced_only) == ["West door"]


def test_a_delivery_row_carries_the_events_payload_and_is_due_at_once():
    subscription = subscribe("all", all_partitions=True)
    point = make_access_point(name="Lobby")

    event = event_at(point)

    row = WebhookDelivery.objects.get(subscription=subscription)
    assert row.payload["id"] == event.pk
    assert row.payload["partition"] == point.partition_id
    assert row.event_key == row.payload["key"]
    assert (row.status, row.tries) == (DeliveryStatus.PENDING, 0)
    assert row.next_attempt_at <= timezone.now()


def test_an_inactive_subscription_gets_nothing_and_a_paused_one_keeps_collecting():
    inactive = subscribe("off", all_partitions=True, active=False)
    paused = subscribe("paused", all_partitions=True)
    WebhookSubscription.objects.filter(pk=paused.pk).update(paused_at=timezone.now(), paused_reason="test")
    webhooks.forget_subscriptions()

    event_at(make_access_point())

    assert WebhookDelivery.objects.filter(subscription=inactive).count() == 0
    assert WebhookDelivery.objects.filter(subscription=paused).count() == 1


def test_the_same_event_enqueued_twice_gets_one_delivery():
    subscription = subscribe("all", all_partitions=True)
    payloads = synthetic_payloads(3)

    with transaction.atomic():
        outbox.enqueue(payloads)
    with transaction.atomic():
        outbox.enqueue(payloads)

    assert WebhookDelivery.objects.filter(subscription=subscription).count() == 3


def test_without_subscriptions_enqueue_costs_one_small_query_every_couple_of_seconds():
    payloads = synthetic_payloads(100)

    with CaptureQueriesContext(connection) as queries:
        for _ in range(50):
            with transaction.atomic():
                webhooks.enqueue(payloads)

    # One query to read the subscriptions; the transactions' own statements aside.
    reads = [query for query in queries.captured_queries if "integrations_webhooksubscription" in query["sql"]]
    assert len(reads) == 1
    assert not [query for query in queries.captured_queries if "INSERT" in query["sql"]]


def test_a_batch_is_written_with_bulk_inserts_not_a_row_at_a_time():
    subscribe("all", all_partitions=True)
    webhooks.subscribers()  # read once, as a running bridge would have
    payloads = synthetic_payloads(300)

    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        webhooks.enqueue(payloads)

    inserts = [query for query in queries.captured_queries if query["sql"].startswith("INSERT")]
    # One statement on PostgreSQL; SQLite caps the parameters of one statement.
    fields = [field for field in WebhookDelivery._meta.concrete_fields if not field.primary_key]
    per_insert = min(webhooks.INSERT_BATCH, connection.ops.bulk_batch_size(fields, payloads))
    assert len(inserts) == math.ceil(300 / per_insert)
    assert WebhookDelivery.objects.count() == 300


def test_a_new_subscription_is_seen_by_the_next_enqueue_of_this_process():
    webhooks.enqueue(synthetic_payloads(1))  # caches "no subscriptions"

    subscription = subscribe("new", all_partitions=True)
    webhooks.enqueue(synthetic_payloads(1))

    assert WebhookDelivery.objects.filter(subscription=subscription).count() == 1


def test_the_outbox_sink_writes_rows_under_the_payloads_key():
    subscription = subscribe("all", all_partitions=True)
    point = make_access_point(name="Gate")
    event = AuditEvent(at=timezone.now(), kind="access_granted", access_point=point, device_event_id=7)

    with transaction.atomic():
        outbox.enqueue([events.event_payload(event, point.partition_id, key="device-1-7")])

    assert list(WebhookDelivery.objects.filter(subscription=subscription).values_list("event_key", flat=True)) == [
        "device-1-7"
    ]


def test_after_the_commit_the_deliverer_of_this_process_is_woken(django_capture_on_commit_callbacks):
    subscribe("all", all_partitions=True)
    woken = []
    wakeup.add_waker(lambda: woken.append(True))

    with django_capture_on_commit_callbacks(execute=True):
        event_at(make_access_point())

    assert woken == [True]


def test_a_rolled_back_transaction_leaves_no_delivery():
    subscribe("all", all_partitions=True)
    point = make_access_point()

    with pytest.raises(RuntimeError), transaction.atomic():
        event_at(point)
        raise RuntimeError("the batch failed")

    assert WebhookDelivery.objects.count() == 0
