"""The access control app's Prometheus metrics, kept by the process that has them (core/metrics.py)."""

from prometheus_client import Counter, Gauge

EVENTS_STORED = Counter("space_events_stored", "Audit events stored (counted when their transaction commits)")

WEBSOCKET_CLIENTS = Gauge(
    "space_websocket_clients",
    "Websocket clients connected now (monitor: /ws/monitor/, encoder: /ws/encoder/)",
    ["endpoint"],
    multiprocess_mode="livesum",
)
MONITOR_CLIENTS = WEBSOCKET_CLIENTS.labels("monitor")


def events_committed(count: int):
    """What ``transaction.on_commit`` calls once ``count`` new events are stored."""
    return lambda: EVENTS_STORED.inc(count)
