"""``manage.py purge_audit [--dry-run]``: the audit retention purge now (it runs daily on its own)."""

import json

from django.core.management.base import BaseCommand, CommandError

from accesscontrol import retention


class Command(BaseCommand):
    help = (
        "Archive, then delete, the audit records older than the retention policy (SPACE_AUDIT_KEEP_*_DAYS); "
        "--dry-run says what it would archive and delete."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count and list; write and delete nothing.")
        parser.add_argument("--batch", type=int, default=retention.BATCH, help="Ids per window (default %(default)s).")
        parser.add_argument("--json", action="store_true", help="Print the report as one JSON line.")

    def handle(self, *args, **options):
        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1.")
        report = retention.purge(dry_run=options["dry_run"], batch=options["batch"], via="command")
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict()))
        else:
            self.stdout.write(report.summary())
            for klass, counts in report.classes.items():
                for name in sorted(counts.files):
                    self.stdout.write(f"  {klass}: {name}")
        if report.skipped:
            raise CommandError(f"Nothing done: {report.skipped}.")
        if report.errors:
            raise CommandError("Some events were kept, their archive could not be written: " + "; ".join(report.errors))
