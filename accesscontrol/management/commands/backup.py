"""``manage.py backup``: a backup now, into the backup folder, while Space runs (docs/backups.md)."""

from django.core.management.base import BaseCommand, CommandError

from accesscontrol import backups
from accesscontrol.models import BackupOutcome, BackupTrigger


class Command(BaseCommand):
    help = "Back up the database now into SPACE_BACKUP_DIR (encrypted under the backup key); prune old backups."

    def handle(self, *args, **options):
        row = backups.back_up(BackupTrigger.MANUAL)
        if row.outcome != BackupOutcome.OK:
            raise CommandError(f"The backup failed: {row.error}")
        self.stdout.write(
            f"{backups.folder() / row.file_name}: {row.size:,} bytes, {row.rows:,} rows, in {row.seconds:.1f} s"
        )
