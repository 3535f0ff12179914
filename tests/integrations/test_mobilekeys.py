"""Mobile keys end to end: issued over the API, delivered to a phone app over real HTTP, opened by an offline lock."""

import base64
import datetime as dt

import pytest
from django.utils import timezone

from accesscontrol.models import AccessLevelEntry, AccessPoint, ApiKey, Key, SystemAuditEntry
from devices import cards, locks, mobiletoken
from integrations.mobilekeys import services
from integrations.mobilekeys.models import MobileKey, PhoneEnrolment
from simulation.offline_lock import OfflineLock
from simulation.ppd import ApiError, JsonClient
from tests.devices.test_locks import make_lock
from tests.factories import (
    give_permission,
    make_access_level,
    make_access_point,
    make_cardholder,
    make_key,
    make_operator,
    make_partition,
)

# Issuing for a cardholder means seeing them, as for any key.
KEY_PERMISSIONS = (
    "accesscontrol.view_cardholder",
    "accesscontrol.view_key",
    "accesscontrol.add_key",
    "accesscontrol.change_key",
)


def api_client(live_server, *permissions, **fields) -> JsonClient:
    _, token = ApiKey.issue(make_operator(*permissions, **fields), "Front desk")
    return JsonClient(live_server.url, f"Api-Key {token}")


class Phone:
    """The guest's phone app: redeems its invitation, fetches its keys, answers a lock's challenge."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.api = JsonClient(base_url)

    def enrol(self, code: str) -> None:
        credential = self.api.post("/api/v1/phone/enrol/", {"code": code})["credential"]
        self.api = JsonClient(self.base_url, f"Phone {credential}")

    def fetch(self) -> list[dict]:
        return self.api.get("/api/v1/phone/keys/")["keys"]

    def open(self, lock: OfflineLock, key: dict, at: dt.datetime):
        token, secret = base64.b64decode(key["token"]), base64.b64decode(key["phone_secret"])
        proof = mobiletoken.prove(secret, lock.challenge(at), lock.config.lock_id)
        return lock.present_mobile(token, proof, at), (token, proof)


@pytest.fixture
def site(transactional_db):
    room, spa = make_access_point(name="Room 12"), make_access_point(name="Spa")
    guest = make_cardholder(make_access_level(room), first_name="Ada", last_name="Guest")
    return {
        "room": room,
        "spa": spa,
        "guest": guest,
        "room_lock": OfflineLock(locks.lock_config(make_lock(room, device_id=9001))),
        "spa_lock": OfflineLock(locks.lock_config(make_lock(spa, device_id=9002))),
    }


@pytest.fixture
def desk(live_server):
    return api_client(live_server, *KEY_PERMISSIONS, all_partitions=True)


def issue_and_enrol(desk, live_server, guest, **fields) -> tuple[dict, Phone]:
    issued = desk.post("/api/v1/mobile-keys/", {"cardholder": guest.pk, **fields})
    invitation = desk.post(f"/api/v1/mobile-keys/{issued['id']}/enrol/", {})
    phone = Phone(live_server.url)
    phone.enrol(invitation["code"])
    return issued, phone


def test_a_phone_gets_its_token_over_the_api_and_the_lock_opens_once_for_each_challenge(desk, live_server, site):
    issued, phone = issue_and_enrol(desk, live_server, site["guest"], phone_number="+41791234567")
    now = timezone.now()

    (key,) = phone.fetch()
    outcome, (token, proof) = phone.open(site["room_lock"], key, now)

    assert issued["phone_number"] == "+41791234567"
    assert (key["key"], key["uid"]) == (issued["id"], issued["uid"])
    stored = Key.objects.get(pk=issued["id"])
    assert (stored.kind, stored.cardholder_id, len(stored.uid)) == ("mobile", site["guest"].pk, 16)
    assert (outcome.granted, outcome.reason, outcome.key_id) == (True, "granted", stored.pk)
    replayed = site["room_lock"].present_mobile(token, proof, now + dt.timedelta(seconds=2))
    assert (replayed.granted, replayed.reason) == (False, "replayed")
    assert phone.open(site["spa_lock"], key, now)[0].reason == "no_permission"


def test_the_token_is_sealed_for_the_sites_locks_only(desk, live_server, site):
    _, phone = issue_and_enrol(desk, live_server, site["guest"])
    (key,) = phone.fetch()
    token, secret = base64.b64decode(key["token"]), base64.b64decode(key["phone_secret"])
    site_code, card_key = cards.site_card_key()

    assert mobiletoken.open_token(token, card_key, site_code)[1] == secret
    with pytest.raises(mobiletoken.CardError) as refused:
        mobiletoken.open_token(token, bytes(32), site_code)
    assert refused.value.reason == "tampered"
    flipped = token[:-1] + bytes([token[-1] ^ 1])
    lock = site["room_lock"]
    proof = mobiletoken.prove(secret, lock.challenge(timezone.now()), lock.config.lock_id)
    assert lock.present_mobile(flipped, proof, timezone.now()).reason == "tampered"


def test_a_rights_change_reaches_the_phone_at_its_next_fetch(desk, live_server, site):
    _, phone = issue_and_enrol(desk, live_server, site["guest"])
    (before,) = phone.fetch()
    give_permission(site["guest"], site["spa"])

    (after,) = phone.fetch()

    now = timezone.now()
    assert phone.open(site["spa_lock"], before, now)[0].reason == "no_permission"
    assert phone.open(site["spa_lock"], after, now)[0].granted


def test_a_cancelled_key_is_no_longer_served_and_locks_refuse_it_once_the_blacklist_reaches_them(
    desk, live_server, site
):
    issued, phone = issue_and_enrol(desk, live_server, site["guest"])
    (kept,) = phone.fetch()  # a token the phone (or a thief with the phone) still holds
    lock, now = site["room_lock"], timezone.now()

    cancelled = desk.post(f"/api/v1/mobile-keys/{issued['id']}/cancel/", {})

    assert cancelled["status"] == "cancelled"
    assert phone.fetch() == []
    assert phone.open(lock, kept, now)[0].granted  # the lock has not heard of it yet
    # A colleague's card, written after the cancellation, carries the blacklist entry to the lock.
    colleague = make_key(make_cardholder(make_access_level(site["room"])), uid="04C0FFEE")
    outcome, _ = lock.present(cards.card_bytes_for_key(colleague, now), now, uid="04C0FFEE")
    assert outcome.granted
    outcome = phone.open(lock, kept, now + dt.timedelta(seconds=1))[0]
    assert (outcome.granted, outcome.reason) == (False, "blacklisted")


def test_an_invitation_code_works_once_and_a_new_one_revokes_the_old_phone(desk, live_server, site):
    issued, phone = issue_and_enrol(desk, live_server, site["guest"])
    code = desk.post(f"/api/v1/mobile-keys/{issued['id']}/enrol/", {})["code"]

    with pytest.raises(ApiError) as old_phone:
        phone.fetch()
    new_phone = Phone(live_server.url)
    new_phone.enrol(code.lower())  # as typed
    with pytest.raises(ApiError) as again:
        Phone(live_server.url).enrol(code)

    assert old_phone.value.status == 401
    assert len(new_phone.fetch()) == 1
    assert (again.value.status, again.value.body) == (400, {"code": ["Unknown, used or expired invitation code."]})


def test_an_expired_invitation_is_refused(desk, live_server, site):
    issued = desk.post("/api/v1/mobile-keys/", {"cardholder": site["guest"].pk})
    code = desk.post(f"/api/v1/mobile-keys/{issued['id']}/enrol/", {})["code"]
    PhoneEnrolment.objects.update(code_expires_at=timezone.now() - dt.timedelta(seconds=1))

    with pytest.raises(ApiError) as refused:
        Phone(live_server.url).enrol(code)

    assert refused.value.status == 400


def test_codes_and_credentials_are_stored_as_digests_only(desk, live_server, site):
    issued = desk.post("/api/v1/mobile-keys/", {"cardholder": site["guest"].pk})
    code = desk.post(f"/api/v1/mobile-keys/{issued['id']}/enrol/", {})["code"]
    credential = JsonClient(live_server.url).post("/api/v1/phone/enrol/", {"code": code})["credential"]

    row = PhoneEnrolment.objects.values().get()
    stored = " ".join(str(value) for value in row.values())
    assert code not in stored and credential not in stored
    assert credential.split("_", 2)[2] not in stored
    assert SystemAuditEntry.objects.filter(action="invite_phone", object_id=str(issued["id"])).exists()
    assert "code" not in str(SystemAuditEntry.objects.get(action="invite_phone").detail)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "cardholder"),
        ({"cardholder": 999999}, "cardholder"),
        ({"cardholder": "me"}, "cardholder"),
        ({"phone_number": "call me"}, "phone_number"),
        ({"valid_from": "2030-01-02T00:00Z", "valid_until": "2030-01-01T00:00Z"}, "valid_until"),
    ],
)
def test_bad_issue_requests_get_field_errors_and_issue_nothing(desk, site, body, field):
    payload = {"cardholder": site["guest"].pk, **body} if field != "cardholder" else body

    with pytest.raises(ApiError) as refused:
        desk.post("/api/v1/mobile-keys/", payload)

    assert refused.value.status == 400
    assert field in refused.value.body
    assert not Key.objects.exists()


def test_rights_that_do_not_fit_in_a_token_are_a_400_saying_what_to_reduce(desk, site):
    points = AccessPoint.objects.bulk_create(AccessPoint(name=f"Locker {n}") for n in range(2500))
    level = make_access_level()
    AccessLevelEntry.objects.bulk_create(AccessLevelEntry(access_level=level, access_point=p) for p in points)
    site["guest"].access_levels.add(level)

    with pytest.raises(ApiError) as refused:
        desk.post("/api/v1/mobile-keys/", {"cardholder": site["guest"].pk})

    assert refused.value.status == 400
    assert "remove at least" in refused.value.body["cardholder"][0]
    assert not Key.objects.exists() and not MobileKey.objects.exists()


def test_permissions_issuing_needs_add_key_and_enrolling_change_key(live_server, site):
    viewer = api_client(live_server, *KEY_PERMISSIONS[:2], all_partitions=True)
    issuer = api_client(live_server, *KEY_PERMISSIONS[:3], all_partitions=True)

    with pytest.raises(ApiError) as refused:
        viewer.post("/api/v1/mobile-keys/", {"cardholder": site["guest"].pk})
    assert refused.value.status == 403
    assert not Key.objects.exists()

    issued = issuer.post("/api/v1/mobile-keys/", {"cardholder": site["guest"].pk})
    for path in ("enrol", "cancel"):
        with pytest.raises(ApiError) as refused:
            issuer.post(f"/api/v1/mobile-keys/{issued['id']}/{path}/", {})
        assert refused.value.status == 403
    assert not PhoneEnrolment.objects.exists()
    assert Key.objects.get().status == "issued"


def test_an_operator_of_another_partition_cannot_issue_for_this_cardholder(live_server, site):
    elsewhere = api_client(
        live_server, *KEY_PERMISSIONS, "accesscontrol.view_cardholder", partitions=[make_partition()]
    )
    site["guest"].partition = make_partition()
    site["guest"].save()

    with pytest.raises(ApiError) as refused:
        elsewhere.post("/api/v1/mobile-keys/", {"cardholder": site["guest"].pk})

    assert refused.value.status == 400
    assert not Key.objects.exists()


def test_the_phone_endpoints_need_a_phone_credential(desk, live_server, site):
    for client in (JsonClient(live_server.url), desk, JsonClient(live_server.url, "Phone spm_nothing_here")):
        with pytest.raises(ApiError) as refused:
            client.get("/api/v1/phone/keys/")
        assert refused.value.status in (401, 403)


def test_mobile_keys_are_listed_with_their_phone_number(desk, site):
    mobile, _ = services.issue(site["guest"], operator=None, via="test", phone_number="+41791234567")
    make_key(site["guest"])  # a card: not listed

    listed = desk.get("/api/v1/mobile-keys/")["results"]

    assert [(item["id"], item["phone_number"]) for item in listed] == [(mobile.key_id, "+41791234567")]
