from django.apps import AppConfig


class SpaceConfig(AppConfig):
    """The project itself, as an app: it holds the ``runspace`` command."""

    name = "space"
    verbose_name = "Space"
