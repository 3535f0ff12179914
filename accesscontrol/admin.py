"""The Django admin: the administrators' tool for every model.

Every model admin here derives from ``SpaceAdmin``, which limits what an
operator sees and changes to their operator groups' partitions (through
``accesscontrol.permissions.restrict``, like the API) and writes each change to
the system auditor.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import capfirst
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accesscontrol import photos, sync
from accesscontrol.actions import (
    PERMISSION_FIELDS,
    add_cardholder_permission,
    cancel_key,
    change_cardholder_permission,
    delete_cardholder,
    delete_key,
    grant_access_level,
    issue_api_key,
    opening_mode_edited,
    record_operator_action,
    remove_cardholder_permission,
    revoke_access_level,
    revoke_api_key,
    save_access_level,
    save_calendar,
    save_mode_schedule,
    save_time_period,
)
from accesscontrol.forms.places import PassbackDefaults
from accesscontrol.models import (
    AccessLevel,
    AccessLevelEntry,
    AccessPoint,
    ApiKey,
    AuditEvent,
    Authenticator,
    Backup,
    BackupCodes,
    BlacklistEntry,
    Calendar,
    CalendarDay,
    Cardholder,
    CardholderPermission,
    CardholderSource,
    GuestArea,
    IdempotencyRecord,
    Key,
    Location,
    ModeChange,
    ModeSchedule,
    Operator,
    OperatorGroup,
    Partition,
    Presence,
    Room,
    RuleChange,
    SiteSettings,
    SourcedCardholder,
    Stay,
    SyncRun,
    SystemAuditEntry,
    TimeInterval,
    TimePeriod,
    Zone,
)
from accesscontrol.permissions import ALL, allowed_partitions, permission_name, restrict
from accesscontrol.pins import PIN_TAKEN, is_valid_pin

VIA = "admin"

admin.site.site_header = "Space administration"
admin.site.site_title = "Space"
admin.site.index_title = "Administration"

# Operators are grouped by OperatorGroup (permissions + partitions); Django's
# own Group would be a second, ignored way to do the same.
admin.site.unregister(Group)
# django-otp's own TOTP and static devices keep their secrets in clear; Space's are Authenticator and
# BackupCodes (accesscontrol/models/secondfactor.py), managed from the operator's account page.
admin.site.unregister(TOTPDevice)
admin.site.unregister(StaticDevice)


def record_admin_action(request, action: str, obj, detail=None) -> SystemAuditEntry:
    """Write one operator action done in the admin to the system auditor."""
    # Change messages are lists of dicts that may hold lazy strings; round-trip
    # them so the JSON field stores plain values.
    detail = json.loads(json.dumps(detail or {}, default=str))
    return record_operator_action(request.user, action, obj, via=VIA, detail=detail)


def _change_detail(message) -> dict:
    if not message:
        return {}
    if isinstance(message, str):
        try:
            message = json.loads(message)
        except ValueError:
            return {"message": message}
    return {"changes": message}


class AuditedAdminMixin:
    """Admin additions, changes and deletions also go to the system auditor."""

    # False where saving (deleting) calls an action in accesscontrol.actions, which records itself.
    audit_additions = True
    audit_deletions = True
    audit_changes = True

    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)
        if self.audit_additions:
            record_admin_action(request, "add", obj, _change_detail(message))
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        if self.audit_changes:
            record_admin_action(request, "change", obj, _change_detail(message))
        return entry

    def log_deletions(self, request, queryset):
        # Called before the rows go, so their ids and names are still there.
        entries = super().log_deletions(request, queryset)
        if self.audit_deletions:
            for obj in queryset:
                record_admin_action(request, "delete", obj)
        return entries


class PartitionRestrictedMixin:
    """Non-superusers see and touch only the rows in their groups' partitions."""

    def restrict(self, queryset, request, action):
        return restrict(queryset, request.user, action)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        # As in Django's admin, the right to change a row includes seeing it.
        return self.restrict(queryset, request, "view") | self.restrict(queryset, request, "change")

    def _may(self, request, obj, action) -> bool:
        if obj is None or request.user.is_superuser:
            return True
        return self.restrict(self.model._default_manager.filter(pk=obj.pk), request, action).exists()

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._may(request, obj, "change")

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._may(request, obj, "delete")

    def get_deleted_objects(self, objs, request):
        # The "delete selected" action only asks has_delete_permission() without
        # an object; refuse here when any selected row is outside the partitions.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        if not all(self._may(request, obj, "delete") for obj in objs):
            perms_needed = {*perms_needed, f"{self.opts.verbose_name_plural} outside your partitions"}
        return deleted, counts, perms_needed, protected

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        field = form.base_fields.get("partition")
        if field is not None and not request.user.is_superuser:
            action = "change" if obj else "add"
            allowed = allowed_partitions(request.user, permission_name(self.model, action))
            if allowed is not ALL:
                field.queryset = field.queryset.filter(pk__in=allowed)
        return form


class SpaceAdmin(AuditedAdminMixin, PartitionRestrictedMixin, admin.ModelAdmin):
    pass


class SavedByActionAdmin(SpaceAdmin):
    """An object and the rows of its one inline saved together by an action of accesscontrol.actions.

    ``save_action(obj, children, operator=, via=)`` is that action; it records the
    change itself ("create" or "update"), so the admin's own rows are left out.
    """

    audit_additions = False
    audit_changes = False
    child_fields: tuple = ()

    def save_action(self, obj, children, **by):
        raise NotImplementedError

    def save_model(self, request, obj, form, change):
        """Nothing yet: save_related, which sees the inline rows too, saves all through the action."""

    def save_related(self, request, form, formsets, change):
        children = None
        for formset in formsets:
            children = [
                {name: row.cleaned_data[name] for name in self.child_fields}
                for row in formset.forms
                if row.cleaned_data and not row.cleaned_data.get("DELETE")
            ]
            # The admin's change message reads what the formset saved; the action saved it instead.
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        self.save_action(form.instance, children, operator=request.user, via=VIA)


class ReadOnlyAdmin(SpaceAdmin):
    """For append-only records: they are looked at, never written from the admin."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- partitions and site ----------------------------------------------------------


@admin.register(Partition)
class PartitionAdmin(SpaceAdmin):
    list_display = ["name", "description"]
    search_fields = ["name"]


@admin.register(SiteSettings)
class SiteSettingsAdmin(SpaceAdmin):
    list_display = ["name", "default_calendar", "lockdown"]
    autocomplete_fields = ["default_calendar"]

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not SiteSettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False


# --- places -------------------------------------------------------------------------


@admin.register(Location)
class LocationAdmin(SpaceAdmin):
    list_display = ["name", "parent", "partition"]
    list_filter = ["partition"]
    list_select_related = ["parent", "partition"]
    search_fields = ["name", "description"]
    autocomplete_fields = ["parent"]


class ZoneAdminForm(PassbackDefaults, forms.ModelForm):
    """The admin names the model and the fields (its fieldsets)."""


@admin.register(Zone)
class ZoneAdmin(SpaceAdmin):
    form = ZoneAdminForm
    list_display = [
        "name",
        "partition",
        "access_point_count",
        "anti_passback",
        "roll_call",
        "max_occupancy",
        "lockdown",
    ]
    list_filter = ["partition", "anti_passback", "passback_kind", "roll_call", "lockdown"]
    list_select_related = ["partition"]
    search_fields = ["name", "description"]
    autocomplete_fields = ["mode_schedule"]
    readonly_fields = ["occupancy_correction"]
    fieldsets = [
        (None, {"fields": ["name", "partition", "description", "mode_schedule", "lockdown"]}),
        ("Anti-passback", {"fields": ["anti_passback", "passback_kind", "passback_minutes"]}),
        ("Who is inside", {"fields": ["roll_call", "max_occupancy", "occupancy_correction"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(access_point_count=Count("access_points"))

    @admin.display(description="access points", ordering="access_point_count")
    def access_point_count(self, zone):
        return zone.access_point_count


@admin.register(AccessPoint)
class AccessPointAdmin(SpaceAdmin):
    list_display = [
        "name",
        "kind",
        "connection",
        "opening_mode",
        "location",
        "partition",
        "pin_required",
        "lockdown",
    ]
    list_filter = ["kind", "connection", "opening_mode", "pin_required", "lockdown", "partition", "zones", "location"]
    list_select_related = ["location", "partition"]
    search_fields = ["name", "ext_id", "description"]
    autocomplete_fields = ["location", "timed_period", "calendar", "mode_schedule"]
    filter_horizontal = ["zones"]
    readonly_fields = ["mode_source", "mode_changed_at"]

    def save_model(self, request, obj, form, change):
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if change and "opening_mode" in form.changed_data:
                opening_mode_edited(obj, operator=request.user, via=VIA)

    fieldsets = [
        (None, {"fields": ["name", "ext_id", "description", "kind", "partition", "location", "zones"]}),
        (
            "Behaviour",
            {
                "fields": [
                    "connection",
                    "opening_mode",
                    "mode_source",
                    "mode_changed_at",
                    "mode_schedule",
                    "timed_period",
                    "open_time",
                    "extended_open_time",
                ]
            },
        ),
        ("Rules", {"fields": ["calendar", "direction", "pin_required", "lockdown", "face_threshold"]}),
    ]


# --- schedules ----------------------------------------------------------------------


class TimeIntervalInline(admin.TabularInline):
    model = TimeInterval
    extra = 0
    max_num = 8  # the lock's limit: intervals per time period


@admin.register(TimePeriod)
class TimePeriodAdmin(SavedByActionAdmin):
    child_fields = ("start", "end", *TimeInterval.ALL_DAY_FIELDS)
    save_action = staticmethod(lambda period, intervals, **by: save_time_period(period, intervals=intervals, **by))
    list_display = ["name", "partition", "schedule"]
    list_filter = ["partition"]
    list_select_related = ["partition"]
    search_fields = ["name", "description"]
    inlines = [TimeIntervalInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("intervals")

    @admin.display(description="intervals")
    def schedule(self, period):
        return "; ".join(_describe_interval(interval) for interval in period.intervals.all()) or "—"


_DAY_ABBREVIATIONS = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")


def _describe_interval(interval) -> str:
    days = [
        abbr
        for abbr, field in zip(_DAY_ABBREVIATIONS, TimeInterval.DAY_FIELDS, strict=True)
        if getattr(interval, field)
    ]
    days += [field for field in TimeInterval.DAY_TYPE_FIELDS.values() if getattr(interval, field)]
    return f"{interval} {','.join(days)}"


class ModeChangeInline(admin.TabularInline):
    model = ModeChange
    extra = 0


@admin.register(ModeSchedule)
class ModeScheduleAdmin(SavedByActionAdmin):
    child_fields = ("at", "mode", *ModeChange.ALL_DAY_FIELDS)
    save_action = staticmethod(lambda schedule, changes, **by: save_mode_schedule(schedule, changes=changes, **by))
    list_display = ["name", "partition", "table"]
    list_filter = ["partition"]
    list_select_related = ["partition"]
    search_fields = ["name", "description"]
    inlines = [ModeChangeInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("changes")

    @admin.display(description="changes")
    def table(self, schedule):
        return "; ".join(_describe_change(change) for change in schedule.changes.all()) or "—"


def _describe_change(change) -> str:
    days = [
        abbr for abbr, field in zip(_DAY_ABBREVIATIONS, ModeChange.DAY_FIELDS, strict=True) if getattr(change, field)
    ]
    days += [field for field in ModeChange.DAY_TYPE_FIELDS.values() if getattr(change, field)]
    return f"{change.at:%H:%M} {change.mode} {','.join(days)}"


class CalendarDayInline(admin.TabularInline):
    model = CalendarDay
    extra = 0


@admin.register(Calendar)
class CalendarAdmin(SavedByActionAdmin):
    child_fields = ("date", "day_type", "name", "recurring")
    save_action = staticmethod(lambda calendar, days, **by: save_calendar(calendar, days=days, **by))
    list_display = ["name", "day_count"]
    search_fields = ["name", "description"]
    inlines = [CalendarDayInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(day_count=Count("days"))

    @admin.display(description="days", ordering="day_count")
    def day_count(self, calendar):
        return calendar.day_count


# --- permissions --------------------------------------------------------------------


class AccessLevelEntryInline(admin.TabularInline):
    model = AccessLevelEntry
    extra = 0
    autocomplete_fields = ["access_point", "zone", "time_period"]


@admin.register(AccessLevel)
class AccessLevelAdmin(SavedByActionAdmin):
    child_fields = ("access_point", "zone", "time_period")
    save_action = staticmethod(lambda level, entries, **by: save_access_level(level, entries=entries, **by))
    list_display = ["name", "partition", "entry_count", "cardholder_count"]
    list_filter = ["partition"]
    list_select_related = ["partition"]
    search_fields = ["name", "description"]
    inlines = [AccessLevelEntryInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                entry_count=Count("entries", distinct=True),
                cardholder_count=Count("cardholders", distinct=True),
            )
        )

    @admin.display(description="entries", ordering="entry_count")
    def entry_count(self, level):
        return level.entry_count

    @admin.display(description="cardholders", ordering="cardholder_count")
    def cardholder_count(self, level):
        return level.cardholder_count


# --- cardholders and keys -------------------------------------------------------------


CARDHOLDER_IDENTITY_FIELDS = [
    "kind",
    "title",
    "first_name",
    "last_name",
    "ext_id",
    "partition",
    "email",
    "phone_number",
    "department",
    "job_title",
]
CARDHOLDER_OPTION_FIELDS = [
    "office",
    "override_privacy",
    "override_lockdown",
    "audit_openings",
    "use_anti_passback",
    "extended_open_time",
    "key_revalidation_days",
    "key_cancellable_through_blacklist",
]


class CardholderForm(forms.ModelForm):
    """The PIN is write-only: a new one replaces the stored hash, an empty field keeps it."""

    new_pin = forms.CharField(
        label="Set PIN",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off", "inputmode": "numeric"}),
        help_text="4 to 8 digits. Leave empty to keep the current PIN.",
    )
    clear_pin = forms.BooleanField(label="Remove PIN", required=False)

    class Meta:
        model = Cardholder
        fields = [
            *CARDHOLDER_IDENTITY_FIELDS,
            "activation",
            "expiration",
            "banned",
            "access_levels",
            *CARDHOLDER_OPTION_FIELDS,
            "notes",
        ]

    def clean_new_pin(self):
        pin = self.cleaned_data["new_pin"]
        if pin and not is_valid_pin(pin):
            raise forms.ValidationError("A PIN is 4 to 8 digits.")
        if pin and self.instance.pin_taken(pin):
            raise forms.ValidationError(PIN_TAKEN)
        return pin

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("new_pin") and cleaned.get("clear_pin"):
            raise forms.ValidationError("Either set a new PIN or remove it, not both.")
        return cleaned

    def save(self, commit=True):
        if self.cleaned_data.get("new_pin"):
            self.instance.set_pin(self.cleaned_data["new_pin"])
        elif self.cleaned_data.get("clear_pin"):
            self.instance.set_pin(None)
        return super().save(commit)


class KeyInline(admin.TabularInline):
    model = Key
    extra = 0
    fields = ["uid", "kind", "status", "valid_from", "valid_until", "revision", "cancelled_at"]
    # A key is cancelled or deleted through accesscontrol.actions (the key admin's action and delete),
    # which blacklist it: a status set or a row dropped here would leave offline locks opening for it.
    readonly_fields = ["status", "revision", "cancelled_at"]
    can_delete = False
    show_change_link = True


class CardholderPermissionInline(admin.TabularInline):
    model = CardholderPermission
    extra = 0
    autocomplete_fields = ["access_point", "zone", "time_period"]


def _save_permissions(holder, formset, by: dict) -> None:
    for row in formset.forms:
        if not row.cleaned_data:
            continue
        grant = {name: row.cleaned_data.get(name) for name in PERMISSION_FIELDS}
        if row.instance.pk is None:
            if not row.cleaned_data.get("DELETE"):
                add_cardholder_permission(holder, **grant, **by)
            continue
        # The form has written the new values onto its instance already: the action compares with the stored row.
        stored = CardholderPermission.objects.get(pk=row.instance.pk)
        if row.cleaned_data.get("DELETE"):
            remove_cardholder_permission(stored, **by)
        elif row.has_changed():
            change_cardholder_permission(stored, grant, **by)
    # The admin's change message reads what the formset saved; the actions saved it instead.
    formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []


@admin.register(Cardholder)
class CardholderAdmin(SpaceAdmin):
    form = CardholderForm
    list_display = ["last_name", "first_name", "kind", "ext_id", "partition", "validity", "has_pin", "banned"]
    list_filter = ["kind", "banned", "partition", "access_levels"]
    list_select_related = ["partition"]
    search_fields = ["last_name", "first_name", "ext_id", "email", "keys__uid"]
    filter_horizontal = ["access_levels"]
    inlines = [KeyInline, CardholderPermissionInline]
    fieldsets = [
        (
            None,
            {"fields": CARDHOLDER_IDENTITY_FIELDS},
        ),
        ("Photo", {"fields": ["photo_thumbnail", "photo_updated_at"]}),
        ("Validity", {"fields": ["activation", "expiration", "banned"]}),
        ("PIN", {"fields": ["has_pin", "new_pin", "clear_pin"]}),
        ("Access", {"fields": ["access_levels"]}),
        (
            "Options",
            {
                "classes": ["collapse"],
                "fields": [
                    "office",
                    "override_privacy",
                    "override_lockdown",
                    "audit_openings",
                    "use_anti_passback",
                    "extended_open_time",
                    "key_revalidation_days",
                    "key_cancellable_through_blacklist",
                ],
            },
        ),
        ("Notes", {"fields": ["notes"]}),
    ]
    # The photo is set on the cardholder's page or through the API (accesscontrol/photos.py checks and strips it).
    readonly_fields = ["has_pin", "photo_thumbnail", "photo_updated_at"]

    audit_deletions = False

    @admin.display(description="photo")
    def photo_thumbnail(self, cardholder):
        if not cardholder.photo:
            return "none (set it on the cardholder's page)"
        url = photos.thumbnail_url(cardholder.pk, cardholder.photo.name)
        return format_html('<img src="{}" alt="Photo of {}" width="96">', url, cardholder)

    def delete_model(self, request, obj):
        delete_cardholder(obj, operator=request.user, via=VIA)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for holder in queryset:
                delete_cardholder(holder, operator=request.user, via=VIA)

    def get_deleted_objects(self, objs, request):
        # Key -> Cardholder is PROTECT against any other path; delete_cardholder cancels, blacklists and
        # removes the keys itself, so they are listed as going, not as a reason to refuse.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        key_label = f"{capfirst(Key._meta.verbose_name)}: "
        protected = [name for name in protected if not str(name).startswith(key_label)]
        keys = list(Key.objects.filter(cardholder__in=[holder.pk for holder in objs]).order_by("id"))
        if keys:
            deleted = [
                *deleted,
                *(f"{key_label}{key} ({key.get_status_display().lower()}; cancelled and blacklisted)" for key in keys),
            ]
            counts = {**counts, Key._meta.verbose_name_plural: len(keys)}
        return deleted, counts, perms_needed, protected

    def save_related(self, request, form, formsets, change):
        """Access levels and individual permissions change through their actions, a system auditor row each."""
        holder = form.instance
        by = {"operator": request.user, "via": VIA}
        held = set(holder.access_levels.all()) if change else set()
        wanted = set(form.cleaned_data.get("access_levels", ()))
        for level in sorted(held - wanted, key=lambda level: level.pk):
            revoke_access_level(holder, level, **by)
        for level in sorted(wanted - held, key=lambda level: level.pk):
            grant_access_level(holder, level, **by)
        for formset in formsets:
            if formset.model is CardholderPermission:
                _save_permissions(holder, formset, by)
            else:
                self.save_formset(request, form, formset, change=change)

    @admin.display(description="PIN", boolean=True)
    def has_pin(self, cardholder):
        return cardholder.has_pin

    @admin.display(description="valid")
    def validity(self, cardholder):
        start = f"{timezone.localtime(cardholder.activation):%Y-%m-%d}" if cardholder.activation else ""
        end = f"{timezone.localtime(cardholder.expiration):%Y-%m-%d}" if cardholder.expiration else ""
        return f"{start} to {end}" if start or end else "always"


@admin.register(Key)
class KeyAdmin(SpaceAdmin):
    list_display = ["uid", "kind", "status", "cardholder", "valid_until", "issued_at", "cancelled_at"]
    list_filter = ["kind", "status"]
    list_select_related = ["cardholder"]
    search_fields = ["uid", "cardholder__last_name", "cardholder__first_name", "cardholder__ext_id"]
    autocomplete_fields = ["cardholder"]
    # Cancelled only through the action below (accesscontrol.actions.cancel_key), which blacklists the key.
    readonly_fields = ["status", "revision", "issued_at", "cancelled_at"]
    actions = ["cancel_selected"]
    audit_deletions = False

    @admin.action(description="Cancel selected keys (blacklisted until they expire)", permissions=["change"])
    def cancel_selected(self, request, queryset):
        if not request.user.is_superuser and self.restrict(queryset, request, "change").count() != len(queryset):
            self.message_user(request, "Some of the keys are outside your partitions: none cancelled.", messages.ERROR)
            return
        with transaction.atomic():
            for key in queryset:
                cancel_key(key, operator=request.user, via=VIA)
        self.message_user(request, f"{len(queryset)} keys cancelled.", messages.SUCCESS)

    def delete_model(self, request, obj):
        delete_key(obj, operator=request.user, via=VIA)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for key in queryset:
                delete_key(key, operator=request.user, via=VIA)


@admin.register(BlacklistEntry)
class BlacklistEntryAdmin(ReadOnlyAdmin):
    """Entries come from cancelling keys and leave by the hourly purge; nothing here changes them."""

    list_display = ["id", "uid", "key_number", "until", "created_at"]
    search_fields = ["uid"]
    date_hierarchy = "until"


# --- operators -------------------------------------------------------------------------


class OperatorGroupMembershipInline(admin.TabularInline):
    model = OperatorGroup.members.through
    extra = 0
    verbose_name = "operator group"
    verbose_name_plural = "operator groups"


@admin.register(Operator)
class OperatorAdmin(AuditedAdminMixin, UserAdmin):
    list_display = ["username", "first_name", "last_name", "email", "is_active", "is_staff", "is_superuser"]
    list_filter = ["is_active", "is_staff", "is_superuser", "operator_groups"]
    filter_horizontal = []
    inlines = [OperatorGroupMembershipInline]
    fieldsets = [
        (None, {"fields": ["username", "password"]}),
        ("Personal info", {"fields": ["first_name", "last_name", "email"]}),
        ("Rights", {"fields": ["is_active", "is_staff", "is_superuser"]}),
        ("Important dates", {"fields": ["last_login", "date_joined"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            # Otherwise an operator allowed to edit operators could make anyone,
            # themselves included, a superuser.
            readonly.append("is_superuser")
        return readonly


@admin.register(OperatorGroup)
class OperatorGroupAdmin(SpaceAdmin):
    list_display = ["name", "all_partitions", "require_two_factor", "member_count"]
    list_filter = ["all_partitions", "require_two_factor", "partitions"]
    search_fields = ["name", "description"]
    filter_horizontal = ["permissions", "partitions", "members"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_count=Count("members"))

    @admin.display(description="members", ordering="member_count")
    def member_count(self, group):
        return group.member_count


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["operator", "name", "expires_at", "revoked_at"]


@admin.register(Authenticator, BackupCodes)
class SecondFactorAdmin(SpaceAdmin):
    """An operator's authenticator or backup codes: seen, and deleted to reset a lost one (the operator enrols
    again). Nothing here shows or sets a seed or a code."""

    list_display = ["user", "name", "confirmed", "created_at", "last_used_at"]
    list_filter = ["confirmed"]
    list_select_related = ["user"]
    search_fields = ["user__username"]
    fields = readonly_fields = ["user", "name", "confirmed", "created_at", "last_used_at"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(SpaceAdmin):
    form = ApiKeyForm
    list_display = ["name", "operator", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = ["operator"]
    list_select_related = ["operator"]
    search_fields = ["name", "lookup", "operator__username"]
    readonly_fields = ["prefix", "created_at", "last_used_at"]
    actions = ["revoke"]
    audit_additions = False  # issue_api_key records it

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["operator", "name", "expires_at"]
        return ["operator", "name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "operator"] if obj else self.readonly_fields

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "operator" and not request.user.is_superuser:
            # A key acts as its operator: only superusers issue keys for others.
            kwargs["queryset"] = Operator.objects.filter(pk=request.user.pk)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_changeform_initial_data(self, request):
        return {"operator": request.user.pk, **super().get_changeform_initial_data(request)}

    @admin.display(description="key")
    def prefix(self, key):
        return f"{ApiKey.PREFIX}_{key.lookup}_…" if key.lookup else "—"

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        issued, token = issue_api_key(obj.operator, obj.name, operator=request.user, via=VIA, expires_at=obj.expires_at)
        # The admin goes on with ``obj`` (logging, redirect): make it the saved key.
        obj.__dict__.update({k: v for k, v in issued.__dict__.items() if k != "_state"})
        obj._state.adding = False
        obj._state.db = issued._state.db
        messages.warning(
            request,
            f"The API key is {token} — copy it now, it is not shown again. "
            f"Send it as the header: Authorization: Api-Key {token}",
        )

    @admin.action(description="Revoke the selected API keys")
    def revoke(self, request, queryset):
        keys = list(self.restrict(queryset, request, "change").filter(revoked_at__isnull=True))
        for key in keys:
            revoke_api_key(key, operator=request.user, via=VIA)
        self.message_user(request, f"Revoked {len(keys)} API key(s).")


# --- audit trail -------------------------------------------------------------------------


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "kind", "reason", "access_point_name", "cardholder_name", "key_uid"]
    list_filter = ["kind", "reason"]
    search_fields = ["access_point_name", "cardholder_name", "key_uid"]
    date_hierarchy = "at"
    show_full_result_count = False  # the trail is large; COUNT(*) on every page would be slow


@admin.register(Presence)
class PresenceAdmin(ReadOnlyAdmin):
    """Who is inside: written only by passages and operators' corrections (the zone pages and the API)."""

    list_display = ["cardholder", "zone", "inside", "since", "source", "access_point"]
    list_filter = ["inside", "source", "zone"]
    list_select_related = ["cardholder", "zone", "access_point"]
    search_fields = ["cardholder__last_name", "cardholder__first_name"]
    date_hierarchy = "since"


@admin.register(SystemAuditEntry)
class SystemAuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["at", "operator_name", "action", "object_type", "object_repr", "via"]
    list_filter = ["action", "via", "object_type"]
    search_fields = ["operator_name", "object_repr", "object_id"]
    date_hierarchy = "at"
    show_full_result_count = False


@admin.register(Backup)
class BackupAdmin(ReadOnlyAdmin):
    """Written by backups only (accesscontrol/backups.py); the web app's Backups page runs one."""

    list_display = ["started_at", "file_name", "outcome", "size", "seconds", "trigger", "pruned_at"]
    list_filter = ["outcome", "trigger"]
    date_hierarchy = "started_at"


@admin.register(RuleChange)
class RuleChangeAdmin(ReadOnlyAdmin):
    list_display = ["id", "model", "object_id", "at"]
    list_filter = ["model"]
    search_fields = ["object_id"]


# --- the hotel ----------------------------------------------------------------------


@admin.register(Room)
class RoomAdmin(SpaceAdmin):
    list_display = ["number", "floor", "suite", "access_point"]
    list_filter = ["floor", "suite"]
    list_select_related = ["access_point"]
    search_fields = ["number", "access_point__name"]
    autocomplete_fields = ["access_point"]
    filter_horizontal = ["connects"]


@admin.register(GuestArea)
class GuestAreaAdmin(SpaceAdmin):
    list_display = ["name", "access_point", "zone", "time_period", "default"]
    list_filter = ["default"]
    list_select_related = ["access_point", "zone", "time_period"]
    search_fields = ["name"]


@admin.register(Stay)
class StayAdmin(ReadOnlyAdmin):
    """Stays change through check-in, modify and check-out (the front desk, the PMS interfaces, the API)."""

    list_display = ["room", "guest_name", "reservation", "arrival", "departure", "status", "checked_out_at"]
    list_filter = ["status"]
    list_select_related = ["room"]
    search_fields = ["guest_name", "reservation", "room__number"]


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdmin):
    list_display = ["key", "operator", "status", "created_at"]
    list_select_related = ["operator"]
    search_fields = ["key"]


# --- cardholder sources (accesscontrol/sync.py) ------------------------------------------------------------------


class CardholderSourceForm(forms.ModelForm):
    """The kind's settings are checked by the kind itself; the secret is written only (blank keeps the one set)."""

    kind = forms.ChoiceField(choices=())
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="The bind password, the HTTPS token or the SFTP password or private key; kept sealed. "
        "Blank keeps the one set.",
    )
    clear_secret = forms.BooleanField(required=False, help_text="Remove the secret set.")

    class Meta:
        model = CardholderSource
        fields = [
            "name",
            "kind",
            "enabled",
            "settings",
            "group_map",
            "scope_groups",
            "default_partition",
            "max_leaver_percent",
            "sync_minutes",
            "full_every_hours",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [(kind.name, kind.label) for kind in sync.kinds().values()]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        source = self.instance
        for name in ("kind", "settings", "group_map", "scope_groups"):
            setattr(source, name, cleaned.get(name))
        try:
            sync.validate_source(source)
        except ValidationError as error:
            for name, messages in error.message_dict.items():
                self.add_error(name if name in self.fields else "settings", messages)
            return cleaned
        cleaned["settings"], cleaned["group_map"] = source.settings, source.group_map
        return cleaned


@admin.register(CardholderSource)
class CardholderSourceAdmin(SpaceAdmin):
    form = CardholderSourceForm
    list_display = ["name", "kind", "enabled", "sync_minutes", "last_run_at", "last_full_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]
    readonly_fields = ["has_secret", "last_run_at", "last_full_at"]

    @admin.display(boolean=True, description="Secret set")
    def has_secret(self, obj):
        return bool(obj.secret_sealed)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if form.cleaned_data.get("clear_secret"):
            obj.set_secret("")
        elif form.cleaned_data.get("secret"):
            obj.set_secret(form.cleaned_data["secret"])
        else:
            return
        obj.save(update_fields=["secret_sealed"])


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    """Written by the sync only; the web app's Cardholder sources page shows each run's diff."""

    list_display = ["started_at", "source", "status", "dry_run", "full", "operator", "message"]
    list_filter = ["status", "source", "dry_run"]
    date_hierarchy = "started_at"


@admin.register(SourcedCardholder)
class SourcedCardholderAdmin(ReadOnlyAdmin):
    list_display = ["key", "source", "cardholder", "seen_at", "left_at", "left_reason"]
    list_filter = ["source", "left_reason"]
    search_fields = ["key", "cardholder__last_name"]
    raw_id_fields = ["cardholder"]
