"""API v1 views for devices, OSDP buses and readers, alarms, and the commands operators send to doors.

The viewsets sit on the shared base of ``accesscontrol.api.views``: querysets go
through ``restrict``, writes are transactions recorded in the system auditor.
Devices (OSDP ones too) and OSDP buses are site-wide, like calendars: their
doors and readers name access points, which must be ones the operator can see.
A device command and an alarm belong to their access point's partition.
"""

import django_filters as filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.decorators import action
from rest_framework.response import Response

from accesscontrol.api.views import SpaceModelViewSet, SpaceReadOnlyViewSet
from accesscontrol.filtersets import IdFilter, UtcDateTimeFromToRangeFilter
from accesscontrol.models import AccessPoint, Key, SiteSettings, Zone
from accesscontrol.permissions import may_use_partition, permission_name, restrict
from devices import actions, alarms, commands, encoding
from devices.api import serializers
from devices.choices import CommandOp, CommandStatus, DeviceKind
from devices.filtersets import (
    AlarmFilterSet,
    FaceEnrolmentFilterSet,
    FaceTerminalFilterSet,
    OsdpBusFilterSet,
    OsdpReaderFilterSet,
)
from devices.models import (
    Alarm,
    Device,
    DeviceCommand,
    DeviceDoor,
    DeviceReader,
    EncodeJob,
    FaceEnrolment,
    FaceTerminal,
    OsdpBus,
    OsdpReader,
)

VIA = "api"
MAX_ID = 2**63 - 1


def _as_int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


class DeviceFilterSet(filters.FilterSet):
    device_id = IdFilter()
    name = filters.CharFilter(lookup_expr="icontains")
    kind = filters.ChoiceFilter(choices=DeviceKind.choices)
    access_point = IdFilter(method="filter_access_point", label="Drives or reads for this access point")

    class Meta:
        model = Device
        fields = ["device_id", "name", "kind", "enabled", "online", "tamper", "access_point"]

    def filter_access_point(self, queryset, name, value):
        doors = DeviceDoor.objects.filter(access_point_id=value).values("device_id")
        readers = DeviceReader.objects.filter(access_point_id=value).values("device_id")
        return queryset.filter(Q(pk__in=doors) | Q(pk__in=readers))


class DeviceCommandFilterSet(filters.FilterSet):
    device = IdFilter(field_name="device_id")
    access_point = IdFilter(field_name="access_point_id")
    operator = IdFilter(field_name="operator_id")
    op = filters.MultipleChoiceFilter(choices=CommandOp.choices)
    status = filters.MultipleChoiceFilter(choices=CommandStatus.choices)
    created = UtcDateTimeFromToRangeFilter(
        field_name="created_at", help_text="created_after and created_before, ISO 8601."
    )

    class Meta:
        model = DeviceCommand
        fields = ["device", "access_point", "operator", "op", "status", "created"]


class DeviceViewSet(SpaceModelViewSet):
    queryset = Device.objects.prefetch_related("doors", "readers")
    serializer_class = serializers.DeviceSerializer
    filterset_class = DeviceFilterSet
    search_fields = ["name", "description"]
    ordering_fields = ["id", "device_id", "name", "kind", "last_seen_at"]

    audited_by_actions = True  # devices.actions commission_device and update_device

    @extend_schema(request=serializers.DeviceKeySerializer, responses=serializers.DeviceKeySerializer)
    @action(detail=True, methods=["post"], permission_action="change")
    def rekey(self, request, pk=None):
        """Give the device a new key (the one sent, or a generated one), shown in this response only."""
        device = self.get_object()
        body = serializers.DeviceKeySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        key = actions.rekey_device(device, key=body.validated_data.get("key"), operator=request.user, via=VIA)
        return Response(
            serializers.DeviceKeySerializer({"id": device.pk, "device_id": device.device_id, "key": key}).data
        )


class DeviceCommandViewSet(SpaceReadOnlyViewSet):
    """Commands queued for devices and how far each got. They are made by ``POST /api/v1/commands/``."""

    queryset = DeviceCommand.objects.all()
    serializer_class = serializers.DeviceCommandSerializer
    filterset_class = DeviceCommandFilterSet
    ordering_fields = ["id", "created_at", "finished_at"]

    def get_queryset(self):
        return commands.visible_commands(super().get_queryset(), self.request.user)


class IssueCommandView(generics.GenericAPIView):
    """Send a command to the doors of an access point, a zone or the whole site.

    ``open``, ``set_mode`` (with ``mode``, also stored as the access points'
    opening mode), ``emergency_open``, ``emergency_close`` (sets the target's
    lockdown: online decisions are refused at once) and ``end_emergency``
    (clears it). One device command is queued per device door; the answer
    lists them. The operator must be allowed to change every access point the
    target reaches, and, for an emergency close or its end, the zone or the site.
    """

    # For the permission check: issuing commands needs devices.add_devicecommand.
    queryset = DeviceCommand.objects.all()
    serializer_class = serializers.IssueCommandSerializer
    http_method_names = ["post", "options"]

    @extend_schema(responses={201: serializers.IssuedCommandsSerializer})
    def post(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        target = data.get("access_point") or data.get("zone") or SiteSettings.load()
        self.check_target(data["op"], target)
        with transaction.atomic():
            issued = commands.issue(data["op"], target, mode=data.get("mode"), operator=request.user, via=VIA)
        return Response(serializers.IssuedCommandsSerializer(_answer(issued)).data, status=status.HTTP_201_CREATED)

    def check_target(self, op: str, target) -> None:
        user = self.request.user
        if op in (CommandOp.EMERGENCY_CLOSE, CommandOp.END_EMERGENCY) and not _may_change(user, target):
            raise exceptions.PermissionDenied(f"You may not change the lockdown of {target}.")
        changeable = restrict(AccessPoint.objects.all(), user, "change").values("pk")
        if commands.access_points_of(target).exclude(pk__in=changeable).exists():
            raise exceptions.PermissionDenied("You may not change every access point this command reaches.")


def _may_change(user, target) -> bool:
    if isinstance(target, SiteSettings):
        return user.has_perm(permission_name(SiteSettings, "change"))
    return restrict(type(target).objects.filter(pk=target.pk), user, "change").exists()


def _answer(issued: commands.Issued) -> dict:
    target = issued.target
    return {
        "op": issued.op,
        "access_point": target.pk if isinstance(target, AccessPoint) else None,
        "zone": target.pk if isinstance(target, Zone) else None,
        "site": isinstance(target, SiteSettings),
        "mode": issued.mode,
        "access_points": issued.access_points,
        "commands": [command.pk for command in issued.commands],
        "queued": issued.queued,
        "without_device": issued.without_device,
        "still_in_lockdown": issued.still_in_lockdown,
    }


# --- encoding keys on cards -------------------------------------------------------------------------------


def _visible_jobs(user):
    """Encode jobs of keys the operator may see."""
    return EncodeJob.objects.filter(key__in=restrict(Key.objects.all(), user, "view"))


class EncodeKeyView(generics.GenericAPIView):
    """Write the key on a card on an encoder: the answer is the queued job (``202``); follow it at
    ``/api/v1/encode-jobs/{id}/`` until ``done`` (``card_uid`` is the card written) or ``failed``
    (``error``: ``no_card``, ``wrong_card_type``, ``encoder_offline``, ``timeout``, ...).
    Needs the right to issue keys to the cardholder."""

    required_permission = "accesscontrol.add_key"
    serializer_class = serializers.EncodeRequestSerializer
    http_method_names = ["post", "options"]

    @extend_schema(responses={202: serializers.EncodeJobSerializer})
    def post(self, request, pk):
        key = get_object_or_404(restrict(Key.objects.select_related("cardholder"), request.user, "view"), pk=pk)
        if not may_use_partition(request.user, "accesscontrol.add_key", key.cardholder.partition_id):
            raise exceptions.PermissionDenied("You may not issue keys to this cardholder.")
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            job = encoding.create_encode_job(
                key, body.validated_data["encoder"], request.user, any_card=body.validated_data["any_card"], via=VIA
            )
        except DjangoValidationError as error:
            raise exceptions.ValidationError(
                error.message_dict if hasattr(error, "error_dict") else {"non_field_errors": error.messages}
            ) from None
        return Response(serializers.EncodeJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class EncodeJobView(generics.RetrieveAPIView):
    """How far writing a key on a card got."""

    required_permission = "accesscontrol.view_key"
    serializer_class = serializers.EncodeJobSerializer

    def get_queryset(self):
        return _visible_jobs(self.request.user)


# --- OSDP buses and readers -------------------------------------------------------------------------------


class OsdpBusViewSet(SpaceModelViewSet):
    """RS-485 lines of OSDP readers, each reached through a serial port or a serial-over-IP converter.

    A bus that still has readers cannot be deleted (409): move or decommission them first.
    """

    queryset = OsdpBus.objects.prefetch_related("readers")
    serializer_class = serializers.OsdpBusSerializer
    filterset_class = OsdpBusFilterSet
    search_fields = ["name", "description", "port"]
    ordering_fields = ["id", "name"]

    audited_by_actions = True  # devices.actions create_osdp_bus and update_osdp_bus


class OsdpReaderViewSet(SpaceModelViewSet):
    """OSDP readers and I/O modules: creating one commissions it (a device with the next free device id and a
    secure channel key Space gives the reader on first contact, never shown); deleting one removes its device."""

    queryset = OsdpReader.objects.select_related("device", "bus").prefetch_related("device__doors", "device__readers")
    serializer_class = serializers.OsdpReaderSerializer
    filterset_class = OsdpReaderFilterSet
    search_fields = ["device__name", "device__description", "serial_number"]
    ordering_fields = ["bus", "address"]

    audited_by_actions = True  # devices.actions commission_osdp_reader and update_osdp_reader
    # Its id is its device's, named "id" in its URLs as every object's is.
    lookup_field = "device_id"
    lookup_url_kwarg = "id"

    def get_object(self):
        # The one-to-one key hands an id to the database as it is: one out of range is a 404 here, not an overflow.
        if not 0 < _as_int(self.kwargs.get(self.lookup_url_kwarg)) <= MAX_ID:
            raise Http404("No such OSDP reader.")
        return super().get_object()

    def _is_visible(self, pk) -> bool:
        return super()._is_visible(self.kwargs.get(self.lookup_url_kwarg))

    def perform_destroy(self, instance):
        actions.decommission_osdp_reader(instance, operator=self.request.user, via=VIA)

    @extend_schema(request=None, responses=serializers.OsdpReaderSerializer)
    @action(detail=True, methods=["post"], permission_action="change")
    def rekey(self, request, **kwargs):
        """Seal a new secure channel key for the reader; it is not shown. The reader still holds the old one: put
        it back in install mode (see its manual) so Space can give it the new one."""
        reader = self.get_object()
        actions.rekey_osdp_reader(reader, operator=request.user, via=VIA)
        return Response(self.get_serializer(reader).data)


# --- face terminals and enrolment --------------------------------------------------------------------


class FaceTerminalViewSet(SpaceModelViewSet):
    """Face terminals: creating one commissions its device (the next free device id, no key: its certificate,
    from ``manage.py face_terminal ID``, is how it proves itself); ``enabled: false`` decommissions it. A
    terminal is not deleted: its enrolments and events name it."""

    queryset = FaceTerminal.objects.select_related("device").defer("device__key_sealed")
    serializer_class = serializers.FaceTerminalSerializer
    filterset_class = FaceTerminalFilterSet
    search_fields = ["terminal_id", "device__name", "device__description"]
    ordering_fields = ["id", "terminal_id"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    audited_by_actions = True  # devices.actions commission_face_terminal and update_face_terminal


class FaceEnrolmentViewSet(SpaceModelViewSet):
    """Enrolling a cardholder's face at a terminal: POST ``cardholder`` and ``terminal`` (the cardholder's consent
    is needed: ``POST /cardholders/{id}/face/consent/``); the terminal has ``SPACE_FACE_ENROL_SECONDS`` to send
    the capture. One enrolment is open per terminal: a new one cancels the earlier. Filter by ``cardholder``,
    ``terminal``, ``status``."""

    queryset = FaceEnrolment.objects.select_related("terminal", "requested_by")
    serializer_class = serializers.FaceEnrolmentSerializer
    filterset_class = FaceEnrolmentFilterSet
    ordering_fields = ["id", "requested_at"]
    http_method_names = ["get", "post", "head", "options"]

    audited_by_actions = True  # devices.actions start_face_enrolment

    @extend_schema(
        request=None,
        responses={
            200: serializers.FaceEnrolmentSerializer,
            400: OpenApiResponse(description="The enrolment is over already: completed, failed, cancelled, expired."),
        },
    )
    @action(detail=True, methods=["post"], permission_action="change")
    def cancel(self, request, pk=None):
        """Stop an open enrolment (400 when it is over already); a capture sent for it afterwards is refused."""
        enrolment = actions.cancel_face_enrolment(self.get_object(), operator=request.user, via=VIA)
        return Response(self.get_serializer(enrolment).data)


# --- alarms ---------------------------------------------------------------------------------------------


class AlarmViewSet(SpaceReadOnlyViewSet):
    """Door and device alarms the runtime raised (forced, held open, tamper...). ``?open=true`` lists those not
    acknowledged yet, as the live monitor shows them. Operators acknowledge them; nobody writes them."""

    queryset = Alarm.objects.select_related("access_point", "device", "acknowledged_by")
    serializer_class = serializers.AlarmSerializer
    filterset_class = AlarmFilterSet
    ordering_fields = ["id", "raised_at", "acknowledged_at"]

    def get_queryset(self):
        return alarms.visible_alarms(self.queryset.all(), self.request.user, self.restrict_action())

    def _is_visible(self, pk) -> bool:
        try:
            return alarms.visible_alarms(Alarm.objects.filter(pk=pk), self.request.user).exists()
        except (TypeError, ValueError, DjangoValidationError):
            return False

    @extend_schema(
        request=serializers.AcknowledgeAlarmSerializer,
        responses={
            200: serializers.AlarmSerializer,
            409: OpenApiResponse(serializers.ConflictSerializer, description="Acknowledged already: by whom, when."),
        },
    )
    @action(detail=True, methods=["post"], permission_action="acknowledge")
    def acknowledge(self, request, pk=None):
        """The operator has seen the alarm (needs devices.acknowledge_alarm in its partition): it leaves the
        monitor's open alarms and an ``alarm_acknowledged`` audit event is recorded. Acknowledging it again: 409."""
        alarm = self.get_object()
        body = serializers.AcknowledgeAlarmSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            actions.acknowledge_alarm(alarm, operator=request.user, via=VIA, note=body.validated_data["note"])
        except DjangoValidationError as error:
            if getattr(error, "code", None) != actions.ALREADY_ACKNOWLEDGED:
                raise
            return Response({"detail": error.messages[0]}, status=status.HTTP_409_CONFLICT)
        return Response(serializers.AlarmSerializer(alarm).data)
