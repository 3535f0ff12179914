"""Helpers for the login tests: log in through the pages, compute the codes an authenticator app would show."""

import time

from django.urls import reverse
from django_otp.oath import TOTP

from accesscontrol import twofactor
from accesscontrol.models import Authenticator

PASSWORD = "correct horse battery"


def log_in(client, username: str, password: str = PASSWORD, address: str = "127.0.0.1", **data):
    return client.post(reverse("login"), {"username": username, "password": password, **data}, REMOTE_ADDR=address)


def send_code(client, code: str, address: str = "127.0.0.1"):
    return client.post(reverse("login_otp"), {"code": code}, REMOTE_ADDR=address)


def code_for(device: Authenticator, steps_ahead: int = 0) -> str:
    """The code the operator's app shows now (or ``steps_ahead`` 30-second steps from now)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def enrolled(operator) -> Authenticator:
    """An operator with a confirmed authenticator (as after enrolment), and backup codes."""
    device = Authenticator.objects.create(user=operator, name="Authenticator app", confirmed=True)
    twofactor.new_backup_codes(operator)
    return device


def signed_in_operator_id(client):
    return client.session.get("_auth_user_id")
