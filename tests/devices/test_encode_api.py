"""API v1: POST /keys/{id}/encode/ queues an encode job; GET /encode-jobs/{id}/ follows it.

The card data is the real one (devices.cards), checked by decoding it with the site card key.
The jobs' way through the bridge is in test_encoders.py; here, the requests and their rights.
"""

import re

import pytest

from accesscontrol.models import SystemAuditEntry
from devices import encoding
from devices.models import EncodeJob
from tests.devices.encoders_support import decoded, make_encoder, with_too_many_rights
from tests.factories import make_cardholder, make_key, make_operator, make_partition
from tests.support.api import client_for, client_with, grant

pytestmark = pytest.mark.django_db

ISSUE = ("accesscontrol.view_key", "accesscontrol.add_key", "accesscontrol.view_cardholder")


@pytest.fixture
def key(partition):
    return make_key(make_cardholder(partition=partition), uid="04A0A0A0")


@pytest.fixture
def encoder():
    return make_encoder()


def encode(client, key, **body):
    return client.post(f"/api/v1/keys/{key.pk}/encode/", body, format="json")


def test_encoding_a_key_queues_a_job_with_its_card_data(key, encoder, partition):
    client = client_with(*ISSUE, partitions=[partition])

    response = encode(client, key, encoder=encoder.pk)

    assert response.status_code == 202, response.content
    job = EncodeJob.objects.get()
    assert response.json() | {"created_at": None, "updated_at": None} == {
        "id": job.pk,
        "key": key.pk,
        "encoder": encoder.pk,
        "status": "queued",
        "progress": 0,
        "error": "",
        "error_message": "",
        "card_uid": "",
        "operator": job.operator_id,
        "created_at": None,
        "updated_at": None,
        "finished_at": None,
    }
    card = decoded(bytes(job.data))
    assert (card.key_id, card.uid, card.cardholder_id, card.revision) == (key.pk, "04A0A0A0", key.cardholder_id, 1)
    entry = SystemAuditEntry.objects.get(action="encode_key")
    assert (entry.object_id, entry.via, entry.detail["job"]) == (str(key.pk), "api", job.pk)


def test_on_any_card_the_job_waits_for_the_card_before_its_data_is_built(key, encoder, partition):
    client = client_with(*ISSUE, partitions=[partition])

    response = encode(client, key, encoder=encoder.pk, any_card=True)

    assert response.status_code == 202
    assert bytes(EncodeJob.objects.get().data) == b""


def test_the_job_can_be_followed_until_it_fails_with_a_clear_error(key, encoder, partition):
    client = client_with(*ISSUE, partitions=[partition])
    job_id = encode(client, key, encoder=encoder.pk).json()["id"]
    encoding.job_progress(job_id, "waiting_card")
    waiting = client.get(f"/api/v1/encode-jobs/{job_id}/").json()
    encoding.job_progress(job_id, "failed", error="wrong_card_type")

    failed = client.get(f"/api/v1/encode-jobs/{job_id}/").json()

    assert (waiting["status"], waiting["progress"]) == ("waiting_card", 40)
    assert (failed["status"], failed["error"], failed["progress"]) == ("failed", "wrong_card_type", 40)
    assert failed["error_message"] == encoding.ERROR_MESSAGES["wrong_card_type"]
    assert failed["finished_at"] is not None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "control_unit"}, "is not an encoder"),
        ({"enabled": False}, "is disabled"),
    ],
)
def test_a_device_that_cannot_encode_is_a_field_error(key, partition, fields, message):
    device = make_encoder(6000, **fields)
    client = client_with(*ISSUE, partitions=[partition])

    response = encode(client, key, encoder=device.pk)

    assert response.status_code == 400
    assert message in response.json()["encoder"][0]
    assert not EncodeJob.objects.exists()


def test_an_unknown_encoder_is_a_field_error(key, partition):
    response = encode(client_with(*ISSUE, partitions=[partition]), key, encoder=999999)

    assert response.status_code == 400 and "encoder" in response.json()


def test_card_data_that_does_not_fit_is_a_400_naming_what_to_reduce(key, encoder, partition):
    with_too_many_rights(key.cardholder)

    response = encode(client_with(*ISSUE, partitions=[partition]), key, encoder=encoder.pk)

    assert response.status_code == 400
    [message] = response.json()["non_field_errors"]
    assert re.search(r"remove at least [\d,]+ access points or zones", message), message
    assert not EncodeJob.objects.exists()


def test_a_cancelled_key_is_not_encoded(key, encoder, partition):
    key.status = "cancelled"
    key.save()

    response = encode(client_with(*ISSUE, partitions=[partition]), key, encoder=encoder.pk)

    assert response.status_code == 400 and "key" in response.json()


def test_without_the_right_to_issue_keys_nothing_is_queued(key, encoder, partition):
    response = encode(client_with("accesscontrol.view_key", partitions=[partition]), key, encoder=encoder.pk)

    assert response.status_code == 403
    assert not EncodeJob.objects.exists()


def test_keys_of_another_partition_are_not_found_and_their_jobs_not_shown(key, encoder, partition):
    job = encoding.create_encode_job(key, encoder, None)
    client = client_with(*ISSUE, partitions=[make_partition()])

    assert encode(client, key, encoder=encoder.pk).status_code == 404
    assert client.get(f"/api/v1/encode-jobs/{job.pk}/").status_code == 404
    assert EncodeJob.objects.count() == 1


def test_a_key_seen_but_in_a_partition_without_the_right_to_issue_is_forbidden(key, encoder, partition):
    operator = make_operator("accesscontrol.view_key", partitions=[partition])
    grant(operator, "accesscontrol.add_key", [make_partition()])
    response = encode(client_for(operator), key, encoder=encoder.pk)

    assert response.status_code == 403
    assert not EncodeJob.objects.exists()
