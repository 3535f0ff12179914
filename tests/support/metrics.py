"""Reading the metrics of /metrics (all processes) and of one process (its own files in the metrics directory).

Test processes running side by side (pytest-xdist) share one metrics directory:
exact before/after figures are read from one process's files, and /metrics is
checked to hold at least them.
"""

import os

from django.conf import settings
from django.test import Client
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families


def scrape(client: Client, **headers) -> dict:
    """/metrics' families by name, parsed as Prometheus parses them."""
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def sample(families: dict, family: str, sample_name: str | None = None, **labels) -> float:
    """One sample's value (0 when absent): ``sample_name`` defaults to the family's name."""
    values = [
        s.value
        for s in families[family].samples
        if s.name == (sample_name or family) and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(values) <= 1, values
    return values[0] if values else 0.0


def files_of(pid: int) -> list[str]:
    directory = settings.SPACE_METRICS_DIR
    return [str(directory / name) for name in os.listdir(directory) if name.endswith(f"_{pid}.db")]


def own(pid: int | None = None) -> dict:
    """The families of one process's files only (this one's by default), merged as /metrics merges them."""
    metrics = MultiProcessCollector.merge(files_of(pid or os.getpid()), accumulate=True)
    return {metric.name: metric for metric in metrics}


def own_sample(family: str, sample_name: str | None = None, pid: int | None = None, **labels) -> float:
    families = own(pid)
    return sample(families, family, sample_name, **labels) if family in families else 0.0
