"""The webhook benchmark: every event delivered, each exactly once, to a receiver failing a tenth of its answers."""

import pytest

from integrations.models import WebhookDelivery, WebhookSubscription
from simulation.benchmarks.webhooks import measure_webhooks

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_the_benchmark_delivers_every_event_exactly_once_despite_failed_answers():
    figures = measure_webhooks(events=300, failure_share=0.1)

    assert figures["webhook_events"] == 300
    assert figures["webhook_delivered"] == 300
    assert figures["webhook_delivered_exactly_once"] == 300
    assert figures["webhook_duplicates"] == 0
    assert figures["webhook_failed_answers"] >= 30  # a tenth of the answers, retries included
    assert figures["webhook_requests"] == 300 + figures["webhook_failed_answers"]
    assert figures["webhook_deliveries_per_second"] > 0
    # It cleans up after itself.
    assert not WebhookSubscription.objects.exists() and not WebhookDelivery.objects.exists()
