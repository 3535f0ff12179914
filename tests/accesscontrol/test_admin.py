import io
import re

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.test import RequestFactory
from django.urls import reverse

from accesscontrol.models import ApiKey, AuditEvent, Cardholder, RuleChange, SystemAuditEntry, TimePeriod, Zone
from tests.factories import make_access_level, make_cardholder, make_key, make_operator, make_partition, make_zone

pytestmark = pytest.mark.django_db

# What the zone form posts for its fields that have a default (the admin shows them preselected).
ZONE_DEFAULTS = {"passback_kind": "hard", "passback_minutes": 0}


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def inline_management_data(response) -> dict:
    """Management form data for every inline on an add/change page with no inline rows."""
    data = {}
    for inline in response.context["inline_admin_formsets"]:
        prefix = inline.formset.prefix
        data |= {f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"}
    return data


def seed():
    call_command("seed_demo", stdout=io.StringIO())


# --- every page renders ---------------------------------------------------------------


def test_every_changelist_add_and_change_page_renders_for_a_superuser(admin_client, admin_user):
    seed()
    request = RequestFactory().get("/")
    request.user = admin_user
    failures = []
    for model, model_admin in admin.site._registry.items():
        pages = [(url(model, "changelist"), 200)]
        pages.append((url(model, "add"), 200 if model_admin.has_add_permission(request) else 403))
        first = model._default_manager.first()
        if first is not None:
            pages.append((url(model, "change", first.pk), 200))
        if model_admin.search_fields:
            pages.append((url(model, "changelist") + "?q=a", 200))
        for page, expected in pages:
            status = admin_client.get(page).status_code
            if status != expected:
                failures.append(f"{page}: {status}, expected {expected}")
    assert failures == []


def test_the_admin_index_does_not_offer_djangos_own_groups(admin_client):
    response = admin_client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert b"/admin/auth/group/" not in response.content
    assert b"/admin/accesscontrol/operatorgroup/" in response.content


def test_cardholder_search_finds_a_cardholder_by_name_and_by_key_uid(admin_client):
    ada = make_cardholder(first_name="Ada", last_name="Lovelace")
    make_cardholder(first_name="Alan", last_name="Turing")
    make_key(ada, uid="04AABBCCDDEEFF")

    by_name = admin_client.get(url(Cardholder, "changelist") + "?q=lovelace")
    by_uid = admin_client.get(url(Cardholder, "changelist") + "?q=04AABBCCDDEEFF")

    assert [c.pk for c in by_name.context["cl"].result_list] == [ada.pk]
    assert [c.pk for c in by_uid.context["cl"].result_list] == [ada.pk]


# --- partitions -----------------------------------------------------------------------


def restricted_operator_in(partition, *permissions):
    return make_operator(*permissions, partitions=[partition], is_staff=True)


def test_a_restricted_operator_sees_only_their_partitions_cardholders(client):
    office, hotel = make_partition("Office"), make_partition("Hotel")
    clerk = make_cardholder(last_name="Clerk", partition=office)
    make_cardholder(last_name="Concierge", partition=hotel)
    client.force_login(restricted_operator_in(office, "accesscontrol.view_cardholder"))

    response = client.get(url(Cardholder, "changelist"))

    assert response.status_code == 200
    assert [c.pk for c in response.context["cl"].result_list] == [clerk.pk]


def test_a_restricted_operator_cannot_open_a_cardholder_of_another_partition(client):
    office, hotel = make_partition("Office"), make_partition("Hotel")
    concierge = make_cardholder(last_name="Concierge", partition=hotel)
    client.force_login(restricted_operator_in(office, "accesscontrol.view_cardholder"))

    response = client.get(url(Cardholder, "change", concierge.pk))

    assert response.status_code == 302  # the admin's "no such object" redirect
    assert response.url == reverse("admin:index")


def test_a_restricted_operator_cannot_change_what_they_may_only_view(client):
    office = make_partition("Office")
    zone = make_zone(name="Lobby", partition=office)
    client.force_login(
        make_operator(
            "accesscontrol.view_zone",
            "accesscontrol.change_zone",
            partitions=[office],
            is_staff=True,
        )
    )
    other = make_zone(name="Roof", partition=make_partition("Hotel"))

    own = client.post(url(Zone, "change", zone.pk), {"name": "Main lobby", "partition": office.pk, **ZONE_DEFAULTS})
    foreign = client.post(url(Zone, "change", other.pk), {"name": "Hacked", "partition": office.pk, **ZONE_DEFAULTS})

    assert own.status_code == 302
    assert foreign.status_code == 302
    zone.refresh_from_db()
    other.refresh_from_db()
    assert zone.name == "Main lobby"
    assert (other.name, other.partition.name) == ("Roof", "Hotel")


def test_a_restricted_operator_cannot_add_into_a_partition_outside_their_groups(client):
    office, hotel = make_partition("Office"), make_partition("Hotel")
    client.force_login(
        make_operator("accesscontrol.view_zone", "accesscontrol.add_zone", partitions=[office], is_staff=True)
    )

    page = client.get(url(Zone, "add"))
    response = client.post(url(Zone, "add"), {"name": "Back door", "partition": hotel.pk, **ZONE_DEFAULTS})

    assert list(page.context["adminform"].form.fields["partition"].queryset) == [office]
    assert response.status_code == 200
    assert "partition" in response.context["adminform"].form.errors
    assert not Zone.objects.filter(name="Back door").exists()


def test_a_restricted_operator_cannot_bulk_delete_rows_of_another_partition(client):
    office, hotel = make_partition("Office"), make_partition("Hotel")
    mine = make_zone(name="Mine", partition=office)
    theirs = make_zone(name="Theirs", partition=hotel)
    # Sees both partitions, may delete only in the office.
    operator = make_operator("accesscontrol.view_zone", partitions=[office, hotel], is_staff=True)
    group = make_operator("accesscontrol.delete_zone", partitions=[office]).operator_groups.get()
    group.members.add(operator)
    client.force_login(operator)

    response = client.post(
        url(Zone, "changelist"),
        {"action": "delete_selected", "_selected_action": [mine.pk, theirs.pk], "post": "yes"},
    )

    assert response.status_code == 403
    assert Zone.objects.filter(pk__in=[mine.pk, theirs.pk]).count() == 2


# --- read-only audit trail ----------------------------------------------------------------


def test_audit_events_are_read_only_in_the_admin(admin_client):
    from django.utils import timezone

    event = AuditEvent.objects.create(at=timezone.now(), kind="door_opened", access_point_name="Main entrance")

    listing = admin_client.get(url(AuditEvent, "changelist"))
    detail = admin_client.get(url(AuditEvent, "change", event.pk))
    add = admin_client.get(url(AuditEvent, "add"))
    change = admin_client.post(url(AuditEvent, "change", event.pk), {"kind": "door_closed"})
    delete = admin_client.post(url(AuditEvent, "delete", event.pk), {"post": "yes"})

    assert listing.status_code == 200 and b"Main entrance" in listing.content
    assert detail.status_code == 200 and b'name="_save"' not in detail.content
    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    assert AuditEvent.objects.get().kind == "door_opened"


def test_system_audit_entries_are_read_only_in_the_admin(admin_client, admin_user):
    entry = SystemAuditEntry.objects.create(operator=admin_user, action="login")

    assert admin_client.get(url(SystemAuditEntry, "add")).status_code == 403
    assert admin_client.post(url(SystemAuditEntry, "delete", entry.pk), {"post": "yes"}).status_code == 403
    assert SystemAuditEntry.objects.filter(pk=entry.pk).exists()


# --- system auditor -------------------------------------------------------------------------


def test_a_change_in_the_admin_is_written_to_the_system_auditor(admin_client, admin_user):
    zone = make_zone(name="Lobby")

    response = admin_client.post(
        url(Zone, "change", zone.pk), {"name": "Main lobby", "partition": zone.partition_id, **ZONE_DEFAULTS}
    )

    assert response.status_code == 302
    entry = SystemAuditEntry.objects.get()
    assert (entry.operator_id, entry.operator_name, entry.via) == (admin_user.pk, admin_user.username, "admin")
    assert (entry.action, entry.object_type, entry.object_id) == ("change", "accesscontrol.zone", str(zone.pk))
    assert entry.object_repr == "Main lobby"
    assert "Name" in entry.detail["changes"][0]["changed"]["fields"]


def test_an_addition_and_a_deletion_in_the_admin_are_written_to_the_system_auditor(admin_client):
    admin_client.post(url(Zone, "add"), {"name": "Garage", "partition": make_partition().pk, **ZONE_DEFAULTS})
    zone = Zone.objects.get(name="Garage")
    admin_client.post(url(Zone, "delete", zone.pk), {"post": "yes"})

    assert not Zone.objects.filter(pk=zone.pk).exists()
    actions = sorted(SystemAuditEntry.objects.values_list("action", "object_id", "object_repr"))
    assert actions == [("add", str(zone.pk), "Garage"), ("delete", str(zone.pk), "Garage")]


# --- the cardholder's PIN ---------------------------------------------------------------------


def cardholder_form(admin_client, cardholder=None, **fields):
    page = admin_client.get(url(Cardholder, "change", cardholder.pk) if cardholder else url(Cardholder, "add"))
    data = {
        "kind": "staff",
        "first_name": "Grace",
        "last_name": "Hopper",
        "partition": cardholder.partition_id if cardholder else make_partition().pk,
        "audit_openings": "on",
        "key_revalidation_days": "0",
        "key_cancellable_through_blacklist": "on",
        **inline_management_data(page),
        **fields,
    }
    target = url(Cardholder, "change", cardholder.pk) if cardholder else url(Cardholder, "add")
    return admin_client.post(target, data)


def test_a_pin_set_in_the_admin_is_stored_hashed(admin_client):
    response = cardholder_form(admin_client, new_pin="482916")

    assert response.status_code == 302
    grace = Cardholder.objects.get(last_name="Hopper")
    assert grace.check_pin("482916")
    assert "482916" not in grace.pin_hash
    assert "482916" not in str(SystemAuditEntry.objects.get().detail)


@pytest.mark.parametrize("pin", ["123", "123456789", "12a4"])
def test_a_pin_that_is_not_4_to_8_digits_is_refused(admin_client, pin):
    response = cardholder_form(admin_client, new_pin=pin)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["new_pin"] == ["A PIN is 4 to 8 digits."]
    assert not Cardholder.objects.filter(last_name="Hopper").exists()


def test_an_empty_pin_field_keeps_the_pin_and_remove_clears_it(admin_client):
    grace = make_cardholder(first_name="Grace", last_name="Hopper", pin="1234")

    cardholder_form(admin_client, grace)
    grace.refresh_from_db()
    kept = grace.check_pin("1234")
    cardholder_form(admin_client, grace, clear_pin="on")
    grace.refresh_from_db()

    assert kept
    assert not grace.has_pin


def test_the_pin_is_never_shown_in_the_form(admin_client):
    grace = make_cardholder(first_name="Grace", last_name="Hopper", pin="1234")

    page = admin_client.get(url(Cardholder, "change", grace.pk))

    assert grace.pin_hash not in page.content.decode()
    assert b'name="new_pin"' in page.content


# --- API keys -----------------------------------------------------------------------------------


def test_an_api_key_made_in_the_admin_shows_its_token_once(admin_client, admin_user):
    response = admin_client.post(url(ApiKey, "add"), {"operator": admin_user.pk, "name": "PMS"}, follow=True)

    text = " ".join(str(message) for message in get_messages(response.wsgi_request)) or response.content.decode()
    token = re.search(r"spk_[0-9a-f]{12}_[A-Za-z0-9_-]+", text).group(0)
    key = ApiKey.objects.get()
    assert ApiKey.authenticate(token) == key
    assert token not in admin_client.get(url(ApiKey, "change", key.pk)).content.decode()
    assert list(SystemAuditEntry.objects.values_list("action", "object_id", "via")) == [
        ("issue_api_key", str(key.pk), "admin")
    ]


def test_revoking_api_keys_in_the_admin_is_recorded(admin_client, admin_user):
    key, _ = ApiKey.issue(admin_user, "PMS")

    admin_client.post(url(ApiKey, "changelist"), {"action": "revoke", "_selected_action": [key.pk]})

    key.refresh_from_db()
    assert key.revoked_at is not None
    assert SystemAuditEntry.objects.get().action == "revoke_api_key"


def test_an_operator_who_is_not_a_superuser_issues_api_keys_only_for_themselves(client, admin_user):
    operator = make_operator("accesscontrol.add_apikey", "accesscontrol.view_apikey", is_staff=True)
    client.force_login(operator)

    response = client.post(url(ApiKey, "add"), {"operator": admin_user.pk, "name": "Escalation"})

    assert response.status_code == 200
    assert "operator" in response.context["adminform"].form.errors
    assert not ApiKey.objects.exists()


def test_a_time_period_added_in_the_admin_is_saved_with_its_intervals_by_the_action(admin_client, admin_user):
    partition = make_partition()
    form = {
        "name": "Nights",
        "partition": partition.pk,
        "description": "",
        "intervals-TOTAL_FORMS": "1",
        "intervals-INITIAL_FORMS": "0",
        "intervals-0-start": "22:00",
        "intervals-0-end": "06:00",
        "intervals-0-saturday": "on",
    }

    response = admin_client.post(url(TimePeriod, "add"), form)

    assert response.status_code == 302
    period = TimePeriod.objects.get(name="Nights")
    assert [str(interval) for interval in period.intervals.all()] == ["22:00-06:00"]
    [entry] = SystemAuditEntry.objects.all()
    assert (entry.action, entry.via, entry.operator_id, entry.object_id) == (
        "create",
        "admin",
        admin_user.pk,
        str(period.pk),
    )
    assert entry.detail == {"fields": ["intervals", "name", "partition"]}
    assert RuleChange.objects.filter(model="timeperiod", object_id=period.pk).exists()


def test_levels_and_permissions_given_in_the_cardholder_admin_go_through_their_actions(admin_client):
    grace = make_cardholder(first_name="Grace", last_name="Hopper")
    level, zone = make_access_level(name="Lobby"), make_zone(name="Floor 3")
    page = admin_client.get(url(Cardholder, "change", grace.pk))
    prefix = next(
        name.removesuffix("-TOTAL_FORMS")
        for name in inline_management_data(page)
        if name.endswith("-TOTAL_FORMS") and "permission" in name
    )

    response = cardholder_form(
        admin_client,
        grace,
        access_levels=[level.pk],
        **{f"{prefix}-TOTAL_FORMS": "1", f"{prefix}-0-zone": zone.pk, f"{prefix}-0-cardholder": grace.pk},
    )

    assert response.status_code == 302
    assert list(grace.access_levels.all()) == [level]
    assert list(grace.permissions.values_list("zone", flat=True)) == [zone.pk]
    rows = SystemAuditEntry.objects.filter(via="admin").order_by("id")
    assert [(row.action, row.object_type) for row in rows] == [
        ("grant_access_level", "accesscontrol.cardholder"),
        ("create", "accesscontrol.cardholderpermission"),
        ("change", "accesscontrol.cardholder"),
    ]
