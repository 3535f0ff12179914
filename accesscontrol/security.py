"""Lockout and throttling of logins, worked out from the ``LoginAttempt`` rows.

Per username: ``SPACE_LOGIN_MAX_FAILURES`` failures (a wrong password or a
wrong second-factor code) within ``SPACE_LOGIN_FAILURE_WINDOW_SECONDS`` lock
that username for ``SPACE_LOGIN_LOCKOUT_SECONDS``, the right password included;
a successful login starts the count afresh. Per source address: the same with
``SPACE_LOGIN_MAX_FAILURES_PER_ADDRESS``, for every username tried from it (a
success does not reset it, or one valid account would hide the guessing of
others). Tries refused during a lockout are recorded but do not extend it.

Unknown usernames are counted and locked like known ones, so neither the
messages nor the lockout tell whether a username exists. Every failure,
lockout, login and logout is also in the system auditor.
"""

import datetime as dt
import math
import time
from collections import deque
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from accesscontrol.actions import record_operator_action
from accesscontrol.models import LoginAttempt

VIA = "web"
COUNTED = ("password", "otp")  # what counts towards a lockout; "locked" and "throttled" refusals do not
BAD_CREDENTIALS = "The username or password is not right."
PURGE_EVERY_SECONDS = 3600

_purged_at: float | None = None  # per process: the purge runs at most once an hour, after a successful login


@dataclass(frozen=True)
class Block:
    """Why logins are refused for now, and until when."""

    reason: str  # "locked" (the username) or "throttled" (the source address)
    until: dt.datetime

    @property
    def minutes(self) -> int:
        return max(1, math.ceil((self.until - timezone.now()).total_seconds() / 60))

    @property
    def message(self) -> str:
        wait = f"{self.minutes} minute{'s' if self.minutes != 1 else ''}"
        if self.reason == "throttled":
            return f"Too many failed logins from your address. Try again in {wait}."
        return f"Too many failed logins for this username. Try again in {wait}."


def normalised(username: str) -> str:
    """The form attempts are counted under: "Admin" and " admin" are the same username to the lockout."""
    return username.strip().lower()[:150]


def _lock_end(rows, limit: int, window: dt.timedelta, lockout: dt.timedelta) -> dt.datetime | None:
    """When the last lockout in ``rows`` ((at, succeeded), oldest first) ends, or None if none started."""
    recent: deque = deque()
    until = None
    for at, succeeded in rows:
        if until is not None and at >= until:
            recent.clear()  # a lockout that has run out starts the count afresh
            until = None
        if succeeded:
            recent.clear()
            continue
        if until is not None:
            continue
        recent.append(at)
        while at - recent[0] > window:
            recent.popleft()
        if len(recent) >= limit:
            until = at + lockout
            recent.clear()
    return until


def _block(reason: str, filters: dict, limit: int, count_successes: bool, now) -> Block | None:
    window = dt.timedelta(seconds=settings.SPACE_LOGIN_FAILURE_WINDOW_SECONDS)
    lockout = dt.timedelta(seconds=settings.SPACE_LOGIN_LOCKOUT_SECONDS)
    # A lockout still running now began at most `lockout` ago, on failures at most `window` before that.
    attempts = LoginAttempt.objects.filter(at__gte=now - window - lockout, **filters)
    counted = attempts.filter(reason__in=COUNTED, succeeded=False)
    if count_successes:
        counted = counted | attempts.filter(succeeded=True)
    rows = counted.order_by("at", "id").values_list("at", "succeeded")
    until = _lock_end(rows, limit, window, lockout)
    return Block(reason, until) if until is not None and until > now else None


def user_block(username: str, now=None) -> Block | None:
    now = now or timezone.now()
    return _block("locked", {"username": normalised(username)}, settings.SPACE_LOGIN_MAX_FAILURES, True, now)


def address_block(address: str | None, now=None) -> Block | None:
    if not address:
        return None
    now = now or timezone.now()
    return _block("throttled", {"address": address}, settings.SPACE_LOGIN_MAX_FAILURES_PER_ADDRESS, False, now)


def check(username: str, address: str | None) -> Block | None:
    """Whether a login for ``username`` from ``address`` is refused right now, before any password is checked."""
    return address_block(address) or user_block(username)


def _operator_named(username: str):
    return get_user_model()._default_manager.filter(username=username).first()


def record_refusal(username: str, address: str | None, block: Block, operator=None) -> None:
    """A try made during a lockout or throttle: refused without looking at the password or code."""
    LoginAttempt.objects.create(username=normalised(username), address=address, reason=block.reason)
    operator = operator or _operator_named(username)
    record_operator_action(
        operator,
        "login_failed",
        via=VIA,
        address=address,
        detail={"username": username, "reason": block.reason, "until": block.until.isoformat()},
    )


def record_failure(username: str, address: str | None, reason: str, operator=None) -> Block | None:
    """A wrong password (``reason`` "password") or second-factor code ("otp"); returns the lockout it starts."""
    LoginAttempt.objects.create(username=normalised(username), address=address, reason=reason)
    operator = operator or _operator_named(username)
    record_operator_action(
        operator, "login_failed", via=VIA, address=address, detail={"username": username, "reason": reason}
    )
    # Checked free before this failure, so a block now is one this failure started.
    started = address_block(address) or user_block(username)
    if started is not None:
        detail = {"username": username, "until": started.until.isoformat()}
        if started.reason == "throttled":
            detail["failures"] = settings.SPACE_LOGIN_MAX_FAILURES_PER_ADDRESS
            record_operator_action(operator, "login_throttled", via=VIA, address=address, detail=detail)
        else:
            detail["failures"] = settings.SPACE_LOGIN_MAX_FAILURES
            record_operator_action(operator, "login_locked", via=VIA, address=address, detail=detail)
    return started


def record_success(operator, address: str | None, detail: dict | None = None) -> None:
    LoginAttempt.objects.create(username=normalised(operator.get_username()), address=address, succeeded=True)
    record_operator_action(operator, "login", via=VIA, address=address, detail=detail or {})
    purge_old_attempts()


def purge_old_attempts(force: bool = False) -> int:
    """Forget login attempts older than ``SPACE_LOGIN_ATTEMPTS_KEPT_DAYS`` (the auditor keeps the record)."""
    global _purged_at
    if not force and _purged_at is not None and time.monotonic() - _purged_at < PURGE_EVERY_SECONDS:
        return 0
    _purged_at = time.monotonic()
    cutoff = timezone.now() - dt.timedelta(days=settings.SPACE_LOGIN_ATTEMPTS_KEPT_DAYS)
    deleted, _ = LoginAttempt.objects.filter(at__lt=cutoff).delete()
    return deleted
