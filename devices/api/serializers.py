"""Serializers for the devices part of API v1.

A device's doors and readers are written nested, as a whole list, like a time
period's intervals. Its key is never readable: it is given (or generated) when
the device is created or rekeyed, and shown in that one response only. An OSDP
reader's key (its secure channel key) is not even that: Space makes it and gives
it to the reader over the bus.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accesscontrol.api.serializers import ModelSerializer, VisibleRelatedField, WholeListSerializer, by_request
from accesscontrol.choices import OpeningMode
from accesscontrol.faces import FACE_MODELS
from accesscontrol.models import AccessPoint, Zone
from accesscontrol.permissions import restrict
from devices import actions, encoding
from devices.actions import MAPPINGS, commission_device, update_device
from devices.choices import CardFormat, DeviceKind
from devices.commands import DOOR_OPS
from devices.models import (
    DEVICE_KEY_SIZE,
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

MAX_DOORS = 256


@extend_schema_field({"type": "string", "pattern": f"^[0-9a-fA-F]{{{DEVICE_KEY_SIZE * 2}}}$"})
class DeviceKeyField(serializers.Field):
    """A device key as 32 hex digits; bytes inside."""

    default_error_messages = {"invalid": f"A device key is {DEVICE_KEY_SIZE * 2} hex digits."}

    def to_internal_value(self, data):
        if not isinstance(data, str) or len(data) != DEVICE_KEY_SIZE * 2:
            self.fail("invalid")
        try:
            key = bytes.fromhex(data)
        except ValueError:
            self.fail("invalid")
        if len(key) != DEVICE_KEY_SIZE:  # fromhex() skips spaces
            self.fail("invalid")
        return key

    def to_representation(self, value):
        return value.hex()


class DeviceDoorSerializer(ModelSerializer):
    class Meta:
        list_serializer_class = WholeListSerializer
        model = DeviceDoor
        # The wiring (relay, contact, rex) is for doors Space runs (OSDP); SDP/1 devices run their own and ignore it.
        fields = ["id", "number", "access_point", "relay", "contact", "rex", "contact_open_when_active"]
        # Checked against the other devices by DeviceSerializer; here it would trip over the device's own rows.
        extra_kwargs = {"access_point": {"validators": []}}


class DeviceReaderSerializer(ModelSerializer):
    class Meta:
        list_serializer_class = WholeListSerializer
        model = DeviceReader
        fields = ["id", "number", "access_point", "direction"]


def _numbered(items: list[dict], what: str) -> list[dict]:
    numbers = [item["number"] for item in items]
    if len(numbers) != len(set(numbers)):
        raise serializers.ValidationError(f"Each {what} number may appear only once.")
    return items


class DeviceSerializer(ModelSerializer):
    doors = DeviceDoorSerializer(many=True, required=False, max_length=MAX_DOORS)
    readers = DeviceReaderSerializer(many=True, required=False, max_length=MAX_DOORS)
    has_key = serializers.BooleanField(read_only=True)
    key = DeviceKeyField(
        source="issued_key",
        required=False,
        help_text=f"{DEVICE_KEY_SIZE * 2} hex digits, on create only; generated when not given. "
        "Shown in the response to the create only, never again.",
    )

    class Meta:
        model = Device
        fields = [
            "id",
            "device_id",
            "name",
            "kind",
            "description",
            "enabled",
            "has_key",
            "key",
            "doors",
            "readers",
            "created_at",
            "updated_at",
            "online",
            "last_seen_at",
            "address",
            "firmware",
            "battery",
            "tamper",
            "door_states",
        ]
        # The live status is the device bridge's to write.
        read_only_fields = [
            "created_at",
            "updated_at",
            "online",
            "last_seen_at",
            "address",
            "firmware",
            "battery",
            "tamper",
            "door_states",
        ]

    def validate_device_id(self, device_id):
        if self.instance is not None and device_id != self.instance.device_id:
            # The key is sealed for the id; a device with another id is another device.
            raise serializers.ValidationError("A commissioned device's id cannot change; commission a new device.")
        return device_id

    def validate_key(self, key):
        if self.instance is not None:
            raise serializers.ValidationError("A device gets a new key through its rekey action.")
        return key

    def validate_doors(self, doors):
        _numbered(doors, "door")
        points = [door["access_point"] for door in doors]
        if len(points) != len(set(points)):
            raise serializers.ValidationError("An access point is driven by one door only.")
        taken = DeviceDoor.objects.filter(access_point__in=points)
        if self.instance is not None:
            taken = taken.exclude(device=self.instance)
        taken = sorted(taken.values_list("access_point__name", flat=True))
        if taken:
            raise serializers.ValidationError(f"Another device drives {', '.join(taken)} already.")
        self._refuse_hidden_mappings("doors")
        return doors

    def validate_readers(self, readers):
        _numbered(readers, "reader")
        self._refuse_hidden_mappings("readers")
        return readers

    def create(self, validated_data):
        key = validated_data.pop("issued_key", None)
        mappings = {relation: validated_data.pop(relation, None) for relation in MAPPINGS}
        device = Device(**validated_data)
        fields = sorted([*validated_data, *(name for name, items in mappings.items() if items is not None)])
        # Read back by the ``key`` field: the response to the create is the only place it is shown.
        device.issued_key = commission_device(
            device, key=key, **mappings, **by_request(self), recorded_as="create", detail={"fields": fields}
        )
        return device

    def update(self, instance, validated_data):
        mappings = {relation: validated_data.pop(relation, None) for relation in MAPPINGS}
        for name, value in validated_data.items():
            setattr(instance, name, value)
        return update_device(instance, **mappings, **by_request(self))

    def _refuse_hidden_mappings(self, relation: str) -> None:
        refuse_hidden_mappings(self.instance, relation, self.context.get("request"))


def refuse_hidden_mappings(device: Device | None, relation: str, request) -> None:
    """A list is written as a whole: rewriting it must not drop mappings to access points the writer cannot see."""
    if device is None:
        return
    visible = restrict(AccessPoint.objects.all(), getattr(request, "user", None), "view")
    if getattr(device, relation).exclude(access_point__in=visible).exists():
        raise serializers.ValidationError(
            f"This device's {relation} include access points you cannot see; "
            "only an operator who sees them all may rewrite them."
        )


class DeviceKeySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    device_id = serializers.IntegerField(read_only=True)
    key = DeviceKeyField(
        required=False,
        help_text=f"{DEVICE_KEY_SIZE * 2} hex digits; generated when not given. Shown in this response only.",
    )


class DeviceCommandSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeviceCommand
        fields = [
            "id",
            "device",
            "op",
            "args",
            "access_point",
            "status",
            "error",
            "operator",
            "created_at",
            "sent_at",
            "acknowledged_at",
            "finished_at",
        ]
        read_only_fields = fields


# --- issuing commands to doors --------------------------------------------------------------------


# What each opening mode does at the door, for the schema's readers.
MODE_CHOICES = [
    (OpeningMode.STANDARD, "opens for each granted key, then locks again"),
    (OpeningMode.OFFICE, "a cardholder with office rights leaves it open until one locks it again"),
    (OpeningMode.TOGGLE, "each granted key opens it or locks it"),
    (OpeningMode.TIMED, "open during the access point's timed period"),
]


class IssueCommandSerializer(serializers.Serializer):
    """One operation on one target: an access point, a zone or the whole site."""

    op = serializers.ChoiceField(choices=[(op.value, op.label) for op in DOOR_OPS])
    access_point = VisibleRelatedField(queryset=AccessPoint.objects.all(), required=False)
    zone = VisibleRelatedField(queryset=Zone.objects.all(), required=False)
    site = serializers.BooleanField(required=False, default=False, help_text="The whole site.")
    mode = serializers.ChoiceField(choices=MODE_CHOICES, required=False, help_text="For set_mode only.")

    def validate(self, attrs):
        targets = [name for name in ("access_point", "zone") if attrs.get(name) is not None]
        targets += ["site"] if attrs.get("site") else []
        if len(targets) != 1:
            raise serializers.ValidationError(
                {"non_field_errors": ["Name exactly one target: an access_point, a zone, or site: true."]}
            )
        if attrs["op"] == "set_mode" and "mode" not in attrs:
            raise serializers.ValidationError({"mode": ["set_mode needs a mode."]})
        if attrs["op"] != "set_mode" and "mode" in attrs:
            raise serializers.ValidationError({"mode": ["Only set_mode takes a mode."]})
        return attrs


class IssuedCommandsSerializer(serializers.Serializer):
    op = serializers.CharField()
    access_point = serializers.IntegerField(allow_null=True)
    zone = serializers.IntegerField(allow_null=True)
    site = serializers.BooleanField()
    mode = serializers.CharField(allow_null=True)
    access_points = serializers.ListField(child=serializers.IntegerField(), help_text="The access points acted on.")
    commands = serializers.ListField(
        child=serializers.IntegerField(), help_text="The device commands queued (their ids), one per device door."
    )
    queued = serializers.IntegerField(help_text="How many device commands were queued.")
    without_device = serializers.ListField(
        child=serializers.IntegerField(), help_text="Access points no enabled device drives: only their flags changed."
    )
    still_in_lockdown = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="end_emergency: access points still refused under another lockdown (site, zone or their own).",
    )


# --- encoding keys on cards -------------------------------------------------------------------------------


class EncodeRequestSerializer(serializers.Serializer):
    """Write a key on a card: which encoder, and whether the key takes the UID of whatever card is presented."""

    encoder = serializers.PrimaryKeyRelatedField(queryset=Device.objects.all(), help_text="The encoder's id.")
    any_card = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Write on whatever card is presented; the key takes its UID.",
    )

    def validate_encoder(self, encoder):
        try:
            encoding.check_encoder(encoder)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict["encoder"]) from None
        return encoder


class EncodeJobSerializer(ModelSerializer):
    error_message = serializers.SerializerMethodField(help_text="The error in words, for the operator.")

    class Meta:
        model = EncodeJob
        fields = [
            "id",
            "key",
            "encoder",
            "status",
            "progress",
            "error",
            "error_message",
            "card_uid",
            "operator",
            "created_at",
            "updated_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_error_message(self, job) -> str:
        return encoding.error_message(job.error) if job.error else ""


# --- OSDP buses and readers -----------------------------------------------------------------------


class OsdpBusSerializer(ModelSerializer):
    readers = serializers.PrimaryKeyRelatedField(
        many=True, read_only=True, help_text="Its OSDP readers and I/O modules (their ids, as in /osdp-readers/)."
    )

    class Meta:
        model = OsdpBus
        fields = [
            "id",
            "name",
            "port",
            "baud",
            "enabled",
            "description",
            "online",
            "last_error",
            "updated_at",
            "readers",
        ]
        # The live status is the bus service's to write.
        read_only_fields = ["online", "last_error", "updated_at"]
        extra_kwargs = {"port": {"help_text": actions.PORT_HELP}}

    def validate_port(self, port):
        try:
            return actions.check_port(port)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict["port"]) from None

    def create(self, validated_data):
        return actions.create_osdp_bus(**validated_data, **by_request(self))

    def update(self, instance, validated_data):
        return actions.update_osdp_bus(instance, **validated_data, **by_request(self))


OSDP_KINDS = [(kind.value, kind.label) for kind in map(DeviceKind, DeviceKind.osdp())]
REPORTED = ["key_set_at", "secure", "vendor_code", "model", "serial_number", "firmware", "capabilities"]


class OsdpReaderSerializer(ModelSerializer):
    """An OSDP reader or I/O module: its device (name, kind...), where it is on its bus, its doors and readers,
    and what it reported of itself. Its secure channel key is never in it."""

    id = serializers.IntegerField(source="pk", read_only=True, help_text="The device's id, as in /devices/.")
    device_id = serializers.IntegerField(
        source="device.device_id", read_only=True, help_text="Given by Space on commissioning (OSDP sends none)."
    )
    name = serializers.CharField(source="device.name", max_length=100)
    kind = serializers.ChoiceField(source="device.kind", choices=OSDP_KINDS, default=DeviceKind.OSDP_READER)
    description = serializers.CharField(source="device.description", allow_blank=True, default="")
    enabled = serializers.BooleanField(
        source="device.enabled", default=True, help_text="A disabled device is not polled."
    )
    card_format = serializers.ChoiceField(choices=CardFormat.choices, default=CardFormat.AUTO)
    doors = DeviceDoorSerializer(
        source="device.doors",
        many=True,
        required=False,
        max_length=MAX_DOORS,
        help_text="The doors it drives, with their wiring: for a reader, door 1 on its own relay and inputs.",
    )
    readers = DeviceReaderSerializer(
        source="device.readers",
        many=True,
        required=False,
        max_length=MAX_DOORS,
        help_text="The access point a card or PIN at its reader asks to open: for a reader, reader 1.",
    )
    has_key = serializers.BooleanField(source="device.has_key", read_only=True)
    online = serializers.BooleanField(source="device.online", read_only=True)
    last_seen_at = serializers.DateTimeField(source="device.last_seen_at", read_only=True, allow_null=True)
    tamper = serializers.BooleanField(source="device.tamper", read_only=True)
    door_states = serializers.JSONField(source="device.door_states", read_only=True)

    class Meta:
        model = OsdpReader
        fields = [
            "id",
            "device_id",
            "name",
            "kind",
            "description",
            "enabled",
            "bus",
            "address",
            "card_format",
            "allow_clear",
            "doors",
            "readers",
            "has_key",
            "online",
            "last_seen_at",
            "tamper",
            "door_states",
            *REPORTED,
        ]
        read_only_fields = REPORTED
        # The address once per bus: checked by the action, whose error names the reader that has it.
        validators = []

    def validate(self, attrs):
        # The device's and the reader's rules are checked together by the action (one 400 with every error);
        # the shared model check would take the nested device fields for the reader's own.
        return attrs

    def validate_doors(self, doors):
        refuse_hidden_mappings(getattr(self.instance, "device", None), "doors", self.context.get("request"))
        return doors

    def validate_readers(self, readers):
        refuse_hidden_mappings(getattr(self.instance, "device", None), "readers", self.context.get("request"))
        return readers

    def create(self, validated_data):
        device = validated_data.pop("device")
        mappings = {relation: device.pop(relation, None) for relation in MAPPINGS}
        created = actions.commission_osdp_reader(
            Device(**device),
            OsdpReader(**validated_data),
            **mappings,
            **by_request(self),
            recorded_as="create",
        )
        return created.osdp

    def update(self, instance, validated_data):
        device = validated_data.pop("device", {})
        mappings = {relation: device.pop(relation, None) for relation in MAPPINGS}
        for name, value in device.items():
            setattr(instance.device, name, value)
        for name, value in validated_data.items():
            setattr(instance, name, value)
        return actions.update_osdp_reader(instance, **mappings, **by_request(self))


# --- face terminals --------------------------------------------------------------------------------


class FaceTerminalSerializer(ModelSerializer):
    """A face terminal: its MQTT id (its certificate's common name, fixed once commissioned), its device's name
    and enabled switch, the door it guards and what it takes. Its certificate is issued by
    ``manage.py face_terminal ID``; disabling it (``enabled: false``) decommissions it."""

    device = serializers.PrimaryKeyRelatedField(read_only=True, help_text="Its device, as in /devices/.")
    device_id = serializers.IntegerField(source="device.device_id", read_only=True)
    name = serializers.CharField(source="device.name", max_length=100)
    description = serializers.CharField(source="device.description", allow_blank=True, default="")
    enabled = serializers.BooleanField(source="device.enabled", default=True)
    model_name = serializers.ChoiceField(choices=sorted(FACE_MODELS), default="xs4face-v1")
    methods = serializers.ListField(child=serializers.CharField(), read_only=True)
    online = serializers.BooleanField(source="device.online", read_only=True)
    last_seen_at = serializers.DateTimeField(source="device.last_seen_at", read_only=True, allow_null=True)

    class Meta:
        model = FaceTerminal
        fields = [
            "id",
            "terminal_id",
            "device",
            "device_id",
            "name",
            "description",
            "enabled",
            "access_point",
            "direction",
            "face_only",
            "card_and_face",
            "pin_and_face",
            "model_name",
            "min_quality",
            "require_liveness",
            "methods",
            "online",
            "last_seen_at",
        ]
        # The terminal id once: checked by the action with the device's rules, in one 400.
        validators = []
        extra_kwargs = {"terminal_id": {"validators": []}}

    def validate(self, attrs):
        # The device's and the terminal's rules are checked together by the action (one 400 with every error).
        return attrs

    def validate_terminal_id(self, terminal_id):
        if self.instance is not None and terminal_id != self.instance.terminal_id:
            raise serializers.ValidationError("A terminal keeps its id: its certificate names it.")
        return terminal_id

    def create(self, validated_data):
        device = validated_data.pop("device", {})
        return actions.commission_face_terminal(**device, **validated_data, **by_request(self))

    def update(self, instance, validated_data):
        changes = validated_data.pop("device", {}) | validated_data
        changes.pop("terminal_id", None)
        return actions.update_face_terminal(instance, **changes, **by_request(self))


class FaceEnrolmentSerializer(ModelSerializer):
    """A request that a terminal capture a cardholder's face, and how far it got. Created with ``cardholder``
    and ``terminal``; the rest is Space's and the terminal's to write."""

    # Terminals are site-wide devices: enrolling at one needs no permission to see the terminals.
    terminal = serializers.PrimaryKeyRelatedField(queryset=FaceTerminal.objects.select_related("device"))
    terminal_id = serializers.CharField(source="terminal.terminal_id", read_only=True)
    requested_by = serializers.CharField(
        source="requested_by.get_username", read_only=True, default=None, allow_null=True, help_text="Who asked."
    )
    template = serializers.PrimaryKeyRelatedField(
        read_only=True,
        allow_null=True,
        help_text="The template it stored, when completed (its metadata: /cardholders/{id}/face/).",
    )

    class Meta:
        model = FaceEnrolment
        fields = [
            "id",
            "cardholder",
            "terminal",
            "terminal_id",
            "status",
            "error",
            "requested_by",
            "requested_at",
            "expires_at",
            "sent_at",
            "finished_at",
            "template",
        ]
        read_only_fields = ["status", "error", "requested_at", "expires_at", "sent_at", "finished_at"]

    def validate(self, attrs):
        # Consent, the cardholder's state and the terminal's are the action's rules.
        return attrs

    def create(self, validated_data):
        return actions.start_face_enrolment(
            validated_data["cardholder"], validated_data["terminal"], **by_request(self)
        )


# --- alarms ----------------------------------------------------------------------------------------


class AlarmSerializer(serializers.ModelSerializer):
    access_point_name = serializers.CharField(source="access_point.name", read_only=True, default="")
    device_name = serializers.CharField(source="device.name", read_only=True, default="")
    acknowledged_by_name = serializers.SerializerMethodField(help_text="Who acknowledged it (username).")

    class Meta:
        model = Alarm
        fields = [
            "id",
            "kind",
            "access_point",
            "access_point_name",
            "device",
            "device_name",
            "raised_at",
            "cleared_at",
            "acknowledged_at",
            "acknowledged_by",
            "acknowledged_by_name",
            "note",
        ]
        read_only_fields = fields

    def get_acknowledged_by_name(self, alarm) -> str:
        return alarm.acknowledged_by.get_username() if alarm.acknowledged_by else ""


class AcknowledgeAlarmSerializer(serializers.Serializer):
    note = serializers.CharField(
        required=False, allow_blank=True, max_length=200, default="", help_text="What was done about it."
    )


class ConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
