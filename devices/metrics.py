"""The devices app's Prometheus metrics: access decisions, by driver, and how long answering took.

A decision's latency runs from the moment its request reached Space (the SDP/1
datagram received, the OSDP card read or keys parsed) to the moment its answer
was handed to the socket or the bus. Counting is on the decision's hot path:
the labelled children are made once per label set and kept (:func:`decided`).
"""

import time

from prometheus_client import Counter, Histogram

from accesscontrol.metrics import WEBSOCKET_CLIENTS

DECISIONS = Counter(
    "space_decisions", "Access decisions made, by result, reason and driver", ["result", "reason", "driver"]
)
DECISION_SECONDS = Histogram(
    "space_decision_seconds",
    "From a request reaching Space to its decision answered, by driver",
    ["driver"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
ENCODER_CLIENTS = WEBSOCKET_CLIENTS.labels("encoder")

SDP = "sdp"
OSDP = "osdp"

_counted: dict[tuple[str, bool, str], object] = {}
_timed: dict[str, object] = {}


def decided(driver: str, granted: bool, reason: str, started: float | None = None) -> None:
    """Count a decision; ``started`` (``time.perf_counter()`` when its request arrived) times it too."""
    key = (driver, granted, reason)
    counter = _counted.get(key)
    if counter is None:
        counter = _counted[key] = DECISIONS.labels("granted" if granted else "refused", reason, driver)
    counter.inc()
    if started is not None:
        histogram = _timed.get(driver)
        if histogram is None:
            histogram = _timed[driver] = DECISION_SECONDS.labels(driver)
        histogram.observe(time.perf_counter() - started)


FACE_MQTT_DROPPED = Counter(
    "space_face_mqtt_dropped", "Messages from face terminals dropped by Space (bad topic, not JSON, …)", ["reason"]
)
_face_dropped: dict[str, object] = {}


def face_mqtt_dropped(reason: str) -> None:
    counter = _face_dropped.get(reason)
    if counter is None:
        counter = _face_dropped[reason] = FACE_MQTT_DROPPED.labels(reason)
    counter.inc()
