from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from accesscontrol.models import ApiKey


def use_api_key(token: str) -> ApiKey | None:
    """The usable API key ``token`` names, its use noted; None for an invalid, expired or revoked one.

    The REST API and the SHIP interface (integrations/ship) both authenticate through it.
    """
    key = ApiKey.authenticate(token)
    if key is None:
        return None
    now = timezone.now()
    # One write a minute at most: the key's use is worth knowing, not worth a write per request.
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Api-Key spk_…`` (or ``Bearer spk_…``): acts as the key's operator."""

    keywords = ("api-key", "bearer")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        keyword, _, token = header.partition(" ")
        if keyword.lower() not in self.keywords:
            return None
        token = token.strip()
        if not token:
            raise exceptions.AuthenticationFailed("No API key given.")
        key = use_api_key(token)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API key.")
        return key.operator, key

    def authenticate_header(self, request):
        return "Api-Key"


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization", "description": "Api-Key spk_…"}
