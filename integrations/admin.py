"""Webhooks in the admin: subscriptions (with the secret shown once) and their delivery logs.

Who reaches a subscription is decided by its partitions, as in the API
(``integrations.webhooks.actions``); only a superuser may allow a private target.
"""

from django import forms
from django.contrib import admin, messages

from accesscontrol.admin import VIA, SpaceAdmin
from accesscontrol.choices import AuditKind
from accesscontrol.permissions import ALL, allowed_partitions, permission_name, restrict
from integrations.models import SECRET_MAX_LENGTH, SECRET_MIN_LENGTH, WebhookDelivery, WebhookSubscription
from integrations.targets import TargetError, check_url
from integrations.webhooks import actions

HEALTH = ["paused_at", "paused_reason", "failures_in_a_row", "failing_since", "last_error", "last_success_at"]


class WebhookSubscriptionForm(forms.ModelForm):
    url = forms.URLField(
        max_length=500, assume_scheme="https", help_text=WebhookSubscription._meta.get_field("url").help_text
    )
    kinds = forms.MultipleChoiceField(
        choices=AuditKind.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every kind.",
    )
    secret = forms.CharField(
        required=False,
        strip=False,
        min_length=SECRET_MIN_LENGTH,
        max_length=SECRET_MAX_LENGTH,
        widget=forms.PasswordInput(render_value=False),
        help_text="The signing secret. Leave empty to keep it (or, for a new subscription, to generate one, "
        "shown once after saving).",
    )
    operator = None  # set by the admin's get_form

    class Meta:
        model = WebhookSubscription
        fields = ["name", "url", "kinds", "partitions", "all_partitions", "active", "allow_private_target", "max_tries"]

    def clean_url(self):
        url = self.cleaned_data["url"]
        instance = self.instance
        changed = instance.pk is None or url != instance.url
        if changed and instance.allow_private_target and not self.operator.is_superuser:
            # An administrator's leave was for the URL they saw; anyone else's new URL is checked in full.
            try:
                check_url(url, allow_private=False)
            except TargetError as error:
                raise forms.ValidationError(str(error)) from None
        return url

    def clean(self):
        cleaned = super().clean()
        all_partitions = cleaned.get("all_partitions", self.instance.all_partitions)
        partitions = cleaned.get("partitions")
        if not all_partitions and not partitions:
            self.add_error("partitions", "Choose the partitions whose events to send, or tick all partitions.")
        action = "change" if self.instance.pk else "add"
        if not actions.may_use(self.operator, action, bool(all_partitions), partitions or []):
            self.add_error(None, "You may not send the events of these partitions.")
        return cleaned


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(SpaceAdmin):
    form = WebhookSubscriptionForm
    list_display = ["name", "url", "active", "is_paused", "failures_in_a_row", "last_success_at", "last_error"]
    list_filter = ["active", ("paused_at", admin.EmptyFieldListFilter), "all_partitions"]
    search_fields = ["name", "url"]
    readonly_fields = [*HEALTH, "created_by", "created_at", "updated_at"]
    filter_horizontal = ["partitions"]
    actions = ["resume"]

    def get_fieldsets(self, request, obj=None):
        fields = ["name", "url", "kinds", "partitions", "all_partitions", "active", "allow_private_target"]
        sets = [(None, {"fields": [*fields, "max_tries", "secret"]})]
        if obj is not None:
            sets.append(("Health", {"fields": HEALTH}))
            sets.append(("Record", {"fields": ["created_by", "created_at", "updated_at"]}))
        return sets

    def get_readonly_fields(self, request, obj=None):
        if request.user.is_superuser:
            return self.readonly_fields
        return [*self.readonly_fields, "allow_private_target"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.operator = request.user
        return form

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        if db_field.name == "partitions" and not request.user.is_superuser:
            allowed = allowed_partitions(request.user, permission_name(WebhookSubscription, "change"))
            if allowed is not ALL:
                field.queryset = field.queryset.filter(pk__in=allowed)
        return field

    def restrict(self, queryset, request, action):
        return actions.visible_subscriptions(queryset, request.user, action)

    @admin.display(description="paused", boolean=True)
    def is_paused(self, subscription):
        return subscription.paused

    def save_model(self, request, obj, form, change):
        secret = form.cleaned_data.get("secret") or None
        if not change:
            obj.created_by = request.user
            issued = obj.set_secret(secret)
            super().save_model(request, obj, form, change)
            if secret is None:
                messages.warning(
                    request,
                    f"The signing secret of webhook {obj} is {issued} — configure it on the receiver now; "
                    "it is not shown again.",
                )
            return
        if secret is not None:
            obj.set_secret(secret)
        super().save_model(request, obj, form, change)

    @admin.action(description="Resume (send the waiting deliveries now)", permissions=["change"])
    def resume(self, request, queryset):
        resumed = 0
        for subscription in self.restrict(queryset, request, "change"):
            actions.resume(subscription, operator=request.user, via=VIA)
            resumed += 1
        messages.success(request, f"{resumed} webhook subscription(s) resumed.")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(SpaceAdmin):
    """The outbox as a log: written by enqueue and the delivery runs only; an operator may send one again."""

    list_display = [
        "id",
        "created_at",
        "subscription",
        "event_key",
        "status",
        "tries",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "subscription"]
    list_select_related = ["subscription"]
    search_fields = ["=event_key"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["redeliver"]
    fields = [
        "subscription",
        "event_key",
        "status",
        "tries",
        "next_attempt_at",
        "claimed_at",
        "last_status_code",
        "last_error",
        "created_at",
        "delivered_at",
        "payload",
    ]
    readonly_fields = fields

    def restrict(self, queryset, request, action):
        visible = actions.visible_subscriptions(WebhookSubscription.objects.all(), request.user, "view")
        return restrict(queryset, request.user, action).filter(subscription__in=visible)

    def get_queryset(self, request):
        # Superusers too: a row whose subscription was deleted under it (an orphan) is not shown.
        return self.restrict(super().get_queryset(request), request, "view")

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_redeliver_permission(self, request):
        return request.user.has_perm(permission_name(WebhookSubscription, "change"))

    @admin.action(description="Send again", permissions=["redeliver"])
    def redeliver(self, request, queryset):
        changeable = actions.visible_subscriptions(WebhookSubscription.objects.all(), request.user, "change")
        sent, refused = 0, []
        for delivery in queryset.filter(subscription__in=changeable).select_related("subscription"):
            try:
                actions.redeliver(delivery, operator=request.user, via=VIA)
                sent += 1
            except actions.Refused as refusal:
                refused.append(f"{delivery.pk}: {refusal}")
        if sent:
            messages.success(request, f"{sent} deliveries will be sent again.")
        if refused:
            messages.warning(request, "Not sent again: " + "; ".join(refused[:10]))


# The event stream's admin lives beside its models; imported here so that the admin site registers it.
from integrations.eventstream import admin as stream_admin  # noqa: E402, F401
