from django.contrib import admin

from accesscontrol.admin import SpaceAdmin
from devices.models import Device


@admin.register(Device)
class DeviceAdmin(SpaceAdmin):
    list_display = ["name", "device_id", "kind", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "description", "=device_id"]
    readonly_fields = ["created_at"]
