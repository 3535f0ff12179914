"""The front desk: the room grid, check-in / copy / move / new departure / check-out from a room, the desk's
encoder, the encode-job panel, errors on the form, permissions and partitions.

The actions run the real hotel.actions operations; keys are queued on the
desk's encoder as real encode jobs (the last test writes one through the real
device bridge on a simulated encoder).
"""

import asyncio
import datetime as dt

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse
from django.utils import timezone

from accesscontrol.choices import AccessPointKind, KeyStatus, StayStatus
from accesscontrol.models import GuestArea, Key, Room, Stay
from devices import locks
from devices.models import Device, DeviceDoor, EncodeJob
from hotel import actions as hotel
from simulation.encoders import SimulatedEncoder
from tests.devices.encoders_support import ENCODER_ID, KEY, decoded, make_encoder, run
from tests.factories import make_access_point, make_operator, make_partition, make_zone
from tests.support.bridge import RunningBridge
from tests.support.waiting import until

pytestmark = pytest.mark.django_db

VIEW = ("accesscontrol.view_key",)
DESK = ("accesscontrol.view_key", "accesscontrol.add_key", "accesscontrol.change_key")
STATION = "DESK1"
UID = "04AA11BB22CC33"


@pytest.fixture
def hotel_partition():
    return make_partition("Hotel")


def make_room(number: str, floor: int, partition, **fields) -> Room:
    door = make_access_point(name=f"Room {number}", kind=AccessPointKind.ROOM, partition=partition)
    return Room.objects.create(number=number, floor=floor, access_point=door, **fields)


@pytest.fixture
def rooms(hotel_partition):
    return {number: make_room(number, int(number[0]), hotel_partition) for number in ("101", "102", "103", "201")}


@pytest.fixture
def encoder():
    return make_encoder(name="Desk encoder", station=STATION, online=True)


def desk_client(*permissions, partitions, encoder=None) -> Client:
    client = Client()
    client.force_login(make_operator(*permissions, partitions=partitions))
    if encoder is not None:
        client.post(reverse("front_desk_encoder"), {"encoder": encoder.pk})
    return client


def tomorrow_noon() -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(timezone.localdate() + dt.timedelta(days=1), dt.time(12)))


def checked_in(room: Room, guest: str, departure=None) -> Stay:
    hotel.check_in(room=room.number, departure=departure or tomorrow_noon(), encoder=None, guest_name=guest, via="test")
    return Stay.objects.get(room=room, status=StayStatus.IN)


def check_in_form(**fields) -> dict:
    day = timezone.localdate() + dt.timedelta(days=2)
    return {
        "guest_name": "Ada Lovelace",
        "departure_date": day.isoformat(),
        "departure_time": "11:00",
        "keys": "1",
    } | fields


def url(name: str, room: Room) -> str:
    return reverse(name, args=[room.pk])


# --- the grid ------------------------------------------------------------------------------------------


def test_the_grid_shows_each_room_by_floor_with_its_occupancy(rooms, hotel_partition):
    checked_in(rooms["101"], "Ada Lovelace")
    today = checked_in(rooms["102"], "Grace Hopper", departure=timezone.now() + dt.timedelta(minutes=5))
    late = checked_in(rooms["103"], "Alan Turing")
    Stay.objects.filter(pk=late.pk).update(departure=timezone.now() - dt.timedelta(hours=1))

    page = desk_client(*VIEW, partitions=[hotel_partition]).get(reverse("front_desk"))

    assert page.status_code == 200
    states = {
        tile.room.number: (tile.state, tile.stay and tile.stay.guest_name)
        for _, row in page.context["by_floor"]
        for tile in row
    }
    expected_today = "due_out" if timezone.localdate(today.departure) == timezone.localdate() else "occupied"
    assert states == {
        "101": ("occupied", "Ada Lovelace"),
        "102": (expected_today, "Grace Hopper"),
        "103": ("overdue", "Alan Turing"),
        "201": ("free", None),
    }
    assert [floor for floor, _ in page.context["by_floor"]] == [1, 2]
    text = page.content.decode()
    assert "Departed, not checked out" in text and "Ada Lovelace" in text and "Floor 2" in text


def test_a_guest_checked_in_ahead_of_arrival_shows_as_arriving(rooms, hotel_partition):
    hotel.check_in(
        room="201",
        arrival=timezone.now() + dt.timedelta(days=1),
        departure=timezone.now() + dt.timedelta(days=3),
        encoder=None,
        guest_name="Hedy Lamarr",
        via="test",
    )

    page = desk_client(*VIEW, partitions=[hotel_partition]).get(reverse("front_desk"), {"floor": "2"})

    [(_, [tile])] = page.context["by_floor"]
    assert (tile.state, tile.state_label, tile.stay.guest_name) == ("reserved", "Arriving", "Hedy Lamarr")
    assert "from " in page.content.decode()


def test_the_grid_filters_by_floor_and_state_and_htmx_gets_only_the_grid(rooms, hotel_partition):
    checked_in(rooms["101"], "Ada Lovelace")
    client = desk_client(*VIEW, partitions=[hotel_partition])

    by_floor = client.get(reverse("front_desk"), {"floor": "2"})
    free_on_1 = client.get(reverse("front_desk"), {"floor": "1", "state": "free"}, HTTP_HX_TARGET="room-grid")

    assert [t.room.number for _, row in by_floor.context["by_floor"] for t in row] == ["201"]
    assert [t.room.number for _, row in free_on_1.context["by_floor"] for t in row] == ["102", "103"]
    assert "<h1>" not in free_on_1.content.decode()


@pytest.mark.parametrize("query", [{"floor": "99999999999"}, {"floor": "40000"}, {"floor": "x"}, {"state": "<b>"}])
def test_a_filter_that_means_nothing_is_no_error(rooms, hotel_partition, query):
    response = desk_client(*VIEW, partitions=[hotel_partition]).get(reverse("front_desk"), query)

    assert response.status_code == 200


def test_a_room_of_a_suite_shows_what_it_connects_to(rooms, hotel_partition):
    rooms["101"].connects.add(rooms["102"])

    page = desk_client(*VIEW, partitions=[hotel_partition]).get(reverse("front_desk"))

    assert "Connects 102" in page.content.decode() and "Connects 101" in page.content.decode()


def grid_queries(client) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(reverse("front_desk")).status_code == 200
    return len(captured)


def test_the_grid_costs_the_same_queries_for_10_and_60_rooms(hotel_partition):
    client = desk_client(*VIEW, "devices.view_device", partitions=[hotel_partition])
    for number in range(10):
        room = make_room(f"{number // 5 + 1}{number:02d}", number // 5 + 1, hotel_partition)
        if number % 2:
            checked_in(room, f"Guest {number}")
        if number % 4 == 0:
            make_lock(7000 + number, room)
    grid_queries(client)  # the first makes the site's card key, once
    ten = grid_queries(client)
    for number in range(10, 60):
        room = make_room(f"{number // 10 + 1}{number:02d}", number // 10 + 1, hotel_partition)
        if number % 3 == 0:
            checked_in(room, f"Guest {number}")
        if number % 7 == 0:
            room.connects.add(Room.objects.first())
        if number % 4 == 0:
            make_lock(7000 + number, room)

    assert grid_queries(client) == ten
    assert len([t for _, row in client.get(reverse("front_desk")).context["by_floor"] for t in row]) == 60


def make_lock(device_id: int, room: Room) -> Device:
    lock = Device.objects.create(device_id=device_id, name=f"Lock {device_id}", kind="offline_lock")
    DeviceDoor.objects.create(device=lock, number=1, access_point=room.access_point)
    return lock


def test_a_room_whose_offline_lock_needs_a_ppd_visit_says_so_to_who_may_see_devices(rooms, hotel_partition):
    make_lock(7001, rooms["101"])
    loaded = make_lock(7002, rooms["102"])
    locks.record_loaded(
        loaded,
        config_revision=locks.lock_config(loaded).revision,
        blacklist_number=0,
        battery=90,
        at=timezone.now() - dt.timedelta(hours=1),
        operator=None,
    )

    page = desk_client(*VIEW, "devices.view_device", partitions=[hotel_partition]).get(reverse("front_desk"))
    without = desk_client(*VIEW, partitions=[hotel_partition]).get(reverse("front_desk"))

    reasons = {t.room.number: t.lock_reasons for _, row in page.context["by_floor"] for t in row}
    assert reasons == {"101": [locks.REASON_TEXT[locks.NEVER_INITIALISED]], "102": [], "103": [], "201": []}
    assert page.content.decode().count("Lock needs a PPD visit") == 1
    assert "Lock needs a PPD visit" not in without.content.decode()


# --- permissions and partitions ----------------------------------------------------------------------


def test_without_the_key_permission_the_desk_is_refused_and_not_in_the_menu(rooms, hotel_partition):
    client = desk_client("accesscontrol.view_cardholder", partitions=[hotel_partition])

    assert client.get(reverse("front_desk")).status_code == 403
    assert client.get(url("front_desk_room", rooms["101"])).status_code == 403
    desk_link = f'href="{reverse("front_desk")}"'
    assert desk_link not in client.get(reverse("dashboard")).content.decode()
    assert desk_link in desk_client(*VIEW, partitions=[hotel_partition]).get(reverse("dashboard")).content.decode()


def test_an_operator_who_may_only_view_cannot_check_in_and_nothing_changes(rooms, hotel_partition, encoder):
    client = desk_client(*VIEW, partitions=[hotel_partition], encoder=encoder)

    response = client.post(url("front_desk_check_in", rooms["101"]), check_in_form())

    assert response.status_code == 403
    assert not Stay.objects.exists() and not Key.objects.exists() and not EncodeJob.objects.exists()


def test_an_operator_who_may_not_change_keys_cannot_check_out(rooms, hotel_partition):
    stay = checked_in(rooms["101"], "Ada Lovelace")
    client = desk_client("accesscontrol.view_key", "accesscontrol.add_key", partitions=[hotel_partition])

    assert client.post(url("front_desk_check_out", rooms["101"])).status_code == 403
    stay.refresh_from_db()
    assert stay.status == StayStatus.IN


def test_rooms_of_another_partition_are_neither_shown_nor_reachable(rooms, hotel_partition, encoder):
    other = make_partition("Annex")
    annex = make_room("901", 9, other)
    client = desk_client(*DESK, partitions=[hotel_partition], encoder=encoder)

    page = client.get(reverse("front_desk"))

    assert "901" not in [t.room.number for _, row in page.context["by_floor"] for t in row]
    assert client.get(url("front_desk_room", annex)).status_code == 404
    assert client.post(url("front_desk_check_in", annex), check_in_form()).status_code == 404
    assert not Stay.objects.exists()


# --- the desk's encoder -------------------------------------------------------------------------------


def test_the_desk_chooses_its_encoder_once_for_the_session(rooms, hotel_partition, encoder):
    make_encoder(5002, name="Encoder without a station")
    client = desk_client(*VIEW, partitions=[hotel_partition])

    client.post(reverse("front_desk_encoder"), {"encoder": encoder.pk})
    page = client.get(reverse("front_desk"))

    assert [device.name for device in page.context["encoders"]] == ["Desk encoder"]
    assert page.context["encoder"] == encoder
    assert f"Desk encoder ({STATION})" in page.content.decode()
    assert client.get(url("front_desk_room", rooms["101"])).context["encoder"] == encoder


def test_an_encoder_that_is_not_offered_is_not_chosen(hotel_partition, encoder):
    client = desk_client(*VIEW, partitions=[hotel_partition])
    control_unit = make_encoder(5003, kind="control_unit", name="Lobby unit", station="LOBBY")

    client.post(reverse("front_desk_encoder"), {"encoder": control_unit.pk})

    assert client.get(reverse("front_desk")).context["encoder"] is None


# --- check-in --------------------------------------------------------------------------------------------


def test_check_in_queues_the_key_on_the_desk_encoder_and_the_room_follows_the_job(rooms, hotel_partition, encoder):
    client = desk_client(*DESK, partitions=[hotel_partition], encoder=encoder)

    response = client.post(url("front_desk_check_in", rooms["101"]), check_in_form())

    assert response.status_code == 302 and response.url == url("front_desk_room", rooms["101"])
    stay = Stay.objects.get()
    departure = timezone.make_aware(dt.datetime.combine(timezone.localdate() + dt.timedelta(days=2), dt.time(11)))
    assert (stay.room, stay.guest_name, stay.departure, stay.status) == (rooms["101"], "Ada Lovelace", departure, "in")
    job = EncodeJob.objects.get()
    # Queued, not waited for: the request came back before any encoder saw it.
    assert (job.encoder_id, job.status, job.key.cardholder_id, job.key.status) == (
        encoder.pk,
        "queued",
        stay.cardholder_id,
        "issued",
    )
    page = client.get(response.url).content.decode()
    assert f'hx-get="{reverse("encode_job", args=[job.pk])}"' in page
    assert "Writing the card on Desk encoder" in page and "Ada Lovelace" in page and "Copy key" in page


def test_more_keys_asked_at_check_in_are_written_one_after_the_other(rooms, hotel_partition, encoder):
    client = desk_client(*DESK, partitions=[hotel_partition], encoder=encoder)
    client.post(url("front_desk_check_in", rooms["101"]), check_in_form(keys="3"))
    first = EncodeJob.objects.get()

    busy = client.post(url("front_desk_copy", rooms["101"]))
    EncodeJob.objects.filter(pk=first.pk).update(status="done", progress=100, finished_at=timezone.now())
    page = client.get(url("front_desk_room", rooms["101"])).content.decode()
    client.post(url("front_desk_copy", rooms["101"]))

    # The encoder takes one card at a time: a second job while the first runs is refused, and nothing is issued.
    assert busy.status_code == 400 and "busy" in busy.content.decode()
    assert "Write the next key (2 to go)" in page
    assert EncodeJob.objects.count() == 2
    assert "Write the next key (1 to go)" in client.get(url("front_desk_room", rooms["101"])).content.decode()


def test_the_check_in_form_starts_at_the_hotels_check_out_time_with_the_default_areas(rooms, hotel_partition):
    GuestArea.objects.create(name="GYM", zone=make_zone(), default=True)
    GuestArea.objects.create(name="PARKING", zone=make_zone(), default=False)

    form = (
        desk_client(*DESK, partitions=[hotel_partition])
        .get(url("front_desk_room", rooms["101"]))
        .context["check_in_form"]
    )

    assert form["departure_time"].value() == "12:00"
    assert form["departure_date"].value() == timezone.localdate() + dt.timedelta(days=1)
    assert form.fields["common_areas"].initial == ["GYM"]


@override_settings(SPACE_HOTEL_CHECK_OUT_TIME="10:30")
def test_the_departure_starts_at_the_check_out_time_the_site_sets(rooms, hotel_partition):
    page = desk_client(*DESK, partitions=[hotel_partition]).get(url("front_desk_room", rooms["101"]))

    assert page.context["check_in_form"]["departure_time"].value() == "10:30"


def test_check_in_gives_the_areas_ticked_and_the_suites_extra_room(rooms, hotel_partition, encoder):
    GuestArea.objects.create(name="GYM", zone=make_zone(), default=True)
    parking = GuestArea.objects.create(name="PARKING", zone=make_zone(), default=False)
    rooms["101"].connects.add(rooms["102"])
    client = desk_client(*DESK, partitions=[hotel_partition], encoder=encoder)

    response = client.post(
        url("front_desk_check_in", rooms["101"]), check_in_form(common_areas=["PARKING"], extra_rooms=["102"])
    )

    assert response.status_code == 302
    stay = Stay.objects.get()
    assert list(stay.areas.all()) == [parking]
    assert list(stay.extra_rooms.all()) == [rooms["102"]]
    tiles = {t.room.number: t for _, row in client.get(reverse("front_desk")).context["by_floor"] for t in row}
    assert (tiles["102"].state, tiles["102"].stay.pk) == ("occupied", stay.pk)


def test_checking_in_to_a_suite_gives_its_connected_rooms(rooms, hotel_partition, encoder):
    suite = make_room("301", 3, hotel_partition, suite=True)
    joined = make_room("302", 3, hotel_partition)
    suite.connects.add(joined)
    client = desk_client(*DESK, partitions=[hotel_partition], encoder=encoder)

    form = client.get(url("front_desk_room", suite)).context["check_in_form"]
    response = client.post(url("front_desk_check_in", suite), check_in_form())

    assert "extra_rooms" not in form.fields  # a suite's rooms come with it
    assert response.status_code == 302
    assert list(Stay.objects.get().extra_rooms.all()) == [joined]
    grid = client.get(reverse("front_desk"), {"floor": "3"})
    assert "Suite with 302" in grid.content.decode()
    assert [(t.room.number, t.stay.guest_name) for _, row in grid.context["by_floor"] for t in row] == [
        ("301", "Ada Lovelace"),
        ("302", "Ada Lovelace"),
    ]


def test_check_in_without_a_desk_encoder_says_so_on_the_form(rooms, hotel_partition):
    response = desk_client(*DESK, partitions=[hotel_partition]).post(
        url("front_desk_check_in", rooms["101"]), check_in_form()
    )

    assert response.status_code == 400
    assert response.context["check_in_form"].non_field_errors() == ["Choose the desk's encoder before checking in."]
    assert not Stay.objects.exists() and not Key.objects.exists()


def test_a_departure_in_the_past_is_a_field_error(rooms, hotel_partition, encoder):
    yesterday = (timezone.localdate() - dt.timedelta(days=1)).isoformat()

    response = desk_client(*DESK, partitions=[hotel_partition], encoder=encoder).post(
        url("front_desk_check_in", rooms["101"]), check_in_form(departure_date=yesterday)
    )

    assert response.status_code == 400
    assert response.context["check_in_form"].errors["departure_date"] == ["The departure must be in the future."]
    assert not Stay.objects.exists()


def test_an_offline_encoder_is_a_clear_error_on_the_form_not_a_server_error(rooms, hotel_partition, encoder):
    client = desk_client(*DESK, partitions=[hotel_partition], encoder=encoder)
    encoder.online = False
    encoder.save()

    response = client.post(url("front_desk_check_in", rooms["101"]), check_in_form())

    assert response.status_code == 400
    assert response.context["check_in_form"].non_field_errors() == [f"The encoder {STATION} is offline."]
    assert "Desk encoder (DESK1), offline" in response.content.decode()
    assert not Stay.objects.exists() and not EncodeJob.objects.exists()


def test_checking_in_to_an_occupied_room_is_refused_and_the_guest_stays(rooms, hotel_partition, encoder):
    stay = checked_in(rooms["101"], "Grace Hopper")

    response = desk_client(*DESK, partitions=[hotel_partition], encoder=encoder).post(
        url("front_desk_check_in", rooms["101"]), check_in_form()
    )

    assert response.status_code == 400
    assert "Room 101 is occupied: check its guest out first." in response.content.decode()
    stay.refresh_from_db()
    assert (stay.guest_name, stay.status) == ("Grace Hopper", "in") and not EncodeJob.objects.exists()


# --- copy, move, departure, check-out ---------------------------------------------------------------------


def test_copy_key_queues_one_more_key_and_keeps_the_first(rooms, hotel_partition, encoder):
    stay = checked_in(rooms["101"], "Ada Lovelace")
    first = Key.objects.get(cardholder=stay.cardholder)
    client = desk_client(*DESK, partitions=[hotel_partition], encoder=encoder)

    response = client.post(url("front_desk_copy", rooms["101"]))

    assert response.status_code == 302
    first.refresh_from_db()
    job = EncodeJob.objects.get()
    assert first.status == KeyStatus.ISSUED and job.key.cardholder_id == stay.cardholder_id and job.key_id != first.pk
    assert f'id="encode-job-{job.pk}"' in client.get(response.url).content.decode()


def test_copy_key_of_a_free_room_is_a_clear_error(rooms, hotel_partition, encoder):
    response = desk_client(*DESK, partitions=[hotel_partition], encoder=encoder).post(
        url("front_desk_copy", rooms["101"])
    )

    assert response.status_code == 400
    assert "Nobody is checked in to Room 101." in response.content.decode()
    assert not Key.objects.exists()


def test_move_takes_the_stay_to_a_free_room(rooms, hotel_partition):
    stay = checked_in(rooms["101"], "Ada Lovelace")
    checked_in(rooms["102"], "Grace Hopper")
    client = desk_client(*DESK, partitions=[hotel_partition])

    offered = client.get(url("front_desk_room", rooms["101"])).context["move_form"].fields["new_room"].choices
    response = client.post(url("front_desk_move", rooms["101"]), {"new_room": "201"})

    assert [number for number, _ in offered] == ["", "103", "201"]
    assert response.status_code == 302 and response.url == url("front_desk_room", rooms["201"])
    stay.refresh_from_db()
    assert stay.room == rooms["201"]


def test_move_into_an_occupied_room_is_refused_on_the_form(rooms, hotel_partition):
    stay = checked_in(rooms["101"], "Ada Lovelace")
    checked_in(rooms["102"], "Grace Hopper")

    response = desk_client(*DESK, partitions=[hotel_partition]).post(
        url("front_desk_move", rooms["101"]), {"new_room": "102"}
    )

    assert response.status_code == 400
    assert response.context["move_form"].errors["new_room"]
    stay.refresh_from_db()
    assert stay.room == rooms["101"]


def test_change_departure_moves_the_stays_end(rooms, hotel_partition):
    stay = checked_in(rooms["101"], "Ada Lovelace")
    day = timezone.localdate() + dt.timedelta(days=4)

    response = desk_client(*DESK, partitions=[hotel_partition]).post(
        url("front_desk_departure", rooms["101"]), {"departure_date": day.isoformat(), "departure_time": "10:30"}
    )

    assert response.status_code == 302
    stay.refresh_from_db()
    assert stay.departure == timezone.make_aware(dt.datetime.combine(day, dt.time(10, 30)))


def test_check_out_cancels_the_keys_and_frees_the_room(rooms, hotel_partition):
    stay = checked_in(rooms["101"], "Ada Lovelace")
    client = desk_client(*DESK, partitions=[hotel_partition])
    room_page = client.get(url("front_desk_room", rooms["101"])).content.decode()

    response = client.post(url("front_desk_check_out", rooms["101"]), follow=True)

    assert 'data-confirm="Check Ada Lovelace out of Room 101? Their keys are cancelled."' in room_page
    assert response.redirect_chain[-1][0] == reverse("front_desk")
    stay.refresh_from_db()
    assert stay.status == StayStatus.OUT
    assert set(Key.objects.filter(cardholder=stay.cardholder).values_list("status", flat=True)) == {KeyStatus.CANCELLED}
    assert "Room 101 checked out: 1 key cancelled" in response.content.decode()
    tiles = {t.room.number: t.state for _, row in response.context["by_floor"] for t in row}
    assert tiles["101"] == "free"


def test_check_out_of_a_free_room_is_a_clear_error(rooms, hotel_partition):
    response = desk_client(*DESK, partitions=[hotel_partition]).post(url("front_desk_check_out", rooms["101"]))

    assert response.status_code == 400
    assert 'class="form-errors" role="alert"' in response.content.decode()


# --- through the real device bridge ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_check_in_is_written_on_a_simulated_encoder_through_the_bridge_and_the_panel_says_done():
    partition = make_partition("Hotel")
    room = make_room("301", 3, partition)
    bridge = RunningBridge(heartbeat_s=30, encoder_grace_s=0.5)
    try:
        device = make_encoder(name="Desk encoder", station=STATION)
        bridge.reload()
        client = desk_client(*DESK, partitions=[partition], encoder=device)

        async def scenario():
            encoder = SimulatedEncoder(ENCODER_ID, KEY, ("127.0.0.1", bridge.port), retry_first_s=0.1)
            await encoder.connect(5)
            await until(lambda: Device.objects.get(pk=device.pk).online)
            response = await asyncio.to_thread(client.post, url("front_desk_check_in", room), check_in_form())
            encoder.place_card(UID)
            await until(lambda: EncodeJob.objects.filter(status__in=("done", "failed")).exists())
            await encoder.stop()
            return response, encoder.written

        response, written = run(scenario())
    finally:
        bridge.stop()

    assert response.status_code == 302
    job = EncodeJob.objects.get()
    assert (job.status, job.card_uid) == ("done", UID)
    key = Key.objects.get()
    card = decoded(written[0][2])
    assert (key.uid, card.uid, card.cardholder_id) == (UID, UID, Stay.objects.get().cardholder_id)
    panel = client.get(reverse("encode_job", args=[job.pk])).content.decode()
    assert "Done" in panel and f'Card <span class="mono">{UID}</span> written.' in panel and "hx-trigger" not in panel
