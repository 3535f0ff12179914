"""The hourly purge: what no one needs any more leaves the database.

- blacklist entries whose keys would have expired anyway (accesscontrol/blacklist.py);
- RuleChange rows older than a day (every rules snapshot has applied them, or rebuilds);
- PresenceChange rows older than a day (every presence view has followed them, or reloads);
- photo files no cardholder names, an hour old (accesscontrol/photos.py: left by a rollback or a crash).

Beat runs it as ``accesscontrol.tasks.purge_blacklist``; without Celery, runspace runs it
(the ``blacklist-purge`` entry of the table of services).
"""

import datetime as dt

from accesscontrol import blacklist, photos, presence
from accesscontrol.snapshot import purge_rule_changes


def purge(now: dt.datetime | None = None) -> dict[str, int]:
    """Purge all four; returns how many of each went."""
    return {
        "blacklist_entries": blacklist.purge_expired(now),
        "rule_changes": purge_rule_changes(now=now),
        "presence_changes": presence.purge_changes(now=now),
        "photo_files": photos.sweep_orphans(now),
    }


def summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in counts.items())
