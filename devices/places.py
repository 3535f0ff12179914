"""An access point as devices name it: what every device path copies into audit rows and monitor messages."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Place:
    """An access point's id, name and partition (for events and the monitor), without the ORM."""

    id: int
    name: str
    partition_id: int | None = None
