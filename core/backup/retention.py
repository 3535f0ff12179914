"""Which backups to keep: the newest of each of the last N days, ISO weeks and months that have one.

Periods are counted among those that hold a backup (as borg and restic do),
not on the calendar: after ten days without backups (a share unmounted, a
holiday shutdown) the old ones still stand, where calendar days would have
dropped every daily one at once. The newest backup is always kept. Times are
local (the site's time zone): a day is the site's day.
"""

import datetime as dt
from collections.abc import Hashable, Mapping


def _day(moment: dt.datetime) -> tuple:
    return (moment.year, moment.month, moment.day)


def _week(moment: dt.datetime) -> tuple:
    year, week, _ = moment.isocalendar()
    return (year, week)


def _month(moment: dt.datetime) -> tuple:
    return (moment.year, moment.month)


def to_keep(backups: Mapping[Hashable, dt.datetime], *, daily: int, weekly: int, monthly: int) -> set:
    """The keys of ``backups`` (key -> local time made) to keep; the others may go."""
    newest_first = sorted(backups, key=lambda item: backups[item], reverse=True)
    keep = set(newest_first[:1])
    for period, count in ((_day, daily), (_week, weekly), (_month, monthly)):
        seen = set()
        for item in newest_first:
            if len(seen) >= count:
                break
            bucket = period(backups[item])
            if bucket not in seen:
                seen.add(bucket)
                keep.add(item)
    return keep
