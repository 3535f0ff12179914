import ldap
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from integrations.ldap.sync import DirectoryUnusable, sync_directory


class Command(BaseCommand):
    help = (
        "Bring the operators from the directory (LDAP) in line with it: create, update, map groups, "
        "deactivate the ones gone from it. Prints one summary line."
    )

    def handle(self, *args, **options):
        if settings.SPACE_LDAP is None:
            raise CommandError("LDAP is not configured (SPACE_LDAP_URL is not set)")
        try:
            result = sync_directory(settings.SPACE_LDAP)
        except ldap.LDAPError as exc:
            raise CommandError(f"LDAP sync failed, nothing changed: {exc}") from exc
        except DirectoryUnusable as exc:
            raise CommandError(f"LDAP sync refused: {exc}") from exc
        self.stdout.write(result.summary())
