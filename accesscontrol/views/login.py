"""Logging in and out, the second step (a TOTP or backup code), and the operator's own account page.

The password is checked by ``django.contrib.auth.authenticate``, so every
configured backend applies (the database, LDAP). Before it, the lockout and
throttle of :mod:`accesscontrol.security`; after it, the second factor of
:mod:`accesscontrol.twofactor`. An operator is logged in (``auth.login``) only
once both are done, so a half-finished login opens nothing. The Django admin
logs in here too (space/urls.py).
"""

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, get_user_model, login, logout, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.http import HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import NoReverseMatch, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login

from accesscontrol import security, twofactor
from accesscontrol.forms.login import CodeForm, EnrolmentForm, LoginForm
from accesscontrol.models import BackupCodes
from accesscontrol.views.base import audit, client_address

PENDING_SESSION_KEY = "space_login_pending"  # the operator whose password was right, awaiting the second step
PENDING_SECONDS = 300
TEMPLATES = "accesscontrol/login/"


def _home() -> str:
    try:
        return resolve_url(settings.LOGIN_REDIRECT_URL)
    except NoReverseMatch:
        return "/"  # until the dashboard exists


def _next_url(request, value: str | None) -> str:
    if value and url_has_allowed_host_and_scheme(value, {request.get_host()}, require_https=request.is_secure()):
        return value
    return _home()


def _idle_minutes() -> int:
    return max(1, settings.SPACE_SESSION_IDLE_SECONDS // 60)


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request):
    next_url = _next_url(request, request.POST.get("next") or request.GET.get("next"))
    form = LoginForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        username, password = form.cleaned_data["username"], form.cleaned_data["password"]
        address = client_address(request)
        block = security.check(username, address)
        if block is not None:
            security.record_refusal(username, address, block)
            form.add_error(None, block.message)
        else:
            operator = authenticate(request, username=username, password=password)
            if operator is None:
                started = security.record_failure(username, address, "password")
                form.add_error(None, started.message if started else security.BAD_CREDENTIALS)
            else:
                return _after_password(request, operator, next_url)
    context = {
        "form": form,
        "next": next_url,
        "idle_minutes": _idle_minutes() if request.GET.get("reason") == "idle" else None,
        "page_title": "Log in",
    }
    return render(request, TEMPLATES + "login.html", context)


def _after_password(request, operator, next_url: str):
    if twofactor.has_second_factor(operator):
        request.session[PENDING_SESSION_KEY] = {
            "operator": operator.pk,
            "backend": operator.backend,
            "at": time.time(),
            "next": next_url,
        }
        return redirect("login_otp")
    must_enrol = twofactor.required_for(operator)
    _complete_login(request, operator, device=None, must_enrol=must_enrol)
    if must_enrol:
        return redirect("account_two_factor")  # the page says why
    return redirect(next_url)


def _complete_login(request, operator, device, must_enrol: bool = False) -> None:
    request.session.pop(PENDING_SESSION_KEY, None)
    login(request, operator, backend=operator.backend)
    detail = {"second_factor": "none"}
    if device is not None:
        otp_login(request, device)
        detail["second_factor"] = "backup_code" if isinstance(device, BackupCodes) else "totp"
    if must_enrol:
        request.session[twofactor.ENROL_SESSION_KEY] = True
        detail["second_factor"] = "enrolment_required"
    security.record_success(operator, client_address(request), detail)


def _pending_operator(request):
    pending = request.session.get(PENDING_SESSION_KEY)
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        return None, None
    operator = get_user_model()._default_manager.filter(pk=pending.get("operator"), is_active=True).first()
    if operator is None:
        return None, None
    operator.backend = pending["backend"]
    return operator, pending


@sensitive_post_parameters("code")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def login_otp_view(request):
    operator, pending = _pending_operator(request)
    if operator is None:
        request.session.pop(PENDING_SESSION_KEY, None)
        messages.info(request, "Log in with your username and password first.")
        return redirect("login")
    form = CodeForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        address = client_address(request)
        username = operator.get_username()
        block = security.check(username, address)
        device = None if block else twofactor.verify(operator, form.cleaned_data["code"])
        if block is not None:
            security.record_refusal(username, address, block, operator=operator)
        elif device is None:
            block = security.record_failure(username, address, "otp", operator=operator)
            form.add_error("code", "That code is not right. Codes change every 30 seconds; try the current one.")
        if block is not None:
            request.session.pop(PENDING_SESSION_KEY, None)
            messages.error(request, block.message)
            return redirect("login")
        if device is not None:
            _complete_login(request, operator, device)
            if isinstance(device, BackupCodes):
                left = twofactor.backup_codes_left(operator)
                messages.warning(request, f"You used a backup code; {left} left. New ones are on your account page.")
            return redirect(pending["next"])
    return render(request, TEMPLATES + "otp.html", {"form": form, "page_title": "Two-factor login"})


@require_POST
def logout_view(request):
    """Log off; ``reason=idle`` when the page did it after the idle time (static/space.js)."""
    idle = request.POST.get("reason") == "idle"
    if request.user.is_authenticated:
        audit(request, "logout", detail={"reason": "idle" if idle else "operator"})
    logout(request)
    return redirect(reverse("login") + ("?reason=idle" if idle else ""))


@require_http_methods(["GET", "POST"])
def session_keepalive(request):
    """Pinged by an open page while its operator is active, so a page that makes no requests (the monitor)
    keeps its session; the session middleware renews it (SESSION_SAVE_EVERY_REQUEST)."""
    return HttpResponse(status=204 if request.user.is_authenticated else 401)


def admin_login(request):
    """The admin logs in through the same view: the same lockout, second factor and auditor."""
    query = request.GET.copy()
    query.setdefault("next", reverse("admin:index"))
    return redirect(f"{reverse('login')}?{query.urlencode()}")


# --- the operator's own account --------------------------------------------------------------


def _account_context(request, **forms) -> dict:
    operator = request.user
    device = twofactor.authenticator(operator)
    context = {
        "page_title": "Your account",
        "password_managed_elsewhere": not operator.has_usable_password(),
        "password_form": forms.get("password_form") or PasswordChangeForm(operator),
        "remove_form": forms.get("remove_form") or CodeForm(prefix="remove", autofocus=False),
        "authenticator": device,
        "two_factor_required": twofactor.required_for(operator),
        "backup_codes_left": twofactor.backup_codes_left(operator) if device else 0,
    }
    context["password_form"].fields["old_password"].widget.attrs.pop("autofocus", None)
    return context


@sensitive_post_parameters("old_password", "new_password1", "new_password2", "remove-code")
@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def account_view(request):
    operator = request.user
    action = request.POST.get("action")
    if action == "password" and operator.has_usable_password():
        form = PasswordChangeForm(operator, request.POST)
        if form.is_valid():
            form.save()
            update_session_auth_hash(request, form.user)
            audit(request, "change_password", operator)
            messages.success(request, "Your password has been changed.")
            return redirect("account")
        return render(request, TEMPLATES + "account.html", _account_context(request, password_form=form))
    if action == "remove_two_factor":
        return _remove_two_factor(request)
    if action == "backup_codes" and twofactor.has_second_factor(operator):
        codes = twofactor.new_backup_codes(operator)
        audit(request, "backup_codes_renew", operator)
        context = {"codes": codes, "page_title": "New backup codes", "continue_url": reverse("account")}
        return render(request, TEMPLATES + "backup_codes.html", context)
    return render(request, TEMPLATES + "account.html", _account_context(request))


def _remove_two_factor(request):
    operator = request.user
    if twofactor.required_for(operator):
        messages.error(request, "Your operator group requires two-factor login, so it cannot be removed.")
        return redirect("account")
    form = CodeForm(request.POST, prefix="remove", autofocus=False)
    if form.is_valid():
        if twofactor.verify(operator, form.cleaned_data["code"]) is not None:
            twofactor.remove(operator)
            audit(request, "two_factor_remove", operator)
            messages.success(request, "Two-factor login is off for your account.")
            return redirect("account")
        form.add_error("code", "That code is not right.")
    return render(request, TEMPLATES + "account.html", _account_context(request, remove_form=form))


@sensitive_post_parameters("code")
@login_required
@never_cache
@require_http_methods(["GET", "POST"])
def two_factor_enrol_view(request):
    operator = request.user
    if twofactor.has_second_factor(operator):
        messages.info(request, "Two-factor login is already set up for your account.")
        return redirect("account")
    device = twofactor.start_enrolment(operator)
    form = EnrolmentForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        codes = twofactor.confirm_enrolment(device, form.cleaned_data["code"])
        if codes is not None:
            otp_login(request, device)
            request.session.pop(twofactor.ENROL_SESSION_KEY, None)
            audit(request, "two_factor_enrol", operator)
            context = {"codes": codes, "enrolled": True, "continue_url": _home(), "page_title": "Two-factor is on"}
            return render(request, TEMPLATES + "backup_codes.html", context)
        form.add_error("code", "That code is not right. Check the time on your phone and try the current code.")
    context = {
        "form": form,
        "qr_svg": twofactor.qr_svg(device),
        "secret": twofactor.secret_text(device),
        "required": bool(request.session.get(twofactor.ENROL_SESSION_KEY)),
        "page_title": "Set up two-factor login",
    }
    return render(request, TEMPLATES + "enrol.html", context)
