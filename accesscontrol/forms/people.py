"""Forms of the people pages: cardholders, their keys, access levels, permissions and PIN, and the CSV import."""

from django import forms
from django.utils import timezone

from accesscontrol.choices import KeyKind, KeyStatus
from accesscontrol.models import (
    AccessLevel,
    AccessPoint,
    Cardholder,
    CardholderPermission,
    Key,
    Partition,
    TimePeriod,
    Zone,
    normalize_uid,
)
from accesscontrol.models.cardholders import UID_PATTERN
from accesscontrol.permissions import ALL, allowed_partitions, restrict
from accesscontrol.pins import PIN_TAKEN, is_valid_pin

DATETIME_FORMAT = "%Y-%m-%dT%H:%M"


class DateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format=DATETIME_FORMAT, **kwargs)


def partitions_for(operator, permission: str):
    """The partitions where ``operator`` holds ``permission``, as a queryset for a choice field."""
    allowed = allowed_partitions(operator, permission)
    partitions = Partition.objects.order_by("name")
    return partitions if allowed is ALL else partitions.filter(pk__in=allowed)


class CardholderForm(forms.ModelForm):
    class Meta:
        model = Cardholder
        fields = [
            "partition",
            "kind",
            "title",
            "first_name",
            "last_name",
            "ext_id",
            "email",
            "phone_number",
            "department",
            "job_title",
            "activation",
            "expiration",
            "key_revalidation_days",
            "office",
            "override_privacy",
            "override_lockdown",
            "audit_openings",
            "use_anti_passback",
            "extended_open_time",
            "key_cancellable_through_blacklist",
            "banned",
            "notes",
        ]
        widgets = {
            "activation": DateTimeInput(),
            "expiration": DateTimeInput(),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args, operator, **kwargs):
        super().__init__(*args, **kwargs)
        action = "change" if self.instance.pk else "add"
        # Only partitions the operator may put cardholders in; a partition id from elsewhere is "not a valid choice".
        self.fields["partition"].queryset = partitions_for(operator, f"accesscontrol.{action}_cardholder")
        self.fields["partition"].empty_label = None
        self.fields["ext_id"].help_text = "An id from another system (HR, PMS): unique when given."
        for name in ("activation", "expiration"):
            self.fields[name].input_formats = [DATETIME_FORMAT, "%Y-%m-%d %H:%M", "%Y-%m-%d"]

    def clean_ext_id(self):
        return self.cleaned_data.get("ext_id") or None  # empty is NULL: many cardholders may have none


class KeyIssueForm(forms.Form):
    uid = forms.CharField(label="UID", max_length=80, help_text="The card's UID or the mobile key's id, in hex.")
    kind = forms.ChoiceField(choices=KeyKind.choices, initial=KeyKind.CARD)
    valid_from = forms.DateTimeField(required=False, widget=DateTimeInput(), input_formats=[DATETIME_FORMAT])
    valid_until = forms.DateTimeField(required=False, widget=DateTimeInput(), input_formats=[DATETIME_FORMAT])

    def clean_uid(self):
        uid = normalize_uid(self.cleaned_data["uid"])
        if not UID_PATTERN.match(uid):
            raise forms.ValidationError("A UID is 2 to 64 hexadecimal digits.")
        if Key.objects.filter(uid=uid, status=KeyStatus.ISSUED).exists():
            raise forms.ValidationError("An issued key already has this UID.")
        return uid

    def clean(self):
        data = super().clean()
        start, end = data.get("valid_from"), data.get("valid_until")
        if start and end and end <= start:
            self.add_error("valid_until", "The end of validity must come after its start.")
        return data


class KeyRevalidateForm(forms.Form):
    valid_until = forms.DateTimeField(
        label="Valid until",
        required=False,
        widget=DateTimeInput(),
        input_formats=[DATETIME_FORMAT],
        help_text="Empty: by the cardholder's revalidation period (or no end if they have none).",
    )

    def clean_valid_until(self):
        end = self.cleaned_data.get("valid_until")
        if end is not None and end <= timezone.now():
            raise forms.ValidationError("The new end of validity must be in the future.")
        return end


class AccessLevelGrantForm(forms.Form):
    access_level = forms.ModelChoiceField(queryset=AccessLevel.objects.none(), empty_label="Choose an access level")

    def __init__(self, *args, operator, cardholder=None, **kwargs):
        super().__init__(*args, **kwargs)
        levels = restrict(AccessLevel.objects.order_by("name"), operator, "view")
        if cardholder is not None:
            levels = levels.exclude(cardholders=cardholder)
        self.fields["access_level"].queryset = levels


class CardholderPermissionForm(forms.ModelForm):
    class Meta:
        model = CardholderPermission
        fields = ["access_point", "zone", "time_period"]

    def __init__(self, *args, operator, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["access_point"].queryset = restrict(AccessPoint.objects.order_by("name"), operator, "view")
        self.fields["zone"].queryset = restrict(Zone.objects.order_by("name"), operator, "view")
        self.fields["time_period"].queryset = restrict(TimePeriod.objects.order_by("name"), operator, "view")
        self.fields["access_point"].help_text = "An access point or a zone, not both."
        self.fields["time_period"].empty_label = "At any time"


class PinForm(forms.Form):
    """A new PIN for ``cardholder``: 4 to 8 digits, held by no other cardholder."""

    def __init__(self, *args, cardholder=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.cardholder = cardholder

    pin = forms.CharField(
        label="New PIN",
        max_length=8,
        widget=forms.PasswordInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
        help_text="4 to 8 digits.",
    )

    def clean_pin(self):
        pin = self.cleaned_data["pin"]
        if not is_valid_pin(pin):
            raise forms.ValidationError("A PIN is 4 to 8 digits.")
        if self.cardholder is not None and self.cardholder.pin_taken(pin):
            raise forms.ValidationError(PIN_TAKEN)
        return pin


class PhotoForm(forms.Form):
    """A photo file; whether it is one Space accepts is for accesscontrol.photos to say (its PhotoError)."""

    photo = forms.FileField(
        label="Photo",
        help_text="JPEG, PNG, WebP or GIF. It is resized and its metadata (EXIF, GPS position) removed.",
        widget=forms.FileInput(attrs={"accept": "image/jpeg,image/png,image/webp,image/gif"}),
    )


class CardholderImportForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="UTF-8, with a header row; the columns are listed below.")
    partition = forms.ModelChoiceField(
        queryset=Partition.objects.none(),
        empty_label=None,
        help_text="For rows whose partition column is empty.",
    )

    MAX_BYTES = 50 * 1024 * 1024

    def __init__(self, *args, operator, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["partition"].queryset = partitions_for(operator, "accesscontrol.add_cardholder")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > self.MAX_BYTES:
            raise forms.ValidationError("The file is larger than 50 MB.")
        if upload.size == 0:
            raise forms.ValidationError("The file is empty.")
        return upload


class BulkGrantForm(forms.Form):
    # Not "access_level": that is one of the list's filters, sent along with this form.
    grant_level = forms.ModelChoiceField(
        label="Access level", queryset=AccessLevel.objects.none(), empty_label="Choose an access level"
    )

    def __init__(self, *args, operator, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["grant_level"].queryset = restrict(AccessLevel.objects.order_by("name"), operator, "view")
