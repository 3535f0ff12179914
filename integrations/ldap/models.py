"""Which operators come from the directory: the sync deactivates only these, and LDAP logs in only these."""

from django.conf import settings
from django.db import models


class DirectoryAccount(models.Model):
    """Links an operator to its directory entry. An operator without one is local (password in the database)."""

    operator = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="directory_account"
    )
    dn = models.CharField("DN", max_length=1000, help_text="The entry's distinguished name, as last seen.")
    seen_at = models.DateTimeField(null=True, blank=True, help_text="Last found in the directory (login or sync).")
    missing_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Set when a sync found the entry gone and deactivated the operator; "
        "cleared (and the operator reactivated) when it is back.",
    )

    class Meta:
        verbose_name = "directory account"

    def __str__(self):
        return self.dn
