"""``manage.py sync_cardholders [SOURCE ...] [--dry-run] [--full]``: sync cardholders from their sources now."""

import json

from django.core.management.base import BaseCommand, CommandError

from accesscontrol import sync
from accesscontrol.models import CardholderSource, SyncStatus


class Command(BaseCommand):
    help = (
        "Read each cardholder source (a directory, an HR feed) and bring its cardholders into line: added, "
        "changed, leavers deactivated with their keys cancelled. --dry-run prints the diff and changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("sources", nargs="*", help="Source names (default: every enabled source).")
        parser.add_argument("--dry-run", action="store_true", help="Print what would change; change nothing.")
        parser.add_argument("--full", action="store_true", help="Read everything, not only what changed.")
        parser.add_argument("--json", action="store_true", help="One JSON line per source.")

    def handle(self, *args, **options):
        names = options["sources"]
        sources = list(
            CardholderSource.objects.filter(name__in=names) if names else CardholderSource.objects.filter(enabled=True)
        )
        missing = sorted(set(names) - {source.name for source in sources})
        if missing:
            known = ", ".join(CardholderSource.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"No source named {', '.join(missing)} (sources: {known}).")
        if not sources:
            self.stdout.write("No enabled cardholder sources.")
            return
        failed = []
        for source in sources:
            try:
                row = sync.run(source, dry_run=options["dry_run"], full=True if options["full"] else None)
            except (sync.SyncBusy, sync.SourceError) as error:
                failed.append(f"{source}: {error}")
                continue
            if options["json"]:
                self.stdout.write(
                    json.dumps({"source": source.name, "run": row.pk, "status": row.status, "counts": row.counts})
                )
            else:
                self.stdout.write(f"{source}: {row.get_status_display()}. {row.message}")
                if options["dry_run"]:
                    self.write_diff(row.diff)
                for error in row.errors[:20]:
                    self.stdout.write(f"  error: {error['where']}, {error['field']}: {error['message']}")
            if row.status in (SyncStatus.FAILED, SyncStatus.HELD):
                failed.append(f"{source}: {row.message}")
        if failed:
            raise CommandError("; ".join(failed))

    def write_diff(self, diff: dict) -> None:
        for person in diff.get("added", []):
            levels = ", ".join(person["access_levels"]) or "no access levels"
            self.stdout.write(f"  + {person['name']} ({person['key']}): {person['partition']}; {levels}")
        for person in diff.get("changed", []) + diff.get("adopted", []):
            changes = "; ".join(f"{name} {old!r} -> {new!r}" for name, (old, new) in person["changes"].items())
            self.stdout.write(f"  ~ {person['name']} ({person['key']}): {changes}")
        for person in diff.get("reactivated", []):
            self.stdout.write(f"  ^ {person['name']} ({person['key']}) returns")
        for person in diff.get("left", []):
            self.stdout.write(
                f"  - {person['name']} ({person['key']}): {person['reason']}, {person['keys']} keys to cancel"
            )
