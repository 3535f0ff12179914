"""Health and metrics: ``/healthz`` (the process lives), ``/readyz`` (it can work), ``/metrics`` (Prometheus).

``/healthz`` and ``/readyz`` need no login: load balancers and orchestrators ask
them. They say what failed, never how things are reached: no URL, host name or
error text goes out (the error is logged here instead).

``/metrics`` has two parts. The database's figures (devices online, outbox depth,
webhook failures, backups ...) are read when it is scraped (:class:`SpaceCollector`).
What processes count themselves (decisions by result, reason and driver, the
decision latency histogram, events stored, websocket clients, connector links) is
kept by the process that has it in prometheus_client's multiprocess files under
``SPACE_METRICS_DIR`` and summed here (core/metrics.py), so a decision made by the
bridge in a Celery worker shows at every web process's ``/metrics``. It takes an
API key (``Authorization: Api-Key …``) or a scraper at an address of
``SPACE_METRICS_ALLOWED_ADDRESSES``.
"""

import ipaddress
import logging
import shutil
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, Min
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from rest_framework import exceptions

from accesscontrol import backups
from accesscontrol.api.authentication import ApiKeyAuthentication
from accesscontrol.models import AuditEvent, BackupOutcome, Presence, Zone
from accesscontrol.views.base import client_address
from core import metrics as core_metrics
from core.lease import KEY_PREFIX, redis_client
from devices.models import Device
from integrations.eventstream.models import StreamItem
from integrations.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from space import services

logger = logging.getLogger(__name__)

REDIS_TIMEOUT_SECONDS = 1.0


class CheckFailed(Exception):
    """A readiness check's failure, with what may be said about it."""


# --- /healthz ----------------------------------------------------------------------------------------------


@never_cache
@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


# --- /readyz -----------------------------------------------------------------------------------------------


def check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        if cursor.fetchone()[0] != 1:
            raise CheckFailed("SELECT 1 did not answer 1")
    return {}


def check_redis() -> dict:
    if not settings.REDIS_URL:
        return {"configured": False}
    if not redis_client(timeout=REDIS_TIMEOUT_SECONDS).ping():
        raise CheckFailed("PING was not answered")
    return {"configured": True}


def check_space() -> dict:
    minimum = settings.SPACE_READY_MIN_FREE_MB
    try:
        free = shutil.disk_usage(settings.VAR_DIR).free // (1024 * 1024)
    except FileNotFoundError:
        raise CheckFailed("the var directory (SPACE_VAR_DIR) does not exist") from None
    detail = {"free_mb": free, "min_free_mb": minimum}
    if free < minimum:
        raise CheckFailed(f"{free} MB free, less than {minimum} MB", detail)
    return detail


def service_entries() -> list[services.Entry]:
    entries = list(services.SERVICES.values())
    if not services.SERVICES["osdp"].in_runspace():
        entries += services.bus_entries()  # each enabled bus is a service of its own
    return entries


def check_services() -> dict:
    """Each service of the table: where it runs and, for one under a lease, whether someone holds the lease.

    A configured service that runs under a lease (outside runspace, with Redis) and
    whose lease nobody holds fails the check: its worker is gone.
    """
    client = redis_client(timeout=REDIS_TIMEOUT_SECONDS) if settings.REDIS_URL else None
    states, down = {}, []
    for entry in service_entries():
        if not entry.configured:
            state = "not configured"
        elif entry.in_runspace():
            state = "in runspace"
        elif not entry.hosted:
            state = "celery tasks"  # its work is done by short tasks and beat
        elif client is None:
            state = "unknown"  # runservice without Redis holds no lease to look at
        elif client.get(KEY_PREFIX + entry.lease) is not None:
            state = "running"
        else:
            state = "down"
            down.append(entry.name)
        states[entry.name] = state
    if down:
        raise CheckFailed(f"no holder of the lease of {', '.join(down)}", {"services": states})
    return {"services": states}


def check_backup() -> dict:
    """The newest good backup's age and the last one's outcome. Never fails readiness: an overdue backup is
    an alarm (backup_overdue) for someone to act on, not a reason to take web servers out of a load balancer."""
    state = backups.status()
    newest, last = state["newest"], state["last"]
    return {
        "newest_at": newest.finished_at.isoformat() if newest else None,
        "age_seconds": round(state["age_seconds"]) if state["age_seconds"] is not None else None,
        "max_age_seconds": settings.SPACE_BACKUP_MAX_AGE_HOURS * 3600,
        "overdue": state["overdue"],
        "last_outcome": last.outcome if last else None,
    }


CHECKS: dict[str, Callable[[], dict]] = {
    "database": check_database,
    "redis": check_redis,
    "disk_space": check_space,
    "services": check_services,
    "backup": check_backup,
}


def run_check(name: str, check: Callable[[], dict]) -> dict:
    started = time.monotonic()
    try:
        result = {"ok": True, **check()}
    except CheckFailed as failure:
        reason, *detail = failure.args
        result = {"ok": False, "error": reason, **(detail[0] if detail else {})}
    except Exception as error:  # a check that breaks is a failed check, not a 500
        # Errors may name hosts and ports: they go to the log, the response only says what kind of error it was.
        logger.warning("Readiness check %s failed: %r", name, error)
        result = {"ok": False, "error": type(error).__name__}
    result["ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


@never_cache
@require_GET
def readyz(request):
    checks = {name: run_check(name, check) for name, check in CHECKS.items()}
    ready = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ok" if ready else "fail", "checks": checks}, status=200 if ready else 503)


# --- /metrics ----------------------------------------------------------------------------------------------


class SpaceCollector:
    """The figures of the database, read at each scrape."""

    def collect(self):
        devices = GaugeMetricFamily("space_devices", "Devices by state (enabled ones only)", labels=["state"])
        enabled = Device.objects.filter(enabled=True)
        online = enabled.filter(online=True).count()
        devices.add_metric(["online"], online)
        devices.add_metric(["offline"], enabled.count() - online)
        yield devices
        yield GaugeMetricFamily("space_devices_online", "Enabled devices online now", value=online)

        newest = AuditEvent.objects.aggregate(newest=Max("id"))["newest"] or 0
        yield CounterMetricFamily(
            "space_audit_events",
            "Audit events stored: the newest event's id (it grows by one per event; rolled back ids are skipped)",
            value=newest,
        )

        now = timezone.now()
        outbox = GaugeMetricFamily("space_outbox_pending", "Outbox rows not delivered yet", labels=["outbox"])
        oldest = GaugeMetricFamily(
            "space_outbox_oldest_pending_seconds", "Age of the oldest outbox row not delivered yet", labels=["outbox"]
        )
        unsent = WebhookDelivery.objects.filter(status__in=[DeliveryStatus.PENDING, DeliveryStatus.DELIVERING])
        streamed = StreamItem.objects.filter(sent_at__isnull=True)
        for name, rows in (("webhooks", unsent), ("event_stream", streamed)):
            figures = rows.aggregate(n=Count("id"), oldest=Min("created_at"))
            outbox.add_metric([name], figures["n"])
            oldest.add_metric([name], (now - figures["oldest"]).total_seconds() if figures["oldest"] else 0)
        yield outbox
        yield oldest

        yield GaugeMetricFamily(
            "space_webhook_deliveries_failed",
            "Webhook deliveries that failed for good (every try used, or given up)",
            value=WebhookDelivery.objects.filter(status=DeliveryStatus.FAILED).count(),
        )
        yield GaugeMetricFamily(
            "space_webhook_subscriptions_failing",
            "Active webhook subscriptions whose last delivery failed",
            value=WebhookSubscription.objects.filter(active=True, failures_in_a_row__gt=0).count(),
        )

        presence = GaugeMetricFamily("space_presence_inside", "People inside each roll-call area", labels=["zone"])
        inside = dict(
            Presence.objects.filter(zone__roll_call=True, inside=True)
            .values("zone")
            .annotate(n=Count("id"))
            .values_list("zone", "n")
        )
        for zone_id, name in Zone.objects.filter(roll_call=True).order_by("name").values_list("id", "name"):
            presence.add_metric([name], inside.get(zone_id, 0))
        yield presence

        state = backups.status(now)
        yield GaugeMetricFamily(
            "space_backup_age_seconds",
            "Age of the newest good backup (absent: there is none yet)",
            **({"value": state["age_seconds"]} if state["age_seconds"] is not None else {}),
        )
        last = GaugeMetricFamily(
            "space_backup_last_outcome",
            "The last finished backup's outcome (1 for the outcome it had)",
            labels=["outcome"],
        )
        for outcome in (BackupOutcome.OK, BackupOutcome.FAILED):
            last.add_metric([outcome], int(state["last"] is not None and state["last"].outcome == outcome))
        yield last
        yield GaugeMetricFamily(
            "space_backup_kept_bytes", "Bytes of the backups retention keeps", value=state["kept_bytes"]
        )


def metrics_allowed(request) -> bool:
    """A valid API key, or a scraper at one of SPACE_METRICS_ALLOWED_ADDRESSES.

    A wrong API key is refused even from an allowed address: a scraper that sends one is misconfigured.
    """
    try:
        if ApiKeyAuthentication().authenticate(request) is not None:
            return True
    except exceptions.AuthenticationFailed:
        return False
    address = client_address(request)
    if address is None:
        return False
    address = ipaddress.ip_address(address)
    return any(
        address in ipaddress.ip_network(allowed, strict=False) for allowed in settings.SPACE_METRICS_ALLOWED_ADDRESSES
    )


@never_cache
@require_GET
def metrics(request):
    if not metrics_allowed(request):
        return JsonResponse({"detail": "An API key or an allowed address is needed."}, status=403)
    registry = CollectorRegistry(auto_describe=False)
    core_metrics.add_collector(registry)
    registry.register(SpaceCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
