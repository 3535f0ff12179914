"""Stand-in pages where the audit trail refuses (403): the benchmark must stop rather than time an error page."""

from tests.simulation.bench_urls import refusing_urlpatterns as urlpatterns  # noqa: F401
