"""API v1 views for webhook subscriptions and their delivery logs, and for event streams.

The viewsets sit on the shared base of ``accesscontrol.api.views`` (writes
are transactions recorded in the system auditor), but who reaches a
subscription is decided by its partitions (``webhooks.actions``): the
operator needs the permission in every partition it sends events of.
Deliveries belong to their subscription and need its permissions. An event
stream may carry events of every partition, so only operators whose
permission covers every partition reach streams (as in the admin).
"""

import django_filters as filters
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions
from rest_framework.decorators import action
from rest_framework.response import Response

from accesscontrol.api.views import SpaceModelViewSet, SpaceReadOnlyViewSet
from accesscontrol.filtersets import UtcDateTimeFromToRangeFilter
from accesscontrol.permissions import ALL, allowed_partitions, permission_name
from integrations.api import serializers
from integrations.eventstream.models import EventStream
from integrations.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from integrations.webhooks import actions

VIA = "api"


def _count(status: str):
    rows = (
        WebhookDelivery.objects.filter(subscription=OuterRef("pk"), status=status)
        .order_by()
        .values("subscription")
        .annotate(count=Count("pk"))
        .values("count")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), 0)


class WebhookSubscriptionFilterSet(filters.FilterSet):
    name = filters.CharFilter(lookup_expr="icontains")
    paused = filters.BooleanFilter(field_name="paused_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = WebhookSubscription
        fields = ["name", "active", "paused", "all_partitions"]


class WebhookDeliveryFilterSet(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=DeliveryStatus.choices)
    event_key = filters.CharFilter()
    kind = filters.CharFilter(field_name="payload__kind", help_text="The audit event kind.")
    created = UtcDateTimeFromToRangeFilter(
        field_name="created_at", help_text="created_after and created_before, ISO 8601."
    )

    class Meta:
        model = WebhookDelivery
        fields = ["status", "event_key", "kind", "created"]


class WebhookSubscriptionViewSet(SpaceModelViewSet):
    """Webhook subscriptions: where audit events are POSTed, which ones, and how their delivery goes."""

    queryset = WebhookSubscription.objects.prefetch_related("partitions").annotate(
        pending_count=_count(DeliveryStatus.PENDING), failed_count=_count(DeliveryStatus.FAILED)
    )
    serializer_class = serializers.WebhookSubscriptionSerializer
    filterset_class = WebhookSubscriptionFilterSet
    search_fields = ["name", "url"]
    ordering_fields = ["id", "name", "created_at"]

    def get_queryset(self):
        return actions.visible_subscriptions(self.queryset.all(), self.request.user, self.restrict_action())

    def _is_visible(self, pk) -> bool:
        try:
            return actions.visible_subscriptions(self.queryset.all(), self.request.user, "view").filter(pk=pk).exists()
        except (TypeError, ValueError):
            return False

    def ensure_partition_allowed(self, instance, action_name: str):
        if not actions.may_use(self.request.user, action_name, instance.all_partitions, instance.partitions.all()):
            raise exceptions.PermissionDenied("You may not send the events of these partitions.")

    def save_new(self, serializer):
        given = "issued_secret" in serializer.validated_data
        fields = sorted(name for name in serializer.validated_data if name != "issued_secret")
        serializer.save()  # the response is the only place the secret is ever shown
        self.audit("create", serializer.instance, {"fields": fields, "secret": "given" if given else "generated"})

    def after_save(self, serializer):
        if serializer.instance is not None and "issued_secret" in serializer.validated_data and self.action != "create":
            self.audit("rotate_secret", serializer.instance)

    @extend_schema(request=serializers.ResumeSerializer, responses=serializers.WebhookSubscriptionSerializer)
    @action(detail=True, methods=["post"], permission_action="change")
    def resume(self, request, pk=None):
        """End a pause (the system's, after failures): waiting deliveries are sent at once, failed ones if asked."""
        subscription = self.get_object()
        body = serializers.ResumeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        actions.resume(subscription, operator=request.user, via=VIA, **body.validated_data)
        return Response(self.get_serializer(self.get_queryset().get(pk=subscription.pk)).data)

    @extend_schema(request=serializers.SecretSerializer, responses=serializers.SecretSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret", permission_action="change")
    def rotate_secret(self, request, pk=None):
        """Give the subscription a new secret (the one sent, or a generated one), shown in this response only."""
        subscription = self.get_object()
        body = serializers.SecretSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        secret = actions.rotate_secret(
            subscription, operator=request.user, via=VIA, secret=body.validated_data.get("secret")
        )
        return Response(serializers.SecretSerializer({"id": subscription.pk, "secret": secret}).data)


MAX_ID = 2**63 - 1

SUBSCRIPTION_PARAMETER = OpenApiParameter(
    "subscription_pk", OpenApiTypes.INT, OpenApiParameter.PATH, description="The subscription's id."
)


@extend_schema_view(
    list=extend_schema(parameters=[SUBSCRIPTION_PARAMETER]),
    retrieve=extend_schema(parameters=[SUBSCRIPTION_PARAMETER]),
    redeliver=extend_schema(parameters=[SUBSCRIPTION_PARAMETER]),
)
class WebhookDeliveryViewSet(SpaceReadOnlyViewSet):
    """A subscription's delivery log: each event's status, tries and last error; newest first."""

    queryset = WebhookDelivery.objects.select_related("subscription")
    serializer_class = serializers.WebhookDeliverySerializer
    filterset_class = WebhookDeliveryFilterSet
    search_fields = ["event_key"]
    ordering_fields = ["id", "created_at", "next_attempt_at", "delivered_at"]
    lookup_value_regex = "[0-9]+"

    @property
    def required_permission(self) -> str:
        # The log is part of its subscription: the subscription's permissions govern it.
        return permission_name(WebhookSubscription, self.restrict_action())

    def subscription(self) -> WebhookSubscription:
        visible = actions.visible_subscriptions(WebhookSubscription.objects.all(), self.request.user, "view")
        try:
            return visible.get(pk=self.subscription_pk())
        except (WebhookSubscription.DoesNotExist, ValueError, TypeError):
            raise Http404 from None

    def subscription_pk(self) -> int:
        """The subscription's id from the path; one no row can have (past a 64-bit integer) is a 404, not a 500."""
        value = str(self.kwargs.get("subscription_pk", ""))
        if not value.isdigit() or int(value) > MAX_ID:
            raise Http404
        return int(value)

    def get_queryset(self):
        subscriptions = actions.visible_subscriptions(
            WebhookSubscription.objects.all(), self.request.user, self.restrict_action()
        )
        return self.queryset.filter(subscription_id=self.subscription_pk(), subscription__in=subscriptions)

    def _is_visible(self, pk) -> bool:
        self.subscription()
        return WebhookDelivery.objects.filter(pk=pk, subscription_id=self.subscription_pk()).exists()

    def list(self, request, *args, **kwargs):
        self.subscription()  # 404 for a subscription the operator cannot see
        return super().list(request, *args, **kwargs)

    @extend_schema(request=None, responses=serializers.WebhookDeliverySerializer)
    @action(detail=True, methods=["post"], permission_action="change")
    def redeliver(self, request, subscription_pk=None, pk=None):
        """Send this delivery again, with a fresh count of tries and the same Space-Webhook-Id."""
        delivery = self.get_object()
        try:
            delivery = actions.redeliver(delivery, operator=request.user, via=VIA)
        except actions.Refused as refusal:
            raise exceptions.ValidationError({"non_field_errors": [str(refusal)]}) from None
        return Response(self.get_serializer(delivery).data)


class EventStreamFilterSet(filters.FilterSet):
    name = filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = EventStream
        fields = ["name", "protocol", "active"]


class EventStreamViewSet(SpaceModelViewSet):
    """Event streams: receivers Space connects to (TCP) or sends datagrams to (UDP), one JSON object per event."""

    queryset = (
        EventStream.objects.prefetch_related("partitions")
        .annotate(waiting_count=Count("items", filter=Q(items__sent_at__isnull=True)))
        .order_by("name")
    )  # a grouped query drops the model's default order
    serializer_class = serializers.EventStreamSerializer
    filterset_class = EventStreamFilterSet
    search_fields = ["name", "host"]
    ordering_fields = ["id", "name", "created_at", "last_connected_at"]

    def get_queryset(self):
        return self._everywhere(self.restrict_action(), super().get_queryset())

    def _everywhere(self, action_name: str, queryset):
        if allowed_partitions(self.request.user, permission_name(EventStream, action_name)) is ALL:
            return queryset
        return queryset.none()

    def _is_visible(self, pk) -> bool:
        return super()._is_visible(pk) and self._everywhere("view", EventStream.objects.all()).exists()

    def ensure_partition_allowed(self, instance, action_name: str):
        if allowed_partitions(self.request.user, permission_name(EventStream, action_name)) is not ALL:
            raise exceptions.PermissionDenied("An event stream needs your permission in every partition.")
