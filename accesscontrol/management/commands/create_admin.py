"""``manage.py create_admin``: the first administrator, with a generated password shown once."""

import secrets
import string

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accesscontrol.actions import record_operator_action
from accesscontrol.models import Operator

# No look-alikes (0/O, 1/l/I): the password is read off a terminal and typed in.
ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")
SYMBOLS = "#%+-=@"  # easy to type on any keyboard layout
PASSWORD_LENGTH = 16


def generate_password() -> str:
    while True:
        password = "".join(secrets.choice(ALPHABET + SYMBOLS) for _ in range(PASSWORD_LENGTH))
        # The password policy (accesscontrol.passwords) wants letters, digits and symbols.
        if all(any(c in group for c in password) for group in (string.ascii_letters, string.digits, SYMBOLS)):
            return password


class Command(BaseCommand):
    help = "Create the administrator operator with a generated password, printed once."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--reset", action="store_true", help="Give an existing operator a new password.")
        parser.add_argument(
            "--if-missing", action="store_true", help="Do nothing (and succeed) when the operator already exists."
        )
        parser.add_argument("--password-only", action="store_true", help="Print only the password (for scripts).")

    def handle(self, *args, username, reset, if_missing, password_only, **options):
        operator = Operator.objects.filter(username=username).first()
        if operator and not reset:
            if if_missing:
                return
            raise CommandError(
                f'The operator "{username}" exists already; '
                f"give it a new password with: manage.py create_admin --username {username} --reset"
            )
        password = generate_password()
        with transaction.atomic():
            if operator is None:
                operator = Operator.objects.create_superuser(username=username, email="", password=password)
                action = "add"
            else:
                operator.set_password(password)
                operator.is_active = operator.is_staff = operator.is_superuser = True
                operator.save()
                action = "reset_password"
            record_operator_action(None, action, operator, via="command")
        if password_only:
            self.stdout.write(password)
            return
        verb = "Created" if action == "add" else "Reset the password of"
        self.stdout.write(f'{verb} operator "{username}". Password (not shown again): {password}')
