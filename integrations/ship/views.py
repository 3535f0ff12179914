"""The SHIP endpoint over HTTP(S): ``POST /ship/`` with ``Content-Type: application/vnd.saltosystems.ship.v1+xml``.

The API key goes in ``Salto-SHIP-Key: spk_…`` or, as for the REST API,
``Authorization: Api-Key spk_…``. The HTTP status says whether the request could be
read at all (415 wrong content type, 401 no or bad key, 413 too large, 400 not a
SHIP request); a request that was read is answered 200, its outcome in the body (a
SHIP ``<Exception>`` when refused). It must be served over HTTPS in production: the
key travels in a header, so the TLS of the web server in front of Space protects it.
"""

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accesscontrol.api.authentication import use_api_key
from accesscontrol.views.base import client_address
from integrations.ship import operations
from integrations.ship.xml import (
    BAD_REQUEST,
    CONTENT_TYPE,
    MAX_XML_BYTES,
    NOT_AUTHENTICATED,
    TOO_LARGE,
    ShipError,
    build_error,
)

KEY_HEADER = "Salto-SHIP-Key"


def _answer(document: bytes, status: int = 200) -> HttpResponse:
    return HttpResponse(document, status=status, content_type=CONTENT_TYPE)


def _refusal(status: int, code: int, message: str) -> HttpResponse:
    return _answer(build_error("", ShipError(code, message)), status)


def api_token(request) -> str:
    """The API key the request carries, in SHIP's header or the REST API's; "" when none."""
    token = request.headers.get(KEY_HEADER, "").strip()
    if token:
        return token
    keyword, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if keyword.lower() in ("api-key", "bearer") else ""


@csrf_exempt  # no cookies: the API key authenticates each request
@require_POST
def ship_endpoint(request):
    if request.content_type != CONTENT_TYPE:
        return _refusal(415, BAD_REQUEST, f"The content type is {CONTENT_TYPE}.")
    token = api_token(request)
    key = use_api_key(token) if token else None
    if key is None:
        response = _refusal(401, NOT_AUTHENTICATED, f"Give a valid API key in the {KEY_HEADER} header.")
        response["WWW-Authenticate"] = "Api-Key"
        return response
    length = request.META.get("CONTENT_LENGTH") or "0"
    if not length.isdigit() or int(length) > MAX_XML_BYTES:
        return _refusal(413, TOO_LARGE, f"A SHIP request is at most {MAX_XML_BYTES} bytes.")
    answer, well_formed = operations.handle_document(request.body, key.operator, client_address(request))
    return _answer(answer, 200 if well_formed else 400)
