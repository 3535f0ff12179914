from rest_framework import permissions

from accesscontrol.permissions import permission_name

ACTIONS = {
    "GET": "view",
    "HEAD": "view",
    "OPTIONS": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}


class OperatorPermission(permissions.BasePermission):
    """The operator must hold the model permission for the request's method.

    Which rows they reach is decided by ``restrict`` in the viewset's queryset.
    Views without a model say what they need in ``required_permission``; custom
    actions whose method says the wrong thing (a POST that changes, not adds)
    name their action in ``permission_action``.
    """

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        required = getattr(view, "required_permission", None)
        if required is None:
            queryset = getattr(view, "queryset", None)
            if queryset is None:
                return False
            action = getattr(view, "permission_action", None) or ACTIONS.get(request.method, "change")
            required = permission_name(queryset.model, action)
        return user.has_perm(required)
