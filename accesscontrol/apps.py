from django.apps import AppConfig


class AccessControlConfig(AppConfig):
    name = "accesscontrol"
    verbose_name = "Access control"

    def ready(self):
        from accesscontrol import rulechanges

        rulechanges.connect()
