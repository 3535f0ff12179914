"""What operators do with webhooks (API, admin): each function owns its transaction and records itself.

Who reaches a subscription: an operator holding the permission (e.g.
``integrations.change_webhooksubscription``) in every partition whose events
it sends; a subscription to all partitions needs the permission in all
partitions. A subscription sends events out of Space, so it may never
carry more than its writer could read.
"""

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accesscontrol.actions import record_operator_action
from accesscontrol.models import Partition
from accesscontrol.permissions import ALL, allowed_partitions, permission_name, restrict
from integrations.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from integrations.webhooks import wakeup


class Refused(Exception):
    """The operation does not apply to the object in its present state."""


def visible_subscriptions(queryset: QuerySet, operator, action: str) -> QuerySet:
    """``queryset`` narrowed to the subscriptions ``operator`` may ``action``: all their partitions are theirs."""
    if not operator or not operator.is_authenticated:
        return queryset.none()
    queryset = restrict(queryset, operator, action)
    partitions = allowed_partitions(operator, permission_name(WebhookSubscription, action))
    if partitions is ALL:
        return queryset
    beyond = Partition.objects.exclude(pk__in=partitions)
    return queryset.filter(all_partitions=False).exclude(partitions__in=beyond)


def may_use(operator, action: str, all_partitions: bool, partitions) -> bool:
    """Whether ``operator`` may ``action`` a subscription to these partitions."""
    allowed = allowed_partitions(operator, permission_name(WebhookSubscription, action))
    if allowed is ALL:
        return True
    return not all_partitions and {getattr(p, "pk", p) for p in partitions} <= allowed


def resume(subscription: WebhookSubscription, *, operator, via: str, redeliver_failed: bool = False) -> int:
    """Take the subscription out of its pause: waiting deliveries are due at once (and failed ones again, if asked).

    Returns how many deliveries are due.
    """
    now = timezone.now()
    with transaction.atomic():
        was = subscription.paused_reason
        WebhookSubscription.objects.filter(pk=subscription.pk).update(
            paused_at=None, paused_reason="", failures_in_a_row=0, failing_since=None
        )
        deliveries = WebhookDelivery.objects.filter(subscription=subscription)
        due = deliveries.filter(status=DeliveryStatus.PENDING).update(next_attempt_at=now)
        if redeliver_failed:
            due += deliveries.filter(status=DeliveryStatus.FAILED).update(
                status=DeliveryStatus.PENDING, tries=0, next_attempt_at=now, delivered_at=None
            )
        record_operator_action(
            operator, "resume", subscription, via=via, detail={"was_paused": was, "redeliver_failed": redeliver_failed}
        )
        transaction.on_commit(wakeup.kick)
    subscription.refresh_from_db()
    return due


def redeliver(delivery: WebhookDelivery, *, operator, via: str) -> WebhookDelivery:
    """Send the delivery again, with a fresh count of tries and the same id (a receiver that has it ignores it)."""
    subscription = delivery.subscription
    if not subscription.active:
        raise Refused("The subscription is inactive: activate it first.")
    if subscription.paused:
        raise Refused("The subscription is paused: resume it first.")
    with transaction.atomic():
        updated = WebhookDelivery.objects.filter(pk=delivery.pk).exclude(status=DeliveryStatus.DELIVERING)
        if not updated.update(
            status=DeliveryStatus.PENDING, tries=0, next_attempt_at=timezone.now(), claimed_at=None, delivered_at=None
        ):
            raise Refused("It is being delivered right now.")
        record_operator_action(operator, "redeliver", delivery, via=via, detail={"event_key": delivery.event_key})
        transaction.on_commit(wakeup.kick)
    delivery.refresh_from_db()
    return delivery


def rotate_secret(subscription: WebhookSubscription, *, operator, via: str, secret: str | None = None) -> str:
    """A new secret (the one given, or a generated one); requests are signed with it from the next run on."""
    with transaction.atomic():
        secret = subscription.set_secret(secret)
        subscription.save(update_fields=["secret_sealed", "updated_at"])
        record_operator_action(operator, "rotate_secret", subscription, via=via)
    return secret
