from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission

from accesscontrol.models import OperatorGroup


class OperatorBackend(ModelBackend):
    """Passwords from the database; permissions from the operator's groups."""

    def _get_group_permissions(self, user_obj):
        # OperatorGroup.permissions has no reverse accessor (related_name="+"), so go through its table.
        links = OperatorGroup.permissions.through.objects.filter(operatorgroup__members=user_obj)
        return Permission.objects.filter(pk__in=links.values("permission_id"))
