"""The hotel REST API (/api/v1/hotel/): the operations, their errors, idempotency keys and permissions."""

import asyncio
import base64
import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from accesscontrol import idempotency
from accesscontrol.choices import KeyStatus
from accesscontrol.models import IdempotencyRecord, Key, Stay
from devices.choices import EncodeStatus
from devices.models import EncodeJob
from tests.devices.encoders_support import ENCODER_ID, KEY, decoded, make_encoder, run
from tests.factories import make_operator, make_partition
from tests.hotel.support import days, make_hotel
from tests.support.api import client_with
from tests.support.waiting import until

pytestmark = pytest.mark.django_db

URL = "/api/v1/hotel/"


def stamp(moment) -> str:
    return moment.isoformat()


def body(room="101", **fields) -> dict:
    return {"room": room, "departure": stamp(days(2)), **fields}


def post(client, operation: str, data: dict, key: str | None = None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(f"{URL}{operation}/", data, format="json", **headers)


# --- the operations ---------------------------------------------------------------------------------------


def test_check_in_issues_a_key_and_answers_what_was_issued(admin_client, hotel_site):
    response = post(admin_client, "check-in", body("301", guest_name="Ada", reservation="R1"))

    assert response.status_code == 201, response.data
    key = Key.objects.get()
    assert response.data["key"] == key.pk
    assert response.data["stay"] == Stay.objects.get().pk
    assert response.data["rooms"] == ["301", "302"]
    assert response.data["uid"] == key.uid
    assert (response.data["job"], response.data["card_data"]) == (None, "")


def test_copy_adds_a_key_and_one_shot_a_short_one(admin_client, hotel_site):
    post(admin_client, "check-in", body())
    copy = post(admin_client, "copy", body())
    one_shot = post(admin_client, "copy", body(one_shot=True))

    assert (copy.status_code, one_shot.status_code) == (201, 201)
    assert Key.objects.filter(status=KeyStatus.ISSUED).count() == 3
    assert Key.objects.get(pk=one_shot.data["key"]).valid_until < days(1)


def test_modify_and_check_out(admin_client, hotel_site):
    stay = post(admin_client, "check-in", body()).data["stay"]

    moved = post(admin_client, "modify", {"room": "101", "new_room": "201", "departure": stamp(days(4))})
    out = post(admin_client, "check-out", {"room": "201"})

    assert (moved.status_code, moved.data) == (200, {"stay": stay})
    assert (out.status_code, out.data) == (200, {"keys_cancelled": 1})
    assert Stay.objects.get().status == "out"


def test_rooms_show_occupancy_and_stays_list_the_guests(admin_client, hotel_site):
    post(admin_client, "check-in", body("101", guest_name="Ada", extra_rooms=["102"]))

    rooms = {room["number"]: room for room in admin_client.get(f"{URL}rooms/").data["results"]}
    stays = admin_client.get(f"{URL}stays/", {"status": "in"}).data["results"]

    assert (rooms["101"]["occupied"], rooms["102"]["occupied"], rooms["201"]["occupied"]) == (True, True, False)
    assert rooms["102"]["stay"]["guest_name"] == "Ada"
    assert rooms["101"]["connects"] == ["102"]
    assert rooms["201"]["stay"] is None
    assert [(stay["room"], stay["extra_rooms"], stay["keys"]) for stay in stays] == [("101", ["102"], 1)]


# --- errors -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "data", "status", "code"),
    [
        ("check-in", body("999"), 400, "unknown_room"),
        ("check-in", body(common_areas=["SPA"]), 400, "bad_request"),
        ("check-in", body(encoder="NOPE"), 400, "unknown_encoder"),
        ("copy", body(), 400, "guest_not_found"),
        ("check-out", {"room": "101"}, 400, "guest_not_found"),
        ("modify", {"room": "101", "guest_name": "X"}, 400, "guest_not_found"),
        ("read-key", {"encoder": "NOPE"}, 400, "unknown_encoder"),
    ],
)
def test_hotel_errors_answer_their_code(admin_client, hotel_site, operation, data, status, code):
    response = post(admin_client, operation, data)
    assert (response.status_code, response.data["code"]) == (status, code)
    assert response.data["detail"]


def test_a_move_into_an_occupied_room_is_a_conflict(admin_client, hotel_site):
    post(admin_client, "check-in", body("101"))
    post(admin_client, "check-in", body("201"))
    response = post(admin_client, "modify", {"room": "101", "new_room": "201"})
    assert (response.status_code, response.data["code"]) == (409, "room_occupied")


def test_an_offline_encoder_is_503(admin_client, hotel_site):
    make_encoder(station="DESK1")
    response = post(admin_client, "check-in", body(encoder="DESK1"))
    assert (response.status_code, response.data["code"]) == (503, "encoder_offline")


@pytest.mark.parametrize(
    ("operation", "data", "field"),
    [
        ("check-in", {"departure": "2030-01-01T00:00:00Z"}, "room"),
        ("check-in", body(departure="tomorrow"), "departure"),
        ("check-in", body(room="123456789"), "room"),
        ("check-in", body(kind="twice"), "kind"),
        ("check-in", body(wait_seconds=600), "wait_seconds"),
        ("check-in", body(extra_rooms="102"), "extra_rooms"),
        ("modify", {"room": "101"}, "non_field_errors"),
        ("read-key", {}, "encoder"),
    ],
)
def test_bad_input_is_a_400_with_field_errors(admin_client, hotel_site, operation, data, field):
    response = post(admin_client, operation, data)
    assert response.status_code == 400
    assert field in response.data
    assert not Key.objects.exists()


# --- idempotency --------------------------------------------------------------------------------------------


def test_a_retry_with_the_same_key_and_body_gets_the_first_answer_without_issuing_again(admin_client, hotel_site):
    data = body(reservation="R1")
    first = post(admin_client, "check-in", data, key="abc-1")
    retry = post(admin_client, "check-in", dict(reversed(data.items())), key="abc-1")  # same body, keys reordered

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.data == first.data
    assert retry["Idempotent-Replayed"] == "true"
    assert Key.objects.count() == 1


def test_the_same_key_with_another_body_is_refused(admin_client, hotel_site):
    post(admin_client, "check-in", body(reservation="R1"), key="abc-2")
    other = post(admin_client, "check-in", body(reservation="R2"), key="abc-2")

    assert (other.status_code, other.data["code"]) == (422, "idempotency_key_reused")
    assert Key.objects.count() == 1


def test_without_a_key_each_call_runs(admin_client, hotel_site):
    post(admin_client, "check-in", body())
    post(admin_client, "copy", body())
    post(admin_client, "copy", body())
    assert Key.objects.count() == 3


def test_a_failed_call_keeps_no_answer_so_its_retry_runs(admin_client, hotel_site):
    data = body()
    failed = post(admin_client, "copy", data, key="abc-3")
    post(admin_client, "check-in", body())
    retry = post(admin_client, "copy", data, key="abc-3")

    assert (failed.status_code, retry.status_code) == (400, 201)
    assert Key.objects.count() == 2


def test_keys_are_per_operator(hotel_site):
    first, second = (
        client_with("accesscontrol.add_key", all_partitions=True),
        client_with("accesscontrol.add_key", all_partitions=True),
    )
    post(first, "check-in", body("101"), key="same")
    response = post(second, "check-in", body("201"), key="same")
    assert response.status_code == 201
    assert Key.objects.count() == 2


def test_an_answer_older_than_a_day_is_forgotten(admin_client, hotel_site):
    data = body()
    post(admin_client, "check-in", data, key="old")
    IdempotencyRecord.objects.update(created_at=days(-2))

    again = post(admin_client, "check-in", data, key="old")

    assert (again.status_code, again.has_header("Idempotent-Replayed")) == (201, False)
    assert Key.objects.count() == 2
    assert IdempotencyRecord.objects.count() == 1
    IdempotencyRecord.objects.update(created_at=days(-2))
    assert idempotency.purge_expired() == 1


def test_a_bad_idempotency_key_is_a_400(admin_client, hotel_site):
    response = post(admin_client, "check-in", body(), key="x" * 256)
    assert (response.status_code, "Idempotency-Key" in response.data) == (400, True)


# --- permissions --------------------------------------------------------------------------------------------


def test_without_the_key_permission_nothing_is_issued(hotel_site):
    client = client_with("accesscontrol.view_key", all_partitions=True)
    assert post(client, "check-in", body()).status_code == 403
    assert post(client, "check-out", {"room": "101"}).status_code == 403
    assert not Stay.objects.exists()


def test_the_permission_must_be_held_in_the_rooms_partition(hotel_site):
    partition = make_partition()
    hotel_site["rooms"]["201"].access_point.partition = partition
    hotel_site["rooms"]["201"].access_point.save()
    client = client_with("accesscontrol.add_key", "accesscontrol.view_key", partitions=[partition])

    assert post(client, "check-in", body("101")).status_code == 403
    assert post(client, "check-in", body("201")).status_code == 201
    rooms = client.get(f"{URL}rooms/").data["results"]
    assert [room["number"] for room in rooms] == ["201"]
    assert Stay.objects.get().room.number == "201"


def test_checking_out_needs_change_key(hotel_site):
    post(client_with("accesscontrol.add_key", all_partitions=True), "check-in", body())
    adder = client_with("accesscontrol.add_key", all_partitions=True)
    changer = client_with("accesscontrol.change_key", all_partitions=True)

    assert post(adder, "check-out", {"room": "101"}).status_code == 403
    assert Stay.objects.get().status == "in"
    assert post(changer, "check-out", {"room": "101"}).status_code == 200


def test_anonymous_callers_are_refused(hotel_site):
    client = APIClient()
    assert post(client, "check-in", body()).status_code in (401, 403)
    assert client.get(f"{URL}rooms/").status_code in (401, 403)
    assert not Stay.objects.exists()


# --- with an encoder: concurrency and key reads ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_retry_while_the_first_call_waits_for_the_card_gets_its_answer(encoder_bridge, monkeypatch):
    from simulation.encoders import SimulatedEncoder

    claims = []  # the real claim runs; the test only learns that the retry has reached it
    claim = idempotency.claim
    monkeypatch.setattr(idempotency, "claim", lambda *args, **options: claims.append(1) or claim(*args, **options))

    make_hotel()
    make_encoder(station="DESK1")
    encoder_bridge.reload()
    operator = make_operator(is_superuser=True)
    data = body(encoder="DESK1", wait_seconds=20)
    answers = []

    def call():
        client = APIClient()
        client.force_login(operator)
        try:
            answers.append(post(client, "check-in", data, key="pms-42"))
        finally:
            connection.close()  # this thread's own connection

    async def scenario():
        device = SimulatedEncoder(ENCODER_ID, KEY, ("127.0.0.1", encoder_bridge.port), retry_first_s=0.1)
        await device.connect(5)
        await until(_online)
        first = threading.Thread(target=call)
        first.start()
        # Sent: the encoder is waiting for a card (a job on any card reads it first).
        await until(lambda: answers or EncodeJob.objects.filter(status=EncodeStatus.SENT).exists())
        assert not answers, answers[0].data

        second = threading.Thread(target=call)
        second.start()
        await until(lambda: len(claims) == 2)  # the retry is waiting on the first call's record
        device.place_card("04A1B2C3D4E5F6")
        await asyncio.to_thread(first.join, 30)
        await asyncio.to_thread(second.join, 30)
        await device.stop()

    run(scenario(), timeout=60)
    assert [answer.status_code for answer in answers] == [201, 201]
    assert answers[0].data == answers[1].data
    assert [answer.has_header("Idempotent-Replayed") for answer in answers] == [False, True]
    assert Key.objects.count() == 1
    assert EncodeJob.objects.count() == 1
    assert decoded(base64.b64decode(answers[0].data["card_data"])).key_id == Key.objects.get().pk


def _online() -> bool:
    from devices.models import Device

    return Device.objects.filter(device_id=ENCODER_ID, online=True).exists()


def test_reading_keys_and_the_lists_need_view_key(hotel_site):
    viewer = client_with("accesscontrol.view_key", all_partitions=True)
    stranger = client_with("accesscontrol.view_cardholder", all_partitions=True)

    assert post(viewer, "read-key", {"encoder": "NOPE"}).data["code"] == "unknown_encoder"
    assert viewer.get(f"{URL}stays/").status_code == 200
    assert post(stranger, "read-key", {"encoder": "NOPE"}).status_code == 403
    assert stranger.get(f"{URL}rooms/").status_code == 403
    assert stranger.get(f"{URL}stays/").status_code == 403
    assert post(viewer, "check-in", body()).status_code == 403
