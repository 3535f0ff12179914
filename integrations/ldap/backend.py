"""Login against the directory: django-auth-ldap, with Space's own rules on top.

- An operator comes from the directory when it has a DirectoryAccount. A local operator's username
  is never taken over by a directory entry of the same name: LDAP refuses it, the database decides.
- At each login the operator's mapped operator groups follow its directory groups (integrations.ldap.groups).
- An operator the sync deactivated because it had left the directory is active again once it can log in;
  one an administrator deactivated stays out.
- A directory that cannot be reached refuses the login with an error in the log, never a server error.
"""

import logging

import ldap
from django.db import transaction
from django.utils import timezone
from django_auth_ldap.backend import LDAPBackend, ldap_error

from accesscontrol.actions import record_operator_action
from accesscontrol.views.base import client_address
from integrations.ldap.config import normalize_dn
from integrations.ldap.directory import describe
from integrations.ldap.groups import follow_directory, mapped_operator_groups, wanted_group_names
from integrations.ldap.models import DirectoryAccount

logger = logging.getLogger(__name__)


class DirectoryBackend(LDAPBackend):
    _request = None

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username and self._is_local(username.strip()):
            return None  # the database backend's: no need to ask (or wait for) the directory
        self._request = request  # Django makes a backend per authenticate() call
        return super().authenticate(request, username=username, password=password, **kwargs)

    def _is_local(self, username: str) -> bool:
        return self.get_user_model().objects.filter(username__iexact=username, directory_account__isnull=True).exists()

    def get_user(self, user_id):
        # django-auth-ldap's keeps a deactivated operator's session alive; the sync's deactivation must end it.
        operator = super().get_user(user_id)
        return operator if operator is not None and operator.is_active else None

    def get_or_build_user(self, username, ldap_user):
        operator, built = super().get_or_build_user(username, ldap_user)
        if built:
            # Saved now with its link, so that no operator from the directory ever exists without one.
            with transaction.atomic():
                operator.set_unusable_password()
                operator.save()
                DirectoryAccount.objects.create(operator=operator, dn=ldap_user.dn, seen_at=timezone.now())
        elif not DirectoryAccount.objects.filter(operator=operator).exists():  # made local since authenticate()
            logger.warning("LDAP login refused for %s: a local operator has this username", username)
            raise ldap_user.AuthenticationFailed("a local operator has this username")
        return operator, built

    def authenticate_ldap_user(self, ldap_user, password):
        operator = super().authenticate_ldap_user(ldap_user, password)
        if operator is None:
            return None
        config = self._config()
        try:
            directory_groups = {normalize_dn(dn) for dn in ldap_user.group_dns} if config.group_map else set()
        except ldap.LDAPError as exc:
            logger.error("LDAP login refused for %s: cannot read the directory's groups: %s", operator, describe(exc))
            return None
        with transaction.atomic():
            account = DirectoryAccount.objects.select_for_update().get(operator=operator)
            reactivated = not operator.is_active and account.missing_since is not None
            if reactivated:
                operator.is_active = True
                operator.save(update_fields=["is_active"])
            account.dn = ldap_user.dn
            account.seen_at = timezone.now()
            account.missing_since = None
            account.save(update_fields=["dn", "seen_at", "missing_since"])
            added, removed = [], []
            if config.group_map:
                groups = mapped_operator_groups(config)
                added, removed = follow_directory(operator, wanted_group_names(config, directory_groups), groups)
            if added or removed or reactivated:
                detail = {"added_to": added, "removed_from": removed, "reactivated": reactivated}
                address = client_address(self._request) if self._request is not None else None
                record_operator_action(None, "ldap_login_sync", operator, via="web", detail=detail, address=address)
        if not operator.is_active:
            logger.info("LDAP login refused for %s: the operator is deactivated", operator)
            return None
        return operator

    @staticmethod
    def _config():
        from django.conf import settings

        return settings.SPACE_LDAP


_CONTEXTS = {"search_for_user_dn": "looking up the user", "authenticate": "checking the password"}


def _log_directory_error(sender, context, user, request, exception, **kwargs):
    doing = _CONTEXTS.get(context, context.replace("_", " "))
    logger.error("LDAP login failed, directory error while %s: %s", doing, describe(exception))


ldap_error.connect(_log_directory_error, sender=DirectoryBackend, dispatch_uid="space-ldap-error")
