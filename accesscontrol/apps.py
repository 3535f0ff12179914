from django.apps import AppConfig


class AccessControlConfig(AppConfig):
    name = "accesscontrol"
    verbose_name = "Access control"

    def ready(self):
        from accesscontrol import live, rulechanges  # noqa: F401 (signal receivers)

        rulechanges.connect()
