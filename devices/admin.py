"""Devices in the admin: commissioning (with the key shown once), door and reader mappings with their wiring,
commands sent; OSDP buses, OSDP readers (on their device's page), face terminals, face enrolments (read only)
and alarms.

Every save goes through devices.actions, which records it in the system auditor.
An OSDP device is commissioned like any device, with its bus and address in the
"OSDP reader" part of the page; Space picks its device id and secure channel key
and never shows the key.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from accesscontrol.admin import VIA, ReadOnlyAdmin, SpaceAdmin
from accesscontrol.models import AccessPoint
from accesscontrol.permissions import restrict
from devices import actions, alarms, commands
from devices.choices import DeviceKind
from devices.models import (
    DEVICE_KEY_SIZE,
    Alarm,
    Device,
    DeviceCommand,
    DeviceDoor,
    DeviceReader,
    FaceEnrolment,
    FaceTerminal,
    OsdpBus,
    OsdpReader,
)

LIVE_STATUS = ["online", "last_seen_at", "address", "firmware", "battery", "tamper", "door_states"]
OSDP_REPORTED = ["key_set_at", "secure", "vendor_code", "model", "serial_number", "firmware", "capabilities"]


def _show_key_once(request, device: Device, key: bytes, what: str = "key") -> None:
    messages.warning(
        request,
        f"The {what} of {device} (device id {device.device_id}) is {key.hex()} — "
        "configure it on the device now; it is not shown again.",
    )


class AccessPointInlineMixin:
    """A mapping may name only access points the operator can see, as in the API."""

    extra = 0
    autocomplete_fields = ["access_point"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "access_point" and not request.user.is_superuser:
            kwargs["queryset"] = restrict(AccessPoint.objects.all(), request.user, "view")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class DeviceDoorForm(forms.ModelForm):
    class Meta:
        model = DeviceDoor
        fields = ["number", "access_point", *actions.WIRING["doors"]]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Only doors Space runs (OSDP) use their wiring: left empty, the relay is the first.
        if "relay" in self.fields:
            self.fields["relay"].required = False

    def clean_relay(self):
        relay = self.cleaned_data.get("relay")
        return 0 if relay is None else relay


class WiringInlineMixin:
    """The wiring (a door's relay and inputs, a reader's direction) is for devices Space runs: OSDP ones.
    A new device's page shows it, since its kind is not known yet; an SDP/1 device's page does not."""

    relation = ""

    def get_fields(self, request, obj=None):
        fields = ["number", "access_point"]
        if obj is None or obj.kind in DeviceKind.osdp():
            fields += actions.WIRING[self.relation]
        return fields


class DeviceDoorInline(WiringInlineMixin, AccessPointInlineMixin, admin.TabularInline):
    model = DeviceDoor
    form = DeviceDoorForm
    relation = "doors"


class DeviceReaderInline(WiringInlineMixin, AccessPointInlineMixin, admin.TabularInline):
    model = DeviceReader
    relation = "readers"


class OsdpReaderFormSet(forms.BaseInlineFormSet):
    """An OSDP device has exactly its one place on a bus; any other device has none."""

    def clean(self):
        super().clean()
        filled = [form for form in self.forms if form.has_changed() and not self._should_delete_form(form)]
        if not self.instance._state.adding:
            filled = filled or [form for form in self.forms if form.instance.pk and not self._should_delete_form(form)]
        osdp = self.instance.kind in DeviceKind.osdp()
        if osdp and not filled:
            raise ValidationError("An OSDP device needs its bus and address.")
        if not osdp and filled:
            raise ValidationError("Only OSDP readers and I/O modules are on an OSDP bus: leave this empty.")


class OsdpReaderInline(admin.StackedInline):
    """Where an OSDP device is on its bus, and what it reported of itself (read-only: its bus service writes it)."""

    model = OsdpReader
    formset = OsdpReaderFormSet
    fk_name = "device"
    extra = 1
    max_num = 1
    can_delete = False
    autocomplete_fields = ["bus"]
    fields = ["bus", "address", "card_format", "allow_clear", *OSDP_REPORTED]
    readonly_fields = OSDP_REPORTED
    verbose_name_plural = "OSDP reader (OSDP devices only)"


class DeviceForm(forms.ModelForm):
    key = forms.CharField(
        required=False,
        strip=True,
        max_length=DEVICE_KEY_SIZE * 2,
        help_text=f"{DEVICE_KEY_SIZE * 2} hex digits. Leave empty to generate one, shown once after saving. "
        "OSDP devices: leave empty (Space gives the reader its secure channel key over the bus, never shown).",
    )

    class Meta:
        model = Device
        fields = ["device_id", "name", "kind", "description", "station", "enabled"]
        help_texts = {"device_id": "The id the device sends in every frame; empty for OSDP devices: Space picks one."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "device_id" in self.fields:
            self.fields["device_id"].required = False

    def clean_key(self) -> bytes | None:
        key = self.cleaned_data["key"]
        if not key:
            return None
        try:
            raw = bytes.fromhex(key)
        except ValueError:
            raw = b""
        if len(raw) != DEVICE_KEY_SIZE:
            raise forms.ValidationError(f"A device key is {DEVICE_KEY_SIZE * 2} hex digits.")
        return raw

    def clean(self):
        data = super().clean()
        if not self.instance._state.adding:
            # Before _post_clean, the instance still has the stored kind.
            if "kind" in data and (data["kind"] in DeviceKind.osdp()) != (self.instance.kind in DeviceKind.osdp()):
                self.add_error("kind", "A device stays on OSDP or off it; commission a new device instead.")
            return data
        if data.get("kind") in DeviceKind.osdp():
            if data.get("key"):
                self.add_error("key", "An OSDP device's secure channel key is made by Space; leave this empty.")
            # Provisional, for the model's checks: commissioning picks the free id it saves.
            data["device_id"] = actions.next_device_id()
        elif data.get("device_id") is None and "device_id" not in self.errors:
            self.add_error("device_id", "Give the device's id (OSDP devices alone get one from Space).")
        return data


@admin.register(Device)
class DeviceAdmin(SpaceAdmin):
    form = DeviceForm
    inlines = [OsdpReaderInline, DeviceDoorInline, DeviceReaderInline]
    list_display = ["name", "device_id", "kind", "enabled", "online", "last_seen_at", "key_set"]
    list_filter = ["kind", "enabled", "online", "tamper"]
    search_fields = ["name", "description", "=device_id", "=station"]
    readonly_fields = ["key_set", *LIVE_STATUS, "created_at", "updated_at"]
    actions = ["generate_new_key"]

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["device_id", "name", "kind", "description", "station", "enabled", "key"]})]
        return [
            (None, {"fields": ["device_id", "name", "kind", "description", "station", "enabled", "key_set"]}),
            ("Live status", {"fields": [*LIVE_STATUS, "created_at", "updated_at"]}),
        ]

    def get_readonly_fields(self, request, obj=None):
        # The key is sealed for the device id: a device with another id is another device.
        return [*self.readonly_fields, "device_id"] if obj else self.readonly_fields

    def get_inline_instances(self, request, obj=None):
        inlines = super().get_inline_instances(request, obj)
        if obj is not None and obj.kind not in DeviceKind.osdp():
            return [inline for inline in inlines if not isinstance(inline, OsdpReaderInline)]
        return inlines

    @admin.display(description="key", boolean=True)
    def key_set(self, device):
        return device.has_key

    # devices.actions records commissioning ("add") and changes ("update") itself.
    audit_additions = False
    audit_changes = False

    def save_model(self, request, obj, form, change):
        """Nothing yet: save_related, which sees the door and reader rows too, saves all through one action."""

    def save_related(self, request, form, formsets, change):
        mappings, place = {}, None
        for formset in formsets:
            relation = formset.fk.remote_field.related_name
            rows = [row for row in formset.forms if row.cleaned_data and not row.cleaned_data.get("DELETE")]
            if relation == "osdp":
                place = rows[0].cleaned_data if rows else None
            else:
                # Wiring the page did not show stays as it was (a new row's: the defaults).
                names = ["number", "access_point", *actions.WIRING[relation]]
                mappings[relation] = [
                    {
                        name: row.cleaned_data[name] if name in row.cleaned_data else getattr(row.instance, name)
                        for name in names
                    }
                    for row in rows
                ]
            # The admin's change message reads what the formset saved; the action saved it instead.
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        device = form.instance
        by = {"operator": request.user, "via": VIA}
        if device.kind in DeviceKind.osdp():
            self.save_osdp(request, device, place or {}, mappings, change, by)
        elif change:
            actions.update_device(device, **mappings, **by)
        else:
            given = form.cleaned_data.get("key")
            key = actions.commission_device(device, key=given, **mappings, **by, recorded_as="add")
            if given is None:
                _show_key_once(request, device, key)

    def save_osdp(self, request, device: Device, place: dict, mappings: dict, change: bool, by: dict) -> None:
        names = ["bus", "address", "card_format", "allow_clear"]
        if change:
            reader = device.osdp
            reader.device = device
            for name in names:
                if name in place:
                    setattr(reader, name, place[name])
            actions.update_osdp_reader(reader, **mappings, **by)
            return
        reader = OsdpReader(**{name: place[name] for name in names if name in place})
        actions.commission_osdp_reader(device, reader, **mappings, **by, recorded_as="add")
        messages.info(
            request,
            f"{device} has device id {device.device_id} and its own secure channel key, which Space gives it "
            "over the bus on first contact while the reader is in install mode.",
        )

    @admin.action(description="Generate a new key", permissions=["change"])
    def generate_new_key(self, request, queryset):
        for device in self.restrict(queryset, request, "change").select_related("osdp"):
            if device.kind in DeviceKind.osdp():
                actions.rekey_osdp_reader(device.osdp, operator=request.user, via=VIA)
                messages.warning(request, f"{device} has a new secure channel key (not shown). {actions.REKEY_HELP}")
                continue
            _show_key_once(request, device, actions.rekey_device(device, operator=request.user, via=VIA), "new key")


@admin.register(DeviceCommand)
class DeviceCommandAdmin(ReadOnlyAdmin):
    """What was asked of each device, and how far it got; commands are issued from the API or the web app."""

    list_display = ["id", "created_at", "op", "device", "access_point", "status", "operator", "finished_at", "error"]
    list_filter = ["status", "op"]
    list_select_related = ["device", "access_point", "operator"]
    search_fields = ["device__name", "access_point__name", "=id"]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return commands.visible_commands(super().get_queryset(request), request.user)


# --- OSDP buses -----------------------------------------------------------------------------------------


class OsdpBusForm(forms.ModelForm):
    class Meta:
        model = OsdpBus
        fields = ["name", "port", "baud", "enabled", "description"]
        help_texts = {"port": actions.PORT_HELP}

    def clean_port(self):
        try:
            return actions.check_port(self.cleaned_data.get("port", ""))
        except ValidationError as error:
            raise forms.ValidationError(error.message_dict["port"]) from None


class OsdpReaderOnBusInline(admin.TabularInline):
    """The bus's devices, to look at; each is changed on its device's page."""

    model = OsdpReader
    fk_name = "bus"
    extra = 0
    can_delete = False
    show_change_link = False
    fields = ["device", "address", "card_format", "secure", "key_set_at", "vendor_code", "model", "serial_number"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(OsdpBus)
class OsdpBusAdmin(SpaceAdmin):
    form = OsdpBusForm
    inlines = [OsdpReaderOnBusInline]
    list_display = ["name", "port", "baud", "enabled", "online", "last_error"]
    list_filter = ["enabled", "online"]
    search_fields = ["name", "port", "description"]
    readonly_fields = ["online", "last_error", "updated_at"]

    # devices.actions records the bus's creation and changes itself.
    audit_additions = False
    audit_changes = False

    def get_inline_instances(self, request, obj=None):
        # A new bus has no readers yet.
        return super().get_inline_instances(request, obj) if obj is not None else []

    def save_model(self, request, obj, form, change):
        by = {"operator": request.user, "via": VIA}
        if change:
            actions.update_osdp_bus(obj, **by)
            return
        fields = {name: form.cleaned_data[name] for name in actions.BUS_FIELDS}
        saved = actions.create_osdp_bus(**fields, **by, recorded_as="add")
        obj.pk, obj._state.adding, obj._state.db = saved.pk, False, saved._state.db


# --- face terminals -------------------------------------------------------------------------------------


class FaceTerminalAdminForm(forms.ModelForm):
    """A face terminal with its device's name, description and enabled switch on the same page."""

    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    enabled = forms.BooleanField(required=False, initial=True, help_text="A disabled terminal enrols nobody.")

    class Meta:
        model = FaceTerminal
        fields = ["terminal_id", *actions.FACE_TERMINAL_FIELDS]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            for name in actions.FACE_DEVICE_FIELDS:
                self.initial[name] = getattr(self.instance.device, name)

    def clean_name(self):
        name = self.cleaned_data["name"]
        taken = Device.objects.filter(name=name)
        if self.instance.pk is not None:
            taken = taken.exclude(pk=self.instance.device_id)
        if taken.exists():
            raise forms.ValidationError("A device with this name exists already.")
        return name


@admin.register(FaceTerminal)
class FaceTerminalAdmin(SpaceAdmin):
    """Saved through devices.actions (commission_face_terminal, update_face_terminal), which record themselves.
    A terminal is disabled, not deleted; its certificate comes from ``manage.py face_terminal ID``."""

    form = FaceTerminalAdminForm
    audit_additions = False
    audit_changes = False
    list_display = ["terminal_id", "device", "access_point", "model_name", "enabled", "online", "last_seen_at"]
    list_select_related = ["device", "access_point"]
    search_fields = ["terminal_id", "device__name"]
    autocomplete_fields = ["access_point"]

    def get_readonly_fields(self, request, obj=None):
        return ["terminal_id"] if obj else []

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(boolean=True)
    def enabled(self, terminal):
        return terminal.device.enabled

    @admin.display(boolean=True)
    def online(self, terminal):
        return terminal.device.online

    @admin.display(description="last seen")
    def last_seen_at(self, terminal):
        return terminal.device.last_seen_at

    def save_model(self, request, obj, form, change):
        by = {"operator": request.user, "via": VIA}
        values = {
            name: form.cleaned_data[name] for name in [*actions.FACE_DEVICE_FIELDS, *actions.FACE_TERMINAL_FIELDS]
        }
        if change:
            actions.update_face_terminal(obj, **values, **by)
            return
        saved = actions.commission_face_terminal(terminal_id=form.cleaned_data["terminal_id"], **values, **by)
        obj.pk, obj.device, obj._state.adding, obj._state.db = saved.pk, saved.device, False, saved._state.db


@admin.register(FaceEnrolment)
class FaceEnrolmentAdmin(ReadOnlyAdmin):
    """Enrolments are started from the cardholder's page or the API, and finished by the terminal."""

    list_display = ["id", "cardholder", "terminal", "status", "requested_by", "requested_at", "finished_at", "error"]
    list_filter = ["status"]
    list_select_related = ["cardholder", "terminal", "requested_by"]
    search_fields = ["terminal__terminal_id", "cardholder__last_name", "cardholder__first_name"]
    date_hierarchy = "requested_at"


# --- alarms ---------------------------------------------------------------------------------------------


@admin.register(Alarm)
class AlarmAdmin(ReadOnlyAdmin):
    """Alarms are raised and cleared by the device runtime; operators acknowledge them (the action here)."""

    list_display = ["raised_at", "kind", "access_point", "device", "cleared_at", "acknowledged_at", "acknowledged_by"]
    list_filter = ["kind", ("acknowledged_at", admin.EmptyFieldListFilter), ("cleared_at", admin.EmptyFieldListFilter)]
    list_select_related = ["access_point", "device", "acknowledged_by"]
    search_fields = ["access_point__name", "device__name", "note"]
    date_hierarchy = "raised_at"
    actions = ["acknowledge"]

    def get_queryset(self, request):
        return alarms.visible_alarms(super().get_queryset(request), request.user)

    def has_acknowledge_permission(self, request):
        return request.user.has_perm(alarms.ACKNOWLEDGE)

    @admin.action(description="Acknowledge", permissions=["acknowledge"])
    def acknowledge(self, request, queryset):
        done, refused = 0, []
        for alarm in alarms.visible_alarms(queryset, request.user, "acknowledge"):
            try:
                actions.acknowledge_alarm(alarm, operator=request.user, via=VIA)
            except ValidationError as error:
                refused.append(f"{alarm}: {' '.join(error.messages)}")
                continue
            done += 1
        if done:
            messages.success(request, f"{done} alarm{'s' if done != 1 else ''} acknowledged.")
        for text in refused:
            messages.warning(request, text)
