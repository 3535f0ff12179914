"""Devices in the admin: commissioning (with the key shown once), door and reader mappings, commands sent."""

from django import forms
from django.contrib import admin, messages

from accesscontrol.admin import VIA, ReadOnlyAdmin, SpaceAdmin
from accesscontrol.models import AccessPoint
from accesscontrol.permissions import restrict
from devices import actions, commands
from devices.models import DEVICE_KEY_SIZE, Device, DeviceCommand, DeviceDoor, DeviceReader

LIVE_STATUS = ["online", "last_seen_at", "address", "firmware", "battery", "tamper", "door_states"]


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


class DeviceDoorInline(AccessPointInlineMixin, admin.TabularInline):
    model = DeviceDoor


class DeviceReaderInline(AccessPointInlineMixin, admin.TabularInline):
    model = DeviceReader


class DeviceForm(forms.ModelForm):
    key = forms.CharField(
        required=False,
        strip=True,
        max_length=DEVICE_KEY_SIZE * 2,
        help_text=f"{DEVICE_KEY_SIZE * 2} hex digits. Leave empty to generate one, shown once after saving.",
    )

    class Meta:
        model = Device
        fields = ["device_id", "name", "kind", "description", "station", "enabled"]

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


@admin.register(Device)
class DeviceAdmin(SpaceAdmin):
    form = DeviceForm
    inlines = [DeviceDoorInline, DeviceReaderInline]
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

    @admin.display(description="key", boolean=True)
    def key_set(self, device):
        return device.has_key

    # devices.actions records commissioning ("add") and changes ("update") itself.
    audit_additions = False
    audit_changes = False

    def save_model(self, request, obj, form, change):
        """Nothing yet: save_related, which sees the door and reader rows too, saves all through one action."""

    def save_related(self, request, form, formsets, change):
        mappings = {}
        for formset in formsets:
            relation = formset.fk.remote_field.related_name
            mappings[relation] = [
                {"number": row.cleaned_data["number"], "access_point": row.cleaned_data["access_point"]}
                for row in formset.forms
                if row.cleaned_data and not row.cleaned_data.get("DELETE")
            ]
            # The admin's change message reads what the formset saved; the action saved it instead.
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        device = form.instance
        by = {"operator": request.user, "via": VIA}
        if change:
            actions.update_device(device, **mappings, **by)
            return
        given = form.cleaned_data.get("key")
        key = actions.commission_device(device, key=given, **mappings, **by, recorded_as="add")
        if given is None:
            _show_key_once(request, device, key)

    @admin.action(description="Generate a new key", permissions=["change"])
    def generate_new_key(self, request, queryset):
        for device in self.restrict(queryset, request, "change"):
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
