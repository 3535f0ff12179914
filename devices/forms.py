"""Forms of the web app that reach devices: issuing a key and writing it on a card on an encoder."""

from django import forms

from accesscontrol.forms.people import KeyIssueForm
from devices.encoding import ENCODED_KINDS, ENCODER_KINDS
from devices.models import Device


class EncodingKeyIssueForm(KeyIssueForm):
    """Issue a key, and write it on a card on the chosen encoder. With an encoder the UID may stay empty:
    the key then takes the UID of the card presented to the encoder."""

    encoder = forms.ModelChoiceField(
        queryset=Device.objects.none(),
        required=False,
        label="Encode on",
        empty_label="No encoder: the UID is entered",
        help_text="Writes the key's data on a card on this encoder; without a UID, on whatever card is presented.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["uid"].required = False
        self.fields["encoder"].queryset = Device.objects.filter(kind__in=ENCODER_KINDS, enabled=True).order_by("name")

    def clean_uid(self):
        if not self.cleaned_data.get("uid", "").strip():
            return ""
        return super().clean_uid()

    def clean(self):
        data = super().clean()
        encoder = data.get("encoder")
        if encoder is None and "uid" in data and not data["uid"]:
            self.add_error("uid", "Enter the card's UID, or choose an encoder to write whatever card is presented.")
        if encoder is not None and data.get("kind") not in ENCODED_KINDS:
            self.add_error("kind", "Only cards and fobs are written on an encoder.")
        return data


def add_validation_errors(form: forms.Form, error) -> None:
    """A ValidationError from an action, shown on the form: on its field where it names one of the form's."""
    if hasattr(error, "error_dict"):
        for field, messages in error.message_dict.items():
            form.add_error(field if field in form.fields else None, messages)
    else:
        form.add_error(None, error.messages)
