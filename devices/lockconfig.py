"""An offline lock's configuration as the PPD loads it: its door, zones, time periods, calendar, opening mode
and its schedule of automatic changes, and the blacklist.

Plain data, no ORM: the server builds it (devices/locks.py), the PPD carries it
as JSON, and a lock (real, or the software one of simulation/offline_lock.py) holds it.
"""

from dataclasses import dataclass, field

from accesscontrol.choices import OpeningMode


@dataclass(frozen=True, slots=True)
class LockPeriod:
    """A time period as the lock holds it: (start second, end second, day mask) intervals, as in the engine."""

    id: int
    intervals: tuple[tuple[int, int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class LockConfig:
    """What a PPD loads into a lock; as JSON through devices.locks.config_json / config_from_json."""

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
    # The opening mode when no automatic change applies, the changes (second after local midnight, day mask of
    # engine.DAY_BITS, mode), ascending, and the period a timed mode holds the door open in.
    mode: str = OpeningMode.STANDARD.value
    mode_changes: tuple[tuple[int, int, str], ...] = ()
    timed_period: LockPeriod | None = None
