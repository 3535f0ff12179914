"""/healthz, /readyz and /metrics: what a load balancer and a Prometheus scraper are told, and who may ask."""

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from accesscontrol import events
from accesscontrol.choices import AuditKind
from accesscontrol.models import ApiKey, AuditEvent, Presence
from core.lease import Lease
from devices.models import Device
from integrations.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from tests.factories import make_cardholder, make_operator, make_zone
from tests.support.processes import redis_database

# --- /healthz ----------------------------------------------------------------------------------


def test_healthz_answers_without_login_or_database():
    # No database marker: a query here would fail the test.
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


# --- /readyz -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_readyz_is_ready_on_a_working_database():
    response = Client().get("/readyz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"] == {"ok": True, "configured": False, "ms": body["checks"]["redis"]["ms"]}
    assert body["checks"]["disk_space"]["free_mb"] >= body["checks"]["disk_space"]["min_free_mb"]
    # The embedded profile runs the services inside runspace; FIAS is not configured here.
    assert body["checks"]["services"]["services"]["device-bridge"] == "in runspace"
    assert body["checks"]["services"]["services"]["fias"] == "not configured"


@pytest.mark.django_db
def test_readyz_fails_with_detail_when_too_little_space_is_free(settings):
    settings.SPACE_READY_MIN_FREE_MB = 10**12  # an exabyte
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    space = body["checks"]["disk_space"]
    assert space["ok"] is False
    assert space["min_free_mb"] == 10**12
    assert "less than" in space["error"]
    assert body["checks"]["database"]["ok"] is True  # the other checks still say how they are


@pytest.mark.django_db
def test_readyz_fails_without_naming_an_unreachable_redis(settings):
    settings.REDIS_URL = "redis://:hunter2@127.0.0.1:1/0"  # nothing listens on port 1
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["redis"]["error"] == "ConnectionError"
    assert "hunter2" not in response.content.decode()
    assert "127.0.0.1" not in response.content.decode()


@pytest.mark.django_db
def test_readyz_fails_while_nobody_holds_a_hosted_services_lease(settings):
    settings.SPACE_MODE_SCHEDULER_IN_RUNSPACE = False  # hosted: a Celery task or runservice under its lease
    with redis_database() as redis_url:
        settings.REDIS_URL = redis_url
        response = Client().get("/readyz")
        assert response.status_code == 503
        services = response.json()["checks"]["services"]
        assert services["ok"] is False
        assert services["services"]["mode-scheduler"] == "down"
        assert "mode-scheduler" in services["error"]

        lease = Lease("mode-scheduler", ttl=30)
        assert lease.acquire()
        try:
            response = Client().get("/readyz")
            assert response.status_code == 200, response.json()
            assert response.json()["checks"]["services"]["services"]["mode-scheduler"] == "running"
        finally:
            lease.release()


# --- /metrics ----------------------------------------------------------------------------------


def scrape(client: Client, **headers) -> dict:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def value(families: dict, name: str, **labels) -> float:
    (sample,) = [s for s in families[name].samples if s.labels == labels and not s.name.endswith("_created")]
    return sample.value


@pytest.fixture
def api_key(db) -> str:
    return ApiKey.issue(make_operator(), "prometheus")[1]


@pytest.mark.django_db
def test_metrics_are_refused_without_a_key_or_an_allowed_address(settings):
    assert Client().get("/metrics").status_code == 403  # loopback (the test client's 127.0.0.1) is not implied
    settings.SPACE_METRICS_ALLOWED_ADDRESSES = ["10.0.0.0/8"]
    assert Client().get("/metrics").status_code == 403
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Api-Key spk_wrong_token").status_code == 403


@pytest.mark.django_db
def test_metrics_with_an_api_key(api_key):
    families = scrape(Client(), HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    for name in (
        "space_devices",
        "space_devices_online",
        "space_audit_events",
        "space_outbox_pending",
        "space_outbox_oldest_pending_seconds",
        "space_webhook_deliveries_failed",
        "space_webhook_subscriptions_failing",
        "space_presence_inside",
    ):
        assert name in families


@pytest.mark.django_db
def test_metrics_from_an_allowed_address(settings, api_key):
    settings.SPACE_METRICS_ALLOWED_ADDRESSES = ["192.0.2.7", "10.1.0.0/24"]
    assert Client(REMOTE_ADDR="10.1.0.99").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="192.0.2.7").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="192.0.2.8").get("/metrics").status_code == 403
    # A wrong key is refused even from an allowed address.
    response = Client(REMOTE_ADDR="192.0.2.7").get("/metrics", HTTP_AUTHORIZATION="Api-Key spk_wrong_token")
    assert response.status_code == 403


@pytest.mark.django_db
def test_metrics_count_what_the_database_holds(api_key):
    for device_id, online in ((1, True), (2, True), (3, False)):
        Device.objects.create(device_id=device_id, name=f"Device {device_id}", kind="control_unit", online=online)
    Device.objects.create(device_id=4, name="Disabled", kind="control_unit", online=True, enabled=False)

    muster = make_zone(name="Assembly hall", roll_call=True)
    make_zone(name="Empty muster point", roll_call=True)
    elsewhere = make_zone(name="Corridor", anti_passback=True)
    now = timezone.now()
    for cardholder, zone, inside in (
        (make_cardholder(), muster, True),
        (make_cardholder(), muster, True),
        (make_cardholder(), muster, False),
        (make_cardholder(), elsewhere, True),
    ):
        Presence.objects.create(cardholder=cardholder, zone=zone, inside=inside, since=now, last_at=now)

    # Before the subscription: these would be queued for it.
    events.record(kind=AuditKind.ACCESS_GRANTED, at=now)
    events.record(kind=AuditKind.ACCESS_GRANTED, at=now)

    subscription = WebhookSubscription.objects.create(name="CRM", url="https://crm.example.com/hook")
    for n, (status, age) in enumerate(
        (
            (DeliveryStatus.PENDING, 120),
            (DeliveryStatus.DELIVERING, 5),
            (DeliveryStatus.FAILED, 600),
            (DeliveryStatus.FAILED, 600),
            (DeliveryStatus.DELIVERED, 600),
        )
    ):
        delivery = WebhookDelivery.objects.create(
            subscription=subscription, event_key=f"event-{n}", payload={}, status=status, next_attempt_at=now
        )
        WebhookDelivery.objects.filter(pk=delivery.pk).update(created_at=now - dt.timedelta(seconds=age))

    families = scrape(Client(), HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    assert value(families, "space_devices_online") == 2
    assert value(families, "space_devices", state="online") == 2
    assert value(families, "space_devices", state="offline") == 1
    assert value(families, "space_presence_inside", zone="Assembly hall") == 2
    assert value(families, "space_presence_inside", zone="Empty muster point") == 0
    assert "Corridor" not in {s.labels.get("zone") for s in families["space_presence_inside"].samples}
    assert value(families, "space_outbox_pending", outbox="webhooks") == 2
    assert value(families, "space_outbox_pending", outbox="event_stream") == 0
    assert 120 <= value(families, "space_outbox_oldest_pending_seconds", outbox="webhooks") < 180
    assert value(families, "space_webhook_deliveries_failed") == 2
    newest = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    assert newest >= 2
    assert value(families, "space_audit_events") == newest
