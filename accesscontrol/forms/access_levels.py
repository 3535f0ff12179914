"""Forms for access levels and their entries."""

from django import forms

from accesscontrol.forms.partitioned import OperatorModelForm
from accesscontrol.models import AccessLevel, AccessLevelEntry


class AccessLevelForm(OperatorModelForm):
    class Meta:
        model = AccessLevel
        fields = ["name", "partition", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


class AccessLevelEntryForm(OperatorModelForm):
    """An access point or a zone, at the times of a time period (always when none): one grant of a level."""

    class Meta:
        model = AccessLevelEntry
        fields = ["access_point", "zone", "time_period"]
        help_texts = {
            "access_point": "Either an access point",
            "zone": "or a zone.",
            "time_period": "Empty: at any time.",
        }

    def __init__(self, *args, access_level, **kwargs):
        super().__init__(*args, **kwargs)
        self.access_level = access_level
        self.instance.access_level = access_level
        self.fields["access_point"].empty_label = "—"
        self.fields["zone"].empty_label = "—"
        self.fields["time_period"].empty_label = "At any time"

    def _get_validation_exclusions(self):
        # The model's clean() states its one-target constraint in words an operator reads; once is enough.
        exclude = super()._get_validation_exclusions()
        exclude.add("zone")
        return exclude

    def _post_clean(self):
        if self.has_error("access_point") or self.has_error("zone"):
            return  # the target is already wrong: "name either..." would only repeat it
        super()._post_clean()

    def clean(self):
        cleaned = super().clean()
        grant = {name: cleaned.get(name) for name in ("access_point", "zone", "time_period")}
        if (grant["access_point"] or grant["zone"]) and self.access_level.entries.filter(**grant).exists():
            raise forms.ValidationError("The level already has this entry.")
        return cleaned
