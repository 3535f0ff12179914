"""The device runtime's doors on shared presence: a passage handed to the writer, soft anti-passback's alarm."""

import pytest

from accesscontrol.choices import AuditKind
from accesscontrol.snapshot import SnapshotStore
from devices.choices import AlarmKind
from devices.places import Place
from devices.runtime.decisions import Decider
from devices.runtime.doors import DoorTimes
from devices.runtime.runtime import DoorConfig, ReaderConfig, Runtime
from tests.devices.runtime.test_runtime import Clock, Hands, Store
from tests.factories import give_permission, make_access_point, make_cardholder, make_key, make_zone

pytestmark = pytest.mark.django_db

READER, IO = 1, 2


class Writer(Store):
    def __init__(self):
        super().__init__()
        self.passages = []

    def passage(self, passage):
        self.passages.append(passage)


def runtime_at(point):
    writer = Writer()
    decider = Decider(SnapshotStore(), on_passage=writer.passage)
    decider.refresh()
    runtime = Runtime(decider, Hands(), writer, clock=Clock())
    place = Place(point.pk, point.name, point.partition_id)
    runtime.configure(
        [ReaderConfig(READER, 1, place)],
        [DoorConfig(number=1, place=place, times=DoorTimes(4, 30), device_pk=IO, relay=0)],
    )
    return runtime, writer


@pytest.mark.parametrize("kind", ["hard", "soft"])
def test_a_second_entry_is_refused_or_let_in_with_an_alarm(kind):
    zone = make_zone(anti_passback=True, passback_kind=kind)
    point = make_access_point(direction="entry", zones=[zone])
    holder = make_cardholder(use_anti_passback=True)
    give_permission(holder, zone)
    make_key(holder, uid="5A5A5A5A")
    runtime, writer = runtime_at(point)
    assert runtime.card(READER, 1, "5A5A5A5A").granted
    (passage,) = writer.passages
    assert (passage.cardholder_id, passage.entered, passage.left) == (holder.pk, {zone.pk}, frozenset())
    second = runtime.card(READER, 1, "5A5A5A5A")
    if kind == "hard":
        assert (second.granted, second.reason) == (False, "anti_passback")
        assert writer.alarms == []
    else:
        assert (second.granted, second.warning) == (True, "anti_passback")
        assert AuditKind.ANTI_PASSBACK_VIOLATION in [event.kind for event in writer.events]
        # Raised at the reader and over at once: it waits on the monitor to be acknowledged.
        assert writer.alarms == [
            (AlarmKind.ANTI_PASSBACK, True, point.pk, READER),
            (AlarmKind.ANTI_PASSBACK, False, point.pk, READER),
        ]
