"""Forms of the web app that reach devices: issuing a key and writing it on a card on an encoder; OSDP buses,
commissioning an OSDP reader, a door's wiring; face terminals and enrolling a face; acknowledging an alarm.

They validate what a form can; the actions (devices.actions) check the rest and
their ValidationErrors are shown on the form (``add_validation_errors``).
"""

from django import forms
from django.core.exceptions import ValidationError

from accesscontrol.faces import FACE_MODELS
from accesscontrol.forms.partitioned import OperatorModelForm
from accesscontrol.forms.people import KeyIssueForm
from accesscontrol.models import AccessPoint
from accesscontrol.permissions import restrict
from devices import actions
from devices.choices import CardFormat, DeviceKind, ReaderDirection
from devices.encoding import ENCODED_KINDS, ENCODER_KINDS
from devices.models import Alarm, Device, DeviceDoor, FaceTerminal, OsdpBus, OsdpReader


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


# --- OSDP -----------------------------------------------------------------------------------------


class OsdpBusForm(OperatorModelForm):
    class Meta:
        model = OsdpBus
        fields = ["name", "port", "baud", "enabled", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}
        help_texts = {"port": actions.PORT_HELP, "enabled": "A disabled bus is not opened: its readers go offline."}

    def clean_port(self):
        try:
            return actions.check_port(self.cleaned_data.get("port", ""))
        except ValidationError as error:
            raise forms.ValidationError(error.message_dict["port"]) from None


OSDP_KINDS = [(kind, DeviceKind(kind).label) for kind in DeviceKind.osdp()]


class OsdpReaderForm(forms.Form):
    """An OSDP reader's (or I/O module's) settings and, when commissioning, the access point it serves:
    its reader 1 asks to open it, its door 1 is wired to the device's own relay and inputs."""

    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=OSDP_KINDS, initial=DeviceKind.OSDP_READER)
    bus = forms.ModelChoiceField(queryset=OsdpBus.objects.none(), empty_label=None)
    address = forms.IntegerField(min_value=0, max_value=126, help_text="Its OSDP address on the bus, 0 to 126.")
    card_format = forms.ChoiceField(choices=CardFormat.choices, initial=CardFormat.AUTO)
    allow_clear = forms.BooleanField(
        required=False,
        label="Allow without secure channel",
        help_text=OsdpReader._meta.get_field("allow_clear").help_text,
    )
    enabled = forms.BooleanField(required=False, initial=True, help_text="A disabled device is not polled.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, operator, **kwargs):
        super().__init__(*args, **kwargs)
        self.operator = operator
        self.fields["bus"].queryset = restrict(OsdpBus.objects.all(), operator, "view")

    def device(self, device: Device | None = None) -> Device:
        """The device with the form's values (a new one when None)."""
        device = device or Device()
        for name in actions.OSDP_DEVICE_FIELDS:
            setattr(device, name, self.cleaned_data[name])
        return device

    def reader(self, reader: OsdpReader | None = None) -> OsdpReader:
        reader = reader or OsdpReader()
        for name in actions.OSDP_READER_FIELDS:
            setattr(reader, name, self.cleaned_data[name])
        return reader


class CommissionOsdpReaderForm(OsdpReaderForm):
    access_point = forms.ModelChoiceField(
        queryset=AccessPoint.objects.none(),
        required=False,
        help_text="The door it serves; empty: map it later (admin or API).",
    )
    reads = forms.BooleanField(
        required=False, initial=True, label="Its reader opens it", help_text="Cards and PINs at reader 1 ask for it."
    )
    direction = forms.ChoiceField(choices=ReaderDirection.choices, required=False)
    drives_door = forms.BooleanField(
        required=False,
        initial=True,
        label="It drives the door",
        help_text="Door 1: the lock on this device's relay (not on an I/O module).",
    )
    relay = forms.IntegerField(
        min_value=0,
        max_value=255,
        initial=0,
        required=False,
        help_text="The lock relay's output (0 or empty: the first).",
    )
    contact = forms.IntegerField(
        min_value=0, max_value=255, required=False, help_text="The door contact's input; empty: none."
    )
    rex = forms.IntegerField(
        min_value=0, max_value=255, required=False, label="Exit button", help_text="Its input; empty: none."
    )
    contact_open_when_active = forms.BooleanField(
        required=False, initial=True, help_text="The contact input is active while the door is open."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["access_point"].queryset = restrict(AccessPoint.objects.all(), self.operator, "view")

    def mappings(self) -> dict:
        """The reader's door 1 and reader 1, as devices.actions takes them."""
        data = self.cleaned_data
        point = data.get("access_point")
        doors, readers = [], []
        if point is not None and data.get("drives_door"):
            wiring = {name: data.get(name) for name in actions.WIRING["doors"]}
            doors.append({"number": 1, "access_point": point, **wiring, "relay": data.get("relay") or 0})
        if point is not None and data.get("reads"):
            readers.append({"number": 1, "access_point": point, "direction": data.get("direction") or ""})
        return {"doors": doors, "readers": readers}


class DoorWiringForm(forms.ModelForm):
    class Meta:
        model = DeviceDoor
        fields = list(actions.WIRING["doors"])


class AcknowledgeAlarmForm(forms.Form):
    note = forms.CharField(required=False, max_length=Alarm._meta.get_field("note").max_length)


# --- face terminals -------------------------------------------------------------------------------


def _help(name: str) -> str:
    return FaceTerminal._meta.get_field(name).help_text


class FaceTerminalForm(forms.Form):
    """A face terminal's device and settings; its id only when it is commissioned (its certificate names it)."""

    name = forms.CharField(max_length=100)
    terminal_id = forms.CharField(
        max_length=64, label="Terminal id", help_text=FaceTerminal._meta.get_field("terminal_id").help_text
    )
    access_point = forms.ModelChoiceField(queryset=AccessPoint.objects.none(), help_text="The door it guards.")
    direction = forms.ChoiceField(choices=ReaderDirection.choices, required=False)
    face_only = forms.BooleanField(required=False, initial=True, label="Face only", help_text=_help("face_only"))
    card_and_face = forms.BooleanField(
        required=False, initial=True, label="Card + face", help_text=_help("card_and_face")
    )
    pin_and_face = forms.BooleanField(required=False, label="PIN + face", help_text=_help("pin_and_face"))
    model_name = forms.ChoiceField(label="Face model", help_text=_help("model_name"))
    min_quality = forms.FloatField(min_value=0.0, max_value=1.0, initial=0.5, help_text=_help("min_quality"))
    require_liveness = forms.BooleanField(required=False, initial=True, help_text=_help("require_liveness"))
    enabled = forms.BooleanField(required=False, initial=True, help_text="A disabled terminal enrols nobody.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, operator, terminal: FaceTerminal | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["access_point"].queryset = restrict(AccessPoint.objects.order_by("name"), operator, "view")
        self.fields["model_name"].choices = [(name, name) for name in sorted(FACE_MODELS)]
        if terminal is not None:
            del self.fields["terminal_id"]

    def changes(self) -> dict:
        """The cleaned values as the actions take them (devices.actions.FACE_*_FIELDS)."""
        return {name: value for name, value in self.cleaned_data.items() if name != "terminal_id"}


class FaceEnrolForm(forms.Form):
    """Which enabled face terminal captures the cardholder's face."""

    terminal = forms.ModelChoiceField(
        queryset=FaceTerminal.objects.none(), empty_label=None, label="Terminal", help_text="An enabled face terminal."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        enabled = FaceTerminal.objects.filter(device__enabled=True).select_related("device", "access_point")
        self.fields["terminal"].queryset = enabled.order_by("device__name")
        self.fields["terminal"].label_from_instance = lambda terminal: (
            f"{terminal.device.name} ({terminal.terminal_id})"
        )
