"""Serializers for API v1.

Every serializer runs its model's ``clean()`` so the rules live in one place
(the model) and reach API clients as 400s with field errors. Related objects
are referenced by id and must be ones the operator may see.
"""

import copy

from django.contrib.auth.models import Permission
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from accesscontrol import actions
from accesscontrol.choices import Decision, KeyStatus
from accesscontrol.models import (
    AccessLevel,
    AccessLevelEntry,
    AccessPoint,
    ApiKey,
    AuditEvent,
    BlacklistEntry,
    Calendar,
    CalendarDay,
    Cardholder,
    CardholderPermission,
    CardholderSource,
    FaceTemplate,
    Key,
    Location,
    ModeChange,
    ModeSchedule,
    Operator,
    OperatorGroup,
    Partition,
    Presence,
    SiteSettings,
    SyncRun,
    SystemAuditEntry,
    TimeInterval,
    TimePeriod,
    Zone,
)
from accesscontrol.models.schedules import MAX_INTERVALS_PER_PERIOD, MAX_MODE_CHANGES
from accesscontrol.permissions import ALL, allowed_partitions, restrict
from accesscontrol.pins import PIN_TAKEN, is_valid_pin


def drf_errors(error: DjangoValidationError) -> dict | list:
    if hasattr(error, "error_dict"):
        return {
            ("non_field_errors" if name == NON_FIELD_ERRORS else name): messages
            for name, messages in error.message_dict.items()
        }
    return {"non_field_errors": error.messages}


class VisibleRelatedField(serializers.PrimaryKeyRelatedField):
    """A related object by id; an id the operator may not see is as good as unknown."""

    def get_queryset(self):
        request = self.context.get("request")
        return restrict(super().get_queryset(), getattr(request, "user", None), "view")


class ModelSerializer(serializers.ModelSerializer):
    serializer_related_field = VisibleRelatedField

    def validate(self, attrs):
        attrs = super().validate(attrs)
        model = self.Meta.model
        columns = {field.name for field in model._meta.concrete_fields}
        values = {name: value for name, value in attrs.items() if name in columns}
        if self.instance is not None:
            candidate = copy.copy(self.instance)  # the stored object stays as it is if validation fails
            for name, value in values.items():
                setattr(candidate, name, value)
        else:
            candidate = model(**values)
        try:
            candidate.clean()
        except DjangoValidationError as error:
            raise serializers.ValidationError(drf_errors(error)) from None
        # clean() may normalise values (a key's UID); keep what it made of them.
        return {**attrs, **{name: getattr(candidate, name) for name in values}}


class PartitionedSerializer(ModelSerializer):
    # Any partition may be named; whether the operator may use it is the view's decision (403, not 400).
    partition = serializers.PrimaryKeyRelatedField(queryset=Partition.objects.all(), required=False)


def _none_if_blank(value):
    return value or None


class PartitionSerializer(ModelSerializer):
    class Meta:
        model = Partition
        fields = ["id", "name", "description"]


class LocationSerializer(PartitionedSerializer):
    class Meta:
        model = Location
        fields = ["id", "partition", "name", "description", "parent"]

    def validate_parent(self, parent):
        ancestor = parent
        while ancestor is not None and self.instance is not None:
            if ancestor.pk == self.instance.pk:
                raise serializers.ValidationError("A location cannot be inside itself.")
            ancestor = ancestor.parent
        return parent


class ZoneSerializer(PartitionedSerializer):
    class Meta:
        model = Zone
        fields = [
            "id",
            "partition",
            "name",
            "description",
            "anti_passback",
            "passback_kind",
            "passback_minutes",
            "roll_call",
            "max_occupancy",
            "occupancy_correction",
            "mode_schedule",
            "lockdown",
        ]
        read_only_fields = ["occupancy_correction"]


class AccessPointSerializer(PartitionedSerializer):
    class Meta:
        model = AccessPoint
        fields = [
            "id",
            "partition",
            "name",
            "ext_id",
            "description",
            "kind",
            "connection",
            "opening_mode",
            "mode_source",
            "mode_changed_at",
            "mode_schedule",
            "timed_period",
            "open_time",
            "extended_open_time",
            "location",
            "zones",
            "calendar",
            "direction",
            "pin_required",
            "pin_only",
            "held_open_time",
            "lockdown",
        ]
        read_only_fields = ["mode_source", "mode_changed_at"]

    validate_ext_id = staticmethod(_none_if_blank)


class WholeListSerializer(serializers.ListSerializer):
    """A nested list written as a whole (a time period's intervals, a device's doors).

    A PATCH of the owner is partial, and DRF lets every field below a partial root be left out; but the
    list given replaces the stored one, so each of its items must be complete. Under a partial root the
    list is validated on its own, as a root, with the owner's context: a missing field is a field error.
    """

    def run_validation(self, data=empty):
        if data is empty or self.parent is None or not getattr(self.root, "partial", False):
            return super().run_validation(data)
        whole = type(self)(
            child=copy.deepcopy(self.child),
            data=data,
            context=self.context,
            allow_empty=self.allow_empty,
            max_length=self.max_length,
            min_length=self.min_length,
            allow_null=self.allow_null,
        )
        if not whole.is_valid():
            raise serializers.ValidationError(whole.errors)
        return whole.validated_data


class ActionWritesMixin:
    """Create and update through an action of accesscontrol.actions, which owns the transaction and the record.

    ``save_action`` is the action (``owner``, its nested list by ``nested_name``,
    operator, via); the viewset records nothing itself (``audited_by_actions``).
    """

    nested_name = ""

    def save_action(self, owner, children, **kwargs):
        raise NotImplementedError

    def create(self, validated_data):
        children = validated_data.pop(self.nested_name, None) if self.nested_name else None
        return self.save_action(self.Meta.model(**validated_data), children, **by_request(self))

    def update(self, instance, validated_data):
        children = validated_data.pop(self.nested_name, None) if self.nested_name else None
        for name, value in validated_data.items():
            setattr(instance, name, value)
        return self.save_action(instance, children, **by_request(self))


def by_request(serializer) -> dict:
    """Who writes, for an action: the request's operator, through the API."""
    request = serializer.context.get("request")
    return {"operator": getattr(request, "user", None), "via": "api"}


class TimeIntervalSerializer(ModelSerializer):
    class Meta:
        list_serializer_class = WholeListSerializer
        model = TimeInterval
        fields = ["id", "start", "end", *TimeInterval.ALL_DAY_FIELDS]


class TimePeriodSerializer(ActionWritesMixin, PartitionedSerializer):
    nested_name = "intervals"
    intervals = TimeIntervalSerializer(many=True, required=False, max_length=MAX_INTERVALS_PER_PERIOD)

    class Meta:
        model = TimePeriod
        fields = ["id", "partition", "name", "description", "intervals"]

    def save_action(self, period, intervals, **by):
        return actions.save_time_period(period, intervals=intervals, **by)


class ModeChangeSerializer(ModelSerializer):
    class Meta:
        list_serializer_class = WholeListSerializer
        model = ModeChange
        fields = ["id", "at", "mode", *ModeChange.ALL_DAY_FIELDS]

    def validate_at(self, at):
        if at.second or at.microsecond:
            raise serializers.ValidationError("Give whole minutes (HH:MM).")
        return at


class ModeScheduleSerializer(ActionWritesMixin, PartitionedSerializer):
    nested_name = "changes"
    changes = ModeChangeSerializer(many=True, required=False, max_length=MAX_MODE_CHANGES)

    class Meta:
        model = ModeSchedule
        fields = ["id", "partition", "name", "description", "changes"]

    def save_action(self, schedule, changes, **by):
        return actions.save_mode_schedule(schedule, changes=changes, **by)


class CalendarDaySerializer(ModelSerializer):
    class Meta:
        list_serializer_class = WholeListSerializer
        model = CalendarDay
        fields = ["id", "date", "day_type", "name", "recurring"]


class CalendarSerializer(ActionWritesMixin, ModelSerializer):
    nested_name = "days"
    days = CalendarDaySerializer(many=True, required=False, max_length=2000)

    class Meta:
        model = Calendar
        fields = ["id", "name", "description", "days"]

    def save_action(self, calendar, days, **by):
        return actions.save_calendar(calendar, days=days, **by)

    def validate_days(self, days):
        dates = [day["date"] for day in days]
        if len(dates) != len(set(dates)):
            raise serializers.ValidationError("Each date may appear only once.")
        return days


class AccessLevelEntrySerializer(ModelSerializer):
    class Meta:
        list_serializer_class = WholeListSerializer
        model = AccessLevelEntry
        fields = ["id", "access_point", "zone", "time_period"]


class AccessLevelSerializer(ActionWritesMixin, PartitionedSerializer):
    nested_name = "entries"
    entries = AccessLevelEntrySerializer(many=True, required=False, max_length=10000)

    class Meta:
        model = AccessLevel
        fields = ["id", "partition", "name", "description", "entries"]

    def save_action(self, level, entries, **by):
        return actions.save_access_level(level, entries=entries, **by)


class CardholderPermissionSerializer(ModelSerializer):
    class Meta:
        model = CardholderPermission
        fields = ["id", "cardholder", "access_point", "zone", "time_period"]

    def create(self, validated_data):
        grant = {name: validated_data.get(name) for name in actions.PERMISSION_FIELDS}
        return actions.add_cardholder_permission(validated_data["cardholder"], **grant, **by_request(self))

    def update(self, instance, validated_data):
        return actions.change_cardholder_permission(instance, validated_data, **by_request(self))


# "format: email" alone would refuse the empty string that the model takes (and serves) for "none".
@extend_schema_field({"type": "string", "maxLength": 254, "anyOf": [{"format": "email"}, {"maxLength": 0}]})
class OptionalEmailField(serializers.EmailField):
    def __init__(self, **kwargs):
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", 254)
        super().__init__(**kwargs)


class CardholderSerializer(PartitionedSerializer):
    email = OptionalEmailField()
    pin = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        allow_null=True,
        max_length=8,
        help_text="4 to 8 digits; empty or null removes the PIN. Never shown.",
    )
    has_pin = serializers.BooleanField(read_only=True)
    photo_updated_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="When the photo was set; null: none (GET .../photo/ for it)."
    )

    class Meta:
        model = Cardholder
        fields = [
            "id",
            "partition",
            "ext_id",
            "kind",
            "title",
            "first_name",
            "last_name",
            "email",
            "phone_number",
            "department",
            "job_title",
            "activation",
            "expiration",
            "pin",
            "has_pin",
            "photo_updated_at",
            "office",
            "override_privacy",
            "override_lockdown",
            "audit_openings",
            "use_anti_passback",
            "extended_open_time",
            "banned",
            "key_revalidation_days",
            "key_cancellable_through_blacklist",
            "access_levels",
            "notes",
            "created_at",
            "updated_at",
        ]

    validate_ext_id = staticmethod(_none_if_blank)

    def validate_pin(self, pin):
        if pin and not is_valid_pin(pin):
            raise serializers.ValidationError("A PIN is 4 to 8 digits.")
        if pin and Cardholder(pk=getattr(self.instance, "pk", None)).pin_taken(pin):
            raise serializers.ValidationError(PIN_TAKEN)
        return pin

    # The PIN is not a column: the view sets it through actions.set_cardholder_pin.
    def create(self, validated_data):
        validated_data.pop("pin", None)
        return super().create(validated_data)

    def update(self, instance, validated_data):
        validated_data.pop("pin", None)
        if "access_levels" in validated_data:
            # The operator replaces the levels they can see; those of other partitions stay.
            request = self.context.get("request")
            visible = restrict(AccessLevel.objects.all(), getattr(request, "user", None), "view")
            hidden = instance.access_levels.exclude(pk__in=visible.values("pk"))
            validated_data["access_levels"] = [*validated_data["access_levels"], *hidden]
        return super().update(instance, validated_data)


class KeySerializer(ModelSerializer):
    class Meta:
        model = Key
        fields = [
            "id",
            "cardholder",
            "uid",
            "kind",
            "status",
            "revision",
            "valid_from",
            "valid_until",
            "issued_at",
            "cancelled_at",
            "last_revalidated_at",
        ]
        read_only_fields = ["status", "revision", "issued_at", "cancelled_at", "last_revalidated_at"]

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if self.instance is not None:
            # A key is a thing in someone's hand: to give it to another person or card, cancel it and issue anew.
            for name in ("cardholder", "uid"):
                if name in attrs and attrs[name] != getattr(self.instance, name):
                    raise serializers.ValidationError({name: "An issued key's cardholder and UID cannot change."})
        elif Key.objects.filter(uid=attrs["uid"], status=KeyStatus.ISSUED).exists():
            raise serializers.ValidationError({"uid": "An issued key already has this UID."})
        return attrs


class KeyRevalidateSerializer(serializers.Serializer):
    valid_until = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="New end of validity; empty: by the cardholder's revalidation period.",
    )


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "at",
            "recorded_at",
            "kind",
            "reason",
            "access_point",
            "access_point_name",
            "cardholder",
            "cardholder_name",
            "key_uid",
            "device",
            "device_event_id",
            "operator",
            "detail",
        ]
        read_only_fields = fields


class SystemAuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = SystemAuditEntry
        fields = [
            "id",
            "at",
            "operator",
            "operator_name",
            "action",
            "object_type",
            "object_id",
            "object_repr",
            "via",
            "detail",
        ]
        read_only_fields = fields


class OperatorSerializer(serializers.ModelSerializer):
    email = OptionalEmailField(read_only=True)

    class Meta:
        model = Operator
        fields = [
            "id",
            "username",
            "first_name",
            "last_name",
            "email",
            "is_active",
            "is_superuser",
            "last_login",
            "date_joined",
            "operator_groups",
        ]
        read_only_fields = fields


@extend_schema_field(
    {"type": "string", "pattern": r"^[a-z0-9_]+\.[a-z0-9_]+$", "example": "accesscontrol.view_cardholder"}
)
class PermissionField(serializers.RelatedField):
    """A Django permission written as ``app_label.codename``, e.g. ``accesscontrol.view_cardholder``."""

    default_error_messages = {
        "invalid": "Write a permission as app_label.codename.",
        "unknown": "There is no permission {value}.",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("queryset", Permission.objects.select_related("content_type"))
        super().__init__(**kwargs)

    def to_representation(self, value):
        return f"{value.content_type.app_label}.{value.codename}"

    def to_internal_value(self, data):
        if not isinstance(data, str) or data.count(".") != 1:
            self.fail("invalid")
        app_label, codename = data.split(".")
        permission = self.get_queryset().filter(content_type__app_label=app_label, codename=codename).first()
        if permission is None:
            self.fail("unknown", value=data[:100])
        return permission


class OperatorGroupSerializer(ModelSerializer):
    permissions = PermissionField(many=True, required=False)

    class Meta:
        model = OperatorGroup
        fields = ["id", "name", "description", "members", "permissions", "partitions", "all_partitions"]

    def validate(self, attrs):
        attrs = super().validate(attrs)
        operator = self.context["request"].user
        if not operator.is_superuser:
            self._refuse_escalation(operator, attrs)
        return attrs

    def _refuse_escalation(self, operator, attrs):
        """A group may give only what its writer holds, where they hold it; else writing groups is a way up."""

        def current(name, default):
            if name in attrs:
                return attrs[name]
            if self.instance is None:
                return default
            value = getattr(self.instance, name)
            return list(value.all()) if hasattr(value, "all") else value

        all_partitions = current("all_partitions", False)
        partitions = {partition.pk for partition in current("partitions", [])}
        for permission in current("permissions", []):
            name = f"{permission.content_type.app_label}.{permission.codename}"
            held = allowed_partitions(operator, name) if operator.has_perm(name) else set()
            if held is ALL:
                continue
            if not held or all_partitions or not partitions <= held:
                raise serializers.ValidationError(
                    {"permissions": f"You cannot give {name} beyond the partitions where you hold it."}
                )


class ApiKeySerializer(ModelSerializer):
    operator = VisibleRelatedField(
        queryset=Operator.objects.all(),
        default=serializers.CurrentUserDefault(),
        help_text="Whose rights the key carries; yourself when not given.",
    )
    display = serializers.CharField(source="__str__", read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "operator", "name", "display", "created_at", "last_used_at", "expires_at", "revoked_at"]
        read_only_fields = ["created_at", "last_used_at", "revoked_at"]

    def validate_operator(self, owner):
        request_operator = self.context["request"].user
        if self.instance is not None and owner != self.instance.operator:
            raise serializers.ValidationError("A key's operator cannot change.")
        if self.instance is None and owner != request_operator and not request_operator.is_superuser:
            raise serializers.ValidationError("Only a superuser may make keys for another operator.")
        return owner


class ApiKeyIssuedSerializer(ApiKeySerializer):
    token = serializers.CharField(read_only=True, help_text="Shown this once; only a hash is kept.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "token"]


class SiteSettingsSerializer(ModelSerializer):
    class Meta:
        model = SiteSettings
        fields = ["name", "default_calendar", "lockdown"]


# --- who may open, and why a key was refused ------------------------------------


class CardholderBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(source="__str__")


class WhoMayOpenQuerySerializer(serializers.Serializer):
    at = serializers.DateTimeField(required=False, help_text="ISO 8601; now when not given.")


class AccessCheckQuerySerializer(WhoMayOpenQuerySerializer):
    uid = serializers.RegexField(r"^[0-9A-Fa-f: ]{2,96}$", help_text="The key's UID in hex.")
    pin = serializers.RegexField(r"^[0-9]{1,12}$", required=False, help_text="The PIN typed at the reader.")


class WhoMayOpenSerializer(serializers.Serializer):
    access_point = serializers.IntegerField()
    at = serializers.DateTimeField()
    cardholders = CardholderBriefSerializer(many=True)


class AccessCheckSerializer(serializers.Serializer):
    access_point = serializers.IntegerField()
    at = serializers.DateTimeField()
    key_uid = serializers.CharField()
    granted = serializers.BooleanField()
    reason = serializers.ChoiceField(choices=Decision.choices)
    cardholder = CardholderBriefSerializer(allow_null=True, help_text="Empty when unknown or not yours to see.")
    open_time = serializers.IntegerField(allow_null=True, help_text="Seconds the door stays open when granted.")


class BlacklistEntrySerializer(serializers.ModelSerializer):
    number = serializers.IntegerField(source="id", read_only=True, help_text="The entry's number, rising site-wide.")

    class Meta:
        model = BlacklistEntry
        fields = ["id", "number", "key", "key_number", "uid", "until", "created_at"]
        read_only_fields = fields


# --- presence, occupancy, roll-call ----------------------------------------------


class PresenceSerializer(serializers.ModelSerializer):
    cardholder_name = serializers.CharField(source="cardholder.__str__", read_only=True)

    class Meta:
        model = Presence
        fields = ["id", "cardholder", "cardholder_name", "zone", "inside", "since", "last_at", "source", "access_point"]
        read_only_fields = fields


class OccupancySerializer(serializers.Serializer):
    zone = serializers.IntegerField()
    count = serializers.IntegerField(help_text="People inside: those counted, with the correction, never below 0.")
    counted = serializers.IntegerField(help_text="People the doors counted inside.")
    correction = serializers.IntegerField(help_text="Added by an operator's correction.")
    limit = serializers.IntegerField(allow_null=True, help_text="The zone's occupancy limit; null: none.")
    full = serializers.BooleanField()


class OccupancyCorrectionSerializer(serializers.Serializer):
    count = serializers.IntegerField(min_value=0, max_value=1_000_000, help_text="The people inside now.")


class ForgiveSerializer(serializers.Serializer):
    cardholder = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=2**63 - 1,
        help_text="The cardholder to forgive; everyone inside the zone when not given.",
    )


class ForgivenSerializer(serializers.Serializer):
    zone = serializers.IntegerField()
    cardholder = serializers.IntegerField(allow_null=True)
    ended = serializers.IntegerField(help_text="How many presences ended.")


class RollCallAreaSerializer(serializers.ModelSerializer):
    count = serializers.IntegerField(read_only=True, help_text="People inside now.")
    full = serializers.BooleanField(read_only=True)

    class Meta:
        model = Zone
        fields = ["id", "name", "partition", "lockdown", "max_occupancy", "count", "full"]
        read_only_fields = fields


class RollCallPersonSerializer(serializers.ModelSerializer):
    first_name = serializers.CharField(source="cardholder.first_name", read_only=True)
    last_name = serializers.CharField(source="cardholder.last_name", read_only=True)
    phone_number = serializers.CharField(source="cardholder.phone_number", read_only=True)
    access_point_name = serializers.CharField(source="access_point.name", read_only=True, allow_null=True)

    class Meta:
        model = Presence
        fields = [
            "cardholder",
            "first_name",
            "last_name",
            "phone_number",
            "since",
            "source",
            "access_point",
            "access_point_name",
        ]
        read_only_fields = fields


class RollCallQuerySerializer(serializers.Serializer):
    q = serializers.CharField(required=False, allow_blank=True, max_length=100, help_text="Part of a name.")


# --- cardholder photos ----------------------------------------------------------------------------


class CardholderPhotoQuerySerializer(serializers.Serializer):
    size = serializers.ChoiceField(
        choices=["photo", "thumbnail"],
        default="photo",
        help_text="photo: at most 480x480 pixels; thumbnail: at most 96x96.",
    )


class CardholderPhotoUploadSerializer(serializers.Serializer):
    photo = serializers.FileField(help_text="A JPEG, PNG, WebP or GIF image.")


class CardholderPhotoSerializer(serializers.Serializer):
    cardholder = serializers.IntegerField()
    version = serializers.CharField(help_text="Changes with the photo; it is the photo's ETag.")
    updated_at = serializers.DateTimeField()


class FaceConsentSerializer(serializers.Serializer):
    given_at = serializers.DateTimeField()
    given_by = serializers.CharField(
        source="given_by.get_username", default=None, allow_null=True, help_text="The operator's username."
    )


class EnrolledFaceSerializer(serializers.ModelSerializer):
    """What the operator may know of an enrolled face: its model, size, quality, date and terminal; no more."""

    class Meta:
        model = FaceTemplate
        fields = ["id", "model_name", "dimension", "quality", "created_at", "source_terminal"]


class CardholderFaceSerializer(serializers.Serializer):
    cardholder = serializers.IntegerField()
    consent = FaceConsentSerializer(allow_null=True, help_text="The live consent; null: none (face matching is off).")
    templates = EnrolledFaceSerializer(many=True)


# --- cardholder sources (accesscontrol/sync.py) ------------------------------------------------------------------


class CardholderSourceSerializer(serializers.ModelSerializer):
    """A source as configured (in the admin); its secret is never shown."""

    cardholders = serializers.SerializerMethodField(help_text="Cardholders it manages that are active.")

    class Meta:
        model = CardholderSource
        fields = [
            "id",
            "name",
            "kind",
            "enabled",
            "settings",
            "group_map",
            "scope_groups",
            "default_partition",
            "max_leaver_percent",
            "sync_minutes",
            "full_every_hours",
            "last_run_at",
            "last_full_at",
            "cardholders",
        ]
        read_only_fields = fields

    def get_cardholders(self, source) -> int:
        return source.links.filter(left_at__isnull=True).count()


class SyncStartSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField(default=False, help_text="Only compute the diff (a preview).")
    full = serializers.BooleanField(default=False, help_text="Read everything, not only what changed.")


class SyncStartedSerializer(serializers.Serializer):
    job = serializers.IntegerField(help_text="The job running it; its run appears in sync-runs?job=<id>.")


class SyncRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = SyncRun
        fields = [
            "id",
            "source",
            "job",
            "operator",
            "started_at",
            "finished_at",
            "dry_run",
            "full",
            "status",
            "description",
            "counts",
            "diff",
            "errors",
            "message",
            "approved_by",
            "approves",
        ]
        read_only_fields = fields
