"""The audit trail is read-only through the API; the system auditor records every write."""

import pytest
from django.utils import timezone

from accesscontrol.models import AuditEvent, Cardholder, SystemAuditEntry
from tests.factories import make_access_point, make_cardholder, make_operator
from tests.support.api import client_for, client_with

pytestmark = pytest.mark.django_db


def test_events_without_an_access_point_are_shown_only_to_operators_of_every_partition(partition):
    door = make_access_point(partition=partition)
    at_door = AuditEvent.objects.create(at=timezone.now(), kind="door_opened", access_point=door)
    nowhere = AuditEvent.objects.create(at=timezone.now(), kind="device_offline")
    limited = client_with("accesscontrol.view_auditevent", partitions=[partition])
    everywhere = client_with("accesscontrol.view_auditevent", all_partitions=True)

    seen_by_limited = [row["id"] for row in limited.get("/api/v1/audit-events/").json()["results"]]
    seen_by_everywhere = [row["id"] for row in everywhere.get("/api/v1/audit-events/").json()["results"]]

    assert seen_by_limited == [at_door.pk]
    assert sorted(seen_by_everywhere) == sorted([at_door.pk, nowhere.pk])
    assert limited.get(f"/api/v1/audit-events/{nowhere.pk}/").status_code == 404


def test_audit_events_cannot_be_written_even_by_a_superuser(admin_client):
    event = AuditEvent.objects.create(at=timezone.now(), kind="door_opened")

    assert admin_client.post("/api/v1/audit-events/", {"kind": "door_closed"}, format="json").status_code == 405
    assert admin_client.patch(f"/api/v1/audit-events/{event.pk}/", {"kind": "x"}, format="json").status_code == 405
    assert admin_client.delete(f"/api/v1/audit-events/{event.pk}/").status_code == 405
    assert list(AuditEvent.objects.values_list("kind", flat=True)) == ["door_opened"]


def test_each_write_leaves_a_system_auditor_row_with_what_changed(partition):
    operator = make_operator(
        "accesscontrol.add_cardholder",
        "accesscontrol.change_cardholder",
        "accesscontrol.delete_cardholder",
        "accesscontrol.view_cardholder",
        partitions=[partition],
    )
    client = client_for(operator)

    created = client.post("/api/v1/cardholders/", {"last_name": "Smith", "partition": partition.pk}, format="json")
    holder_id = created.json()["id"]
    client.patch(f"/api/v1/cardholders/{holder_id}/", {"first_name": "Jo", "banned": True}, format="json")
    client.delete(f"/api/v1/cardholders/{holder_id}/")

    rows = list(SystemAuditEntry.objects.order_by("id").values("operator", "action", "object_type", "object_id", "via"))
    expected = {"operator": operator.pk, "object_type": "accesscontrol.cardholder", "object_id": str(holder_id)}
    assert rows == [{**expected, "action": action, "via": "api"} for action in ("create", "update", "delete")]
    update = SystemAuditEntry.objects.get(action="update")
    assert update.detail == {"changes": {"first_name": {"from": "", "to": "Jo"}, "banned": {"from": False, "to": True}}}
    assert update.operator_name == operator.username
    assert update.object_repr == "Jo Smith"


def test_a_pin_change_is_recorded_without_the_pin(admin_client):
    holder = make_cardholder()

    response = admin_client.patch(f"/api/v1/cardholders/{holder.pk}/", {"pin": "97531"}, format="json")

    assert response.status_code == 200
    assert response.json()["has_pin"] is True
    assert "pin" not in response.json()
    assert Cardholder.objects.get().check_pin("97531")
    assert list(SystemAuditEntry.objects.order_by("id").values_list("action", flat=True)) == ["update", "set_pin"]
    assert "97531" not in str(list(SystemAuditEntry.objects.values()))


def test_the_system_auditor_is_read_only(admin_client):
    entry = SystemAuditEntry.objects.create(action="login", via="web")

    assert admin_client.get(f"/api/v1/system-audit/{entry.pk}/").json()["action"] == "login"
    assert admin_client.delete(f"/api/v1/system-audit/{entry.pk}/").status_code == 405
    assert SystemAuditEntry.objects.count() == 1


def test_the_system_auditor_filters_by_action_and_object(admin_client):
    SystemAuditEntry.objects.create(action="create", object_type="accesscontrol.zone", object_id="1", via="api")
    wanted = SystemAuditEntry.objects.create(action="cancel_key", object_type="accesscontrol.key", object_id="7")

    response = admin_client.get("/api/v1/system-audit/", {"action": "cancel_key", "object_id": "7"})

    assert [row["id"] for row in response.json()["results"]] == [wanted.pk]
