"""Mobile keys on a cardholder's page in the web app: issue one, invite a phone (its code shown once), cancel."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from accesscontrol.models import BlacklistEntry, Key, SystemAuditEntry
from integrations.mobilekeys import services
from integrations.mobilekeys.models import MobileKey, PhoneEnrolment
from tests.factories import (
    make_access_level,
    make_access_point,
    make_cardholder,
    make_key,
    make_operator,
    make_partition,
)

pytestmark = pytest.mark.django_db

VIEW = ("accesscontrol.view_cardholder", "accesscontrol.view_key")
DESK = (*VIEW, "accesscontrol.add_key", "accesscontrol.change_key")
CODE = re.compile(r'<code class="secret" id="invitation-code">([A-Z0-9-]+)</code>')


@pytest.fixture
def guest(partition):
    room = make_access_point(name="Room 12", partition=partition)
    return make_cardholder(make_access_level(room), partition=partition, first_name="Ada", last_name="Guest")


def client_with(*permissions, partitions) -> Client:
    client = Client()
    client.force_login(make_operator(*permissions, partitions=partitions))
    return client


def mobile_key(guest, **fields) -> Key:
    mobile, _ = services.issue(guest, operator=None, via="test", **fields)
    return mobile.key


def page(client, guest) -> str:
    return client.get(reverse("cardholder", args=[guest.pk])).content.decode()


def mobile_section(text: str) -> str:
    start = text.index('id="mobile-keys"')
    return text[start : text.index("</section>", start)]


def test_the_cardholders_page_lists_their_mobile_keys_and_whether_a_phone_holds_them(guest, partition):
    waiting = mobile_key(guest, phone_number="+41791234567")
    enrolled = mobile_key(guest)
    _, code = services.invite_key(enrolled, operator=None, via="test")
    services.enrol(code)
    make_key(guest, uid="04AABBCC")  # a card: not a mobile key

    section = mobile_section(page(client_with(*DESK, partitions=[partition]), guest))

    assert waiting.uid in section and enrolled.uid in section and "04AABBCC" not in section
    assert "No phone invited" in section and "+41791234567" in section
    assert "On a phone" in section and 'last fetched <span class="muted">never</span>' in section
    assert section.count("Invite a phone<") == 2 and "Issue a mobile key" in section


def test_inviting_a_phone_shows_a_one_time_code_that_the_phone_app_redeems(guest, partition):
    key = mobile_key(guest)
    client = client_with(*DESK, partitions=[partition])

    response = client.post(reverse("phone_invite", args=[key.pk]))

    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    code = CODE.search(response.content.decode()).group(1)
    assert len(code.replace("-", "")) == services.CODE_LENGTH
    enrolment = PhoneEnrolment.objects.get()
    assert code not in str(enrolment.code_digest)
    assert SystemAuditEntry.objects.filter(action="invite_phone", via="web", object_id=str(key.pk)).count() == 1
    section = mobile_section(page(client, guest))
    assert "Invited" in section and code not in section
    enrolled = services.enrol(code)
    assert enrolled is not None and enrolled[0].pk == enrolment.pk
    assert services.enrol(code) is None  # once only


def test_a_new_invitation_revokes_the_phone_enrolled_before(guest, partition):
    key = mobile_key(guest)
    _, first_code = services.invite_key(key, operator=None, via="test")
    first, _ = services.enrol(first_code)

    client_with(*DESK, partitions=[partition]).post(reverse("phone_invite", args=[key.pk]))

    first.refresh_from_db()
    assert first.revoked_at is not None and PhoneEnrolment.objects.count() == 2


def test_a_key_issued_as_mobile_on_the_key_form_can_be_invited_too(guest, partition):
    key = make_key(guest, uid="0A0B0C0D0E0F1011", kind="mobile")

    response = client_with(*DESK, partitions=[partition]).post(reverse("phone_invite", args=[key.pk]))

    assert response.status_code == 200 and MobileKey.objects.get().key_id == key.pk


def test_a_card_or_a_cancelled_key_is_not_put_on_a_phone(guest, partition):
    card = make_key(guest, uid="04AABBCC")
    cancelled = mobile_key(guest)
    Key.objects.filter(pk=cancelled.pk).update(status="cancelled")
    client = client_with(*DESK, partitions=[partition])

    for key in (card, cancelled):
        response = client.post(reverse("phone_invite", args=[key.pk]), follow=True)
        assert response.redirect_chain == [(reverse("cardholder", args=[guest.pk]), 302)]
        assert "Only an issued mobile key can be put on a phone." in response.content.decode()
    assert not PhoneEnrolment.objects.exists()


def test_without_the_change_permission_no_phone_is_invited(guest, partition):
    key = mobile_key(guest)
    client = client_with(*VIEW, "accesscontrol.add_key", partitions=[partition])

    assert client.post(reverse("phone_invite", args=[key.pk])).status_code == 403
    assert "Invite a phone<" not in mobile_section(page(client, guest))
    assert not PhoneEnrolment.objects.exists()


def test_a_key_of_another_partition_is_not_found(guest):
    key = mobile_key(guest)

    response = client_with(*DESK, partitions=[make_partition()]).post(reverse("phone_invite", args=[key.pk]))

    assert response.status_code == 404 and not PhoneEnrolment.objects.exists()


def test_a_mobile_key_is_issued_from_the_cardholders_page(guest, partition):
    client = client_with(*DESK, partitions=[partition])

    response = client.post(reverse("mobile_key_issue", args=[guest.pk]), follow=True)

    key = Key.objects.get()
    assert (key.kind, key.status, key.cardholder_id, MobileKey.objects.get().key_id) == (
        "mobile",
        "issued",
        guest.pk,
        key.pk,
    )
    assert f"Mobile key {key.uid} issued: invite a phone to put it on." in response.content.decode()
    assert SystemAuditEntry.objects.filter(action="issue_key", via="web").count() == 1


def test_without_the_add_permission_no_mobile_key_is_issued(guest, partition):
    client = client_with(*VIEW, "accesscontrol.change_key", partitions=[partition])
    elsewhere = client_with(*DESK, partitions=[make_partition()])

    assert client.post(reverse("mobile_key_issue", args=[guest.pk])).status_code == 403
    assert elsewhere.post(reverse("mobile_key_issue", args=[guest.pk])).status_code == 404
    assert not Key.objects.exists()


def test_cancelling_through_the_key_cancel_blacklists_it_and_the_phone_gets_no_more_tokens(guest, partition):
    key = mobile_key(guest)
    _, code = services.invite_key(key, operator=None, via="test")
    _, credential = services.enrol(code)
    assert len(services.phone_tokens(services.authenticate(credential))) == 1
    client = client_with(*DESK, partitions=[partition])
    here = reverse("cardholder", args=[guest.pk])

    response = client.post(reverse("key_cancel", args=[key.pk]), {"next": here})

    assert response["Location"] == here
    key.refresh_from_db()
    assert key.status == "cancelled" and BlacklistEntry.objects.get().key_id == key.pk
    assert services.phone_tokens(services.authenticate(credential)) == []
    section = mobile_section(page(client, guest))
    assert "Cancelled" in section and "Invite a phone<" not in section
