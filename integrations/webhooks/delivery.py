"""Delivering the outbox: claim due rows, POST them with bounded concurrency, write down how each went.

``deliver()`` is one delivery run, the same code in a Celery task (production)
and in the embedded service (``runspace``). ``sweep()`` is the periodic check
that makes the outbox the source of truth: rows claimed by a run that died
(worker killed, machine restarted) go back to pending, and old log rows go.

A run claims a subscription's due rows (``SELECT ... FOR UPDATE SKIP LOCKED``
on PostgreSQL, so parallel runs share the work; SQLite has one writer) and
marks them ``delivering``. Threads only do HTTP; the run's own thread does all
database work, writing outcomes in batches. Each subscription has at most
``per_subscription`` requests in flight and the threads are shared round
robin, so a slow receiver slows only its own deliveries; a receiver that does
not answer at all (timeout, refused, closed) has the rest of its claimed rows
handed back at once rather than waiting their turn to time out too.

A try that fails is retried after an exponential backoff with jitter, up to
the subscription's ``max_tries``, then the delivery is ``failed``. A
subscription whose tries have all failed for ``pause_after`` is paused with
the reason; its rows wait, nothing is dropped, until an operator resumes it.
Delivery is at least once: a run that dies after the receiver answered sends
again, with the same ``Space-Webhook-Id``, which the receiver de-duplicates.
"""

import datetime as dt
import json
import logging
import random
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from core.vault import VaultError
from integrations.models import DeliveryStatus, WebhookDelivery, WebhookSubscription, idempotency_key
from integrations.targets import Target, TargetError, TargetRefused, check_url
from integrations.webhooks import signing, transport

logger = logging.getLogger("space.webhooks")

PENDING, DELIVERING, DELIVERED, FAILED = (
    DeliveryStatus.PENDING,
    DeliveryStatus.DELIVERING,
    DeliveryStatus.DELIVERED,
    DeliveryStatus.FAILED,
)
LOST_CLAIM = "the delivery run stopped before the answer was recorded (worker restart?)"


@dataclass(frozen=True)
class Policy:
    concurrency: int = 32  # requests in flight in one run
    per_subscription: int = 8  # of which for one subscription
    claim_batch: int = 100  # rows claimed for a subscription at a time
    reclaim_every: float = 0.5  # a subscription with nothing due is looked at again this often during a run
    run_seconds: float = 25.0  # a run claims nothing new after this
    timeouts: transport.Timeouts = field(default_factory=transport.Timeouts)
    backoff_base: float = 2.0  # the first retry waits 1-2 s, then twice as long each time...
    backoff_cap: float = 3600.0  # ...up to an hour
    pause_after: float = 3600.0  # paused when every try has failed for this long...
    pause_min_failures: int = 10  # ...and this many tries in a row
    stale_after: float = 120.0  # a claim older than this belongs to a run that died (longer than any run)
    retention_days: int = 30  # delivered and failed rows are kept this long for the log
    purge_batch: int = 5000
    flush_every: float = 0.1  # outcomes are written at least this often
    flush_size: int = 200

    def backoff(self, tries: int) -> float:
        """Seconds to wait after the ``tries``-th failed try: exponential, capped, with jitter to spread a herd."""
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (tries - 1))
        return delay / 2 + random.uniform(0, delay / 2)


DEFAULT_POLICY = Policy()


@dataclass
class RunStats:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    released: int = 0
    paused: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Claimed:
    pk: int
    event_key: str
    payload: dict
    tries: int
    claimed_at: dt.datetime


class _Lane:
    """One subscription during a run: its claimed rows, what it has in flight, and whether it may go on."""

    def __init__(self, subscription: WebhookSubscription, secret: str):
        self.id = subscription.pk
        self.name = subscription.name
        self.uid = subscription.uid
        self.url = subscription.url
        self.allow_private = subscription.allow_private_target
        self.max_tries = subscription.max_tries
        self.secret = secret
        self.queue: deque[_Claimed] = deque()
        self.in_flight = 0
        self.last_claim = -float("inf")
        self.drained = False  # the last claim found fewer rows than asked for
        self.stopped = ""  # why this run sends nothing more to it
        self.retry_at: dt.datetime | None = None  # the latest retry this run has set for it
        self._target: Target | None = None
        self._lock = threading.Lock()

    def target(self) -> Target:
        """Resolved and checked once per run (TargetError when it cannot be used)."""
        with self._lock:
            if self._target is None:
                self._target = check_url(self.url, allow_private=self.allow_private)
            return self._target


@dataclass(slots=True)
class _Outcome:
    lane: _Lane
    row: _Claimed
    answer: transport.Answer
    refused: bool = False


def deliver(policy: Policy = DEFAULT_POLICY, stop: threading.Event | None = None) -> RunStats:
    """One delivery run: until nothing is due (or ``run_seconds`` passed, or ``stop`` is set)."""
    stats = RunStats()
    lanes = _lanes(stats)
    if not lanes:
        return stats
    with ThreadPoolExecutor(max_workers=policy.concurrency, thread_name_prefix="webhook") as pool:
        _Run(policy, pool, lanes, stats, stop).go()
    return stats


def _lanes(stats: RunStats) -> list[_Lane]:
    lanes = []
    for subscription in WebhookSubscription.objects.filter(active=True, paused_at__isnull=True).order_by("pk"):
        try:
            secret = subscription.secret()
        except VaultError as error:
            reason = f"Its secret does not open ({error}); give it a new secret, then resume it."
            if pause(subscription.pk, reason):
                stats.paused.append(subscription.name)
            continue
        lanes.append(_Lane(subscription, secret))
    return lanes


class _Run:
    def __init__(self, policy: Policy, pool: ThreadPoolExecutor, lanes: list[_Lane], stats: RunStats, stop):
        self.policy, self.pool, self.lanes, self.stats, self.stop = policy, pool, lanes, stats, stop
        self.deadline = time.monotonic() + policy.run_seconds
        self.futures: dict[Future, tuple[_Lane, _Claimed]] = {}
        self.outcomes: list[_Outcome] = []
        self.last_flush = time.monotonic()

    def go(self) -> None:
        try:
            while True:
                self._fill()
                if not self.futures:
                    break
                done, _ = wait(self.futures, timeout=self.policy.flush_every, return_when=FIRST_COMPLETED)
                for future in done:
                    lane, _row = self.futures.pop(future)
                    lane.in_flight -= 1
                    self._outcome(future.result())
                if len(self.outcomes) >= self.policy.flush_size or (
                    time.monotonic() - self.last_flush >= self.policy.flush_every
                ):
                    self._flush()
        finally:
            # Whatever happens, rows claimed and not sent go back; sent ones are written down.
            for future, (lane, row) in list(self.futures.items()):
                if future.cancel():
                    lane.queue.appendleft(row)
                else:
                    self._outcome(future.result())
            self._flush()
            for lane in self.lanes:
                self._release(lane, timezone.now())

    def _claiming(self) -> bool:
        return time.monotonic() < self.deadline and not (self.stop and self.stop.is_set())

    def _fill(self) -> None:
        """Start requests round robin across subscriptions, claiming more rows for a subscription when it runs out."""
        progress = True
        while progress and len(self.futures) < self.policy.concurrency:
            progress = False
            for lane in self.lanes:
                if len(self.futures) >= self.policy.concurrency:
                    break
                if lane.stopped or lane.in_flight >= self.policy.per_subscription:
                    continue
                if not lane.queue and not self._claim(lane):
                    continue
                row = lane.queue.popleft()
                lane.in_flight += 1
                self.futures[self.pool.submit(_send, lane, row, self.policy.timeouts)] = (lane, row)
                progress = True

    def _claim(self, lane: _Lane) -> bool:
        if not self._claiming():
            return False
        now_monotonic = time.monotonic()
        if lane.drained and now_monotonic - lane.last_claim < self.policy.reclaim_every:
            return False
        rows = claim(lane.id, self.policy.claim_batch)
        lane.last_claim = now_monotonic
        lane.drained = len(rows) < self.policy.claim_batch
        lane.queue.extend(rows)
        self.stats.claimed += len(rows)
        return bool(rows)

    def _outcome(self, outcome: _Outcome) -> None:
        lane = outcome.lane
        if outcome.refused:
            # Not tried: the URL now leads somewhere it may not; the row waits while the subscription is paused.
            lane.queue.appendleft(outcome.row)
            if not lane.stopped:
                lane.stopped = outcome.answer.error
                if pause(lane.id, f"Its URL cannot be used: {outcome.answer.error}"):
                    self.stats.paused.append(lane.name)
            return
        self.outcomes.append(outcome)
        if outcome.answer.status is None and not lane.stopped:
            # No answer at all: the receiver is down or unreachable; its other rows would fare the same.
            lane.stopped = outcome.answer.error

    def _flush(self) -> None:
        self.last_flush = time.monotonic()
        if not self.outcomes:
            return
        outcomes, self.outcomes = self.outcomes, []
        now = timezone.now()
        with transaction.atomic():
            _record(outcomes, now, self.policy, self.stats)
            for lane in {outcome.lane for outcome in outcomes if not outcome.answer.delivered}:
                reason = _pause_if_failing(lane, now, self.policy)
                if reason:
                    lane.stopped = reason
                    self.stats.paused.append(lane.name)
        for lane in {outcome.lane for outcome in outcomes}:
            if lane.stopped:
                self._release(lane, now)

    def _release(self, lane: _Lane, now: dt.datetime) -> None:
        """Hand back claimed rows this run will not send: due again after the backoff of a first failure."""
        if not lane.queue:
            return
        rows, lane.queue = list(lane.queue), deque()
        # A receiver that stopped answering gets no new try before its latest retry is due.
        later = max(lane.retry_at or now, now + dt.timedelta(seconds=self.policy.backoff(1))) if lane.stopped else now
        for claimed_at in {row.claimed_at for row in rows}:
            WebhookDelivery.objects.filter(
                pk__in=[row.pk for row in rows if row.claimed_at == claimed_at],
                status=DELIVERING,
                claimed_at=claimed_at,
            ).update(status=PENDING, claimed_at=None, next_attempt_at=later)
        self.stats.released += len(rows)


def claim(subscription_id: int, limit: int) -> list[_Claimed]:
    """Mark up to ``limit`` of the subscription's due rows as being delivered by this run, and return them."""
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            WebhookDelivery.objects.filter(
                subscription_id=subscription_id,
                status=PENDING,
                next_attempt_at__lte=now,
                subscription__active=True,
                subscription__paused_at__isnull=True,
            )
            .order_by("next_attempt_at", "pk")
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", "event_key", "payload", "tries")[:limit]
        )
        if rows:
            WebhookDelivery.objects.filter(pk__in=[row[0] for row in rows]).update(status=DELIVERING, claimed_at=now)
    return [_Claimed(pk, key, payload, tries, now) for pk, key, payload, tries in rows]


def _send(lane: _Lane, row: _Claimed, timeouts: transport.Timeouts) -> _Outcome:
    """One try (on a pool thread; no database here)."""
    try:
        target = lane.target()
    except TargetRefused as error:
        return _Outcome(lane, row, transport.Answer(None, str(error)), refused=True)
    except TargetError as error:
        return _Outcome(lane, row, transport.Answer(None, str(error)))
    body = json.dumps(row.payload, separators=(",", ":"), ensure_ascii=False).encode()
    headers = signing.headers(
        secret=lane.secret,
        idempotency_key=idempotency_key(lane.uid, row.event_key),
        body=body,
        attempt=row.tries + 1,
        event=str(row.payload.get("kind") or row.payload.get("type") or ""),
        timestamp=int(time.time()),
    )
    try:
        return _Outcome(lane, row, transport.post(target, body, headers, timeouts))
    except Exception as error:  # a bug must cost one try, not the run
        logger.exception("Webhook %s: sending %s failed", lane.name, row.event_key)
        return _Outcome(lane, row, transport.Answer(None, f"internal error: {type(error).__name__}"))


def _record(outcomes: list[_Outcome], now: dt.datetime, policy: Policy, stats: RunStats) -> None:
    """Write what the tries gave, and each subscription's health; only rows still claimed by this run change."""
    delivered: dict[tuple, list[int]] = {}
    for outcome in outcomes:
        row, answer = outcome.row, outcome.answer
        if answer.delivered:
            delivered.setdefault((row.claimed_at, answer.status), []).append(row.pk)
            continue
        tries = row.tries + 1
        if tries >= outcome.lane.max_tries:
            status, next_attempt_at = FAILED, now
            stats.failed += 1
        else:
            status, next_attempt_at = PENDING, now + dt.timedelta(seconds=policy.backoff(tries))
            stats.retried += 1
            outcome.lane.retry_at = max(outcome.lane.retry_at or next_attempt_at, next_attempt_at)
        WebhookDelivery.objects.filter(pk=row.pk, status=DELIVERING, claimed_at=row.claimed_at).update(
            status=status,
            tries=tries,
            next_attempt_at=next_attempt_at,
            claimed_at=None,
            last_error=answer.error[:500],
            last_status_code=answer.status,
        )
    for (claimed_at, status_code), pks in delivered.items():
        stats.delivered += WebhookDelivery.objects.filter(pk__in=pks, status=DELIVERING, claimed_at=claimed_at).update(
            status=DELIVERED,
            tries=F("tries") + 1,
            delivered_at=now,
            claimed_at=None,
            last_status_code=status_code,
        )
    by_lane: dict[_Lane, list[_Outcome]] = {}
    for outcome in outcomes:
        by_lane.setdefault(outcome.lane, []).append(outcome)
    for lane, lane_outcomes in by_lane.items():
        _record_health(lane, lane_outcomes, now)


def _record_health(lane: _Lane, outcomes: list[_Outcome], now: dt.datetime) -> None:
    """Failures in a row since the last success, and since when; in the order the answers came."""
    last_success = max((i for i, o in enumerate(outcomes) if o.answer.delivered), default=None)
    failures = outcomes[last_success + 1 :] if last_success is not None else outcomes
    subscription = WebhookSubscription.objects.filter(pk=lane.id)
    if last_success is not None:
        fields = {"failures_in_a_row": len(failures), "last_success_at": now}
        fields["failing_since"] = now if failures else None
        if failures:
            fields["last_error"] = failures[-1].answer.error[:500]
        subscription.update(**fields)
    elif failures:
        subscription.update(
            failures_in_a_row=F("failures_in_a_row") + len(failures), last_error=failures[-1].answer.error[:500]
        )
        subscription.filter(failing_since__isnull=True).update(failing_since=now)


def _pause_if_failing(lane: _Lane, now: dt.datetime, policy: Policy) -> str:
    """Pause the subscription when every try has failed for ``pause_after``; returns the reason, or ''."""
    health = (
        WebhookSubscription.objects.filter(pk=lane.id)
        .values("failures_in_a_row", "failing_since", "last_error")
        .first()
    )
    if not health or health["failing_since"] is None or health["failures_in_a_row"] < policy.pause_min_failures:
        return ""
    if now - health["failing_since"] < dt.timedelta(seconds=policy.pause_after):
        return ""
    reason = (
        f"Every try has failed since {health['failing_since']:%Y-%m-%d %H:%M:%S %Z} "
        f"({health['failures_in_a_row']} in a row); the last: {health['last_error']}. "
        "Deliveries wait until it is resumed."
    )
    return reason if pause(lane.id, reason, now) else ""


def pause(subscription_id: int, reason: str, now: dt.datetime | None = None) -> bool:
    """Pause a subscription that is not paused yet; its deliveries wait. True when this call paused it."""
    paused = WebhookSubscription.objects.filter(pk=subscription_id, paused_at__isnull=True).update(
        paused_at=now or timezone.now(), paused_reason=reason[:500]
    )
    if paused:
        logger.warning("Webhook subscription %s paused: %s", subscription_id, reason)
    return bool(paused)


# --- the sweep ---------------------------------------------------------------------------------


@dataclass
class SweepStats:
    recovered: int = 0
    failed: int = 0
    orphans: int = 0
    purged: int = 0
    due: bool = False


def sweep(policy: Policy = DEFAULT_POLICY, stale_after: float | None = None) -> SweepStats:
    """Put back rows whose run died, drop orphans and old log rows; say whether anything is due."""
    stats = SweepStats()
    now = timezone.now()
    stale_before = now - dt.timedelta(seconds=policy.stale_after if stale_after is None else stale_after)
    stale = WebhookDelivery.objects.filter(status=DELIVERING, claimed_at__lt=stale_before)
    with transaction.atomic():
        # The lost try may have reached the receiver: it counts, and the next one carries the same id.
        for subscription_id, max_tries in (
            WebhookSubscription.objects.filter(Exists(stale.filter(subscription=OuterRef("pk"))))
            .values_list("pk", "max_tries")
            .iterator()
        ):
            mine = stale.filter(subscription_id=subscription_id)
            stats.failed += mine.filter(tries__gte=max_tries - 1).update(
                status=FAILED, tries=F("tries") + 1, claimed_at=None, last_error=LOST_CLAIM, last_status_code=None
            )
            stats.recovered += mine.update(
                status=PENDING, tries=F("tries") + 1, claimed_at=None, next_attempt_at=now, last_error=LOST_CLAIM
            )
        orphans = WebhookDelivery.objects.filter(status__in=[PENDING, DELIVERING]).exclude(
            Exists(WebhookSubscription.objects.filter(pk=OuterRef("subscription_id")))
        )
        stats.orphans = orphans.delete()[0]
    cutoff = now - dt.timedelta(days=policy.retention_days)
    for status in (DELIVERED, FAILED):
        old = WebhookDelivery.objects.filter(status=status, created_at__lt=cutoff).values_list("pk", flat=True)
        pks = list(old[: policy.purge_batch])
        if pks:
            stats.purged += WebhookDelivery.objects.filter(pk__in=pks).delete()[0]
    stats.due = due()
    if stats.recovered or stats.failed or stats.orphans:
        logger.info("Webhook sweep: %s", stats)
    return stats


def due() -> bool:
    """Whether some delivery of an active, unpaused subscription is waiting for a run now."""
    return WebhookDelivery.objects.filter(
        status=PENDING,
        next_attempt_at__lte=timezone.now(),
        subscription__active=True,
        subscription__paused_at__isnull=True,
    ).exists()


def next_due_in() -> float | None:
    """Seconds until the earliest waiting retry of an active, unpaused subscription (0 when due); None when none."""
    earliest = (
        WebhookDelivery.objects.filter(status=PENDING, subscription__active=True, subscription__paused_at__isnull=True)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    if earliest is None:
        return None
    return max(0.0, (earliest - timezone.now()).total_seconds())
