"""API v1 for the PPD (portable programming device): which offline locks need a visit, their
configuration, what the PPD loaded, and the audit trails it collected (docs/ppd.md).

Everything here needs ``devices.use_ppd``: a configuration carries the site card
key, so loading locks is a power of its own, not part of changing devices (a
device administrator does not get the card key by that alone, and a PPD
operator cannot rekey or remap devices). Locks are site-wide, like all devices.
"""

import datetime as dt

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics, serializers
from rest_framework.response import Response

from accesscontrol import actions
from accesscontrol.choices import AuditKind, Decision
from accesscontrol.views.base import client_address
from devices import locks
from devices.models import Device

PERMISSION = "devices.use_ppd"
VIA = "api"
MAX_EVENTS = 10_000  # per upload; a lock's buffer holds fewer
CLOCK_TOLERANCE = dt.timedelta(minutes=10)  # a PPD's clock may run this far ahead of the server's


# --- serializers -----------------------------------------------------------------------------------


class LockStateSerializer(serializers.Serializer):
    config_revision = serializers.IntegerField(help_text="The configuration it runs (0: never loaded).")
    blacklist_number = serializers.IntegerField(help_text="The newest blacklist entry it holds.")
    battery = serializers.IntegerField(allow_null=True)
    events_pending = serializers.IntegerField()
    initialised_at = serializers.DateTimeField(allow_null=True)
    reported_at = serializers.DateTimeField(allow_null=True)
    collected_at = serializers.DateTimeField(allow_null=True)
    clock_set_at = serializers.DateTimeField(allow_null=True)


class LockReportSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="device.pk")
    device_id = serializers.IntegerField(source="device.device_id")
    name = serializers.CharField(source="device.name")
    access_point = serializers.IntegerField(source="config.access_point_id", allow_null=True, default=None)
    config_revision = serializers.IntegerField(
        source="config.revision", allow_null=True, default=None, help_text="The revision it should run."
    )
    state = LockStateSerializer(allow_null=True)
    needs_update = serializers.BooleanField()
    reasons = serializers.ListField(child=serializers.ChoiceField(choices=locks.REASONS))


class LoadedSerializer(serializers.Serializer):
    config_revision = serializers.IntegerField(min_value=1, max_value=2**32 - 1)
    blacklist_number = serializers.IntegerField(min_value=0, max_value=2**63 - 1)
    battery = serializers.IntegerField(min_value=0, max_value=100)
    at = serializers.DateTimeField(help_text="When the PPD loaded the lock and set its clock.")

    def validate_at(self, at):
        if at > timezone.now() + CLOCK_TOLERANCE:
            raise serializers.ValidationError("This is in the future: check the PPD's clock.")
        return at


class LockEventSerializer(serializers.Serializer):
    id = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="The lock's own event number.")
    at = serializers.DateTimeField()
    kind = serializers.ChoiceField(choices=AuditKind.choices)
    key_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False, allow_null=True)
    uid = serializers.RegexField(r"^[0-9A-Fa-f]{0,64}$", required=False, allow_blank=True, default="")
    reason = serializers.ChoiceField(choices=Decision.choices, required=False, allow_blank=True, default="")
    door = serializers.IntegerField(min_value=1, max_value=2**31 - 1, required=False, allow_null=True)

    def validate_uid(self, uid):
        return uid.upper()


class AuditUploadSerializer(serializers.Serializer):
    events = LockEventSerializer(many=True, max_length=MAX_EVENTS, allow_empty=True)

    def validate_events(self, events):
        ids = [event["id"] for event in events]
        if len(ids) != len(set(ids)):
            raise serializers.ValidationError("Each event id may appear only once.")
        return events


class StoredSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    new = serializers.IntegerField(help_text="Events not stored before (the rest were uploaded already).")
    stored_up_to = serializers.IntegerField(help_text="Acknowledge up to this id on the lock: all are stored.")


# --- views -----------------------------------------------------------------------------------------


class PPDView(generics.GenericAPIView):
    required_permission = PERMISSION
    queryset = locks.offline_locks()
    pagination_class = None

    def lock(self) -> Device:
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])

    def body(self) -> dict:
        serializer = self.get_serializer(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


class LockListView(PPDView):
    """Offline locks, each with the revision it should run, what it reported, and why it needs a visit."""

    serializer_class = LockReportSerializer
    pagination_class = generics.GenericAPIView.pagination_class

    @extend_schema(
        parameters=[OpenApiParameter("needs_update", OpenApiTypes.BOOL, description="Only those that do (or not).")],
        responses=LockReportSerializer(many=True),  # a page of them, as the other lists
    )
    def get(self, request):
        wanted = request.query_params.get("needs_update")
        if wanted not in (None, "true", "false"):
            raise exceptions.ValidationError({"needs_update": ["Say true or false."]})
        reports = locks.lock_reports(self.get_queryset().order_by("name", "id"))
        if wanted is not None:
            reports = [report for report in reports if report.needs_update == (wanted == "true")]
        page = self.paginate_queryset(reports)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class LockConfigView(PPDView):
    """The configuration to load into the lock, with the site card key: never cached, and recorded."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, pk):
        device = self.lock()
        try:
            config = locks.lock_config(device)
        except locks.LockNotMapped as error:
            raise exceptions.ValidationError({"non_field_errors": [str(error)]}) from None
        actions.record_operator_action(
            request.user,
            "export_lock_config",
            device,
            via=VIA,
            detail={"revision": config.revision, "access_point": config.access_point_id},
            address=client_address(request),
        )
        response = Response(locks.config_json(config))
        response["Cache-Control"] = "no-store"
        return response


class LockLoadedView(PPDView):
    """The PPD loaded the lock: its revision, blacklist number and battery, and when (its clock is set)."""

    serializer_class = LoadedSerializer

    @extend_schema(responses={200: LockStateSerializer})
    def post(self, request, pk):
        state = locks.record_loaded(self.lock(), operator=request.user, **self.body())
        return Response(LockStateSerializer(state).data)


class LockAuditView(PPDView):
    """Events collected from the lock; each is stored once, however often it is uploaded."""

    serializer_class = AuditUploadSerializer

    @extend_schema(responses={200: StoredSerializer})
    def post(self, request, pk):
        device = self.lock()
        events = [locks.UploadedEvent(**event) for event in self.body()["events"]]
        stored = locks.store_audit(device, events)
        return Response(StoredSerializer(stored).data)
