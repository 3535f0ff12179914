from django.apps import AppConfig


class AccessControlConfig(AppConfig):
    name = "accesscontrol"
    verbose_name = "Access control"

    def ready(self):
        from django.db.models.signals import post_migrate

        from accesscontrol import live, rulechanges, search

        rulechanges.connect()
        live.register()
        # A migration that rebuilds the cardholder table on SQLite drops the search's triggers: put them back.
        post_migrate.connect(search.repair_after_migrate, sender=self, dispatch_uid="accesscontrol.search.repair")
