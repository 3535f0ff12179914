"""The event stream in the Django admin: streams are configured here; their outbox rows are only looked at."""

from django import forms
from django.contrib import admin
from django.db.models import Count, Q

from accesscontrol.admin import ReadOnlyAdmin, SpaceAdmin
from accesscontrol.choices import AuditKind
from accesscontrol.permissions import ALL, allowed_partitions, permission_name
from integrations.eventstream.models import EventStream, StreamItem


class EveryPartitionMixin:
    """Streams and their rows carry events of any partition: only operators whose permission covers them all."""

    def _everywhere(self, request, *actions) -> bool:
        return any(allowed_partitions(request.user, permission_name(self.model, a)) is ALL for a in actions)

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self._everywhere(request, "view", "change")

    def has_add_permission(self, request, *args):
        return super().has_add_permission(request, *args) and self._everywhere(request, "add")

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._everywhere(request, "change")

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._everywhere(request, "delete")


class EventStreamForm(forms.ModelForm):
    kinds = forms.MultipleChoiceField(
        choices=AuditKind.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every kind.",
    )

    class Meta:
        model = EventStream
        fields = ["name", "protocol", "host", "port", "kinds", "partitions", "active"]


@admin.register(EventStream)
class EventStreamAdmin(EveryPartitionMixin, SpaceAdmin):
    form = EventStreamForm
    list_display = ["name", "address", "active", "pending", "last_connected_at", "last_error"]
    list_filter = ["active", "protocol"]
    search_fields = ["name", "host"]
    filter_horizontal = ["partitions"]
    readonly_fields = ["created_at", "last_connected_at", "last_error"]
    fieldsets = [
        (None, {"fields": ["name", "protocol", "host", "port", "active"]}),
        ("Which events", {"fields": ["kinds", "partitions"]}),
        ("Status", {"fields": ["created_at", "last_connected_at", "last_error"]}),
    ]

    def get_queryset(self, request):
        waiting = Count("items", filter=Q(items__sent_at__isnull=True))
        return super().get_queryset(request).annotate(pending_count=waiting)

    @admin.display(description="address")
    def address(self, stream):
        return stream.address

    @admin.display(description="events waiting", ordering="pending_count")
    def pending(self, stream):
        return stream.pending_count


@admin.register(StreamItem)
class StreamItemAdmin(EveryPartitionMixin, ReadOnlyAdmin):
    list_display = ["key", "stream", "created_at", "sent_at"]
    list_filter = ["stream", ("sent_at", admin.EmptyFieldListFilter)]
    list_select_related = ["stream"]
    search_fields = ["=key"]
    show_full_result_count = False  # the table holds an hour of events per stream
