"""Webhook delivery measured against a real local receiver (``manage.py bench_live`` calls it).

``measure_webhooks`` needs a throwaway database (it writes a subscription and
its deliveries, and deletes them at the end). The receiver is an HTTP server
on 127.0.0.1 in a thread of this process, which answers a share of the
requests with 500, and counts what it accepted by ``Space-Webhook-Id``, as a
real receiver that de-duplicates would. Tests use the same receiver.
"""

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.db import transaction
from django.utils import timezone

from integrations.webhooks import signing

CLOSE = "close"  # an answer: close the connection without answering


@dataclass
class Received:
    number: int
    headers: Message  # case-insensitive: headers["Space-Webhook-Id"]
    body: bytes
    status: int | None  # None: closed without answering
    duplicate: bool = False

    @property
    def id(self) -> str:
        return self.headers.get(signing.ID_HEADER, "")

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int | str = 200  # or CLOSE
    delay: float = 0.0  # seconds before answering


def every_nth_fails(share: float) -> Callable[[int, Message], Answer]:
    """Answer 500 to ``share`` of the requests, spread evenly (request n fails when n * share crosses an integer)."""

    def answer(number: int, headers: Message) -> Answer:
        failing = int((number + 1) * share) > int(number * share)
        return Answer(500 if failing else 200)

    return answer


class Receiver:
    """A webhook receiver on 127.0.0.1: answers as ``answer`` says and accepts each Space-Webhook-Id once.

    A request whose id was accepted before is answered 200 and not handled
    again (``duplicates`` counts them). With ``secret``, requests whose
    signature does not verify are answered 401 (``bad_signatures``).
    """

    def __init__(self, answer: Callable[[int, Message], Answer] | None = None, secret: str | None = None):
        self.answer = answer or (lambda number, headers: Answer())
        self.secret = secret
        self.lock = threading.Lock()
        self.requests: list[Received] = []
        self.accepted: Counter = Counter()  # handled requests by id: 1 each, whatever was sent twice
        self.answered_ok: Counter = Counter()  # 2xx answers by id, duplicates included
        self.duplicates = 0
        self.bad_signatures = 0
        self.failed_answers = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/space"

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def wait_for(self, condition: Callable[["Receiver"], bool], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if condition(self):
                    return True
            time.sleep(0.02)
        with self.lock:
            return condition(self)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        headers = handler.headers
        with self.lock:
            number = len(self.requests)
            received = Received(number, headers, body, None)
            self.requests.append(received)
        reply = self.answer(number, headers)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.status == CLOSE:
            handler.close_connection = True
            return
        status = reply.status
        with self.lock:
            if self.secret is not None and not signing.verify(
                self.secret,
                headers.get(signing.TIMESTAMP_HEADER, ""),
                headers.get(signing.SIGNATURE_HEADER, ""),
                body,
            ):
                self.bad_signatures += 1
                status = 401
            elif 200 <= status < 300:
                self.answered_ok[received.id] += 1
                if received.id in self.accepted:
                    self.duplicates += 1
                    received.duplicate = True
                else:
                    self.accepted[received.id] += 1
            else:
                self.failed_answers += 1
            received.status = status
        handler.send_response(status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                receiver._handle(self)

            def log_message(self, format, *args):
                pass

        return Handler


@dataclass
class _Timing:
    started: float = field(default_factory=time.perf_counter)

    def seconds(self) -> float:
        return time.perf_counter() - self.started


def synthetic_payloads(count: int) -> list[dict]:
    """Event payloads shaped like ``accesscontrol.events.event_payload``'s."""
    at = timezone.now().isoformat().replace("+00:00", "Z")
    return [
        {
            "type": "audit_event",
            "key": str(uuid.uuid4()),
            "id": number,
            "kind": "access_granted",
            "at": at,
            "reason": "granted",
            "access_point": 1,
            "access_point_name": "Main entrance",
            "partition": None,
            "cardholder": 1,
            "cardholder_name": "Ada Lovelace",
            "key_uid": "04A1B2C3D4E5F6",
            "device": 1,
            "device_event_id": number,
            "operator": None,
            "detail": {},
        }
        for number in range(count)
    ]


def measure_webhooks(events: int = 2000, failure_share: float = 0.1, timeout: float = 120.0) -> dict:
    """Deliver ``events`` webhooks to a local receiver failing ``failure_share`` of its answers; how fast, how exact.

    The delivery runs are the production code with the production concurrency;
    only the backoff is shortened (retries wait 50 ms, not seconds), so the
    figure is the delivery rate rather than the retry schedule.
    """
    from integrations import webhooks
    from integrations.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
    from integrations.webhooks import delivery

    policy = delivery.Policy(backoff_base=0.05, backoff_cap=0.2)
    payloads = synthetic_payloads(events)
    with Receiver(every_nth_fails(failure_share)) as receiver:
        subscription = WebhookSubscription(
            name=f"benchmark {uuid.uuid4().hex[:8]}",
            url=receiver.url,
            all_partitions=True,
            allow_private_target=True,
            max_tries=30,
        )
        subscription.set_secret()
        subscription.save()
        try:
            webhooks.forget_subscriptions()
            enqueue = _Timing()
            for start in range(0, events, 500):
                with transaction.atomic():
                    webhooks.enqueue(payloads[start : start + 500])
            enqueue_seconds = enqueue.seconds()

            undelivered = WebhookDelivery.objects.filter(subscription=subscription).exclude(
                status=DeliveryStatus.DELIVERED
            )
            run = _Timing()
            while undelivered.exists() and run.seconds() < timeout:
                if not delivery.deliver(policy).claimed:
                    time.sleep(0.01)  # the retries are not due yet
            seconds = run.seconds()
            delivered = WebhookDelivery.objects.filter(
                subscription=subscription, status=DeliveryStatus.DELIVERED
            ).count()
        finally:
            subscription.delete()
            webhooks.forget_subscriptions()
        with receiver.lock:
            exactly_once = sum(1 for count in receiver.answered_ok.values() if count == 1)
            return {
                "webhook_events": events,
                "webhook_deliveries_per_second": round(delivered / seconds) if seconds else 0,
                "webhook_seconds": round(seconds, 3),
                "webhook_delivered": delivered,
                "webhook_delivered_exactly_once": exactly_once,
                "webhook_duplicates": receiver.duplicates,
                "webhook_failed_answers": receiver.failed_answers,
                "webhook_requests": len(receiver.requests),
                "webhook_enqueue_rows_per_second": round(events / enqueue_seconds) if enqueue_seconds else 0,
                "webhook_concurrency": policy.per_subscription,
            }
