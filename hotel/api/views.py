"""The hotel REST API for PMSs and integrators (/api/v1/hotel/): check-in, copy, modify, check-out and
key read, over the same operations as FIAS and the front desk (hotel/actions.py), and the rooms
and stays with their state.

Writes take an ``Idempotency-Key`` header (accesscontrol/idempotency.py): a retry with the same key
and body gets the first answer again, marked ``Idempotent-Replayed: true``; the same key with another
body is a 422. A HotelError is answered with its ``code`` and ``detail``: 409 for a busy encoder or an
occupied room, 503 for an offline encoder, 504 when the encoder did not finish in time, 400 otherwise.

Permissions are the keys': issuing (check-in, copy) needs ``add_key``, modify and check-out
``change_key``, reading a card and the lists ``view_key``, each in the partition of the room's door.
"""

import base64

from django.db.models import Count, Prefetch, Q
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import exceptions, generics, serializers, status
from rest_framework.response import Response

from accesscontrol import idempotency
from accesscontrol.choices import KeyStatus
from accesscontrol.models import Room, Stay
from accesscontrol.permissions import ALL, allowed_partitions, may_use_partition
from hotel import actions as hotel

VIA = "api"
MAX_WAIT_SECONDS = 60.0
STATUS_OF = {
    hotel.ROOM_OCCUPIED: status.HTTP_409_CONFLICT,
    hotel.ENCODER_BUSY: status.HTTP_409_CONFLICT,
    hotel.ENCODER_OFFLINE: status.HTTP_503_SERVICE_UNAVAILABLE,
    hotel.TIMEOUT: status.HTTP_504_GATEWAY_TIMEOUT,
}
IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    # The server takes any printable characters; the schema promises the ASCII ones, which every HTTP stack carries.
    {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY_LENGTH, "pattern": "^[\\x20-\\x7e]+$"},
    OpenApiParameter.HEADER,
    description="Any string up to 255 characters: a retry with the same key and body is answered without "
    "running again (for 24 hours).",
)


# --- serializers --------------------------------------------------------------------------------------


class HotelErrorSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=[*hotel.CODES, "idempotency_key_reused", "in_progress"])
    detail = serializers.CharField()


class WaitField(serializers.FloatField):
    def __init__(self, **kwargs):
        super().__init__(min_value=0, max_value=MAX_WAIT_SECONDS, default=30.0, **kwargs)


class CopySerializer(serializers.Serializer):
    room = serializers.CharField(max_length=8)
    departure = serializers.DateTimeField()
    encoder = serializers.CharField(max_length=16, required=False, allow_blank=True, help_text="Station code.")
    reservation = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    one_shot = serializers.BooleanField(default=False, help_text="A key that opens for a short while only.")
    phone_number = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    wait_seconds = WaitField()


class CheckInSerializer(CopySerializer):
    one_shot = None
    kind = serializers.ChoiceField(choices=hotel.KINDS, default=hotel.NEW)
    guest_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    arrival = serializers.DateTimeField(required=False, allow_null=True, default=None)
    extra_rooms = serializers.ListField(
        child=serializers.CharField(max_length=8), max_length=hotel.MAX_ROOMS, required=False, default=list
    )
    common_areas = serializers.ListField(
        child=serializers.CharField(max_length=32),
        required=False,
        allow_null=True,
        default=None,
        help_text="Guest area names; absent or null: the site's default areas.",
    )


class ModifySerializer(serializers.Serializer):
    room = serializers.CharField(max_length=8)
    new_room = serializers.CharField(max_length=8, required=False, allow_blank=True, default="")
    departure = serializers.DateTimeField(required=False, allow_null=True, default=None)
    reservation = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    guest_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    def validate(self, attrs):
        if not attrs["new_room"] and attrs["departure"] is None and not attrs["guest_name"]:
            raise serializers.ValidationError("Give a new room, a new departure or a guest name.")
        return attrs


class CheckOutSerializer(serializers.Serializer):
    room = serializers.CharField(max_length=8)
    reservation = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")


class ReadKeySerializer(serializers.Serializer):
    encoder = serializers.CharField(max_length=16, help_text="Station code.")
    wait_seconds = WaitField()


class KeyIssuedSerializer(serializers.Serializer):
    stay = serializers.IntegerField(source="stay_id")
    key = serializers.IntegerField(source="key_id")
    uid = serializers.CharField()
    rooms = serializers.ListField(child=serializers.CharField())
    departure = serializers.DateTimeField()
    card_data = serializers.SerializerMethodField(help_text="The card file written, base64.")
    job = serializers.IntegerField(source="job_id", allow_null=True)

    def get_card_data(self, issued) -> str:
        return base64.b64encode(issued.card_data).decode()


class StayIdSerializer(serializers.Serializer):
    stay = serializers.IntegerField()


class CheckedOutSerializer(serializers.Serializer):
    keys_cancelled = serializers.IntegerField()


class KeyReadSerializer(serializers.Serializer):
    uid = serializers.CharField()
    rooms = serializers.ListField(child=serializers.CharField())
    guest_name = serializers.CharField()
    reservation = serializers.CharField()
    departure = serializers.DateTimeField(allow_null=True)
    valid = serializers.BooleanField()
    extra = serializers.DictField()


class StaySerializer(serializers.ModelSerializer):
    room = serializers.CharField(source="room.number")
    extra_rooms = serializers.SlugRelatedField(slug_field="number", many=True, read_only=True)
    areas = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    keys = serializers.IntegerField(source="issued_keys", read_only=True, help_text="Issued keys.")

    class Meta:
        model = Stay
        fields = [
            "id",
            "room",
            "extra_rooms",
            "cardholder",
            "reservation",
            "guest_name",
            "arrival",
            "departure",
            "areas",
            "status",
            "checked_out_at",
            "keys",
        ]


class RoomSerializer(serializers.ModelSerializer):
    connects = serializers.SlugRelatedField(slug_field="number", many=True, read_only=True)
    occupied = serializers.SerializerMethodField()
    stay = serializers.SerializerMethodField()

    class Meta:
        model = Room
        fields = ["id", "number", "floor", "suite", "connects", "access_point", "occupied", "stay"]

    def _stay(self, room) -> Stay | None:
        return self.context["stays"].get(room.pk)

    def get_occupied(self, room) -> bool:
        return self._stay(room) is not None

    @extend_schema_field(StaySerializer(allow_null=True))
    def get_stay(self, room):
        stay = self._stay(room)
        return StaySerializer(stay).data if stay is not None else None


# --- views --------------------------------------------------------------------------------------------


def _error(error: hotel.HotelError) -> Response:
    return Response(
        {"code": error.code, "detail": str(error)}, status=STATUS_OF.get(error.code, status.HTTP_400_BAD_REQUEST)
    )


class HotelOperation(generics.GenericAPIView):
    """A POST running one hotel operation, with its permission in the room's partition and idempotency keys."""

    required_permission = "accesscontrol.add_key"
    success_status = status.HTTP_200_OK

    def post(self, request):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return self._answer(request)
        if not idempotency.valid_key(key):
            raise exceptions.ValidationError({"Idempotency-Key": ["1 to 255 printable characters."]})
        print_ = idempotency.fingerprint(request.method, request.path, request.data)
        try:
            stored = idempotency.claim(request.user, key, print_, wait_seconds=MAX_WAIT_SECONDS + 5)
        except idempotency.KeyReused:
            body = {"code": "idempotency_key_reused", "detail": "This Idempotency-Key was used for another request."}
            return Response(body, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
        except idempotency.StillRunning:
            body = {"code": "in_progress", "detail": "The first request with this Idempotency-Key is still running."}
            return Response(body, status=status.HTTP_409_CONFLICT)
        if stored is not None:
            return Response(stored.body, status=stored.status, headers={"Idempotent-Replayed": "true"})
        response = None
        try:
            response = self._answer(request)
        finally:
            answered = response.status_code if response is not None else 500
            idempotency.finish(request.user, key, answered, response.data if response is not None else None)
        return response

    def _answer(self, request) -> Response:
        query = self.get_serializer(data=request.data)
        query.is_valid(raise_exception=True)
        data = dict(query.validated_data)
        self.check_room(data.get("room"))
        try:
            result = self.run(data)
        except hotel.HotelError as error:
            return _error(error)
        return Response(result, status=self.success_status)

    def check_room(self, number: str | None) -> None:
        """403 unless the operator holds the permission in the room's partition (an unknown room: the
        operation says so)."""
        if number is None:
            return
        room = Room.objects.select_related("access_point").filter(number=number.strip()).first()
        if room is not None and not may_use_partition(
            self.request.user, self.required_permission, room.access_point.partition_id
        ):
            raise exceptions.PermissionDenied("You may not change keys of this room.")

    def run(self, data: dict) -> dict:
        raise NotImplementedError


ERRORS = {
    400: OpenApiResponse(HotelErrorSerializer, description="Bad input (field errors) or a HotelError."),
    409: OpenApiResponse(HotelErrorSerializer, description="Encoder busy, room occupied, or still running."),
    422: OpenApiResponse(HotelErrorSerializer, description="Idempotency-Key reused for another request."),
}
ENCODER_ERRORS = {
    **ERRORS,
    503: OpenApiResponse(HotelErrorSerializer, description="Encoder offline."),
    504: OpenApiResponse(HotelErrorSerializer, description="The encoder did not finish in time."),
}


@extend_schema_view(
    post=extend_schema(parameters=[IDEMPOTENCY_HEADER], responses={201: KeyIssuedSerializer, **ENCODER_ERRORS})
)
class CheckInView(HotelOperation):
    """Check a guest in: a key for the room (its suite and extra rooms) and the guest areas, valid until
    departure, written on the encoder named by its station code. ``kind`` new cancels the stay's earlier keys."""

    serializer_class = CheckInSerializer
    success_status = status.HTTP_201_CREATED

    def run(self, data: dict) -> dict:
        data["encoder"] = data.get("encoder") or None
        data["extra_rooms"] = tuple(data["extra_rooms"])
        if data["common_areas"] is not None:
            data["common_areas"] = tuple(data["common_areas"])
        issued = hotel.check_in(operator=self.request.user, via=VIA, **data)
        return KeyIssuedSerializer(issued).data


@extend_schema_view(
    post=extend_schema(parameters=[IDEMPOTENCY_HEADER], responses={201: KeyIssuedSerializer, **ENCODER_ERRORS})
)
class CopyView(CheckInView):
    """One more key for the guest in the room (a one-shot key with ``one_shot``): the others stay valid."""

    serializer_class = CopySerializer

    def run(self, data: dict) -> dict:
        data["kind"] = hotel.ONE_SHOT if data.pop("one_shot") else hotel.COPY
        data.update(extra_rooms=(), common_areas=None)
        return super().run(data)


@extend_schema_view(post=extend_schema(parameters=[IDEMPOTENCY_HEADER], responses={200: StayIdSerializer, **ERRORS}))
class ModifyView(HotelOperation):
    """Move the guest to another room and/or change the departure (or the guest's name); keys follow."""

    serializer_class = ModifySerializer
    required_permission = "accesscontrol.change_key"

    def check_room(self, number):
        super().check_room(number)
        super().check_room(self.request.data.get("new_room") or None)

    def run(self, data: dict) -> dict:
        return {"stay": hotel.modify(operator=self.request.user, via=VIA, **data)}


@extend_schema_view(
    post=extend_schema(parameters=[IDEMPOTENCY_HEADER], responses={200: CheckedOutSerializer, **ERRORS})
)
class CheckOutView(HotelOperation):
    """Check the guest out: every key of the stay is cancelled and blacklisted for offline room locks."""

    serializer_class = CheckOutSerializer
    required_permission = "accesscontrol.change_key"

    def run(self, data: dict) -> dict:
        return {"keys_cancelled": hotel.check_out(operator=self.request.user, via=VIA, **data)}


@extend_schema_view(
    post=extend_schema(parameters=[IDEMPOTENCY_HEADER], responses={200: KeyReadSerializer, **ENCODER_ERRORS})
)
class ReadKeyView(HotelOperation):
    """Read the card placed on the encoder named by its station code: what it opens, whose it is, until when."""

    serializer_class = ReadKeySerializer
    required_permission = "accesscontrol.view_key"

    def run(self, data: dict) -> dict:
        read = hotel.read_key(operator=self.request.user, via=VIA, **data)
        return KeyReadSerializer(read).data


def _visible_rooms(operator):
    partitions = allowed_partitions(operator, "accesscontrol.view_key")
    rooms = Room.objects.select_related("access_point")
    return rooms if partitions is ALL else rooms.filter(access_point__partition__in=partitions)


def _stays():
    return (
        Stay.objects.select_related("room")
        .prefetch_related(Prefetch("extra_rooms", queryset=Room.objects.order_by("number")), "areas")
        .annotate(issued_keys=Count("cardholder__keys", filter=Q(cardholder__keys__status=KeyStatus.ISSUED)))
    )


class RoomListView(generics.ListAPIView):
    """The rooms with their occupancy: the stay in house in each (as its room or an extra room)."""

    queryset = Room.objects.none()  # for the schema; get_queryset() gives the rows
    serializer_class = RoomSerializer
    required_permission = "accesscontrol.view_key"
    filterset_fields = ["floor", "suite"]
    search_fields = ["number"]
    ordering_fields = ["floor", "number"]

    def get_queryset(self):
        return _visible_rooms(self.request.user).prefetch_related("connects").order_by("floor", "number")

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["stays"] = hotel.in_house(_stays())
        return context


class StayListView(generics.ListAPIView):
    """Stays, newest first: ``?status=in`` for the guests in house."""

    queryset = Stay.objects.none()  # for the schema; get_queryset() gives the rows
    serializer_class = StaySerializer
    required_permission = "accesscontrol.view_key"
    filterset_fields = ["status", "reservation"]
    search_fields = ["guest_name", "reservation", "room__number"]
    ordering_fields = ["arrival", "departure", "id"]

    def get_queryset(self):
        rooms = _visible_rooms(self.request.user)
        return _stays().filter(room__in=rooms).order_by("-arrival", "-id")
