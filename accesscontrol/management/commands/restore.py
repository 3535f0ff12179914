"""``manage.py restore FILE``: a backup into an empty database; ``--verify``: check a backup, restore nothing."""

import contextlib
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connections

from accesscontrol import backups
from core import backup as engine

WRONG_KEY_HINT = (
    " Give the key the backup was made with: SPACE_BACKUP_KEY_FILE=/path/to/key (or --key-file); on a new "
    "machine the embedded profile has generated a key of its own in var/backup_key."
)


class Command(BaseCommand):
    help = "Restore a backup into the configured, empty database; with --verify, check it and restore nothing."

    def add_arguments(self, parser):
        parser.add_argument("file", help="A .spacebackup file.")
        parser.add_argument(
            "--verify", action="store_true", help="Decrypt, check checksums and row counts; restore nothing."
        )
        parser.add_argument("--key-file", help="The backup key's file, instead of SPACE_BACKUP_KEY(_FILE).")

    def handle(self, *args, file, verify, key_file, **options):
        path = Path(file)
        key = self.key(key_file)
        started = time.monotonic()
        connections.close_all()  # the restore replaces the database: no connection of ours may hold it
        try:
            if verify:
                manifest = engine.verify(path, key, database=backups.database(), work_dir=backups.work_dir())
            else:
                manifest = engine.restore(
                    path, key, database=backups.database(), work_dir=backups.work_dir(), folders=backups.files()
                )
        except engine.WrongKey as error:
            raise CommandError(str(error) + WRONG_KEY_HINT) from None
        except engine.BackupError as error:
            raise CommandError(str(error)) from None
        except OSError as error:
            raise CommandError(backups.describe(error)) from None
        seconds = time.monotonic() - started
        tables, rows = len(manifest["tables"]), sum(manifest["tables"].values())
        photos = manifest.get("folders", {}).get("photos", {}).get("files", 0)
        made = f"made {manifest['created_at']} by Space {manifest['space_version']}"
        if verify:
            self.stdout.write(
                f"{path.name} is sound ({made}): {tables} tables, {rows:,} rows, {photos:,} photo files, "
                f"checked in {seconds:.1f} s"
            )
            return
        # The backup's own row was "running" in its snapshot (a backup of a Space older than that table: no row).
        with contextlib.suppress(DatabaseError):
            backups.note_restored(path, manifest)
        self.stdout.write(
            f"Restored {path.name} ({made}): {tables} tables, {rows:,} rows, {photos:,} photo files, "
            f"in {seconds:.1f} s.\n"
            "Next: manage.py migrate (if this Space is newer than the backup), with the same master key "
            "(SPACE_MASTER_KEY) as the site had."
        )

    def key(self, key_file: str | None) -> str:
        if key_file:
            try:
                key = Path(key_file).read_text().strip()
            except OSError as error:
                raise CommandError(f"Cannot read the key file {key_file}: {error.strerror}.") from None
        else:
            key = settings.SPACE_BACKUP_KEY
        try:
            return engine.check_key(key)
        except engine.BackupError as error:
            raise CommandError(str(error)) from None
