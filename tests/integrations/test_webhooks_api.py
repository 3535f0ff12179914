"""Webhook subscriptions and their delivery logs through API v1: CRUD, the secret shown once, partitions, actions."""

import pytest
from django.core.management import call_command
from django.utils import timezone

from accesscontrol.models import SystemAuditEntry
from integrations.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from tests.factories import make_operator, make_partition
from tests.support.api import client_for

pytestmark = pytest.mark.django_db

URL = "https://192.0.2.10/hooks/space"  # TEST-NET: never contacted by these tests
MANAGE = (
    "integrations.view_webhooksubscription",
    "integrations.add_webhooksubscription",
    "integrations.change_webhooksubscription",
    "integrations.delete_webhooksubscription",
)


def make_subscription(partitions=(), **fields) -> WebhookSubscription:
    fields.setdefault("name", f"Hook {WebhookSubscription.objects.count() + 1}")
    fields.setdefault("url", URL)
    fields.setdefault("all_partitions", not partitions)
    subscription = WebhookSubscription(**fields)
    subscription.set_secret("a secret of sufficient length")
    subscription.save()
    subscription.partitions.set(partitions)
    return subscription


def make_deliveries(subscription, *statuses) -> list[WebhookDelivery]:
    return [
        WebhookDelivery.objects.create(
            subscription=subscription,
            event_key=f"event-{number}",
            payload={"type": "audit_event", "key": f"event-{number}", "kind": "door_forced" if number else "tamper"},
            status=status,
            tries=1,
            next_attempt_at=timezone.now(),
            last_error="HTTP 500" if status == DeliveryStatus.FAILED else "",
        )
        for number, status in enumerate(statuses)
    ]


# --- subscriptions ------------------------------------------------------------------------------------


def test_creating_a_subscription_generates_a_secret_shown_in_that_response_only(api_admin):
    created = api_admin.post(
        "/api/v1/webhooks/", {"name": "SIEM", "url": URL, "kinds": ["door_forced"], "all_partitions": True}
    )

    assert created.status_code == 201, created.json()
    body = created.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    subscription = WebhookSubscription.objects.get(pk=body["id"])
    assert subscription.secret() == secret
    assert secret.encode() not in bytes(subscription.secret_sealed)
    assert (body["kinds"], body["all_partitions"], body["paused"], body["max_tries"]) == (
        ["door_forced"],
        True,
        False,
        15,
    )
    shown = api_admin.get(f"/api/v1/webhooks/{subscription.pk}/")
    listed = api_admin.get("/api/v1/webhooks/")
    assert "secret" not in shown.json()
    assert secret not in shown.content.decode() + listed.content.decode()
    entry = SystemAuditEntry.objects.get(action="create", object_type="integrations.webhooksubscription")
    assert entry.detail["secret"] == "generated"
    assert secret not in str(entry.detail)


def test_a_given_secret_is_kept_and_can_be_rotated_later(api_admin):
    created = api_admin.post(
        "/api/v1/webhooks/", {"name": "PMS", "url": URL, "all_partitions": True, "secret": "s" * 32}, format="json"
    )
    subscription = WebhookSubscription.objects.get(pk=created.json()["id"])

    rotated = api_admin.post(f"/api/v1/webhooks/{subscription.pk}/rotate-secret/", {}, format="json")
    chosen = api_admin.post(f"/api/v1/webhooks/{subscription.pk}/rotate-secret/", {"secret": "t" * 20}, format="json")

    assert created.json()["secret"] == "s" * 32
    assert rotated.status_code == 200 and rotated.json()["secret"].startswith("whsec_")
    assert chosen.json() == {"id": subscription.pk, "secret": "t" * 20}
    subscription.refresh_from_db()
    assert subscription.secret() == "t" * 20
    assert SystemAuditEntry.objects.filter(action="rotate_secret").count() == 2


def test_bad_input_is_a_400_with_field_errors(api_admin):
    answer = api_admin.post(
        "/api/v1/webhooks/",
        {"name": "", "url": "ftp://example.net/", "kinds": ["nonsense"], "secret": "short", "max_tries": 0},
        format="json",
    )

    assert answer.status_code == 400
    errors = answer.json()
    assert set(errors) >= {"name", "url", "kinds", "secret", "max_tries"}
    assert WebhookSubscription.objects.count() == 0


def test_a_subscription_must_name_partitions_or_take_them_all(api_admin):
    answer = api_admin.post("/api/v1/webhooks/", {"name": "nothing", "url": URL}, format="json")

    assert answer.status_code == 400
    assert answer.json() == {"partitions": ["Name the partitions whose events to send, or set all_partitions."]}


def test_a_loopback_or_metadata_url_is_refused_with_the_reason(api_admin):
    for url in ("http://127.0.0.1:8000/admin/", "http://169.254.169.254/latest/meta-data/"):
        answer = api_admin.post("/api/v1/webhooks/", {"name": "x", "url": url, "all_partitions": True}, format="json")

        assert answer.status_code == 400
        assert "only if an administrator allows private targets" in answer.json()["url"][0]
    assert WebhookSubscription.objects.count() == 0


def test_an_administrator_may_allow_a_private_target(api_admin):
    answer = api_admin.post(
        "/api/v1/webhooks/",
        {"name": "local", "url": "http://127.0.0.1:9000/hooks", "all_partitions": True, "allow_private_target": True},
        format="json",
    )

    assert answer.status_code == 201, answer.json()
    assert answer.json()["allow_private_target"] is True


def test_only_an_administrator_may_allow_a_private_target():
    client = client_for(make_operator(*MANAGE, all_partitions=True))

    answer = client.post(
        "/api/v1/webhooks/",
        {"name": "local", "url": "http://127.0.0.1:9000/hooks", "all_partitions": True, "allow_private_target": True},
        format="json",
    )

    assert answer.status_code == 400
    assert answer.json()["allow_private_target"] == ["Only an administrator may allow private targets."]
    assert WebhookSubscription.objects.count() == 0


def test_an_operator_may_not_repoint_an_allowed_subscription_at_another_private_target():
    subscription = make_subscription(url="http://127.0.0.1:9000/hooks", allow_private_target=True)
    client = client_for(make_operator(*MANAGE, all_partitions=True))

    repointed = client.patch(
        f"/api/v1/webhooks/{subscription.pk}/", {"url": "http://169.254.169.254/latest/"}, format="json"
    )
    renamed = client.patch(f"/api/v1/webhooks/{subscription.pk}/", {"name": "renamed"}, format="json")

    assert repointed.status_code == 400
    assert "link-local" in repointed.json()["url"][0]
    assert renamed.status_code == 200
    subscription.refresh_from_db()
    assert (subscription.url, subscription.name) == ("http://127.0.0.1:9000/hooks", "renamed")


def test_updates_and_deletes_are_recorded_and_the_secret_stays_put(api_admin):
    subscription = make_subscription()

    patched = api_admin.patch(
        f"/api/v1/webhooks/{subscription.pk}/", {"kinds": ["tamper"], "active": False}, format="json"
    )
    deleted = api_admin.delete(f"/api/v1/webhooks/{subscription.pk}/")

    assert patched.status_code == 200 and patched.json()["kinds"] == ["tamper"]
    assert "secret" not in patched.json()
    assert deleted.status_code == 204
    assert not WebhookSubscription.objects.exists()
    actions = list(SystemAuditEntry.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["update", "delete"]


# --- partitions decide who reaches a subscription ----------------------------------------------------


def test_an_operator_sees_and_changes_only_subscriptions_within_their_partitions():
    east, west = make_partition("East"), make_partition("West")
    mine = make_subscription(partitions=[east], name="east")
    make_subscription(partitions=[east, west], name="both")
    make_subscription(name="everything")
    client = client_for(make_operator(*MANAGE, partitions=[east]))

    listed = client.get("/api/v1/webhooks/")
    both = WebhookSubscription.objects.get(name="both")
    change_both = client.patch(f"/api/v1/webhooks/{both.pk}/", {"active": False}, format="json")
    change_mine = client.patch(f"/api/v1/webhooks/{mine.pk}/", {"active": False}, format="json")

    assert [item["name"] for item in listed.json()["results"]] == ["east"]
    assert change_both.status_code == 404
    assert change_mine.status_code == 200
    assert WebhookSubscription.objects.get(pk=both.pk).active is True


def test_an_operator_may_not_subscribe_to_partitions_they_lack_and_nothing_is_created():
    east, west = make_partition("East"), make_partition("West")
    client = client_for(make_operator(*MANAGE, partitions=[east]))

    other = client.post("/api/v1/webhooks/", {"name": "w", "url": URL, "partitions": [west.pk]}, format="json")
    everything = client.post("/api/v1/webhooks/", {"name": "a", "url": URL, "all_partitions": True}, format="json")
    own = client.post("/api/v1/webhooks/", {"name": "e", "url": URL, "partitions": [east.pk]}, format="json")

    assert (other.status_code, everything.status_code, own.status_code) == (403, 403, 201)
    assert list(WebhookSubscription.objects.values_list("name", flat=True)) == ["e"]


def test_an_operator_may_not_widen_their_subscription_beyond_their_partitions():
    east, west = make_partition("East"), make_partition("West")
    subscription = make_subscription(partitions=[east])
    client = client_for(make_operator(*MANAGE, partitions=[east]))

    widened = client.patch(f"/api/v1/webhooks/{subscription.pk}/", {"partitions": [east.pk, west.pk]}, format="json")

    assert widened.status_code == 403
    assert list(subscription.partitions.values_list("name", flat=True)) == ["East"]


@pytest.mark.parametrize(
    ("method", "path", "permission"),
    [
        ("get", "/api/v1/webhooks/", "integrations.view_webhooksubscription"),
        ("post", "/api/v1/webhooks/", "integrations.add_webhooksubscription"),
        ("get", "/api/v1/webhooks/{id}/deliveries/", "integrations.view_webhooksubscription"),
        ("post", "/api/v1/webhooks/{id}/resume/", "integrations.change_webhooksubscription"),
        ("post", "/api/v1/webhooks/{id}/rotate-secret/", "integrations.change_webhooksubscription"),
        ("post", "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver/", "integrations.change_webhooksubscription"),
        ("delete", "/api/v1/webhooks/{id}/", "integrations.delete_webhooksubscription"),
    ],
)
def test_each_endpoint_needs_its_permission(method, path, permission):
    subscription = make_subscription()
    (row,) = make_deliveries(subscription, DeliveryStatus.FAILED)
    others = [name for name in MANAGE if name != permission]
    url = path.format(id=subscription.pk, delivery=row.pk)
    payload = {"name": "n", "url": URL, "all_partitions": True}

    without = getattr(client_for(make_operator(*others, all_partitions=True)), method)(url, payload, format="json")
    anonymous = getattr(client_for(make_operator()), method)(url, payload, format="json")
    allowed = getattr(client_for(make_operator(permission, all_partitions=True)), method)(url, payload, format="json")

    assert without.status_code == 403
    assert anonymous.status_code == 403
    assert allowed.status_code in (200, 201, 204), allowed.content
    if method == "post" and "redeliver" not in path and path.endswith("/webhooks/"):
        assert WebhookSubscription.objects.count() == 2


# --- the delivery log ------------------------------------------------------------------------------------


def test_the_delivery_log_lists_a_subscriptions_deliveries_with_filters(api_admin):
    subscription = make_subscription()
    other = make_subscription()
    make_deliveries(subscription, DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.PENDING)
    make_deliveries(other, DeliveryStatus.FAILED)
    url = f"/api/v1/webhooks/{subscription.pk}/deliveries/"

    everything = api_admin.get(url).json()
    failed = api_admin.get(url, {"status": "failed"}).json()
    waiting = api_admin.get(url, {"status": ["failed", "pending"], "kind": "door_forced"}).json()
    one = api_admin.get(f"{url}{failed['results'][0]['id']}/").json()
    summary = api_admin.get(f"/api/v1/webhooks/{subscription.pk}/").json()

    assert everything["count"] == 3
    assert [row["event_key"] for row in failed["results"]] == ["event-1"]
    assert sorted(row["event_key"] for row in waiting["results"]) == ["event-1", "event-2"]
    assert one["last_error"] == "HTTP 500"
    assert one["idempotency_key"] == WebhookDelivery.objects.get(pk=one["id"]).idempotency_key
    assert one["kind"] == "door_forced"
    assert (summary["deliveries_pending"], summary["deliveries_failed"]) == (1, 1)


def test_a_bad_filter_is_a_400(api_admin):
    subscription = make_subscription()

    answer = api_admin.get(f"/api/v1/webhooks/{subscription.pk}/deliveries/", {"status": "lost"})

    assert answer.status_code == 400
    assert "status" in answer.json()


def test_the_log_of_a_subscription_out_of_reach_is_not_found():
    east, west = make_partition("East"), make_partition("West")
    theirs = make_subscription(partitions=[west])
    (row,) = make_deliveries(theirs, DeliveryStatus.FAILED)
    client = client_for(make_operator(*MANAGE, partitions=[east]))

    listed = client.get(f"/api/v1/webhooks/{theirs.pk}/deliveries/")
    shown = client.get(f"/api/v1/webhooks/{theirs.pk}/deliveries/{row.pk}/")
    redelivered = client.post(f"/api/v1/webhooks/{theirs.pk}/deliveries/{row.pk}/redeliver/")

    assert (listed.status_code, shown.status_code, redelivered.status_code) == (404, 404, 404)
    assert WebhookDelivery.objects.get(pk=row.pk).status == DeliveryStatus.FAILED


def test_a_delivery_is_found_only_under_its_own_subscription(api_admin):
    subscription, other = make_subscription(), make_subscription()
    (row,) = make_deliveries(subscription, DeliveryStatus.FAILED)

    assert api_admin.get(f"/api/v1/webhooks/{other.pk}/deliveries/{row.pk}/").status_code == 404
    assert api_admin.post(f"/api/v1/webhooks/{other.pk}/deliveries/{row.pk}/redeliver/").status_code == 404


def test_redeliver_makes_a_failed_delivery_due_again_with_fresh_tries(api_admin):
    subscription = make_subscription()
    (row,) = make_deliveries(subscription, DeliveryStatus.FAILED)
    WebhookDelivery.objects.filter(pk=row.pk).update(tries=15)

    answer = api_admin.post(f"/api/v1/webhooks/{subscription.pk}/deliveries/{row.pk}/redeliver/")

    assert answer.status_code == 200
    assert (answer.json()["status"], answer.json()["tries"]) == ("pending", 0)
    row.refresh_from_db()
    assert row.next_attempt_at <= timezone.now()
    assert SystemAuditEntry.objects.filter(action="redeliver", object_id=str(row.pk)).exists()


def test_redeliver_is_refused_while_paused_or_in_flight(api_admin):
    subscription = make_subscription()
    failed, in_flight = make_deliveries(subscription, DeliveryStatus.FAILED, DeliveryStatus.DELIVERING)
    url = f"/api/v1/webhooks/{subscription.pk}/deliveries/{{}}/redeliver/"

    busy = api_admin.post(url.format(in_flight.pk))
    WebhookSubscription.objects.filter(pk=subscription.pk).update(paused_at=timezone.now(), paused_reason="x")
    paused = api_admin.post(url.format(failed.pk))

    assert busy.status_code == 400 and busy.json() == {"non_field_errors": ["It is being delivered right now."]}
    assert paused.status_code == 400
    assert paused.json() == {"non_field_errors": ["The subscription is paused: resume it first."]}
    assert WebhookDelivery.objects.get(pk=failed.pk).status == DeliveryStatus.FAILED


def test_resume_ends_the_pause_and_can_send_the_failed_deliveries_again(api_admin):
    subscription = make_subscription()
    make_deliveries(subscription, DeliveryStatus.FAILED, DeliveryStatus.PENDING, DeliveryStatus.DELIVERED)
    WebhookSubscription.objects.filter(pk=subscription.pk).update(
        paused_at=timezone.now(), paused_reason="Every try has failed…", failures_in_a_row=12
    )

    shown = api_admin.get(f"/api/v1/webhooks/{subscription.pk}/").json()
    resumed = api_admin.post(f"/api/v1/webhooks/{subscription.pk}/resume/", {"redeliver_failed": True}, format="json")

    assert (shown["paused"], shown["paused_reason"]) == (True, "Every try has failed…")
    assert resumed.status_code == 200
    body = resumed.json()
    assert (body["paused"], body["paused_reason"], body["failures_in_a_row"]) == (False, "", 0)
    assert body["deliveries_pending"] == 2
    statuses = sorted(WebhookDelivery.objects.values_list("status", flat=True))
    assert statuses == ["delivered", "pending", "pending"]
    entry = SystemAuditEntry.objects.get(action="resume")
    assert entry.detail == {"was_paused": "Every try has failed…", "redeliver_failed": True}


def test_the_schema_documents_the_webhook_endpoints(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))

    schema = (tmp_path / "schema.yml").read_text()
    assert "/api/v1/webhooks/{id}/resume/" in schema
    assert "/api/v1/webhooks/{subscription_pk}/deliveries/{id}/redeliver/" in schema


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/webhooks/24324165402124635025203789824/deliveries/",
        "/api/v1/webhooks/24324165402124635025203789824/deliveries/11895/",
        "/api/v1/webhooks/9223372036854775808/deliveries/1/",
    ],
)
def test_a_subscription_id_past_any_row_is_a_404_not_a_500(api_admin, path):
    assert api_admin.get(path).status_code == 404
