"""The web app: issuing a key from a cardholder's page onto a card on an encoder, and the job's progress panel.

The card data is the real one (devices.cards), checked by decoding it with the site card key.
"""

import re

import pytest
from django.test import Client
from django.urls import reverse

from accesscontrol.models import Key
from devices import encoding
from devices.models import EncodeJob
from tests.devices.encoders_support import decoded, make_encoder, with_too_many_rights
from tests.factories import make_cardholder, make_key, make_operator, make_partition

pytestmark = pytest.mark.django_db

ISSUE = ("accesscontrol.view_cardholder", "accesscontrol.view_key", "accesscontrol.add_key")


@pytest.fixture
def holder(partition):
    return make_cardholder(partition=partition, first_name="Ada", last_name="Lovelace")


@pytest.fixture
def encoder():
    return make_encoder(name="Front desk encoder")


def client_with(*permissions, partitions) -> Client:
    client = Client()
    client.force_login(make_operator(*permissions, partitions=partitions))
    return client


def issue(client, holder, **fields):
    return client.post(reverse("cardholder_key_issue", args=[holder.pk]), {"kind": "card", **fields})


def test_the_issue_form_offers_the_enabled_encoders(holder, encoder, partition):
    make_encoder(5100, name="Old encoder", enabled=False)
    make_encoder(5101, name="Lobby unit", kind="control_unit")

    page = client_with(*ISSUE, partitions=[partition]).get(reverse("cardholder", args=[holder.pk]))

    choices = [label for _, label in page.context["key_form"].fields["encoder"].choices]
    assert choices == ["No encoder: the UID is entered", "Front desk encoder"]
    assert "Encode on" in page.content.decode()


def test_a_key_with_its_uid_is_issued_and_written_on_the_encoder(holder, encoder, partition):
    client = client_with(*ISSUE, partitions=[partition])

    response = issue(client, holder, uid="04:12:34:56", encoder=encoder.pk)

    assert response.status_code == 302
    key = Key.objects.get()
    job = EncodeJob.objects.get()
    assert (key.uid, job.key_id, job.encoder_id) == ("04123456", key.pk, encoder.pk)
    card = decoded(bytes(job.data))
    assert (card.key_id, card.uid, card.cardholder_id) == (key.pk, "04123456", holder.pk)
    page = client.get(reverse("cardholder", args=[holder.pk])).content.decode()
    assert f'id="encode-job-{job.pk}"' in page and "Writing the card on Front desk encoder" in page
    assert f'hx-get="{reverse("encode_job", args=[job.pk])}"' in page


def test_without_a_uid_the_key_waits_for_the_card_presented(holder, encoder, partition):
    client = client_with(*ISSUE, partitions=[partition])

    response = issue(client, holder, uid="", encoder=encoder.pk)

    assert response.status_code == 302
    key = Key.objects.get()
    assert encoding.is_placeholder(key.uid) and bytes(EncodeJob.objects.get().data) == b""
    page = client.get(reverse("cardholder", args=[holder.pk])).content.decode()
    assert "Waiting for its card" in page and key.uid not in page


def test_without_a_uid_or_an_encoder_the_uid_is_a_field_error(holder, partition):
    response = issue(client_with(*ISSUE, partitions=[partition]), holder, uid="")

    assert response.status_code == 400
    assert response.context["key_form"].errors["uid"] == [
        "Enter the card's UID, or choose an encoder to write whatever card is presented."
    ]
    assert not Key.objects.exists()


def test_a_mobile_key_is_not_written_on_an_encoder(holder, encoder, partition):
    response = issue(client_with(*ISSUE, partitions=[partition]), holder, uid="0A0B", kind="mobile", encoder=encoder.pk)

    assert response.status_code == 400
    assert response.context["key_form"].errors["kind"] == ["Only cards and fobs are written on an encoder."]
    assert not Key.objects.exists()


def test_card_data_that_does_not_fit_issues_nothing_and_says_what_to_reduce(holder, encoder, partition):
    with_too_many_rights(holder)

    response = issue(client_with(*ISSUE, partitions=[partition]), holder, uid="0A0B0C0D", encoder=encoder.pk)

    assert response.status_code == 400
    [message] = response.context["key_form"].non_field_errors()
    assert re.search(r"remove at least [\d,]+ access points or zones", message), message
    assert message in response.content.decode()
    assert not Key.objects.exists() and not EncodeJob.objects.exists()


@pytest.mark.parametrize(
    ("status", "error", "shown"),
    [
        ("waiting_card", "", "Present the card to Front desk encoder."),
        ("failed", "no_card", "No card was presented to the encoder in time."),
        ("failed", "wrong_card_type", "The card on the encoder is of the wrong type"),
        ("failed", "encoder_offline", "The encoder is offline."),
    ],
)
def test_the_panel_shows_progress_and_a_clear_error(holder, encoder, partition, status, error, shown):
    job = encoding.create_encode_job(make_key(holder, uid="0C0C0C0C"), encoder, None)
    encoding.job_progress(job.pk, status, error=error)

    panel = client_with(*ISSUE, partitions=[partition]).get(reverse("encode_job", args=[job.pk]))

    text = panel.content.decode()
    assert panel.status_code == 200 and shown in text
    # It polls while the job runs, and stops when it is over.
    assert ("hx-trigger" in text) == (status != "failed")


def test_the_panel_of_a_done_job_shows_the_card_written(holder, encoder, partition):
    job = encoding.create_encode_job(make_key(holder, uid="0C0C0C0C"), encoder, None)
    encoding.job_progress(job.pk, "done", card_uid="0c0c0c0c")

    text = client_with(*ISSUE, partitions=[partition]).get(reverse("encode_job", args=[job.pk])).content.decode()

    assert 'Card <span class="mono">0C0C0C0C</span> written.' in text and 'aria-valuenow="100"' in text


def test_a_job_of_another_partitions_key_is_not_shown(holder, encoder):
    job = encoding.create_encode_job(make_key(holder, uid="0C0C0C0C"), encoder, None)

    response = client_with(*ISSUE, partitions=[make_partition()]).get(reverse("encode_job", args=[job.pk]))

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        ("timeout", "The encoder did not finish in time."),
        ("write_failed", "The encoder could not write the card: present it again."),
    ],
)
def test_the_panel_explains_the_servers_own_errors(holder, encoder, partition, error, shown):
    job = encoding.create_encode_job(make_key(holder, uid="0C0C0C0C"), encoder, None)
    encoding.job_progress(job.pk, "failed", error=error)

    text = client_with(*ISSUE, partitions=[partition]).get(reverse("encode_job", args=[job.pk])).content.decode()

    assert f'<span class="error" role="alert">{shown}</span>' in text and error not in text


def test_a_usb_encoder_asks_for_the_uid_on_the_form(holder, partition):
    usb = make_encoder(5200, kind="usb_encoder", name="Desk encoder")

    response = issue(client_with(*ISSUE, partitions=[partition]), holder, uid="", encoder=usb.pk)

    assert response.status_code == 400
    assert response.context["key_form"].errors["encoder"] == [
        "A USB encoder writes a key whose card UID is known: give the UID, or use an Ethernet encoder."
    ]
    assert not Key.objects.exists() and not EncodeJob.objects.exists()


# --- the standalone "Issue a key" page ------------------------------------------------------------


def test_the_issue_page_offers_the_encoders(encoder, partition):
    page = client_with(*ISSUE, partitions=[partition]).get(reverse("key_issue"))

    choices = [label for _, label in page.context["form"].fields["encoder"].choices]
    assert choices == ["No encoder: the UID is entered", "Front desk encoder"]
    assert "Encode on" in page.content.decode()


def test_the_issue_page_writes_the_key_on_the_encoder_and_the_cardholders_page_follows_it(holder, encoder, partition):
    client = client_with(*ISSUE, partitions=[partition])

    response = client.post(
        reverse("key_issue"), {"cardholder": str(holder.pk), "uid": "", "kind": "card", "encoder": encoder.pk}
    )

    assert response.status_code == 302 and response["Location"] == reverse("cardholder", args=[holder.pk])
    key, job = Key.objects.get(), EncodeJob.objects.get()
    assert (key.cardholder_id, job.key_id, job.encoder_id) == (holder.pk, key.pk, encoder.pk)
    assert encoding.is_placeholder(key.uid)
    page = client.get(response["Location"]).content.decode()
    assert f'hx-get="{reverse("encode_job", args=[job.pk])}"' in page
    assert "Key issued to Ada Lovelace: present the card to Front desk encoder." in page


def test_the_issue_page_shows_an_unfit_encoder_on_the_form(holder, partition):
    usb = make_encoder(5200, kind="usb_encoder", name="Desk encoder")

    response = client_with(*ISSUE, partitions=[partition]).post(
        reverse("key_issue"), {"cardholder": str(holder.pk), "uid": "", "kind": "card", "encoder": usb.pk}
    )

    assert response.status_code == 400
    assert response.context["form"].errors["encoder"] == [
        "A USB encoder writes a key whose card UID is known: give the UID, or use an Ethernet encoder."
    ]
    assert not Key.objects.exists() and not EncodeJob.objects.exists()


def test_without_an_encoder_the_issue_page_still_needs_the_uid(holder, partition):
    response = client_with(*ISSUE, partitions=[partition]).post(
        reverse("key_issue"), {"cardholder": str(holder.pk), "uid": "", "kind": "card"}
    )

    assert response.status_code == 400
    assert response.context["form"].errors["uid"] == [
        "Enter the card's UID, or choose an encoder to write whatever card is presented."
    ]
    assert not Key.objects.exists()
