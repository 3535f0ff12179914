"""Event streams through API v1: CRUD with field errors, what is waiting, who may reach them, the system auditor."""

import pytest
from django.utils import timezone

from accesscontrol.models import SystemAuditEntry
from integrations.eventstream import service as eventstream
from integrations.eventstream.models import EventStream, StreamItem
from tests.factories import make_operator, make_partition
from tests.support.api import client_for

pytestmark = pytest.mark.django_db

MANAGE = (
    "integrations.view_eventstream",
    "integrations.add_eventstream",
    "integrations.change_eventstream",
    "integrations.delete_eventstream",
)


def test_creating_a_stream_filters_it_and_it_takes_events_at_once(api_admin):
    east = make_partition("East")

    created = api_admin.post(
        "/api/v1/event-streams/",
        {"name": "SIEM", "protocol": "udp", "host": "127.0.0.1", "port": 5140, "kinds": ["tamper", "door_forced"]},
        format="json",
    )
    stream = EventStream.objects.get()
    stream.partitions.set([east])
    eventstream.forget_streams()
    eventstream.enqueue([{"key": "a", "kind": "tamper", "partition": east.pk}, {"key": "b", "kind": "tamper"}])
    shown = api_admin.get(f"/api/v1/event-streams/{stream.pk}/").json()

    assert created.status_code == 201, created.json()
    assert created.json()["address"] == "udp://127.0.0.1:5140"
    assert created.json()["kinds"] == ["door_forced", "tamper"]
    assert list(StreamItem.objects.values_list("key", flat=True)) == ["a"]
    assert (shown["events_waiting"], shown["partitions"], shown["last_error"]) == (1, [east.pk], "")
    assert SystemAuditEntry.objects.filter(action="create", object_repr="SIEM").exists()


def test_bad_input_is_a_400_with_field_errors(api_admin):
    response = api_admin.post(
        "/api/v1/event-streams/",
        {"name": "", "protocol": "sctp", "host": "http://x/", "port": 70000, "kinds": ["nonsense"]},
        format="json",
    )

    assert response.status_code == 400
    assert set(response.json()) >= {"name", "protocol", "host", "port", "kinds"}
    assert not EventStream.objects.exists()


def test_the_status_is_read_only_and_a_change_is_recorded(api_admin):
    stream = EventStream.objects.create(name="Syslog", host="127.0.0.1", port=5140, last_error="refused")

    changed = api_admin.patch(
        f"/api/v1/event-streams/{stream.pk}/", {"port": 5141, "last_error": "", "active": False}, format="json"
    )
    stream.refresh_from_db()

    assert changed.status_code == 200, changed.json()
    assert (stream.port, stream.active, stream.last_error) == (5141, False, "refused")
    entry = SystemAuditEntry.objects.get(action="update", object_repr="Syslog")
    assert entry.detail["changes"]["port"] == {"from": 5140, "to": 5141}


def test_deleting_a_stream_deletes_what_it_had_waiting(api_admin):
    stream = EventStream.objects.create(name="Old", host="127.0.0.1", port=5140)
    StreamItem.objects.create(stream=stream, key="k", payload={"key": "k"}, created_at=timezone.now())

    deleted = api_admin.delete(f"/api/v1/event-streams/{stream.pk}/")

    assert deleted.status_code == 204
    assert not StreamItem.objects.exists()


def test_only_operators_whose_permission_covers_every_partition_reach_streams():
    east = make_partition("East")
    stream = EventStream.objects.create(name="SIEM", host="127.0.0.1", port=5140)
    building = client_for(make_operator(*MANAGE, partitions=[east]))
    site = client_for(make_operator(*MANAGE, all_partitions=True))
    body = {"name": "Mine", "host": "127.0.0.1", "port": 1}

    assert building.get("/api/v1/event-streams/").json()["results"] == []
    assert building.get(f"/api/v1/event-streams/{stream.pk}/").status_code == 404
    assert building.post("/api/v1/event-streams/", body, format="json").status_code == 403
    assert [item["name"] for item in site.get("/api/v1/event-streams/").json()["results"]] == ["SIEM"]
    assert site.post("/api/v1/event-streams/", body, format="json").status_code == 201
    assert list(EventStream.objects.values_list("name", flat=True)) == ["Mine", "SIEM"]


def test_each_endpoint_needs_its_permission():
    stream = EventStream.objects.create(name="SIEM", host="127.0.0.1", port=5140)
    without_view = client_for(make_operator(*MANAGE[1:], all_partitions=True))
    read_only = client_for(make_operator(MANAGE[0], all_partitions=True))

    assert without_view.get("/api/v1/event-streams/").status_code == 403
    assert read_only.get(f"/api/v1/event-streams/{stream.pk}/").status_code == 200
    assert read_only.patch(f"/api/v1/event-streams/{stream.pk}/", {"port": 1}, format="json").status_code == 403
    assert read_only.delete(f"/api/v1/event-streams/{stream.pk}/").status_code == 403
