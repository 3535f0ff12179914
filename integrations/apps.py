from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"

    def ready(self):
        # The outbox (webhooks, event stream) is a sink of the domain's event exit.
        from integrations import outbox

        outbox.register()

        # The domain's cardholder page shows the phones holding mobile keys, without importing this app.
        from accesscontrol.extensions import registry
        from integrations.mobilekeys.services import cardholder_mobile_keys

        registry.add_cardholder_page(cardholder_mobile_keys)

        # Cardholders from a directory: the "ldap" kind of cardholder source (python-ldap: requirements-ldap.txt).
        try:
            from integrations.ldap import cardholders
        except ImportError:  # pragma: no cover - scripts/install.sh installs it
            pass
        else:
            cardholders.register()

        # HR feeds are a kind of cardholder source of the sync core.
        from integrations import hrfeeds

        hrfeeds.register()
