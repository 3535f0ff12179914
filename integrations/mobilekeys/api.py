"""API v1 for mobile keys (docs/mobile-keys.md).

Operators: ``/mobile-keys/`` issues (with a first token), lists and shows keys of
kind mobile; ``enrol`` makes a one-time invitation code for the guest's phone;
``cancel`` cancels the key like any other (the blacklist). They need the key
permissions (a mobile key is a key) in the cardholder's partition.

Phones: ``/phone/enrol/`` redeems a code for a phone credential (no operator
login: the code is the authority); ``/phone/keys/`` (``Authorization: Phone
spm_…``) returns the phone's fresh tokens and their phone secrets.
"""

import base64

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema
from rest_framework import authentication, exceptions, permissions, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from accesscontrol import actions
from accesscontrol.api.serializers import KeySerializer, VisibleRelatedField
from accesscontrol.api.views import SpaceModelViewSet
from accesscontrol.choices import KeyKind, KeyStatus
from accesscontrol.models import Cardholder, Key
from devices.carddata import CardTooBig
from integrations.mobilekeys import services
from integrations.mobilekeys.models import PhoneEnrolment

VIA = "api"
E164 = r"^\+[1-9][0-9]{6,14}$"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- operators -----------------------------------------------------------------------------------


class MobileKeySerializer(KeySerializer):
    phone_number = serializers.CharField(source="mobile.phone_number", default="", read_only=True)

    class Meta(KeySerializer.Meta):
        fields = [*KeySerializer.Meta.fields, "phone_number"]
        read_only_fields = fields


class MobileKeyIssueSerializer(serializers.Serializer):
    cardholder = VisibleRelatedField(queryset=Cardholder.objects.all())
    phone_number = serializers.RegexField(
        E164, required=False, allow_blank=True, default="", help_text="E.164, say +41791234567."
    )
    valid_from = serializers.DateTimeField(required=False, allow_null=True, default=None)
    valid_until = serializers.DateTimeField(required=False, allow_null=True, default=None)

    def validate(self, attrs):
        if attrs["valid_from"] and attrs["valid_until"] and attrs["valid_until"] <= attrs["valid_from"]:
            raise serializers.ValidationError({"valid_until": ["The end of validity must come after its start."]})
        return attrs

    def to_representation(self, key):
        return {
            **MobileKeySerializer(key, context=self.context).data,
            "token": b64(key.minted_token),
        }


class InvitationSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Give it to the guest; it works once, until expires_at.")
    expires_at = serializers.DateTimeField()


class MobileKeyViewSet(SpaceModelViewSet):
    """Keys that live on phones. Issuing one answers with its first token (base64), for the record:
    the phone app gets its own through an enrolment."""

    queryset = Key.objects.filter(kind=KeyKind.MOBILE).select_related("mobile").order_by("-issued_at", "-id")
    serializer_class = MobileKeySerializer
    http_method_names = ["get", "post", "head", "options"]
    ordering_fields = ["id", "issued_at", "valid_until"]

    def get_serializer_class(self):
        return MobileKeyIssueSerializer if self.action == "create" else MobileKeySerializer

    @extend_schema(request=MobileKeyIssueSerializer, responses={201: MobileKeyIssueSerializer})
    def create(self, request, *args, **kwargs):
        return super().create(request, *args, **kwargs)

    def save_new(self, serializer):
        try:
            mobile, token = services.issue(operator=self.request.user, via=VIA, **serializer.validated_data)
        except CardTooBig as error:
            raise exceptions.ValidationError({"cardholder": [str(error)]}) from None
        mobile.key.minted_token = token
        serializer.instance = mobile.key

    @extend_schema(request=None, responses={201: InvitationSerializer})
    @action(detail=True, methods=["post"], permission_action="change")
    def enrol(self, request, pk=None):
        """A one-time invitation code for the guest's phone app; phones enrolled before are revoked."""
        key = self.get_object()
        if key.status != KeyStatus.ISSUED:
            raise exceptions.ValidationError({"non_field_errors": ["Only an issued key can be put on a phone."]})
        enrolment, code = services.invite_key(key, operator=request.user, via=VIA)
        data = {"code": code, "expires_at": enrolment.code_expires_at}
        response = Response(InvitationSerializer(data).data, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(request=None, responses=MobileKeySerializer)
    @action(detail=True, methods=["post"], permission_action="change")
    def cancel(self, request, pk=None):
        """Cancel the key: blacklisted until its validity ends; its phone gets no more tokens."""
        key = actions.cancel_key(self.get_object(), operator=request.user, via=VIA)
        return Response(MobileKeySerializer(key).data)


# --- phones --------------------------------------------------------------------------------------


class PhoneAuthentication(authentication.BaseAuthentication):
    """``Authorization: Phone spm_…``: the phone credential an enrolment gave."""

    keyword = "phone"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        keyword, _, credential = header.partition(" ")
        if keyword.lower() != self.keyword:
            return None
        enrolment = services.authenticate(credential.strip())
        if enrolment is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked phone credential.")
        return AnonymousUser(), enrolment

    def authenticate_header(self, request):
        return "Phone"


class PhoneScheme(OpenApiAuthenticationExtension):
    target_class = PhoneAuthentication
    name = "Phone"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization", "description": "Phone spm_…"}


class IsEnrolledPhone(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.auth, PhoneEnrolment)


class PhoneEnrolSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=64, write_only=True)
    credential = serializers.CharField(read_only=True, help_text="Shown this once: the phone keeps it.")
    key = serializers.IntegerField(read_only=True)


class PhoneEnrolView(APIView):
    """Redeem an invitation code for a phone credential."""

    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(request=PhoneEnrolSerializer, responses={201: PhoneEnrolSerializer})
    def post(self, request):
        body = PhoneEnrolSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        enrolled = services.enrol(body.validated_data["code"])
        if enrolled is None:
            raise exceptions.ValidationError({"code": ["Unknown, used or expired invitation code."]})
        enrolment, credential = enrolled
        data = {"credential": credential, "key": enrolment.mobile_key.key_id}
        response = Response(PhoneEnrolSerializer(data).data, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response


class PhoneTokenSerializer(serializers.Serializer):
    key = serializers.IntegerField(source="key.pk")
    uid = serializers.CharField(source="key.uid")
    valid_until = serializers.DateTimeField(source="key.valid_until", allow_null=True)
    token = serializers.SerializerMethodField(help_text="base64; the lock opens it, the phone only carries it.")
    phone_secret = serializers.SerializerMethodField(help_text="base64; proves the phone to the lock. Keep it secret.")

    def get_token(self, phone_token) -> str:
        return b64(phone_token.minted.token)

    def get_phone_secret(self, phone_token) -> str:
        return b64(phone_token.minted.phone_secret)


class PhoneKeysSerializer(serializers.Serializer):
    keys = PhoneTokenSerializer(many=True)


class PhoneKeysView(APIView):
    """The phone's keys, each with a token minted now (a change of rights shows at the next fetch)."""

    authentication_classes = [PhoneAuthentication]
    permission_classes = [IsEnrolledPhone]

    @extend_schema(responses=PhoneKeysSerializer)
    def get(self, request):
        response = Response(PhoneKeysSerializer({"keys": services.phone_tokens(request.auth)}).data)
        response["Cache-Control"] = "no-store"
        return response
