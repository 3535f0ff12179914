from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accesscontrol.models import Operator
from integrations.ship.host import HostError, sync_user


class Command(BaseCommand):
    help = (
        "Ask the outside SHIP host (SPACE_SHIP_HOST_URL) for users' data and permissions and apply them to the "
        "cardholders with those external ids, as the operator named (their permissions and partitions apply)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--ext-user-id", action="append", required=True, help="ExtUserID; may be repeated")
        parser.add_argument("--operator", required=True, help="username of the operator the changes are made as")

    def handle(self, *args, **options):
        if not settings.SPACE_SHIP_HOST_URL:
            raise CommandError("No SHIP host is configured (SPACE_SHIP_HOST_URL is not set)")
        operator = Operator.objects.filter(username=options["operator"], is_active=True).first()
        if operator is None:
            raise CommandError(f"No active operator {options['operator']!r}")
        failed = 0
        for ext_id in options["ext_user_id"]:
            try:
                synced = sync_user(ext_id, operator)
            except HostError as error:
                failed += 1
                self.stderr.write(f"{ext_id}: {error}")
            else:
                self.stdout.write(f"{ext_id}: {'created' if synced.created else 'updated'}")
        if failed:
            raise CommandError(f"{failed} of {len(options['ext_user_id'])} users not synced")
