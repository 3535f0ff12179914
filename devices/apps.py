from django.apps import AppConfig


class DevicesConfig(AppConfig):
    name = "devices"

    def ready(self):
        # The domain's pages learn of encoders and devices here, without importing this app.
        from accesscontrol.extensions import registry
        from devices.commands import set_opening_mode
        from devices.forms import EncodingKeyIssueForm
        from devices.views import extensions, faces

        registry.key_issuing.form_class = EncodingKeyIssueForm
        registry.key_issuing.issue = extensions.issue_from_form
        registry.add_cardholder_page(extensions.cardholder_encode_jobs)
        registry.add_cardholder_page(faces.cardholder_face_enrolments)
        registry.add_dashboard_stats(extensions.device_stats)
        registry.mode_commands = set_opening_mode
