from django.apps import AppConfig


class AccessControlConfig(AppConfig):
    name = "accesscontrol"
    verbose_name = "Access control"

    def ready(self):
        from accesscontrol import live, rulechanges

        rulechanges.connect()
        live.register()
