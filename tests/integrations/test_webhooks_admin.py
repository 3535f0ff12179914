"""Webhooks in the admin: the secret shown once, private targets for superusers only, resume and redeliver."""

import re

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accesscontrol.models import SystemAuditEntry
from integrations.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from tests.factories import make_operator, make_partition

pytestmark = pytest.mark.django_db

URL = "https://192.0.2.10/hooks/space"


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def messages_of(response) -> str:
    return " ".join(str(message) for message in get_messages(response.wsgi_request))


def form(**fields) -> dict:
    return {"name": "SIEM", "url": URL, "all_partitions": "on", "active": "on", "max_tries": "15", **fields}


def staff_client(*permissions, partitions=(), all_partitions=False) -> Client:
    client = Client()
    client.force_login(make_operator(*permissions, partitions=partitions, all_partitions=all_partitions, is_staff=True))
    return client


MANAGE = (
    "integrations.view_webhooksubscription",
    "integrations.add_webhooksubscription",
    "integrations.change_webhooksubscription",
)


def test_a_subscription_added_without_a_secret_shows_its_generated_secret_once(admin_client):
    response = admin_client.post(url(WebhookSubscription, "add"), form(kinds=["door_forced"]), follow=True)

    secret = re.search(r"is (whsec_\S+) ", messages_of(response)).group(1)
    subscription = WebhookSubscription.objects.get()
    assert subscription.secret() == secret
    assert subscription.kinds == ["door_forced"]
    assert secret not in admin_client.get(url(WebhookSubscription, "change", subscription.pk)).content.decode()
    entry = SystemAuditEntry.objects.get()
    assert entry.action == "add" and secret not in str(entry.detail)


def test_a_secret_typed_in_is_kept_and_not_shown(admin_client):
    response = admin_client.post(
        url(WebhookSubscription, "add"), form(secret="my own secret, long enough"), follow=True
    )

    assert "whsec_" not in messages_of(response)
    assert WebhookSubscription.objects.get().secret() == "my own secret, long enough"


def test_a_loopback_url_needs_the_private_target_allowance(admin_client):
    refused = admin_client.post(url(WebhookSubscription, "add"), form(url="http://127.0.0.1:8100/admin/"))
    allowed = admin_client.post(
        url(WebhookSubscription, "add"), form(url="http://127.0.0.1:8100/hooks", allow_private_target="on")
    )

    assert refused.status_code == 200
    assert "loopback address" in refused.content.decode()
    assert allowed.status_code == 302
    assert WebhookSubscription.objects.get().allow_private_target is True


def test_a_staff_operator_cannot_allow_private_targets():
    client = staff_client(*MANAGE, all_partitions=True)

    page = client.get(url(WebhookSubscription, "add"))
    client.post(url(WebhookSubscription, "add"), form(url="http://127.0.0.1:8100/hooks", allow_private_target="on"))

    assert 'name="allow_private_target"' not in page.content.decode()
    assert WebhookSubscription.objects.count() == 0


def test_a_staff_operator_lists_and_subscribes_only_within_their_partitions():
    east, west = make_partition("East"), make_partition("West")
    for name, partitions in (("east", [east]), ("west", [west])):
        subscription = WebhookSubscription(name=name, url=URL)
        subscription.set_secret()
        subscription.save()
        subscription.partitions.set(partitions)
    client = staff_client(*MANAGE, partitions=[east])

    listing = client.get(url(WebhookSubscription, "changelist")).content.decode()
    everything = client.post(url(WebhookSubscription, "add"), form(name="all"))
    own = client.post(url(WebhookSubscription, "add"), form(name="mine", all_partitions="", partitions=[east.pk]))

    assert ">east<" in listing and ">west<" not in listing
    assert "You may not send the events of these partitions." in everything.content.decode()
    assert own.status_code == 302
    assert sorted(WebhookSubscription.objects.values_list("name", flat=True)) == ["east", "mine", "west"]


def test_the_resume_action_ends_a_pause(admin_client):
    subscription = WebhookSubscription(name="paused", url=URL, all_partitions=True, paused_at=timezone.now())
    subscription.set_secret()
    subscription.save()

    admin_client.post(
        url(WebhookSubscription, "changelist"), {"action": "resume", "_selected_action": [subscription.pk]}
    )

    subscription.refresh_from_db()
    assert subscription.paused_at is None
    assert SystemAuditEntry.objects.filter(action="resume").count() == 1


def test_the_delivery_log_is_read_only_and_can_send_a_delivery_again(admin_client):
    subscription = WebhookSubscription(name="log", url=URL, all_partitions=True)
    subscription.set_secret()
    subscription.save()
    row = WebhookDelivery.objects.create(
        subscription=subscription,
        event_key="e1",
        payload={"key": "e1"},
        status=DeliveryStatus.FAILED,
        tries=15,
        next_attempt_at=timezone.now(),
        last_error="HTTP 500",
    )

    listing = admin_client.get(url(WebhookDelivery, "changelist"))
    add = admin_client.get(url(WebhookDelivery, "add"))
    admin_client.post(url(WebhookDelivery, "changelist"), {"action": "redeliver", "_selected_action": [row.pk]})

    assert "HTTP 500" in listing.content.decode()
    assert add.status_code == 403
    row.refresh_from_db()
    assert (row.status, row.tries) == (DeliveryStatus.PENDING, 0)
