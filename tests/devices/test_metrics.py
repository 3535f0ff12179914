"""Decisions of the real SDP/1 bridge in /metrics: counted by result, reason and driver, and timed."""

import pytest
from django.test import Client

from accesscontrol.models import ApiKey
from tests.devices.test_bridge import access
from tests.factories import make_operator
from tests.support.metrics import own_sample, sample, scrape
from tests.support.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

REFUSED = {"result": "refused", "reason": "unknown_key", "driver": "sdp"}
GRANTED = {"result": "granted", "reason": "granted", "driver": "sdp"}


def test_a_bridge_decision_is_counted_with_its_reason_and_timed(device):
    refused, granted = (
        own_sample("space_decisions", "space_decisions_total", **REFUSED),
        own_sample("space_decisions", "space_decisions_total", **GRANTED),
    )
    timed = own_sample("space_decision_seconds", "space_decision_seconds_count", driver="sdp")

    assert access(device, uid="DEADBEEF")["reason"] == "unknown_key"
    assert access(device, req=2)["grant"] is True

    # The bridge counts on its own thread right after answering: wait for it.
    wait_until(lambda: own_sample("space_decision_seconds", "space_decision_seconds_count", driver="sdp") == timed + 2)
    assert own_sample("space_decisions", "space_decisions_total", **REFUSED) == refused + 1
    assert own_sample("space_decisions", "space_decisions_total", **GRANTED) == granted + 1

    key = ApiKey.issue(make_operator(), "prometheus")[1]
    families = scrape(Client(), HTTP_AUTHORIZATION=f"Api-Key {key}")
    # /metrics sums every process of the site (and here other test processes too): at least this one's.
    assert sample(families, "space_decisions", "space_decisions_total", **REFUSED) >= refused + 1
    assert sample(families, "space_decisions", "space_decisions_total", **GRANTED) >= granted + 1
    assert sample(families, "space_decision_seconds", "space_decision_seconds_count", driver="sdp") >= timed + 2
    # Answered within the last bucket: the histogram's buckets hold the observations.
    assert sample(families, "space_decision_seconds", "space_decision_seconds_bucket", driver="sdp", le="+Inf") >= (
        timed + 2
    )
    assert families["space_decision_seconds"].type == "histogram"
    assert families["space_decisions"].type == "counter"
