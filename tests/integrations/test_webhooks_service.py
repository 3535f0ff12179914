"""The embedded profile: runspace's webhook service delivers, woken by each commit, and stops cleanly."""

import time

import pytest
from django.utils import timezone

from accesscontrol import events
from integrations.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from integrations.webhooks import delivery, transport, wakeup
from integrations.webhooks.service import WebhookService
from simulation.benchmarks.webhooks import Answer, Receiver
from space.services import embedded_services
from tests.integrations.running import RunningService

FAST = delivery.Policy(
    backoff_base=0.01,
    backoff_cap=0.02,
    reclaim_every=0.02,
    flush_every=0.02,
    timeouts=transport.Timeouts(connect=1.0, read=0.5, total=2.0),
)


@pytest.fixture
def service(transactional_db):
    # A long interval: only the commits' wake-ups make it deliver quickly.
    running = RunningService(WebhookService(FAST, interval=30.0, sweep_every=30.0))
    yield running
    running.stop()


def subscribe(url: str) -> WebhookSubscription:
    subscription = WebhookSubscription(name="local", url=url, all_partitions=True, allow_private_target=True)
    subscription.set_secret()
    subscription.save()
    return subscription


def test_the_service_delivers_each_event_soon_after_its_commit(service):
    with Receiver() as receiver:
        subscribe(receiver.url)

        started = time.monotonic()
        for _ in range(5):
            events.record(at=timezone.now(), kind="door_forced")

        assert receiver.wait_for(lambda r: len(r.accepted) == 5, timeout=5)
        took = time.monotonic() - started
    assert took < 3  # not the 30 s interval
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 5


def test_the_service_retries_on_its_own_schedule(transactional_db):
    running = RunningService(WebhookService(FAST, interval=0.1, sweep_every=30.0))
    try:
        with Receiver(lambda number, headers: Answer(500 if number == 0 else 200)) as receiver:
            subscribe(receiver.url)
            events.record(at=timezone.now(), kind="door_forced")

            assert receiver.wait_for(lambda r: len(r.accepted) == 1, timeout=5)
    finally:
        running.stop()
    row = WebhookDelivery.objects.get()
    assert (row.status, row.tries) == (DeliveryStatus.DELIVERED, 2)


def test_a_stopped_service_is_no_longer_woken(service):
    service.stop()
    service.stop = lambda: None  # the fixture's stop

    assert service.service.wake not in wakeup._wakers


def test_the_embedded_profile_runs_the_webhook_service_and_production_leaves_it_to_celery(settings):
    settings.SPACE_BRIDGE_IN_RUNSPACE = False
    settings.SPACE_EVENT_STREAM_IN_RUNSPACE = False
    settings.SPACE_OSDP_IN_RUNSPACE = False
    settings.SPACE_MODE_SCHEDULER_IN_RUNSPACE = False

    settings.CELERY_BROKER_URL = "memory://"
    embedded = [service.name for service in embedded_services()]
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"
    production = [service.name for service in embedded_services()]

    assert embedded == ["usb-encoder-sweep", "webhooks", "blacklist-purge", "backups", "sources", "audit-retention"]
    assert production == ["usb-encoder-sweep"]
