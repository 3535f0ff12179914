"""When an access point's opening mode changes by itself: its schedule's changes laid on the calendar.

Pure, like the engine: a schedule is a list of :class:`Change` (a local time, the day types it applies on,
the mode it sets), the snapshot gives the site's time zone and the calendars' day types, and the instant is
always an argument.

A day's changes are those whose day mask has the date's bit (:func:`accesscontrol.engine.day_type_bits`: a
holiday or special day of the calendar replaces the weekday). Daylight saving time:

- a change whose local time falls in the spring-forward gap happens once, at the first valid instant (the
  transition itself);
- a change whose local time falls in the repeated hour of the fall-back day happens once, the first time;
- changes that land on the same instant (same local time, or several in the gap) count as one: the last
  listed for the same local time, and the latest local time, wins.

Nothing happens twice, and the mode in force between two changes is the last change's. Instants come back
in UTC.
"""

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from accesscontrol import engine

LOOK_BACK_DAYS = 8  # a weekly schedule's last change is at most a week ago (plus a day for DST shifts)
LOOK_AHEAD_DAYS = 8
DAY = 86_400


@dataclass(frozen=True, slots=True)
class Change:
    seconds: int  # after local midnight
    days: int  # engine.DAY_BITS mask
    mode: str

    def __post_init__(self):
        if not 0 <= self.seconds < DAY:
            raise ValueError(f"a change's time must be within the day (0 <= seconds < {DAY}), not {self.seconds}")


def mode_at(
    changes: Sequence[Change], snapshot: engine.Snapshot, calendar_id: int | None, at: dt.datetime
) -> tuple[str, dt.datetime] | None:
    """The mode of the last change at or before ``at`` and the instant it happened (None: none in 8 days)."""
    limit = at.timestamp()
    ordinal = _local_ordinal(snapshot, at)
    found = None
    for instant, mode in _occurrences(changes, snapshot, calendar_id, ordinal - LOOK_BACK_DAYS, ordinal + 1):
        if instant > limit:
            break
        found = (instant, mode)
    if found is None:
        return None
    return found[1], _datetime(found[0])


def next_change(
    changes: Sequence[Change], snapshot: engine.Snapshot, calendar_id: int | None, after: dt.datetime
) -> tuple[str, dt.datetime] | None:
    """The first change strictly after ``after``: its mode and instant (None: none in the next 8 days)."""
    limit = after.timestamp()
    ordinal = _local_ordinal(snapshot, after)
    for instant, mode in _occurrences(changes, snapshot, calendar_id, ordinal, ordinal + LOOK_AHEAD_DAYS):
        if instant > limit:
            return mode, _datetime(instant)
    return None


def changes_between(
    changes: Sequence[Change], snapshot: engine.Snapshot, calendar_id: int | None, start: dt.datetime, end: dt.datetime
) -> list[tuple[dt.datetime, str]]:
    """Every change in ``(start, end]``, in order: (instant, mode)."""
    low, high = start.timestamp(), end.timestamp()
    if high <= low:
        return []
    first, last = _local_ordinal(snapshot, start), _local_ordinal(snapshot, end) + 1
    return [
        (_datetime(instant), mode)
        for instant, mode in _occurrences(changes, snapshot, calendar_id, first, last)
        if low < instant <= high
    ]


def changes_of(rows: Iterable[tuple[dt.time, int, str]]) -> list[Change]:
    """Changes from (local time, day mask, mode) rows, in the rows' order."""
    return [Change(at.hour * 3600 + at.minute * 60 + at.second, days, mode) for at, days, mode in rows]


# --- laying the changes on the calendar ------------------------------------------------------------------


def _occurrences(
    changes: Sequence[Change], snapshot: engine.Snapshot, calendar_id: int | None, first: int, last: int
) -> Iterator[tuple[float, str]]:
    """(POSIX instant, mode) of every change on the local dates ``first..last`` (ordinals), in time order,
    those on the same instant merged into the one that wins."""
    if calendar_id is None:
        calendar_id = snapshot.default_calendar_id
    tz = snapshot.tz
    timed = []
    for ordinal in range(first, last + 1):
        bits = engine.day_type_bits(snapshot, calendar_id, ordinal)
        for index, change in enumerate(changes):
            if change.days & bits:
                timed.append((_instant(tz, ordinal, change.seconds), ordinal, change.seconds, index, change.mode))
    timed.sort()
    for position, (instant, _ordinal, _seconds, _index, mode) in enumerate(timed):
        if position + 1 == len(timed) or timed[position + 1][0] != instant:
            yield instant, mode


def _instant(tz: dt.tzinfo, ordinal: int, seconds: int) -> float:
    """The POSIX instant of a local wall time: the first of a repeated one, the transition for a skipped one."""
    date = dt.date.fromordinal(ordinal)
    wall = dt.datetime(date.year, date.month, date.day, seconds // 3600, seconds // 60 % 60, seconds % 60)
    instant = wall.replace(tzinfo=tz, fold=0).timestamp()
    if dt.datetime.fromtimestamp(instant, tz).replace(tzinfo=None) == wall:
        return instant
    # In the spring-forward gap: the wall time never shows, the transition is the first instant after it.
    other = wall.replace(tzinfo=tz, fold=1).timestamp()
    low, high = int(min(instant, other)), int(max(instant, other))  # local(low) < wall < local(high)
    while high - low > 1:
        middle = (low + high) // 2
        if dt.datetime.fromtimestamp(middle, tz).replace(tzinfo=None) > wall:
            high = middle
        else:
            low = middle
    return float(high)


def _local_ordinal(snapshot: engine.Snapshot, at: dt.datetime) -> int:
    if at.tzinfo is None:
        raise ValueError("the instant must be timezone-aware")
    return at.astimezone(snapshot.tz).toordinal()


def _datetime(instant: float) -> dt.datetime:
    # In UTC: a local instant in the repeated hour compares unequal to every other zone's (PEP 495).
    return dt.datetime.fromtimestamp(instant, dt.UTC)
