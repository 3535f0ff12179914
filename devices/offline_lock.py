"""A software offline lock: decides from the card alone, as a battery lock without network does.

It holds its configuration (loaded by a PPD: its door, zones, time periods,
calendar, the site clock's time zone, the site code and card key), keeps a
bounded audit buffer and a bounded blacklist, and writes its status onto every
card it reads. Pure Python, no ORM: the tests, the PPD simulator and
``manage.py bench_cards`` drive it directly.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LockPeriod:
    """A time period as the lock holds it: (start second, end second, day mask) intervals, as in the engine."""

    id: int
    intervals: tuple[tuple[int, int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class LockConfig:
    """What a PPD loads into a lock. JSON-able through :meth:`to_json` / :meth:`from_json`."""

    lock_id: int  # device_id
    access_point_id: int
    site: int  # site code
    card_key: bytes  # the site card key (carried by the PPD, never shown to operators)
    revision: int  # rises whenever anything below changes
    zone_ids: tuple[int, ...] = ()
    periods: tuple[LockPeriod, ...] = ()
    # Calendar: date ordinal -> day type bit, (month, day) -> bit for recurring days (engine.DAY_BITS).
    calendar_dates: dict[int, int] = field(default_factory=dict)
    calendar_recurring: dict[tuple[int, int], int] = field(default_factory=dict)
    time_zone: str = "UTC"
    open_time: int = 4
    extended_open_time: int = 10
    is_room: bool = False  # rooms have a privacy latch
    blacklist: tuple[tuple[int, int, int], ...] = ()  # (number, key_id, until): the full list at loading
