"""Decisions per second with anti-passback and an occupancy limit on, against the same traffic with them off.

The site: one zone with two entry and two exit doors, ``cardholders`` people who
use anti-passback, each with a card and the zone's permission. The traffic: each
person in turn goes in, then out, then in... through the doors, so every decision
with the zone tracked is granted and moves a presence (the expensive case: a view
update and a passage handed to the writer). The same queries are then decided
with the zone untracked (no anti-passback, roll-call or limit). Decisions go
through the device runtime's Decider as at a door, first in memory alone (the
decision and the view's update), then as a runtime sustains them: each decision's
access event and its passage stored in batches of one transaction, as the
runtime's writer does (``devices.recorder.store``).
"""

import collections
import datetime as dt
import time

from django.utils import timezone

from accesscontrol.models import AccessPoint, Cardholder, CardholderPermission, Key, Zone
from accesscontrol.rulechanges import record_everything
from accesscontrol.snapshot import SnapshotStore
from devices import recorder
from devices.places import Place
from devices.runtime.decisions import Decider, EventIds, access_event

WRITER_BATCH = 2000


def build_site(cardholders: int) -> tuple[Zone, list[Place], list[Place], list[str]]:
    zone = Zone.objects.create(name="Bench campus")
    ins = [AccessPoint.objects.create(name=f"Bench in {n}", direction="entry") for n in range(2)]
    outs = [AccessPoint.objects.create(name=f"Bench out {n}", direction="exit") for n in range(2)]
    for point in ins + outs:
        point.zones.add(zone)
    holders = Cardholder.objects.bulk_create(
        [Cardholder(first_name="Bench", last_name=f"P{n:06d}", use_anti_passback=True) for n in range(cardholders)],
        batch_size=2000,
    )
    CardholderPermission.objects.bulk_create(
        [CardholderPermission(cardholder=holder, zone=zone) for holder in holders], batch_size=2000
    )
    uids = [f"BE{n:08X}" for n in range(cardholders)]
    Key.objects.bulk_create(
        [Key(cardholder=holder, uid=uid) for holder, uid in zip(holders, uids, strict=True)], batch_size=2000
    )
    record_everything()

    def place(point):
        return Place(point.pk, point.name, point.partition_id)

    return zone, [place(p) for p in ins], [place(p) for p in outs], uids


def _run(decider: Decider, queries) -> tuple[float, int]:
    card = decider.card
    granted = 0
    started = time.perf_counter()
    for place, uid, at in queries:
        granted += card(place, uid, at).granted
    return time.perf_counter() - started, granted


def _sustain(decider: Decider, queries, passages: list) -> float:
    """Decide, build each access event and store events and passages in writer-sized batches; seconds taken."""
    ids = EventIds()
    events = []
    started = time.perf_counter()
    for place, uid, at in queries:
        event = access_event(decider.card(place, uid, at), place, None, at, {"online": True})
        event.device_event_id = ids.next()
        events.append(event)
        if len(events) == WRITER_BATCH:
            recorder.store(events, [], {}, timezone.now(), passages=passages)
            events.clear()
            passages.clear()
    if events:
        recorder.store(events, [], {}, timezone.now(), passages=passages)
        passages.clear()
    return time.perf_counter() - started


def measure(cardholders: int = 20_000, decisions: int = 200_000, stored: int = 20_000) -> dict:
    zone, ins, outs, uids = build_site(cardholders)
    start = timezone.now()
    queries = []
    for n in range(decisions):
        person, round_ = n % cardholders, n // cardholders
        doors = ins if round_ % 2 == 0 else outs
        queries.append((doors[n % 2], uids[person], start + dt.timedelta(microseconds=n)))

    result = {"cardholders": cardholders, "decisions": decisions}
    # Off: the zone tracks nobody.
    off = Decider(SnapshotStore())
    off.refresh()
    _run(off, queries[: min(decisions, 5000)])  # warm up
    seconds_off, granted_off = _run(off, queries)
    # On: hard anti-passback, a roll-call area, an occupancy limit no one reaches.
    Zone.objects.filter(pk=zone.pk).update(anti_passback=True, roll_call=True, max_occupancy=cardholders + 1)
    record_everything()
    # Counted, not kept: a runtime's writer takes them away every few milliseconds, and 200,000 kept would
    # be the cyclic collector's work, not the decisions'.
    passages = collections.Counter()
    on = Decider(SnapshotStore(), on_passage=lambda passage: passages.update(("passages",)))
    on.refresh()
    seconds_on, granted_on = _run(on, queries)
    result.update(
        {
            "decisions_per_s_off": round(decisions / seconds_off),
            "decisions_per_s_on": round(decisions / seconds_on),
            "on_vs_off": round(seconds_off / seconds_on, 3),
            "granted_off": granted_off,
            "granted_on": granted_on,
            "passages": passages["passages"],
        }
    )
    # As a runtime sustains them: with their events and passages stored. Later instants, new events.
    later = start + dt.timedelta(hours=1)
    sustained = [(place, uid, later + dt.timedelta(microseconds=n)) for n, (place, uid, _) in enumerate(queries)]
    sustained = sustained[: min(stored, len(sustained))]
    Zone.objects.filter(pk=zone.pk).update(anti_passback=False, roll_call=False, max_occupancy=None)
    record_everything()
    off = Decider(SnapshotStore())
    off.refresh()
    seconds_off = _sustain(off, sustained, [])
    Zone.objects.filter(pk=zone.pk).update(anti_passback=True, roll_call=True, max_occupancy=cardholders + 1)
    record_everything()
    passages = []
    on = Decider(SnapshotStore(), on_passage=passages.append)
    on.refresh()
    seconds_on = _sustain(on, [(p, u, a + dt.timedelta(hours=1)) for p, u, a in sustained], passages)
    result.update(
        {
            "stored_decisions": len(sustained),
            "stored_decisions_per_s_off": round(len(sustained) / seconds_off),
            "stored_decisions_per_s_on": round(len(sustained) / seconds_on),
            "stored_on_vs_off": round(seconds_off / seconds_on, 3),
        }
    )
    return result
