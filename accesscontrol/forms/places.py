"""Forms for access points, zones and locations."""

from django import forms

from accesscontrol.forms.partitioned import OperatorModelForm
from accesscontrol.models import AccessPoint, Location, Zone
from accesscontrol.permissions import restrict


class LocationForm(OperatorModelForm):
    class Meta:
        model = Location
        fields = ["name", "partition", "parent", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def clean_parent(self):
        parent = self.cleaned_data.get("parent")
        ancestor = parent
        while ancestor is not None and self.instance.pk is not None:
            if ancestor.pk == self.instance.pk:
                raise forms.ValidationError("A location cannot be inside itself.")
            ancestor = ancestor.parent
        return parent


class PassbackDefaults:
    """A zone form where the anti-passback kind and minutes may be left out: only anti-passback zones use them."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("passback_kind", "passback_minutes"):
            if name in self.fields:
                self.fields[name].required = False

    def clean_passback_kind(self):
        return self.cleaned_data.get("passback_kind") or Zone._meta.get_field("passback_kind").default

    def clean_passback_minutes(self):
        minutes = self.cleaned_data.get("passback_minutes")
        return 0 if minutes is None else minutes


class ZoneForm(PassbackDefaults, OperatorModelForm):
    # Lockdown is not edited here: it is an emergency action with its device commands (the monitor's).
    class Meta:
        model = Zone
        fields = [
            "name",
            "partition",
            "description",
            "anti_passback",
            "passback_kind",
            "passback_minutes",
            "roll_call",
            "max_occupancy",
            "mode_schedule",
        ]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


class AccessPointForm(OperatorModelForm):
    class Meta:
        model = AccessPoint
        fields = [
            "name",
            "partition",
            "kind",
            "ext_id",
            "description",
            "location",
            "zones",
            "connection",
            "opening_mode",
            "mode_schedule",
            "timed_period",
            "open_time",
            "extended_open_time",
            "calendar",
            "direction",
            "pin_required",
            "pin_only",
            "held_open_time",
            "face_threshold",
        ]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "zones": forms.CheckboxSelectMultiple,
        }
        help_texts = {
            "zones": "Zones of other partitions the access point is in stay as they are.",
            "pin_only": "A cardholder's PIN typed at the keypad opens it without a card (PINs are unique on the site). "
            "Doors run by Space (OSDP readers) and SDP/1 keypads.",
            "held_open_time": "An open door raises a held-open alarm after this many seconds (0: never). "
            "Doors run by Space (OSDP readers).",
        }

    def clean_ext_id(self):
        return self.cleaned_data.get("ext_id") or None

    def clean_zones(self):
        # The operator replaces the zones they can see; those of other partitions stay.
        chosen = list(self.cleaned_data.get("zones") or [])
        if self.instance.pk is None:
            return chosen
        visible = restrict(Zone.objects.all(), self.operator, "view")
        return chosen + list(self.instance.zones.exclude(pk__in=visible.values("pk")))


class OccupancyForm(forms.Form):
    """The count of people an operator sees in a zone, to correct the one the server keeps."""

    count = forms.IntegerField(min_value=0, max_value=1_000_000, label="People inside now")


class ForgiveForm(forms.Form):
    """Forgive anti-passback in a zone: one cardholder (by id), or everyone inside when none is given."""

    cardholder = forms.IntegerField(min_value=1, max_value=2**63 - 1, required=False)


class ZoneMemberForm(forms.Form):
    """An access point to put into a zone."""

    access_point = forms.ModelChoiceField(queryset=AccessPoint.objects.none(), label="Access point")

    def __init__(self, *args, zone, operator, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["access_point"].queryset = restrict(AccessPoint.objects.all(), operator, "change").exclude(
            zones=zone
        )
