"""The event stream's outbox side: which rows enqueue() writes, what it costs, and how old rows go.

The service that sends the rows is tested against real receivers in test_eventstream_service.py.
"""

import datetime as dt

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from integrations.eventstream import admin as stream_admin  # noqa: F401 (integrations/admin.py registers it too)
from integrations.eventstream import service as eventstream
from integrations.eventstream.models import EventStream, StreamItem
from integrations.eventstream.service import StreamFilter
from tests.factories import make_operator, make_partition
from tests.integrations.test_eventstream_service import event, events, keys, make_stream

pytestmark = pytest.mark.django_db


def rows(stream) -> list[str]:
    return list(StreamItem.objects.filter(stream=stream).order_by("pk").values_list("key", flat=True))


# --- what enqueue writes --------------------------------------------------------------------


def test_enqueue_writes_one_row_per_event_and_active_stream_in_the_events_order():
    first, second = make_stream(9001), make_stream(9002)
    make_stream(9003, active=False)
    sent = events(5)

    eventstream.enqueue(sent)

    assert rows(first) == keys(sent)
    assert rows(second) == keys(sent)
    assert StreamItem.objects.count() == 10
    item = StreamItem.objects.filter(stream=first).order_by("pk").first()
    assert item.payload == sent[0]
    assert item.sent_at is None


def test_a_stream_gets_only_the_kinds_and_partitions_it_asks_for():
    east, west = make_partition("East"), make_partition("West")
    denials = make_stream(9001, kinds=["access_denied", "door_forced"])
    in_east = make_stream(9002, partitions=[east])
    denied_in_east = make_stream(9003, kinds=["access_denied"], partitions=[east, west])
    granted_east = event(kind="access_granted", partition=east.pk)
    denied_west = event(kind="access_denied", partition=west.pk)
    forced_nowhere = event(kind="door_forced", partition=None)

    eventstream.enqueue([granted_east, denied_west, forced_nowhere])

    assert rows(denials) == keys([denied_west, forced_nowhere])
    # An event without a partition only goes to streams that do not filter by partition.
    assert rows(in_east) == keys([granted_east])
    assert rows(denied_in_east) == keys([denied_west])


def test_an_event_stored_twice_keeps_its_first_row(transactional_db):
    if not connection.features.supports_ignore_conflicts:
        pytest.skip("the database cannot skip conflicting rows")
    stream = make_stream(9001)
    sent = event()

    eventstream.enqueue([sent])
    eventstream.enqueue([{**sent, "reason": "changed"}])

    assert rows(stream) == [sent["key"]]
    assert StreamItem.objects.get().payload == sent


def test_a_stream_deleted_in_another_process_does_not_stop_events_from_being_stored(transactional_db):
    stream = make_stream(9001)
    eventstream.enqueue([event()])  # this process now has the stream in its cache
    # Another process deletes it: this one does not hear of it until its cache runs out.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM integrations_eventstream WHERE id = %s", [stream.pk])

    with transaction.atomic():
        eventstream.enqueue([event()])

    assert StreamItem.objects.filter(stream_id=stream.pk).count() == 2
    while eventstream.purge_orphans():
        pass
    assert StreamItem.objects.count() == 0


# --- what enqueue costs ---------------------------------------------------------------------------


def test_with_no_stream_enqueue_asks_once_and_then_not_at_all_for_a_while(django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        eventstream.enqueue(events(100))
    with CaptureQueriesContext(connection) as queries:
        for _ in range(100):
            eventstream.enqueue(events(10))

    assert len(queries) == 0
    assert StreamItem.objects.count() == 0


def test_enqueue_writes_a_batch_for_every_stream_in_one_insert():
    first, second = make_stream(9001), make_stream(9002)
    eventstream.enqueue([event()])  # the streams are read once, then cached
    batch = events(2000)  # the device bridge's largest batch

    with CaptureQueriesContext(connection) as queries:
        eventstream.enqueue(batch)

    if connection.vendor in eventstream.INSERT_FROM_JSON:
        assert len(queries) == 1
    assert all(query["sql"].startswith("INSERT") for query in queries)
    assert rows(first)[1:] == rows(second)[1:] == keys(batch)
    assert StreamItem.objects.filter(stream=second).order_by("pk").last().payload == batch[-1]


def test_a_new_or_changed_stream_takes_effect_at_once_in_this_process():
    eventstream.enqueue([event()])  # no stream yet: that is cached
    stream = make_stream(9001)

    eventstream.enqueue([event(kind="access_denied")])
    stream.kinds = ["door_forced"]
    stream.save()
    eventstream.enqueue([event(kind="access_denied")])

    assert StreamItem.objects.filter(stream=stream).count() == 1


# --- old rows ------------------------------------------------------------------------------------


def test_sent_rows_are_purged_once_old_and_pending_rows_never():
    stream = make_stream(9001)
    eventstream.enqueue(events(3))
    now = timezone.now()
    old, recent, pending = StreamItem.objects.order_by("pk")
    StreamItem.objects.filter(pk=old.pk).update(sent_at=now - dt.timedelta(hours=2))
    StreamItem.objects.filter(pk=recent.pk).update(sent_at=now - dt.timedelta(minutes=5))

    while eventstream.purge_sent(now - dt.timedelta(hours=1)):
        pass

    assert rows(stream) == [recent.key, pending.key]


def test_rows_sent_in_the_last_seconds_can_be_marked_for_sending_again():
    stream = make_stream(9001)
    eventstream.enqueue(events(3))
    now = timezone.now()
    early, late, pending = StreamItem.objects.order_by("pk")
    eventstream.mark_sent([early.pk], now - dt.timedelta(minutes=1))
    eventstream.mark_sent([late.pk], now - dt.timedelta(seconds=5))

    assert eventstream.resend_since(stream.pk, now - dt.timedelta(seconds=30)) == 1

    assert [key for _, key in _pending_keys(stream)] == [late.key, pending.key]


def _pending_keys(stream):
    return StreamItem.objects.filter(stream=stream, sent_at__isnull=True).order_by("pk").values_list("pk", "key")


# --- pieces ----------------------------------------------------------------------------------------


def test_a_filter_with_nothing_ticked_wants_everything():
    assert StreamFilter(1).wants({"kind": "tamper", "partition": None})
    assert not StreamFilter(1, kinds=frozenset({"tamper"})).wants({"kind": "battery_low", "partition": None})
    assert not StreamFilter(1, partitions=frozenset({2})).wants({"kind": "tamper", "partition": None})


def test_the_wire_form_is_compact_utf8_json_ending_with_a_newline():
    line = eventstream.encode({"name": "Zoë", "detail": {"note": "two\nlines"}})

    assert line == '{"name":"Zoë","detail":{"note":"two\\nlines"}}\n'.encode()


# --- the admin -----------------------------------------------------------------------------------


def test_an_administrator_configures_a_stream_in_the_admin(admin_client):
    east = make_partition("East")

    response = admin_client.post(
        reverse("admin:integrations_eventstream_add"),
        {
            "name": "SIEM",
            "protocol": "udp",
            "host": "siem.example",
            "port": "5514",
            "kinds": ["access_denied", "door_forced"],
            "partitions": [east.pk],
            "active": "on",
        },
    )

    assert response.status_code == 302, response.content
    stream = EventStream.objects.get(name="SIEM")
    assert (stream.protocol, stream.host, stream.port) == ("udp", "siem.example", 5514)
    assert stream.kinds == ["access_denied", "door_forced"]
    assert list(stream.partitions.all()) == [east]
    assert admin_client.get(reverse("admin:integrations_eventstream_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:integrations_streamitem_changelist")).status_code == 200


def test_a_port_out_of_range_is_refused_in_the_admin(admin_client):
    response = admin_client.post(
        reverse("admin:integrations_eventstream_add"),
        {"name": "SIEM", "protocol": "tcp", "host": "siem.example", "port": "70000", "active": "on"},
    )

    assert response.status_code == 200
    assert not EventStream.objects.exists()


STREAM_PERMISSIONS = [f"integrations.{action}_eventstream" for action in ("view", "add", "change", "delete")]


def test_an_operator_limited_to_some_partitions_may_not_touch_streams(client):
    east = make_partition("East")
    stream = make_stream(9001)
    client.force_login(make_operator(*STREAM_PERMISSIONS, partitions=[east], is_staff=True))

    pages = [
        client.get(reverse("admin:integrations_eventstream_changelist")),
        client.get(reverse("admin:integrations_eventstream_add")),
        client.post(
            reverse("admin:integrations_eventstream_add"), {"name": "Leak", "protocol": "tcp", "host": "x", "port": "1"}
        ),
        client.post(
            reverse("admin:integrations_eventstream_change", args=[stream.pk]),
            {"name": "Changed", "protocol": "tcp", "host": "x", "port": "1"},
        ),
        client.post(reverse("admin:integrations_eventstream_delete", args=[stream.pk]), {"post": "yes"}),
    ]

    assert [page.status_code for page in pages] == [403] * len(pages)
    assert list(EventStream.objects.values_list("name", "host")) == [(stream.name, "127.0.0.1")]


def test_an_operator_with_every_partition_may_configure_streams(client):
    client.force_login(make_operator(*STREAM_PERMISSIONS, all_partitions=True, is_staff=True))

    response = client.post(
        reverse("admin:integrations_eventstream_add"),
        {"name": "SIEM", "protocol": "tcp", "host": "siem.example", "port": "5514", "active": "on"},
    )

    assert response.status_code == 302
    assert EventStream.objects.filter(name="SIEM").exists()
