"""Presence in the database: passages merged in time order and once, every process's view following them,
anti-passback forgiven, a zone's count corrected, and a decider's two entries at once for the last place."""

import datetime as dt
import threading

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accesscontrol import housekeeping, presence
from accesscontrol.choices import AuditKind, PresenceSource
from accesscontrol.models import AuditEvent, Presence, PresenceChange, SystemAuditEntry
from accesscontrol.presence import Passage, PresenceView
from accesscontrol.snapshot import SnapshotStore
from devices.places import Place
from devices.runtime.decisions import Decider
from tests.factories import give_permission, make_access_point, make_cardholder, make_key, make_operator, make_zone

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


@pytest.fixture
def plant():
    hall = make_zone(name="Hall", roll_call=True)
    lab = make_zone(name="Lab", anti_passback=True)
    ada, bob = make_cardholder(last_name="Ada"), make_cardholder(last_name="Bob")
    return hall, lab, ada, bob


def inside(holder, zone) -> bool:
    row = Presence.objects.filter(cardholder=holder, zone=zone).first()
    return bool(row and row.inside)


def test_an_entry_puts_a_cardholder_inside_and_an_exit_takes_them_out(plant):
    hall, lab, ada, _ = plant
    assert presence.record_passages([Passage(ada.pk, at(0), entered=frozenset({hall.pk, lab.pk}))]) == 2
    row = Presence.objects.get(cardholder=ada, zone=hall)
    assert (row.inside, row.since, row.source) == (True, at(0), PresenceSource.ONLINE)
    presence.record_passages([Passage(ada.pk, at(5), left=frozenset({hall.pk}))])
    assert not inside(ada, hall) and inside(ada, lab)
    assert Presence.objects.get(cardholder=ada, zone=hall).since == at(5)


def test_passages_merge_in_time_order_and_an_older_one_changes_nothing_newer(plant):
    hall, _, ada, _ = plant
    # Given out of order in one batch: the exit at 10 is the last word.
    presence.record_passages(
        [Passage(ada.pk, at(10), left=frozenset({hall.pk})), Passage(ada.pk, at(1), entered=frozenset({hall.pk}))]
    )
    assert not inside(ada, hall)
    # An offline lock's trail arriving later, with an entry older than the exit: nothing changes.
    assert presence.record_passages([Passage(ada.pk, at(7), entered=frozenset({hall.pk}))]) == 0
    assert not inside(ada, hall)


def test_the_same_passages_stored_twice_change_nothing_the_second_time(plant):
    hall, lab, ada, bob = plant
    batch = [
        Passage(ada.pk, at(1), entered=frozenset({hall.pk})),
        Passage(bob.pk, at(2), entered=frozenset({hall.pk, lab.pk})),
    ]
    assert presence.record_passages(batch) == 3
    changes = presence.PresenceChange.objects.count()
    assert presence.record_passages(batch) == 0
    assert presence.PresenceChange.objects.count() == changes


def test_passages_of_unknown_cardholders_or_zones_are_left_out(plant):
    hall, _, ada, _ = plant
    assert presence.record_passages([Passage(999_999, at(1), entered=frozenset({hall.pk}))]) == 0
    assert presence.record_passages([Passage(ada.pk, at(1), entered=frozenset({999_999}))]) == 0
    assert not Presence.objects.exists()


def test_every_view_follows_what_any_process_wrote(plant):
    hall, lab, ada, bob = plant
    view = PresenceView()
    view.refresh()
    presence.record_passages([Passage(ada.pk, at(0), entered=frozenset({hall.pk, lab.pk}))])
    presence.record_passages([Passage(bob.pk, at(1), entered=frozenset({hall.pk}))])
    view.refresh()
    assert set(view.inside_of(ada.pk)) == {hall.pk, lab.pk}
    assert view.inside_of(ada.pk)[hall.pk] == at(0).timestamp()
    assert view.counts[hall.pk] == 2
    presence.record_passages([Passage(ada.pk, at(3), left=frozenset({hall.pk}))])
    view.refresh()
    assert set(view.inside_of(ada.pk)) == {lab.pk} and view.counts[hall.pk] == 1
    # A new view (a process started now) loads the same state.
    fresh = PresenceView()
    fresh.refresh()
    assert fresh.inside_of(ada.pk) == view.inside_of(ada.pk) and fresh.counts[hall.pk] == 1


def test_a_view_applies_its_own_passage_at_once_and_its_row_coming_back_changes_nothing(plant):
    hall, _, ada, _ = plant
    view = PresenceView()
    view.refresh()
    passage = Passage(ada.pk, at(0), entered=frozenset({hall.pk}))
    view.apply(passage)
    assert view.counts[hall.pk] == 1
    presence.record_passages([passage])
    view.refresh()
    assert view.counts[hall.pk] == 1


def test_forgiving_a_cardholder_or_a_zone_ends_their_presence_for_every_view(plant):
    hall, lab, ada, bob = plant
    operator = make_operator()
    presence.record_passages(
        [
            Passage(ada.pk, timezone.now() - dt.timedelta(hours=1), entered=frozenset({hall.pk, lab.pk})),
            Passage(bob.pk, timezone.now() - dt.timedelta(hours=1), entered=frozenset({lab.pk})),
        ]
    )
    view = PresenceView()
    view.refresh()
    assert presence.forgive(operator=operator, via="web", cardholder=ada, zone=lab) == 1
    assert inside(ada, hall) and not inside(ada, lab) and inside(bob, lab)
    assert presence.forgive(operator=operator, via="api", zone=lab) == 1
    assert not inside(bob, lab)
    view.refresh()
    assert set(view.inside_of(ada.pk)) == {hall.pk} and view.inside_of(bob.pk) == {}
    rows = SystemAuditEntry.objects.filter(action="forgive_presence").order_by("id")
    assert [(row.via, row.detail["ended"]) for row in rows] == [("web", 1), ("api", 1)]
    with pytest.raises(ValueError):
        presence.forgive(operator=operator, via="web")


def test_an_operator_corrects_a_zone_s_count(plant):
    hall, _, ada, _ = plant
    operator = make_operator()
    presence.record_passages([Passage(ada.pk, at(0), entered=frozenset({hall.pk}))])
    assert presence.occupancy(hall) == 1
    assert presence.correct_occupancy(hall, 4, operator=operator, via="web") == 3
    hall.refresh_from_db()
    assert presence.occupancy(hall) == 4 and presence.occupancies([hall]) == {hall.pk: 4}
    entry = SystemAuditEntry.objects.get(action="correct_occupancy")
    assert entry.detail == {"before": 1, "count": 4, "correction": 3}
    with pytest.raises(ValidationError):
        presence.correct_occupancy(hall, -1, operator=operator, via="web")


def test_offline_audit_events_make_passages_at_entry_and_exit_points_of_tracked_zones(plant):
    hall, _, ada, _ = plant
    way_in = make_access_point(direction="entry", zones=[hall])
    way_out = make_access_point(direction="exit", zones=[hall])
    both = make_access_point(zones=[hall])
    untracked = make_access_point(direction="entry", zones=[make_zone()])

    def granted(point, minutes):
        return AuditEvent(at=at(minutes), kind=AuditKind.ACCESS_GRANTED, access_point=point, cardholder=ada)

    events = [granted(way_in, 1), granted(both, 2), granted(untracked, 3), granted(way_out, 4)]
    events.append(AuditEvent(at=at(5), kind=AuditKind.ACCESS_DENIED, access_point=way_in, cardholder=ada))
    passages = presence.passages_from_events(events)
    assert [(p.at, p.entered, p.left, p.source) for p in passages] == [
        (at(1), {hall.pk}, frozenset(), PresenceSource.OFFLINE),
        (at(4), frozenset(), {hall.pk}, PresenceSource.OFFLINE),
    ]


# --- a decider on the database's presence ------------------------------------------------------------------


@pytest.fixture
def car_park():
    zone = make_zone(name="Car park", max_occupancy=1, anti_passback=True)
    gate = make_access_point(name="Barrier in", direction="entry", zones=[zone])
    holders = []
    for number in range(2):
        holder = make_cardholder(use_anti_passback=True)
        give_permission(holder, zone)
        make_key(holder, uid=f"CA{number:02d}")
        holders.append(holder)
    return zone, Place(gate.pk, gate.name, gate.partition_id), holders


def test_two_entries_at_once_for_the_last_place_exactly_one_is_refused(car_park):
    _, gate, _ = car_park
    written = []
    decider = Decider(SnapshotStore(), on_passage=written.append)
    decider.refresh()
    barrier = threading.Barrier(2)
    results = {}

    def enter(uid):
        barrier.wait()
        results[uid] = decider.card(gate, uid, timezone.now())

    threads = [threading.Thread(target=enter, args=(uid,)) for uid in ("CA00", "CA01")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    reasons = sorted(decision.reason for decision in results.values())
    assert reasons == ["granted", "zone_full"]
    assert len(written) == 1


def test_a_restarted_decider_remembers_who_is_inside(car_park):
    _, gate, (first, _) = car_park
    written = []
    decider = Decider(SnapshotStore(), on_passage=written.append)
    decider.refresh()
    assert decider.card(gate, "CA00", timezone.now()).granted
    presence.record_passages(written)  # what the writer does with the access event
    restarted = Decider(SnapshotStore())
    restarted.refresh()
    assert restarted.card(gate, "CA00", timezone.now()).reason == "anti_passback"
    assert restarted.card(gate, "CA01", timezone.now()).reason == "zone_full"
    presence.forgive(operator=None, via="command", cardholder=first)
    restarted.refresh()
    assert restarted.card(gate, "CA01", timezone.now()).granted


def test_the_hourly_purge_drops_presence_changes_older_than_a_day(plant):
    hall, _, ada, _ = plant
    presence.record_passages([Passage(ada.pk, at(0), entered=frozenset({hall.pk}))])
    assert housekeeping.purge()["presence_changes"] == 0
    assert housekeeping.purge(timezone.now() + dt.timedelta(days=2))["presence_changes"] == 1
    assert not PresenceChange.objects.exists() and inside(ada, hall)
