"""API v1 views.

The viewsets only declare what they serve; the shared base does the rest:
narrows every queryset to what the operator may do (``restrict``), refuses
writes into partitions the operator may not use, wraps each write in a
transaction and records it in the system auditor.
"""

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Prefetch
from django.http import FileResponse, Http404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, generics, parsers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accesscontrol import actions, engine, faces, filtersets, jobs, muster, photos, presence, sync
from accesscontrol.api import serializers
from accesscontrol.api.permissions import ACTIONS
from accesscontrol.models import (
    AccessLevel,
    AccessLevelEntry,
    AccessPoint,
    ApiKey,
    AuditEvent,
    BlacklistEntry,
    Calendar,
    Cardholder,
    CardholderPermission,
    CardholderSource,
    Key,
    Location,
    ModeSchedule,
    Operator,
    OperatorGroup,
    Partition,
    Presence,
    SiteSettings,
    SyncRun,
    SyncStatus,
    SystemAuditEntry,
    TimePeriod,
    Zone,
)
from accesscontrol.permissions import may_use_partition, partition_of, partition_path, permission_name, restrict
from accesscontrol.photofiles import photo_storage, thumbnail_name
from accesscontrol.snapshot import get_store

VIA = "api"


def changes_made(serializer, before: dict, after: dict) -> dict:
    """What an update changed, field by field; fields the server sets itself (timestamps) are not changes."""
    writable = {name for name, field in serializer.fields.items() if not field.read_only}
    return {
        name: {"from": before.get(name), "to": value}
        for name, value in after.items()
        if name in writable and before.get(name) != value
    }


class RestrictedViewSetMixin:
    """What every API viewset shares: the operator reaches only the rows ``restrict`` gives them."""

    # For custom actions whose HTTP method says the wrong thing (a POST that changes an object).
    permission_action = None

    def restrict_action(self) -> str:
        return self.permission_action or ACTIONS.get(self.request.method, "change")

    def get_queryset(self):
        return restrict(super().get_queryset(), self.request.user, self.restrict_action())

    def check_permissions(self, request):
        # A method the endpoint does not offer is a 405 whatever the operator may do, not a 403.
        if request.user and request.user.is_authenticated and self.action is None:
            raise exceptions.MethodNotAllowed(request.method)
        super().check_permissions(request)

    def get_object(self):
        try:
            return super().get_object()
        except Http404:
            # Visible but not theirs to change: say so rather than pretend it does not exist.
            if self.restrict_action() != "view" and self._is_visible(self.kwargs.get(self.lookup_field)):
                raise exceptions.PermissionDenied(f"You may not {self.restrict_action()} this object.") from None
            raise

    def _is_visible(self, pk) -> bool:
        visible = restrict(self.queryset.model.objects.all(), self.request.user, "view")
        try:
            return visible.filter(pk=pk).exists()
        except (TypeError, ValueError, DjangoValidationError):
            return False


class SpaceModelViewSet(RestrictedViewSetMixin, viewsets.ModelViewSet):
    # True where the serializer saves through an action of accesscontrol.actions, which records itself.
    audited_by_actions = False

    def create(self, request, *args, **kwargs):
        with transaction.atomic():
            return super().create(request, *args, **kwargs)

    def update(self, request, *args, **kwargs):
        with transaction.atomic():
            return super().update(request, *args, **kwargs)

    def destroy(self, request, *args, **kwargs):
        with transaction.atomic():
            return super().destroy(request, *args, **kwargs)

    def perform_create(self, serializer):
        self.save_new(serializer)
        self.ensure_partition_allowed(serializer.instance, "add")
        self.after_save(serializer)

    def perform_update(self, serializer):
        # The old partition was checked when the object was found (restrict with "change").
        before = None if self.audited_by_actions else serializer.to_representation(serializer.instance)
        serializer.save()
        self.ensure_partition_allowed(serializer.instance, "change")
        serializer.instance._prefetched_objects_cache = {}
        if not self.audited_by_actions:
            changes = changes_made(serializer, before, serializer.to_representation(serializer.instance))
            self.audit("update", serializer.instance, {"changes": changes})
        self.after_save(serializer)

    def perform_destroy(self, instance):
        self.audit("delete", instance)
        instance.delete()

    def save_new(self, serializer):
        """Create the object (and record it); viewsets whose creation is a business operation override this."""
        serializer.save()
        if not self.audited_by_actions:
            self.audit("create", serializer.instance, {"fields": sorted(serializer.validated_data)})

    def after_save(self, serializer):
        """Work that follows a create or update inside its transaction."""

    def ensure_partition_allowed(self, instance, action_name: str):
        if partition_path(type(instance)) is None:
            return
        permission = permission_name(type(instance), action_name)
        if not may_use_partition(self.request.user, permission, partition_of(instance)):
            raise exceptions.PermissionDenied("You may not use this partition.")

    def audit(self, action_name: str, instance, detail: dict | None = None):
        actions.record_operator_action(self.request.user, action_name, instance, via=VIA, detail=detail)


class SpaceReadOnlyViewSet(RestrictedViewSetMixin, viewsets.ReadOnlyModelViewSet):
    pass


# --- places ------------------------------------------------------------------------


class PartitionViewSet(SpaceModelViewSet):
    queryset = Partition.objects.all()
    serializer_class = serializers.PartitionSerializer
    filterset_class = filtersets.PartitionFilterSet
    search_fields = ["name", "description"]
    ordering_fields = ["id", "name"]


class LocationViewSet(SpaceModelViewSet):
    queryset = Location.objects.all()
    serializer_class = serializers.LocationSerializer
    filterset_class = filtersets.LocationFilterSet
    search_fields = ["name", "description"]
    ordering_fields = ["id", "name"]


class ZoneViewSet(SpaceModelViewSet):
    queryset = Zone.objects.all()
    serializer_class = serializers.ZoneSerializer
    filterset_class = filtersets.ZoneFilterSet
    search_fields = ["name", "description"]
    ordering_fields = ["id", "name"]

    @extend_schema(methods=["GET"], request=None, responses=serializers.OccupancySerializer, filters=False)
    @extend_schema(
        methods=["POST"],
        request=serializers.OccupancyCorrectionSerializer,
        responses=serializers.OccupancySerializer,
        filters=False,
    )
    @action(detail=True, methods=["get", "post"], permission_action="view", filter_backends=[], pagination_class=None)
    def occupancy(self, request, pk=None):
        """How many people the zone counts inside, and its limit. POST ``count``: correct it to what is seen
        (needs ``accesscontrol.forgive_presence`` in the zone's partition)."""
        zone = self.get_object()
        if request.method == "POST":
            self._may_forgive(zone)
            body = serializers.OccupancyCorrectionSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            presence.correct_occupancy(zone, body.validated_data["count"], operator=request.user, via=VIA)
            zone.refresh_from_db()
        counted = presence.counted_inside(zone)
        count = presence.corrected(zone, counted)
        data = {
            "zone": zone.pk,
            "count": count,
            "counted": counted,
            "correction": zone.occupancy_correction,
            "limit": zone.max_occupancy,
            "full": zone.max_occupancy is not None and count >= zone.max_occupancy,
        }
        return Response(serializers.OccupancySerializer(data).data)

    @extend_schema(request=serializers.ForgiveSerializer, responses=serializers.ForgivenSerializer, filters=False)
    @action(detail=True, methods=["post"], permission_action="view", filter_backends=[], pagination_class=None)
    def forgive(self, request, pk=None):
        """Forgive anti-passback in the zone: ``cardholder`` counts as outside, or everyone inside when none is
        given (needs ``accesscontrol.forgive_presence`` in the zone's partition)."""
        zone = self.get_object()
        self._may_forgive(zone)
        body = serializers.ForgiveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        holder = None
        if body.validated_data.get("cardholder"):
            holder = Cardholder.objects.filter(pk=body.validated_data["cardholder"]).first()
            if holder is None:
                raise exceptions.ValidationError({"cardholder": ["No such cardholder."]})
        ended = presence.forgive(operator=request.user, via=VIA, cardholder=holder, zone=zone)
        return Response({"zone": zone.pk, "cardholder": holder.pk if holder else None, "ended": ended})

    def _may_forgive(self, zone):
        if not muster.may_forgive(self.request.user, zone):
            raise exceptions.PermissionDenied("You may not forgive or correct presence in this zone.")


class AccessPointViewSet(SpaceModelViewSet):
    queryset = AccessPoint.objects.prefetch_related("zones")
    serializer_class = serializers.AccessPointSerializer
    filterset_class = filtersets.AccessPointFilterSet
    search_fields = ["name", "ext_id", "description"]
    ordering_fields = ["id", "name", "kind"]

    def perform_update(self, serializer):
        before = serializer.instance.opening_mode
        with transaction.atomic():
            super().perform_update(serializer)
            if serializer.instance.opening_mode != before:
                actions.opening_mode_edited(serializer.instance, operator=self.request.user, via=VIA)

    @extend_schema(
        parameters=[serializers.WhoMayOpenQuerySerializer],
        responses=serializers.WhoMayOpenSerializer,
        filters=False,
    )
    @action(detail=True, methods=["get"], url_path="who-may-open", filter_backends=[], pagination_class=None)
    def who_may_open(self, request, pk=None):
        """The cardholders one of whose keys opens this access point at ``at``.

        The decision engine's answer, leaving out what depends on the moment of
        presenting the key (PIN, anti-passback, privacy); only cardholders the
        operator may see are listed.
        """
        point = self.get_object()
        query = _query(serializers.WhoMayOpenQuerySerializer, request)
        at = query.get("at") or timezone.now()
        ids = engine.who_may_open(_current_rules(), point.pk, at)
        holders = restrict(Cardholder.objects.filter(pk__in=ids), request.user, "view").order_by("id")
        data = {"access_point": point.pk, "at": at, "cardholders": holders}
        return Response(serializers.WhoMayOpenSerializer(data).data)

    @extend_schema(
        parameters=[serializers.AccessCheckQuerySerializer],
        responses=serializers.AccessCheckSerializer,
        filters=False,
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def check(self, request, pk=None):
        """Whether the key ``uid`` opens this access point at ``at``, and if not, why: the engine's own decision."""
        point = self.get_object()
        query = _query(serializers.AccessCheckQuerySerializer, request)
        at = query.get("at") or timezone.now()
        rules = _current_rules()
        key = rules.keys_by_uid.get(engine.normalize_uid(query["uid"]))
        inside, counts = presence.for_decision(rules, key.cardholder_id if key else None, point.pk)
        decision = engine.decide(
            rules, query["uid"], point.pk, at, pin=query.get("pin"), inside_zones=inside, occupancy=counts
        )
        holder = None
        if decision.cardholder_id is not None:
            visible = restrict(Cardholder.objects.all(), request.user, "view")
            holder = visible.filter(pk=decision.cardholder_id).first()
        data = {
            "access_point": point.pk,
            "at": at,
            "key_uid": decision.key_uid,
            "granted": decision.granted,
            "reason": decision.reason,
            "cardholder": holder,
            "open_time": decision.open_time if decision.granted else None,
        }
        return Response(serializers.AccessCheckSerializer(data).data)


def _query(serializer_class, request) -> dict:
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


def _current_rules():
    store = get_store()
    return store.refresh()


# --- schedules ---------------------------------------------------------------------


class TimePeriodViewSet(SpaceModelViewSet):
    audited_by_actions = True
    queryset = TimePeriod.objects.prefetch_related("intervals")
    serializer_class = serializers.TimePeriodSerializer
    filterset_class = filtersets.TimePeriodFilterSet
    search_fields = ["name", "description"]
    ordering_fields = ["id", "name"]


class ModeScheduleViewSet(SpaceModelViewSet):
    audited_by_actions = True
    queryset = ModeSchedule.objects.prefetch_related("changes")
    serializer_class = serializers.ModeScheduleSerializer
    filterset_class = filtersets.ModeScheduleFilterSet
    search_fields = ["name", "description"]
    ordering_fields = ["id", "name"]


class CalendarViewSet(SpaceModelViewSet):
    audited_by_actions = True
    queryset = Calendar.objects.prefetch_related("days")
    serializer_class = serializers.CalendarSerializer
    filterset_class = filtersets.CalendarFilterSet
    search_fields = ["name", "description"]
    ordering_fields = ["id", "name"]


# --- permissions -------------------------------------------------------------------


class AccessLevelViewSet(SpaceModelViewSet):
    audited_by_actions = True
    queryset = AccessLevel.objects.prefetch_related(Prefetch("entries", AccessLevelEntry.objects.order_by("id")))
    serializer_class = serializers.AccessLevelSerializer
    filterset_class = filtersets.AccessLevelFilterSet
    search_fields = ["name", "description"]
    ordering_fields = ["id", "name"]


class CardholderViewSet(SpaceModelViewSet):
    queryset = Cardholder.objects.prefetch_related("access_levels")
    serializer_class = serializers.CardholderSerializer
    filterset_class = filtersets.CardholderFilterSet
    search_fields = ["first_name", "last_name", "ext_id", "email"]
    ordering_fields = ["id", "last_name", "first_name", "created_at", "expiration"]

    def after_save(self, serializer):
        if "pin" in serializer.validated_data:
            pin = serializer.validated_data["pin"]
            actions.set_cardholder_pin(serializer.instance, pin, operator=self.request.user, via=VIA)

    def perform_destroy(self, instance):
        # A stay that still needs the cardholder raises ProtectedError: a 409 (accesscontrol/api/exceptions.py).
        actions.delete_cardholder(instance, operator=self.request.user, via=VIA)


class ImageParser(parsers.BaseParser):
    """A body that is the image itself (``Content-Type: image/jpeg``, ``image/png``...): read up to one byte past
    the photo limit, enough to refuse a larger one without holding it."""

    media_type = "image/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return {"photo": stream.read(settings.SPACE_PHOTO_MAX_BYTES + 1) if stream is not None else b""}


class OneCardholder(generics.GenericAPIView):
    """A part of one cardholder (``/cardholders/{id}/...``): reading it needs ``view_cardholder``, writing it
    ``change_cardholder``, each in the cardholder's partition."""

    queryset = Cardholder.objects.all()
    lookup_url_kwarg = "id"
    filter_backends = []
    pagination_class = None

    @property
    def required_permission(self) -> str:
        return permission_name(Cardholder, "view" if self.request.method in ("GET", "HEAD", "OPTIONS") else "change")

    def holder(self, action: str) -> Cardholder:
        operator = self.request.user
        holder = generics.get_object_or_404(restrict(Cardholder.objects.all(), operator, "view"), pk=self.kwargs["id"])
        if action != "view" and not restrict(Cardholder.objects.filter(pk=holder.pk), operator, action).exists():
            raise exceptions.PermissionDenied(f"You may not {action} this cardholder.")
        return holder


def face_state(holder: Cardholder) -> dict:
    consent = faces.live_consent(holder)
    templates = holder.face_templates.defer("vector_sealed").order_by("created_at", "id")
    return serializers.CardholderFaceSerializer(
        {"cardholder": holder.pk, "consent": consent, "templates": list(templates)}
    ).data


class CardholderFaceView(OneCardholder):
    """A cardholder's face matching: their live consent (when, by whom) and their enrolled templates' model,
    quality, date and terminal; never the template itself (docs/face-matching.md)."""

    serializer_class = serializers.CardholderFaceSerializer

    def get(self, request, id):
        return Response(face_state(self.holder("view")))


@extend_schema_view(
    post=extend_schema(
        operation_id="v1_cardholders_face_consent_create",
        request=None,
        responses={200: serializers.CardholderFaceSerializer},
    ),
    delete=extend_schema(
        operation_id="v1_cardholders_face_consent_destroy",
        request=None,
        responses={200: serializers.CardholderFaceSerializer},
    ),
)
class CardholderFaceConsentView(OneCardholder):
    """POST: record the cardholder's consent to face matching (once; again changes nothing). DELETE: withdraw it,
    erasing every template of theirs. Both answer the face state, as ``GET /cardholders/{id}/face/``."""

    serializer_class = serializers.CardholderFaceSerializer

    def post(self, request, id):
        holder = self.holder("change")
        faces.record_consent(holder, operator=request.user, via=VIA)
        return Response(face_state(holder))

    def delete(self, request, id):
        holder = self.holder("change")
        faces.withdraw_consent(holder, operator=request.user, via=VIA)
        return Response(face_state(holder))


@extend_schema_view(
    get=extend_schema(
        operation_id="v1_cardholders_photo_retrieve",
        parameters=[serializers.CardholderPhotoQuerySerializer],
        responses={(200, "image/jpeg"): OpenApiTypes.BINARY},
        filters=False,
    ),
    put=extend_schema(
        operation_id="v1_cardholders_photo_update",
        request={
            "multipart/form-data": serializers.CardholderPhotoUploadSerializer,
            **{media_type: OpenApiTypes.BINARY for media_type in photos.ACCEPTED_TYPES},
        },
        responses=serializers.CardholderPhotoSerializer,
    ),
    delete=extend_schema(operation_id="v1_cardholders_photo_destroy", responses={204: None}),
)
class CardholderPhotoView(generics.GenericAPIView):
    """A cardholder's photo: GET the JPEG (``size=thumbnail`` for the small one), PUT a new one (the multipart
    field ``photo``, or the image as the body with its ``image/...`` type), DELETE it.

    A photo is checked, turned upright, resized and stripped of its metadata (accesscontrol/photos.py); one that
    is refused is a 400 naming why under ``photo``. Reading needs ``view_cardholder``, writing
    ``change_cardholder``, each in the cardholder's partition.
    """

    queryset = Cardholder.objects.all()
    lookup_url_kwarg = "id"
    parser_classes = [parsers.MultiPartParser, ImageParser]
    serializer_class = serializers.CardholderPhotoSerializer
    filter_backends = []
    pagination_class = None

    @property
    def required_permission(self) -> str:
        return permission_name(Cardholder, "view" if self.request.method in ("GET", "HEAD", "OPTIONS") else "change")

    def perform_content_negotiation(self, request, force=False):
        # The photo is JPEG whatever the client accepts; an error answers in JSON.
        return super().perform_content_negotiation(request, force=True)

    def holder(self, action: str) -> Cardholder:
        operator = self.request.user
        holder = generics.get_object_or_404(restrict(Cardholder.objects.all(), operator, "view"), pk=self.kwargs["id"])
        if action != "view" and not restrict(Cardholder.objects.filter(pk=holder.pk), operator, action).exists():
            raise exceptions.PermissionDenied(f"You may not {action} this cardholder.")
        return holder

    def get(self, request, id):
        query = _query(serializers.CardholderPhotoQuerySerializer, request)
        holder = self.holder("view")
        if not holder.photo:
            raise Http404("This cardholder has no photo.")
        name = thumbnail_name(holder.photo.name) if query["size"] == "thumbnail" else holder.photo.name
        try:
            file = photo_storage.open(name, "rb")
        except FileNotFoundError:
            raise Http404("The photo's file is missing.") from None
        etag = f'"{holder.photo_version}-thumbnail"' if query["size"] == "thumbnail" else f'"{holder.photo_version}"'
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        return FileResponse(file, content_type="image/jpeg", headers=headers)

    def put(self, request, id):
        holder = self.holder("change")
        sent = request.data.get("photo")
        if isinstance(sent, bytes):
            data = sent
        elif hasattr(sent, "read"):
            data = sent.read(settings.SPACE_PHOTO_MAX_BYTES + 1)
        else:
            raise exceptions.ValidationError(
                {"photo": ["Send the image as the multipart file field photo, or as the body with its image type."]}
            )
        try:
            holder = photos.set_photo(holder, data, operator=request.user, via=VIA)
        except photos.PhotoError as error:
            raise exceptions.ValidationError({"photo": [str(error)]}) from None
        data = {"cardholder": holder.pk, "version": holder.photo_version, "updated_at": holder.photo_updated_at}
        return Response(serializers.CardholderPhotoSerializer(data).data)

    def delete(self, request, id):
        photos.remove_photo(self.holder("change"), operator=request.user, via=VIA)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CardholderPermissionViewSet(SpaceModelViewSet):
    audited_by_actions = True
    queryset = CardholderPermission.objects.order_by("id")
    serializer_class = serializers.CardholderPermissionSerializer
    filterset_class = filtersets.CardholderPermissionFilterSet
    ordering_fields = ["id", "cardholder"]


class KeyViewSet(SpaceModelViewSet):
    queryset = Key.objects.select_related("cardholder")
    serializer_class = serializers.KeySerializer
    filterset_class = filtersets.KeyFilterSet
    search_fields = ["uid"]
    ordering_fields = ["id", "issued_at", "valid_until", "uid"]

    def save_new(self, serializer):
        serializer.instance = actions.issue_key(operator=self.request.user, via=VIA, **serializer.validated_data)

    def perform_destroy(self, instance):
        actions.delete_key(instance, operator=self.request.user, via=VIA)

    @extend_schema(request=None, responses=serializers.KeySerializer)
    @action(detail=True, methods=["post"], permission_action="change")
    def cancel(self, request, pk=None):
        """Cancel the key: refused from now on, and blacklisted until its validity ends."""
        with transaction.atomic():
            key = actions.cancel_key(self.get_object(), operator=request.user, via=VIA)
        return Response(self.get_serializer(key).data)

    @extend_schema(request=serializers.KeyRevalidateSerializer, responses=serializers.KeySerializer)
    @action(detail=True, methods=["post"], permission_action="change")
    def revalidate(self, request, pk=None):
        """Revalidate the key: renew its validity to ``valid_until``, or by the cardholder's revalidation period."""
        query = serializers.KeyRevalidateSerializer(data=request.data)
        query.is_valid(raise_exception=True)
        try:
            key = actions.revalidate_key(
                self.get_object(), operator=request.user, via=VIA, valid_until=query.validated_data.get("valid_until")
            )
        except DjangoValidationError as error:
            raise exceptions.ValidationError(
                error.message_dict if hasattr(error, "error_dict") else {"non_field_errors": error.messages}
            ) from None
        return Response(self.get_serializer(key).data)


# --- audit trail -------------------------------------------------------------------


class AuditEventViewSet(SpaceReadOnlyViewSet):
    queryset = AuditEvent.objects.all()
    serializer_class = serializers.AuditEventSerializer
    filterset_class = filtersets.AuditEventFilterSet
    search_fields = ["access_point_name", "cardholder_name", "key_uid"]
    ordering_fields = ["at", "id", "recorded_at"]


class SystemAuditViewSet(SpaceReadOnlyViewSet):
    queryset = SystemAuditEntry.objects.all()
    serializer_class = serializers.SystemAuditEntrySerializer
    filterset_class = filtersets.SystemAuditFilterSet
    search_fields = ["operator_name", "object_repr"]
    ordering_fields = ["at", "id"]


class BlacklistViewSet(SpaceReadOnlyViewSet):
    """The blacklist entries in force: cancelled keys offline locks must refuse, until their keys would have expired.

    Site-wide, like the list the locks hold: every operator with the view permission sees all of it.
    """

    queryset = BlacklistEntry.objects.all()
    serializer_class = serializers.BlacklistEntrySerializer
    filterset_class = filtersets.BlacklistFilterSet
    search_fields = ["uid"]
    ordering_fields = ["id", "until"]

    def get_queryset(self):
        # Entries whose keys would have expired are no longer in force, even before the hourly purge.
        return super().get_queryset().filter(until__gt=timezone.now())


# --- presence and roll-call ---------------------------------------------------------


class PresenceViewSet(SpaceReadOnlyViewSet):
    """Who is (or was last) inside which tracked zone, and since when; written only by passages and operators."""

    queryset = Presence.objects.select_related("cardholder")
    serializer_class = serializers.PresenceSerializer
    filterset_class = filtersets.PresenceFilterSet
    ordering_fields = ["id", "since", "last_at"]
    ordering = ["id"]


class RollCallAreaList(generics.ListAPIView):
    """The roll-call areas the operator may muster, with how many people are inside each now."""

    queryset = Zone.objects.filter(roll_call=True)
    serializer_class = serializers.RollCallAreaSerializer
    required_permission = muster.VIEW_MUSTER
    filter_backends = []

    def get_queryset(self):
        return muster.roll_call_areas(self.request.user)

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        return muster.with_counts(page if page is not None else queryset)


@extend_schema_view(
    get=extend_schema(operation_id="v1_roll_call_people", parameters=[serializers.RollCallQuerySerializer]),
)
class RollCallPeopleList(generics.ListAPIView):
    """Who is inside one roll-call area now and since when, newest first; ``q`` narrows by name."""

    queryset = Presence.objects.all()
    serializer_class = serializers.RollCallPersonSerializer
    required_permission = muster.VIEW_MUSTER
    filter_backends = []

    def get_queryset(self):
        try:
            zone = muster.roll_call_areas(self.request.user).get(pk=self.kwargs["zone_id"])
        except Zone.DoesNotExist:
            raise Http404("No such roll-call area.") from None
        query = serializers.RollCallQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return muster.inside([zone.pk], query.validated_data.get("q", ""))


# --- operators ---------------------------------------------------------------------


class OperatorViewSet(SpaceReadOnlyViewSet):
    """Operators are managed by administrators in the admin; the API shows them."""

    queryset = Operator.objects.prefetch_related("operator_groups")
    serializer_class = serializers.OperatorSerializer
    filterset_class = filtersets.OperatorFilterSet
    search_fields = ["username", "first_name", "last_name", "email"]
    ordering_fields = ["id", "username", "last_login"]


class OperatorGroupViewSet(SpaceModelViewSet):
    queryset = OperatorGroup.objects.prefetch_related("members", "partitions", "permissions__content_type")
    serializer_class = serializers.OperatorGroupSerializer
    filterset_class = filtersets.OperatorGroupFilterSet
    search_fields = ["name", "description"]
    ordering_fields = ["id", "name"]


@extend_schema_view(create=extend_schema(responses={201: serializers.ApiKeyIssuedSerializer}))
class ApiKeyViewSet(SpaceModelViewSet):
    queryset = ApiKey.objects.all()
    serializer_class = serializers.ApiKeySerializer
    filterset_class = filtersets.ApiKeyFilterSet
    search_fields = ["name"]
    ordering_fields = ["id", "created_at", "name", "expires_at"]

    def get_serializer_class(self):
        return serializers.ApiKeyIssuedSerializer if self.action == "create" else super().get_serializer_class()

    def save_new(self, serializer):
        data = serializer.validated_data
        key, token = actions.issue_api_key(
            data["operator"], data["name"], operator=self.request.user, via=VIA, expires_at=data.get("expires_at")
        )
        key.token = token  # the response is the only place the token is ever shown
        serializer.instance = key

    @extend_schema(request=None, responses=serializers.ApiKeySerializer)
    @action(detail=True, methods=["post"], permission_action="change")
    def revoke(self, request, pk=None):
        """Revoke the key: it is refused from now on."""
        key = actions.revoke_api_key(self.get_object(), operator=request.user, via=VIA)
        return Response(self.get_serializer(key).data)


# --- cardholder sources ---------------------------------------------------------------


class CardholderSourceViewSet(SpaceReadOnlyViewSet):
    """Directories and HR feeds the cardholders come from (configured in the admin); ``sync`` runs one."""

    queryset = CardholderSource.objects.all()
    serializer_class = serializers.CardholderSourceSerializer
    filterset_fields = ["kind", "enabled"]
    ordering_fields = ["id", "name", "last_run_at"]

    @extend_schema(request=serializers.SyncStartSerializer, responses={202: serializers.SyncStartedSerializer})
    @action(detail=True, methods=["post"], permission_action="change")
    def sync(self, request, pk=None):
        """Start a run (a preview with ``dry_run``) as a job; its run is listed in sync-runs once it starts."""
        query = serializers.SyncStartSerializer(data=request.data)
        query.is_valid(raise_exception=True)
        source = self.get_object()
        parameters = {"source": source.pk, "dry_run": query.validated_data["dry_run"]}
        if query.validated_data["full"]:
            parameters["full"] = True
        with transaction.atomic():
            job = jobs.start("cardholder_sync", request.user, parameters)
            actions.record_operator_action(
                request.user,
                "sync_preview" if parameters["dry_run"] else "sync_sync",
                source,
                via=VIA,
                detail={"job": job.pk, **parameters},
            )
        return Response({"job": job.pk}, status=202)


class SyncRunViewSet(SpaceReadOnlyViewSet):
    """Each run of a source: its outcome, counts, diff and errors; ``approve`` applies a held one."""

    queryset = SyncRun.objects.all()
    serializer_class = serializers.SyncRunSerializer
    filterset_fields = ["source", "status", "job", "dry_run"]
    ordering_fields = ["id", "started_at"]

    # Runs belong to their source: whoever may see the sources sees their runs.
    required_permission = "accesscontrol.view_cardholdersource"

    def get_queryset(self):
        if not self.request.user.has_perm("accesscontrol.view_cardholdersource"):
            return SyncRun.objects.none()
        return SyncRun.objects.all()

    @extend_schema(request=None, responses={202: serializers.SyncStartedSerializer})
    @action(detail=True, methods=["post"], permission_action="change")
    def approve(self, request, pk=None):
        """Apply a held run: a new run that deactivates at most as many cardholders as this one would have."""
        held = self.get_object()
        if held.status != SyncStatus.HELD:
            raise exceptions.ValidationError({"status": f"Only a held run can be approved; this one is {held.status}."})
        if SyncRun.objects.filter(approves=held).exists() or not sync.held(held.source):
            raise exceptions.ValidationError({"status": "A later run has dealt with this one already."})
        if not request.user.has_perm("accesscontrol.change_cardholdersource"):
            raise exceptions.PermissionDenied("You may not run this source.")
        with transaction.atomic():
            job = jobs.start("cardholder_sync", request.user, {"source": held.source_id, "approves": held.pk})
            actions.record_operator_action(
                request.user, "sync_approve", held.source, via=VIA, detail={"job": job.pk, "approves": held.pk}
            )
        return Response({"job": job.pk}, status=202)


# --- site --------------------------------------------------------------------------


class SiteSettingsView(generics.GenericAPIView):
    """The site's one settings row."""

    queryset = SiteSettings.objects.all()
    serializer_class = serializers.SiteSettingsSerializer
    http_method_names = ["get", "patch", "head", "options"]

    def get_object(self):
        return SiteSettings.load()

    def get(self, request):
        return Response(self.get_serializer(self.get_object()).data)

    def patch(self, request):
        with transaction.atomic():
            site = self.get_object()
            serializer = self.get_serializer(site, data=request.data, partial=True)
            serializer.is_valid(raise_exception=True)
            before = serializer.to_representation(site)
            serializer.save()
            changes = changes_made(serializer, before, serializer.to_representation(site))
            actions.record_operator_action(request.user, "update", site, via=VIA, detail={"changes": changes})
        return Response(serializer.data)
