"""``manage.py verify_archive FILE...``: check audit archive files against their signatures and format."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from accesscontrol.archive import ArchiveError, verify


class Command(BaseCommand):
    help = (
        "Check audit archive files (audit-<class>-<YYYY>-<MM>.jsonl.gz): the signature under the master key, "
        "the event count, JSON, ids and times. Exits non-zero when any file fails."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", type=Path, metavar="FILE")

    def handle(self, *args, **options):
        failed = []
        for path in options["files"]:
            try:
                summary = verify(path)
            except (ArchiveError, OSError) as error:
                failed.append(path.name)
                self.stderr.write(f"FAILED {path}: {error}")
            else:
                self.stdout.write(f"OK {summary}")
        if failed:
            raise CommandError(f"{len(failed)} of {len(options['files'])} archive files failed: {', '.join(failed)}")
