"""Turn the errors a write can meet into 400s with field errors, never a 500."""

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError, RestrictedError
from django.http import JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from accesscontrol.models import AppendOnlyError


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            # A model's clean() names no field ("__all__"): the API calls that non_field_errors, as DRF does.
            detail = {
                "non_field_errors" if name == NON_FIELD_ERRORS else name: text
                for name, text in exc.message_dict.items()
            }
        else:
            detail = {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, (ProtectedError, RestrictedError)):
        names = sorted({str(obj) for obj in list(exc.args[1])[:5]})
        return Response(
            {"detail": "It is still in use and cannot be deleted.", "used_by": names},
            status=status.HTTP_409_CONFLICT,
        )
    elif isinstance(exc, IntegrityError):
        exc = exceptions.ValidationError({"non_field_errors": ["This conflicts with existing data."]})
    elif isinstance(exc, AppendOnlyError):
        exc = exceptions.MethodNotAllowed(context["request"].method, detail=str(exc))
    elif isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, list):
        # A bare list (e.g. DRF's search filter refusing a NUL): every 400 is an object of field errors.
        exc = exceptions.ValidationError({"non_field_errors": exc.detail})
    return drf_exception_handler(exc, context)


def not_found(request, exception):
    """Django's 404 (a URL no view takes, e.g. an id that is not a number): JSON under /api/, as DRF's own."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
