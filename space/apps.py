import atexit

from django.apps import AppConfig


class SpaceConfig(AppConfig):
    """The project itself, as an app: it holds the ``runspace`` command."""

    name = "space"
    verbose_name = "Space"

    def ready(self):
        from core import metrics

        # A process that ends cleanly takes its live gauges (websocket clients, connector links) out of /metrics.
        atexit.register(metrics.process_exited)
