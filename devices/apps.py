from django.apps import AppConfig


class DevicesConfig(AppConfig):
    name = "devices"

    def ready(self):
        # The domain's pages learn of encoders and devices here, without importing this app.
        from accesscontrol.extensions import registry
        from devices.forms import EncodingKeyIssueForm
        from devices.views import keys

        registry.key_issuing.form_class = EncodingKeyIssueForm
        registry.key_issuing.issue = keys.issue_from_form
        registry.add_cardholder_page(keys.cardholder_encode_jobs)
        registry.add_dashboard_stats(keys.device_stats)
