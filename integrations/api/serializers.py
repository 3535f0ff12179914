"""Serializers for the webhooks part of API v1.

A subscription's secret is never readable: it is given (or generated) when the
subscription is created, shown in that one response, and replaced through
``rotate-secret`` or by writing a new one.
"""

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accesscontrol.api.serializers import ModelSerializer
from accesscontrol.choices import AuditKind
from accesscontrol.models import Partition
from integrations.eventstream.models import EventStream
from integrations.models import (
    SECRET_MAX_LENGTH,
    SECRET_MIN_LENGTH,
    WebhookDelivery,
    WebhookSubscription,
)
from integrations.targets import TargetError, check_url, parse

ONLY_ADMINISTRATORS = "Only an administrator may allow private targets."


# An enum in the schema; checked by validate_kinds, which names every unknown kind in one message.
@extend_schema_field({"type": "string", "enum": AuditKind.values})
class AuditKindName(serializers.CharField):
    pass


def _secret_field(**kwargs) -> serializers.CharField:
    return serializers.CharField(
        min_length=SECRET_MIN_LENGTH,
        max_length=SECRET_MAX_LENGTH,
        trim_whitespace=False,
        **kwargs,
    )


class WebhookSubscriptionSerializer(ModelSerializer):
    # The audit event kinds, checked against AuditKind by validate_kinds.
    kinds = serializers.ListField(
        child=AuditKindName(max_length=32),
        required=False,
        max_length=len(AuditKind.choices),
        help_text=f"The audit event kinds to send ({', '.join(AuditKind.values)}); empty or absent: every kind.",
    )
    # Any partition may be named; whether the operator may use it is the view's decision (403, not 400).
    partitions = serializers.PrimaryKeyRelatedField(
        queryset=Partition.objects.all(),
        many=True,
        required=False,
        help_text="Events at access points of these partitions are sent. Name some, or set all_partitions.",
    )
    secret = _secret_field(
        source="issued_secret",
        required=False,
        help_text=f"The signing secret ({SECRET_MIN_LENGTH} to {SECRET_MAX_LENGTH} characters); generated when not "
        "given on create. Shown in the response to the create only, never again.",
    )
    paused = serializers.BooleanField(read_only=True)
    deliveries_pending = serializers.SerializerMethodField(help_text="Deliveries waiting to be sent or retried.")
    deliveries_failed = serializers.SerializerMethodField(help_text="Deliveries given up after all their tries.")

    class Meta:
        model = WebhookSubscription
        fields = [
            "id",
            "name",
            "url",
            "kinds",
            "partitions",
            "all_partitions",
            "active",
            "paused",
            "paused_at",
            "paused_reason",
            "allow_private_target",
            "max_tries",
            "secret",
            "failures_in_a_row",
            "failing_since",
            "last_error",
            "last_success_at",
            "deliveries_pending",
            "deliveries_failed",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "paused_at",
            "paused_reason",
            "failures_in_a_row",
            "failing_since",
            "last_error",
            "last_success_at",
            "created_by",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(OpenApiTypes.INT)
    def get_deliveries_pending(self, subscription) -> int:
        return _count(subscription, "pending_count", "pending")

    @extend_schema_field(OpenApiTypes.INT)
    def get_deliveries_failed(self, subscription) -> int:
        return _count(subscription, "failed_count", "failed")

    def _operator(self):
        request = self.context.get("request")
        return getattr(request, "user", None)

    def validate_allow_private_target(self, allow):
        operator = self._operator()
        was = self.instance.allow_private_target if self.instance is not None else False
        if allow and not was and not getattr(operator, "is_superuser", False):
            raise serializers.ValidationError(ONLY_ADMINISTRATORS)
        return allow

    def validate_kinds(self, kinds):
        unknown = sorted(set(kinds) - set(AuditKind.values))
        if unknown:
            raise serializers.ValidationError(f"Unknown kinds: {', '.join(unknown)}.")
        return sorted(set(kinds))

    def validate_url(self, url):
        try:
            parse(url)  # the form at once; where it leads is checked with the other fields (model clean)
        except TargetError as error:
            raise serializers.ValidationError(str(error)) from None
        operator = self._operator()
        changed = self.instance is None or url != self.instance.url
        privileged = self.instance is not None and self.instance.allow_private_target
        # An administrator's leave was for the URL they saw; anyone else's new URL is checked in full.
        if changed and privileged and not getattr(operator, "is_superuser", False):
            try:
                check_url(url, allow_private=False)
            except TargetError as error:
                raise serializers.ValidationError(str(error)) from None
        return url

    def validate(self, attrs):
        attrs = super().validate(attrs)
        instance = self.instance
        all_partitions = attrs.get("all_partitions", instance.all_partitions if instance else False)
        if "partitions" in attrs:
            partitions = attrs["partitions"]
        else:
            partitions = list(instance.partitions.all()) if instance else []
        if not all_partitions and not partitions:
            raise serializers.ValidationError(
                {"partitions": ["Name the partitions whose events to send, or set all_partitions."]}
            )
        return attrs

    def create(self, validated_data):
        partitions = validated_data.pop("partitions", [])
        secret = validated_data.pop("issued_secret", None)
        with transaction.atomic():
            subscription = WebhookSubscription(**validated_data, created_by=self._operator())
            issued = subscription.set_secret(secret)
            subscription.save()
            subscription.partitions.set(partitions)
        # Read back by the ``secret`` field: the response to the create is the only place it is shown.
        subscription.issued_secret = issued
        return subscription

    def update(self, instance, validated_data):
        secret = validated_data.pop("issued_secret", None)
        if secret is not None:
            instance.set_secret(secret)
        return super().update(instance, validated_data)


def _count(subscription, annotation: str, status: str) -> int:
    value = getattr(subscription, annotation, None)
    if value is None:
        value = subscription.deliveries.filter(status=status).count()
    return value


class ResumeSerializer(serializers.Serializer):
    redeliver_failed = serializers.BooleanField(
        required=False, default=False, help_text="Also send again the deliveries that had failed."
    )


class SecretSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    secret = _secret_field(required=False, help_text="The new secret; generated when not given. Shown this once.")


class WebhookDeliverySerializer(serializers.ModelSerializer):
    idempotency_key = serializers.CharField(
        read_only=True, help_text="Sent as Space-Webhook-Id, the same on every try and redelivery."
    )
    kind = serializers.SerializerMethodField()

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "subscription",
            "event_key",
            "idempotency_key",
            "kind",
            "status",
            "tries",
            "next_attempt_at",
            "last_error",
            "last_status_code",
            "created_at",
            "delivered_at",
            "payload",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_kind(self, delivery) -> str:
        return str(delivery.payload.get("kind", "")) if isinstance(delivery.payload, dict) else ""


class EventStreamSerializer(ModelSerializer):
    kinds = serializers.ListField(
        child=serializers.ChoiceField(choices=AuditKind.values),
        required=False,
        max_length=len(AuditKind.choices),
        help_text=f"The audit event kinds to send ({', '.join(AuditKind.values)}); empty or absent: every kind.",
    )
    partitions = serializers.PrimaryKeyRelatedField(
        queryset=Partition.objects.all(),
        many=True,
        required=False,
        help_text="Send only events of these partitions; none: every event, including those without a partition.",
    )
    address = serializers.CharField(read_only=True, help_text="protocol://host:port")
    events_waiting = serializers.SerializerMethodField(help_text="Events not yet written to the receiver.")

    class Meta:
        model = EventStream
        fields = [
            "id",
            "name",
            "protocol",
            "host",
            "port",
            "address",
            "kinds",
            "partitions",
            "active",
            "created_at",
            "last_connected_at",
            "last_error",
            "events_waiting",
        ]
        read_only_fields = ["created_at", "last_connected_at", "last_error"]

    def validate_kinds(self, kinds: list[str]) -> list[str]:
        return sorted(set(kinds))

    def validate_host(self, host: str) -> str:
        host = host.strip()
        if not host or any(character.isspace() or character in "/@?#" for character in host):
            raise serializers.ValidationError("A host name or an IP address.")
        return host

    @extend_schema_field(OpenApiTypes.INT)
    def get_events_waiting(self, stream) -> int:
        waiting = getattr(stream, "waiting_count", None)
        return waiting if waiting is not None else stream.items.filter(sent_at__isnull=True).count()
