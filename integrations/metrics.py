"""The connectors' Prometheus metrics, kept by the process running each connector (core/metrics.py)."""

from prometheus_client import Gauge

CONNECTOR_LINKS = Gauge(
    "space_connector_links",
    "Connector links up now: FIAS (1 while linked to the PMS), Industry Standard and SHIP (connections open)",
    ["connector"],
    multiprocess_mode="livesum",
)
FIAS_LINKS = CONNECTOR_LINKS.labels("fias")
INDUSTRY_STANDARD_LINKS = CONNECTOR_LINKS.labels("industry_standard")
SHIP_LINKS = CONNECTOR_LINKS.labels("ship")
