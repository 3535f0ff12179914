"""Delivering webhooks to a real HTTP receiver on 127.0.0.1: signatures, retries, timeouts, pausing, recovery.

Each test runs delivery runs in this process (the code a Celery task or the
embedded service runs) against ``simulation.benchmarks.webhooks.Receiver``, an
http.server in a thread, told how to answer each request.
"""

import dataclasses
import datetime as dt
import re
import ssl
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.db import connection
from django.utils import timezone

from accesscontrol import events
from accesscontrol.models import AuditEvent
from integrations import http as outbound_http
from integrations.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from integrations.webhooks import actions, delivery, transport
from simulation.benchmarks.webhooks import CLOSE, Answer, Receiver
from tests.factories import make_operator

pytestmark = pytest.mark.django_db

DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
FAST = delivery.Policy(
    backoff_base=0.01,
    backoff_cap=0.02,
    reclaim_every=0.02,
    flush_every=0.02,
    timeouts=transport.Timeouts(connect=1.0, read=0.5, total=2.0),
)
# FAST with a backoff no run outlasts: with FAST's, a loaded machine may find the retry due before the run ends.
ONE_TRY = dataclasses.replace(FAST, backoff_base=10.0, backoff_cap=10.0)


def subscribe(url: str, **fields) -> WebhookSubscription:
    fields.setdefault("name", f"Receiver {WebhookSubscription.objects.count() + 1}")
    fields.setdefault("all_partitions", True)
    fields.setdefault("allow_private_target", True)  # the receivers are on 127.0.0.1
    subscription = WebhookSubscription(url=url, **fields)
    subscription.issued = subscription.set_secret()
    subscription.save()
    return subscription


def record_events(count: int = 1, kind: str = "access_denied", **fields) -> list[AuditEvent]:
    """Audit events stored as operators' actions are: through events.record, which enqueues their deliveries."""
    return [events.record(at=timezone.now(), kind=kind, **fields) for _ in range(count)]


def settle(policy: delivery.Policy = FAST, timeout: float = 10.0) -> None:
    """Delivery runs until nothing is pending or being delivered (retries included)."""
    unsettled = WebhookDelivery.objects.filter(
        status__in=[DeliveryStatus.PENDING, DeliveryStatus.DELIVERING],
        subscription__paused_at__isnull=True,
    )
    deadline = time.monotonic() + timeout
    while unsettled.exists():
        assert time.monotonic() < deadline, list(unsettled.values("status", "tries", "last_error"))
        if not delivery.deliver(policy).claimed:
            time.sleep(0.01)


def documented_verify():
    """The verify() function of docs/webhooks.md, as a receiver would copy it."""
    text = DOCS.read_text()
    section = text[text.index("## Verifying a request") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    namespace = {}
    exec(compile(code, str(DOCS), "exec"), namespace)  # noqa: S102 (our own documentation)
    return namespace["verify"]


def by_attempt(*answers: Answer):
    """Answer each id's n-th request with ``answers[n]`` (the last one from then on)."""
    seen = {}
    lock = threading.Lock()

    def answer(number, headers):
        with lock:
            attempt = seen.get(headers["Space-Webhook-Id"], 0)
            seen[headers["Space-Webhook-Id"]] = attempt + 1
        return answers[min(attempt, len(answers) - 1)]

    return answer


# --- the request ----------------------------------------------------------------------------------


def test_each_request_is_signed_so_that_the_documented_recipe_verifies_it():
    verify = documented_verify()
    with Receiver() as receiver:
        subscription = subscribe(receiver.url)
        (event,) = record_events(kind="door_forced")

        settle()

        (request,) = receiver.requests
    row = WebhookDelivery.objects.get()
    assert verify(subscription.issued, request.headers, request.body) is True
    assert verify(subscription.issued, request.headers, request.body + b" ") is False
    assert verify("another secret of some length", request.headers, request.body) is False
    assert request.json()["id"] == event.pk
    assert request.json()["kind"] == "door_forced"
    assert request.json()["key"] == row.event_key
    assert request.headers["Space-Webhook-Id"] == row.idempotency_key
    assert request.headers["Space-Webhook-Event"] == "door_forced"
    assert request.headers["Space-Webhook-Attempt"] == "1"
    assert request.headers["Content-Type"] == "application/json"
    assert abs(int(request.headers["Space-Webhook-Timestamp"]) - time.time()) < 60
    assert (row.status, row.tries, row.last_status_code) == (DeliveryStatus.DELIVERED, 1, 200)


def test_the_documented_recipe_refuses_an_old_timestamp():
    verify = documented_verify()
    with Receiver() as receiver:
        subscription = subscribe(receiver.url)
        record_events()
        settle()
        (request,) = receiver.requests
    request.headers.replace_header("Space-Webhook-Timestamp", str(int(time.time()) - 3600))

    assert verify(subscription.issued, request.headers, request.body) is False


# --- failures, retries, backoff ----------------------------------------------------------------


def test_backoff_doubles_from_one_or_two_seconds_up_to_an_hour_with_jitter():
    policy = delivery.Policy()

    waits = {tries: [policy.backoff(tries) for _ in range(200)] for tries in (1, 2, 3, 12, 20)}

    assert all(1 <= wait <= 2 for wait in waits[1])
    assert all(2 <= wait <= 4 for wait in waits[2])
    assert all(4 <= wait <= 8 for wait in waits[3])
    assert all(1800 <= wait <= 3600 for wait in waits[12] + waits[20])
    assert len({round(wait, 6) for wait in waits[3]}) > 100  # spread, not a herd


def test_a_failed_try_is_retried_only_once_its_backoff_has_passed():
    with Receiver(lambda number, headers: Answer(500)) as receiver:
        subscribe(receiver.url)
        record_events()
        slow_backoff = delivery.Policy(backoff_base=10, flush_every=0.02)
        before = timezone.now()

        first = delivery.deliver(slow_backoff)
        again = delivery.deliver(slow_backoff)

    row = WebhookDelivery.objects.get()
    assert (first.claimed, first.retried, again.claimed) == (1, 1, 0)
    assert (row.status, row.tries, row.last_status_code) == (DeliveryStatus.PENDING, 1, 500)
    assert before + dt.timedelta(seconds=5) <= row.next_attempt_at <= timezone.now() + dt.timedelta(seconds=10)
    assert row.last_error == "HTTP 500"
    assert len(receiver.requests) == 1


def test_a_receiver_that_keeps_answering_500_gets_max_tries_then_the_delivery_is_failed():
    with Receiver(lambda number, headers: Answer(500)) as receiver:
        subscribe(receiver.url, max_tries=3)
        record_events()

        settle()

    row = WebhookDelivery.objects.get()
    assert (row.status, row.tries, row.last_status_code, row.last_error) == (DeliveryStatus.FAILED, 3, 500, "HTTP 500")
    assert [request.headers["Space-Webhook-Attempt"] for request in receiver.requests] == ["1", "2", "3"]
    assert {request.id for request in receiver.requests} == {row.idempotency_key}


def test_a_receiver_that_closes_the_connection_without_answering_gets_a_retry():
    with Receiver(by_attempt(Answer(CLOSE), Answer(200))) as receiver:
        subscribe(receiver.url)
        record_events()

        first = delivery.deliver(FAST)
        row = WebhookDelivery.objects.get()
        settle()

    assert first.retried == 1
    assert row.last_error == "the receiver closed the connection without answering"
    assert row.last_status_code is None
    row.refresh_from_db()
    assert (row.status, row.tries) == (DeliveryStatus.DELIVERED, 2)
    assert len(receiver.requests) == 2


def test_a_receiver_that_answers_after_the_read_timeout_gets_a_retry():
    with Receiver(by_attempt(Answer(200, delay=1.0), Answer(200))) as receiver:
        subscribe(receiver.url)
        record_events()

        started = time.monotonic()
        first = delivery.deliver(FAST)
        took = time.monotonic() - started
        row = WebhookDelivery.objects.get()
        settle()

    assert first.retried == 1 and took < 1.0  # the read timeout is 0.5 s
    assert row.last_error == "timed out"
    row.refresh_from_db()
    assert (row.status, row.tries) == (DeliveryStatus.DELIVERED, 2)


def test_a_receiver_that_answers_a_byte_at_a_time_is_cut_off_at_the_requests_deadline():
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle():
        peer, _ = listener.accept()
        with peer:
            peer.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Padding: " + b"x" * 100:
                if stop.is_set():
                    return
                peer.sendall(bytes([byte]))
                time.sleep(0.1)  # each read is quick, the whole answer is not

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        subscribe(f"http://127.0.0.1:{listener.getsockname()[1]}/")
        record_events()
        started = time.monotonic()
        delivery.deliver(ONE_TRY)
        took = time.monotonic() - started
    finally:
        stop.set()
        listener.close()

    row = WebhookDelivery.objects.get()
    assert took < 3.0  # the whole request may take 2 s
    assert (row.status, row.tries, row.last_error) == (DeliveryStatus.PENDING, 1, "timed out")


def test_a_redirect_is_a_failed_try_not_followed():
    with Receiver(lambda number, headers: Answer(302)) as receiver:
        subscribe(receiver.url)
        record_events()

        delivery.deliver(ONE_TRY)

    row = WebhookDelivery.objects.get()
    assert row.last_status_code == 302
    assert "redirects are not followed" in row.last_error
    assert len(receiver.requests) == 1


# --- one receiver does not hold up the others -----------------------------------------------------


def test_a_slow_receiver_does_not_hold_up_the_deliveries_of_the_others():
    policy = delivery.Policy(per_subscription=2, concurrency=4, flush_every=0.02, reclaim_every=0.02)
    fast_times, slow_times = [], []

    def slowly(number, headers):
        slow_times.append(time.monotonic())
        return Answer(200, delay=0.4)

    def quickly(number, headers):
        fast_times.append(time.monotonic())
        return Answer(200)

    with Receiver(slowly) as slow, Receiver(quickly) as fast:
        slow_subscription = subscribe(slow.url, name="slow")
        subscribe(fast.url, name="fast")
        record_events(10)

        started = time.monotonic()
        delivery.deliver(policy)
        took = time.monotonic() - started

    assert WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 20
    assert len(fast_times) == 10 and len(slow_times) == 10
    assert took >= 10 * 0.4 / 2  # the slow one had its two threads, no more...
    assert max(fast_times) - started < 1.0  # ...and the fast one did not wait for it
    assert WebhookSubscription.objects.get(pk=slow_subscription.pk).failures_in_a_row == 0


def test_a_receiver_that_does_not_answer_has_the_rest_of_its_batch_put_back_at_once():
    policy = delivery.Policy(
        per_subscription=2, flush_every=0.02, timeouts=transport.Timeouts(connect=1.0, read=0.3, total=1.0)
    )
    with Receiver(lambda number, headers: Answer(200, delay=2)) as dead, Receiver() as alive:
        stuck = subscribe(dead.url, name="stuck")
        subscribe(alive.url, name="alive")
        record_events(30)

        started = time.monotonic()
        stats = delivery.deliver(policy)
        took = time.monotonic() - started

    stuck_rows = WebhookDelivery.objects.filter(subscription=stuck)
    assert took < 1.5
    assert len(alive.requests) == 30
    assert len(dead.requests) == 2  # its first two tries timed out; the other 28 were not tried
    assert stats.released == 28
    assert stuck_rows.filter(status=DeliveryStatus.PENDING).count() == 30
    assert sorted(stuck_rows.values_list("tries", flat=True)) == [0] * 28 + [1, 1]
    # They wait for the retry that was set, not the next run.
    assert not stuck_rows.filter(next_attempt_at__lte=timezone.now()).exists()


# --- pausing -----------------------------------------------------------------------------------------


def test_a_subscription_whose_tries_all_fail_long_enough_is_paused_with_a_reason_and_nothing_is_dropped():
    policy = delivery.Policy(
        backoff_base=0.01, backoff_cap=0.02, flush_every=0.02, reclaim_every=0.02, pause_after=0, pause_min_failures=4
    )
    answers = {"status": 500}
    operator = make_operator(is_superuser=True)
    with Receiver(lambda number, headers: Answer(answers["status"])) as receiver:
        subscription = subscribe(receiver.url, max_tries=10)
        record_events(2)

        settle(policy)
        subscription.refresh_from_db()
        paused_at, paused_reason = subscription.paused_at, subscription.paused_reason
        sent_while_failing = len(receiver.requests)
        record_events(1)  # events keep coming while it is paused
        idle = delivery.deliver(policy)

        answers["status"] = 200
        actions.resume(subscription, operator=operator, via="test")
        settle(policy)

    assert paused_at is not None
    assert re.match(
        r"Every try has failed since .+ \((\d+) in a row\); the last: HTTP 500\. Deliveries wait until it is resumed\.",
        paused_reason,
    )
    assert 4 <= sent_while_failing < 10  # paused before any delivery used up its tries
    assert idle.claimed == 0
    subscription.refresh_from_db()
    assert (subscription.paused_at, subscription.paused_reason, subscription.failures_in_a_row) == (None, "", 0)
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 3
    assert len(receiver.accepted) == 3


def test_a_few_failures_among_successes_do_not_pause_a_subscription():
    policy = delivery.Policy(
        backoff_base=0.01, backoff_cap=0.02, flush_every=0.02, reclaim_every=0.02, pause_after=0, pause_min_failures=4
    )
    with Receiver(lambda number, headers: Answer(500 if number % 3 == 0 else 200)) as receiver:
        subscription = subscribe(receiver.url)
        record_events(30)

        settle(policy)

    subscription.refresh_from_db()
    assert subscription.paused_at is None
    assert len(receiver.accepted) == 30


def test_a_url_that_now_resolves_to_a_refused_address_pauses_the_subscription_without_sending():
    with Receiver() as receiver:
        subscription = subscribe(receiver.url)
        record_events(3)
        # As if the DNS answer for its host had changed to 127.0.0.1 since it was saved.
        WebhookSubscription.objects.filter(pk=subscription.pk).update(allow_private_target=False)

        stats = delivery.deliver(FAST)

    subscription.refresh_from_db()
    assert receiver.requests == []
    assert stats.paused == [subscription.name]
    assert subscription.paused_reason.startswith("Its URL cannot be used: 127.0.0.1 is a loopback address")
    assert set(WebhookDelivery.objects.values_list("status", "tries")) == {(DeliveryStatus.PENDING, 0)}


def test_a_subscription_whose_secret_does_not_open_is_paused():
    with Receiver() as receiver:
        subscription = subscribe(receiver.url)
        record_events()
        WebhookSubscription.objects.filter(pk=subscription.pk).update(secret_sealed=b"v1" + bytes(40))

        delivery.deliver(FAST)

    subscription.refresh_from_db()
    assert subscription.paused_reason.startswith("Its secret does not open")
    assert receiver.requests == []


# --- TLS -----------------------------------------------------------------------------------------------


@pytest.fixture
def tls_receiver(tmp_path):
    """A Receiver speaking HTTPS with a self-signed certificate for localhost and 127.0.0.1."""
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_path, key_path)
    receiver = Receiver()
    receiver.server.socket = server_context.wrap_socket(receiver.server.socket, server_side=True)
    receiver.cert_path = cert_path
    with receiver:
        yield receiver


def test_an_https_receiver_whose_certificate_is_not_trusted_gets_nothing(tls_receiver):
    port = tls_receiver.server.server_address[1]
    subscribe(f"https://127.0.0.1:{port}/hooks")
    record_events()

    delivery.deliver(FAST)

    row = WebhookDelivery.objects.get()
    assert row.last_error.startswith("TLS certificate not accepted: ")
    assert tls_receiver.requests == []


def test_an_https_receiver_with_a_trusted_certificate_gets_the_event_by_its_host_name(tls_receiver, monkeypatch):
    trusting = ssl.create_default_context(cafile=str(tls_receiver.cert_path))
    trusting.sslsocket_class = transport.TLS_CONTEXT.sslsocket_class
    monkeypatch.setattr(outbound_http, "TLS_CONTEXT", trusting)  # as SSL_CERT_FILE with a site CA would
    port = tls_receiver.server.server_address[1]
    subscribe(f"https://localhost:{port}/hooks")
    record_events()

    settle()

    assert WebhookDelivery.objects.get().status == DeliveryStatus.DELIVERED
    assert len(tls_receiver.requests) == 1


# --- the outbox survives a run that dies -----------------------------------------------------------


def test_rows_claimed_by_a_run_that_died_are_sent_again_with_the_same_id_after_the_sweep():
    with Receiver() as receiver:
        subscription = subscribe(receiver.url)
        record_events(3)
        lost = delivery.claim(subscription.pk, 10)  # a run claimed them, then its worker was killed

        fresh = delivery.sweep(FAST)  # claims younger than stale_after are left alone
        assert (fresh.recovered, fresh.due) == (0, False)
        swept = delivery.sweep(FAST, stale_after=0)
        rows = list(WebhookDelivery.objects.values_list("status", "tries", "last_error"))
        settle()

    assert len(lost) == 3 and (swept.recovered, swept.due) == (3, True)
    assert rows == [(DeliveryStatus.PENDING, 1, delivery.LOST_CLAIM)] * 3
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED, tries=2).count() == 3
    assert sorted(receiver.accepted) == sorted(row.idempotency_key for row in WebhookDelivery.objects.all())
    assert [request.headers["Space-Webhook-Attempt"] for request in receiver.requests] == ["2"] * 3


def test_a_lost_claim_on_the_last_try_fails_the_delivery():
    subscription = subscribe("http://127.0.0.1:9/", max_tries=2)
    record_events()
    WebhookDelivery.objects.update(tries=1)
    delivery.claim(subscription.pk, 10)

    swept = delivery.sweep(FAST, stale_after=0)

    assert (swept.recovered, swept.failed) == (0, 1)
    assert list(WebhookDelivery.objects.values_list("status", "tries")) == [(DeliveryStatus.FAILED, 2)]


def test_the_sweep_drops_old_log_rows_and_rows_of_a_deleted_subscription():
    subscription = subscribe("http://127.0.0.1:9/")
    gone = subscribe("http://127.0.0.1:9/", name="gone")
    record_events(3)
    old = timezone.now() - dt.timedelta(days=31)
    first, second, _third = WebhookDelivery.objects.filter(subscription=subscription).values_list("pk", flat=True)
    WebhookDelivery.objects.filter(pk=first).update(status=DeliveryStatus.DELIVERED, created_at=old)
    WebhookDelivery.objects.filter(pk=second).update(status=DeliveryStatus.FAILED, created_at=old)
    # Deleted in another process while enqueue still had it cached: the rows outlive it.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM integrations_webhooksubscription WHERE id = %s", [gone.pk])

    swept = delivery.sweep(FAST)

    assert (swept.purged, swept.orphans) == (2, 3)
    assert list(WebhookDelivery.objects.values_list("subscription", "status")) == [
        (subscription.pk, DeliveryStatus.PENDING)
    ]


@pytest.mark.django_db(transaction=True)
def test_runs_claiming_at_the_same_time_get_different_rows():
    subscription = subscribe("http://127.0.0.1:9/")
    record_events(100)
    claimed, barrier = [], threading.Barrier(4)

    def run():
        try:
            barrier.wait()
            claimed.append([row.pk for row in delivery.claim(subscription.pk, 30)])
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    everything = [pk for pks in claimed for pk in pks]
    assert len(claimed) == 4
    assert len(everything) == len(set(everything)) == 100
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERING).count() == 100
