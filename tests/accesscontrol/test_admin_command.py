"""``manage.py create_admin``: the first operator, with a password shown once."""

import io

import pytest
from django.core.management import CommandError, call_command

from accesscontrol.models import Operator, SystemAuditEntry

pytestmark = pytest.mark.django_db


def create_admin(*args) -> str:
    out = io.StringIO()
    call_command("create_admin", *args, stdout=out)
    return out.getvalue().strip()


def test_it_creates_a_superuser_and_prints_its_password_once():
    output = create_admin()

    password = output.rsplit(": ", 1)[1]
    admin = Operator.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.is_active
    assert admin.check_password(password)
    assert len(password) >= 16
    assert SystemAuditEntry.objects.get().action == "add"


def test_it_refuses_to_overwrite_an_existing_admin():
    password = create_admin("--password-only")

    with pytest.raises(CommandError, match="exists already"):
        create_admin()

    assert Operator.objects.get(username="admin").check_password(password)


def test_if_missing_does_nothing_when_the_admin_exists():
    password = create_admin("--password-only")

    assert create_admin("--if-missing", "--password-only") == ""
    assert Operator.objects.get(username="admin").check_password(password)


def test_reset_gives_a_new_password():
    old = create_admin("--password-only")

    new = create_admin("--reset", "--password-only")

    admin = Operator.objects.get(username="admin")
    assert new != old
    assert admin.check_password(new) and not admin.check_password(old)
    assert list(SystemAuditEntry.objects.order_by("id").values_list("action", flat=True)) == ["add", "reset_password"]
