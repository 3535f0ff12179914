"""An operator whose group requires a second factor, and who has none yet, sets one up before anything else."""

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

from accesscontrol.twofactor import ENROL_SESSION_KEY

# What such an operator may still reach: the enrolment itself, and the way out.
OPEN_DURING_ENROLMENT = ("account_two_factor", "logout", "session_keepalive", "login", "login_otp")


class TwoFactorEnrolmentMiddleware:
    """Set by the login view in the session, so other requests pay no query. API keys never carry a session."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        session = getattr(request, "session", None)
        if session is not None and session.get(ENROL_SESSION_KEY) and not self._open(request.path):
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": "Set up two-factor login first."}, status=403)
            return redirect("account_two_factor")
        return self.get_response(request)

    def _open(self, path: str) -> bool:
        static = "/" + settings.STATIC_URL.lstrip("/")
        return path.startswith(static) or path in {reverse(name) for name in OPEN_DURING_ENROLMENT}
