"""REST clients logged in as operators with exactly the rights a test gives them."""

from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from accesscontrol.models import OperatorGroup
from tests.factories import make_operator, unique


def client_for(operator) -> APIClient:
    client = APIClient()
    client.force_login(operator)
    return client


def client_with(*permissions, partitions=(), all_partitions=False) -> APIClient:
    """A logged-in client whose operator holds ``permissions`` ("app.codename") in ``partitions``."""
    return client_for(make_operator(*permissions, partitions=partitions, all_partitions=all_partitions))


def superuser_client() -> APIClient:
    return client_for(make_operator(is_superuser=True))


def grant(operator, permission: str, partitions=()) -> None:
    """Give ``operator`` one more ``permission`` ("app.codename"), in ``partitions`` only, through a new group."""
    app_label, codename = permission.split(".")
    group = OperatorGroup.objects.create(name=unique("Group"))
    group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    group.partitions.set(partitions)
    group.members.add(operator)
