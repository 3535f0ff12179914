import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from accesscontrol.models import Operator, OperatorGroup, SystemAuditEntry
from tests.factories import make_operator, make_partition

pytestmark = pytest.mark.django_db

MANAGE_OPERATORS = ("accesscontrol.view_operator", "accesscontrol.add_operator", "accesscontrol.change_operator")
MANAGE_GROUPS = (
    "accesscontrol.view_operatorgroup",
    "accesscontrol.add_operatorgroup",
    "accesscontrol.change_operatorgroup",
)
PASSWORD = "Tr0ub4dor&3-horse!"


def permission(name: str) -> Permission:
    app_label, codename = name.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def make_group(*permissions, partitions=(), all_partitions=False, name="Guards") -> OperatorGroup:
    group = OperatorGroup.objects.create(name=name, all_partitions=all_partitions)
    group.permissions.set([permission(p) for p in permissions])
    group.partitions.set(partitions)
    return group


def operator_form(**fields) -> dict:
    data = {"username": "newbie", "first_name": "New", "last_name": "Operator", "email": "new@example.org"}
    data.update(is_active="on", password1=PASSWORD, password2=PASSWORD)
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture
def admin(client):
    operator = make_operator(
        *MANAGE_OPERATORS,
        *MANAGE_GROUPS,
        "accesscontrol.view_cardholder",
        "accesscontrol.change_cardholder",
        all_partitions=True,
        username="boss",
    )
    client.force_login(operator)
    return operator


# --- operators ---------------------------------------------------------------------------------------


def test_an_operator_without_the_permissions_gets_403_and_nothing_is_created(client):
    client.force_login(make_operator("accesscontrol.view_cardholder", all_partitions=True))

    responses = [
        client.get(reverse("operators")),
        client.get(reverse("operator_groups")),
        client.post(reverse("operator_create"), operator_form()),
        client.post(reverse("operator_group_create"), {"name": "Sneaky"}),
    ]

    assert [response.status_code for response in responses] == [403, 403, 403, 403]
    assert not Operator.objects.filter(username="newbie").exists()
    assert not OperatorGroup.objects.filter(name="Sneaky").exists()
    assert not SystemAuditEntry.objects.exists()


def test_an_operator_is_created_with_a_hashed_password_and_groups_and_recorded_without_it(client, admin):
    group = make_group("accesscontrol.view_cardholder", all_partitions=True)

    response = client.post(reverse("operator_create"), operator_form(operator_groups=[group.pk]))

    created = Operator.objects.get(username="newbie")
    assert response.status_code == 302
    assert response.url == reverse("operator", args=[created.pk])
    assert created.check_password(PASSWORD)
    assert created.password.startswith("argon2")
    assert list(created.operator_groups.all()) == [group]
    entry = SystemAuditEntry.objects.get(action="create")
    assert (entry.operator, entry.object_id, entry.via) == (admin, str(created.pk), "web")
    assert entry.detail["changes"]["groups"] == {"from": None, "to": ["Guards"]}
    assert entry.detail["password_set"] is True
    assert PASSWORD not in str(entry.detail)
    assert created.password not in str(entry.detail)


def test_a_weak_or_mismatched_password_gives_field_errors_and_creates_nothing(client, admin):
    weak = client.post(reverse("operator_create"), operator_form(password1="password", password2="password"))
    differ = client.post(reverse("operator_create"), operator_form(password2=PASSWORD + "x"))

    assert weak.status_code == differ.status_code == 200
    assert "password1" in weak.context["form"].errors
    assert differ.context["form"].errors["password2"] == ["The two passwords differ."]
    assert not Operator.objects.filter(username="newbie").exists()


def test_an_edit_is_recorded_with_before_and_after(client, admin):
    target = make_operator(username="clerk", email="old@example.org")

    client.post(
        reverse("operator_edit", args=[target.pk]),
        operator_form(
            username="clerk", email="new@example.org", first_name="", last_name="", password1="", password2=""
        ),
    )

    target.refresh_from_db()
    assert target.email == "new@example.org"
    entry = SystemAuditEntry.objects.get(action="update")
    assert entry.detail == {"changes": {"email": {"from": "old@example.org", "to": "new@example.org"}}}


def test_only_a_superuser_makes_superusers_or_staff(client, admin):
    client.post(reverse("operator_create"), operator_form(is_superuser="on", is_staff="on"))

    created = Operator.objects.get(username="newbie")
    assert (created.is_superuser, created.is_staff) == (False, False)


def test_a_superuser_may_make_a_superuser(client):
    client.force_login(make_operator(is_superuser=True))

    client.post(reverse("operator_create"), operator_form(is_superuser="on"))

    assert Operator.objects.get(username="newbie").is_superuser is True


def test_an_operator_cannot_raise_their_own_rights_nor_deactivate_themselves(client, admin):
    # A group within the admin's rights, so only the rule about themselves keeps them out of it.
    powerful = make_group("accesscontrol.view_cardholder", all_partitions=True, name="Powerful")
    own_groups = list(admin.operator_groups.all())

    client.post(
        reverse("operator_edit", args=[admin.pk]),
        operator_form(username="boss", operator_groups=[powerful.pk], is_active=None, password1="", password2=""),
    )

    admin.refresh_from_db()
    assert admin.is_active is True
    assert list(admin.operator_groups.all()) == own_groups


def test_a_partition_limited_operator_cannot_put_someone_in_a_group_beyond_their_rights(client, partition):
    limited = make_operator(*MANAGE_OPERATORS, "accesscontrol.view_cardholder", partitions=[partition])
    client.force_login(limited)
    everywhere = make_group("accesscontrol.view_cardholder", all_partitions=True, name="Everywhere")
    here = make_group("accesscontrol.view_cardholder", partitions=[partition], name="Here")

    form = client.get(reverse("operator_create")).context["form"]
    response = client.post(reverse("operator_create"), operator_form(operator_groups=[everywhere.pk]))

    offered = set(form.fields["operator_groups"].queryset)
    assert here in offered
    assert everywhere not in offered
    assert response.status_code == 200
    assert "operator_groups" in response.context["form"].errors
    assert not Operator.objects.filter(username="newbie").exists()


def test_a_partition_limited_operator_cannot_edit_an_operator_with_more_rights(client, partition):
    client.force_login(make_operator(*MANAGE_OPERATORS, partitions=[partition]))
    stronger = make_operator("accesscontrol.view_cardholder", all_partitions=True, username="stronger")
    chief = make_operator(is_superuser=True, username="chief")
    hash_before = stronger.password

    for target in (stronger, chief):
        response = client.post(
            reverse("operator_edit", args=[target.pk]), operator_form(username=target.username, password1=PASSWORD)
        )
        assert response.status_code == 403

    stronger.refresh_from_db()
    assert stronger.password == hash_before
    assert not SystemAuditEntry.objects.exists()


def test_the_operator_list_and_detail_show_operators_and_their_groups(client, admin):
    group = make_group(all_partitions=True, name="Night shift")
    night = make_operator(username="nightowl")
    group.members.add(night)

    listing = client.get(reverse("operators"), {"username": "night"})
    detail = client.get(reverse("operator", args=[night.pk]))

    assert [operator.username for operator in listing.context["page_obj"]] == ["nightowl"]
    assert b"Night shift" in listing.content
    assert detail.status_code == 200
    assert b"nightowl" in detail.content


# --- groups ---------------------------------------------------------------------------------------------


def test_a_group_is_created_with_permissions_partitions_and_two_factor_and_recorded(client, admin, partition):
    view = permission("accesscontrol.view_cardholder")
    change = permission("accesscontrol.change_cardholder")

    page = client.get(reverse("operator_group_create"))
    response = client.post(
        reverse("operator_group_create"),
        {
            "name": "Front desk",
            "description": "Reception",
            "permissions": [view.pk, change.pk],
            "partitions": [partition.pk],
            "require_two_factor": "on",
        },
    )

    group = OperatorGroup.objects.get(name="Front desk")
    assert response.status_code == 302
    assert set(group.permissions.all()) == {view, change}
    assert list(group.partitions.all()) == [partition]
    assert group.require_two_factor is True
    assert b"Cardholders" in page.content
    entry = SystemAuditEntry.objects.get(action="create", object_type="accesscontrol.operatorgroup")
    assert entry.detail["changes"]["permissions"] == {
        "from": None,
        "to": ["accesscontrol.change_cardholder", "accesscontrol.view_cardholder"],
    }
    assert entry.detail["changes"]["require_two_factor"] == {"from": None, "to": True}


def test_a_group_edit_is_recorded_with_before_and_after(client, admin, partition):
    group = make_group("accesscontrol.view_cardholder", partitions=[partition])

    client.post(
        reverse("operator_group_edit", args=[group.pk]),
        {"name": "Guards", "permissions": [permission("accesscontrol.view_cardholder").pk], "all_partitions": "on"},
    )

    entry = SystemAuditEntry.objects.get(action="update")
    assert entry.detail == {
        "changes": {
            "all_partitions": {"from": False, "to": True},
            "partitions": {"from": [partition.name], "to": []},
        }
    }


def test_a_partition_limited_operator_cannot_give_permissions_or_partitions_they_do_not_hold(client, partition):
    client.force_login(make_operator(*MANAGE_GROUPS, "accesscontrol.view_cardholder", partitions=[partition]))
    other = make_partition()
    view = permission("accesscontrol.view_cardholder")
    delete = permission("accesscontrol.delete_cardholder")

    attempts = [
        {"name": "Wider", "permissions": [view.pk], "partitions": [other.pk]},
        {"name": "Everywhere", "permissions": [view.pk], "all_partitions": "on"},
        {"name": "Stronger", "permissions": [delete.pk], "partitions": [partition.pk]},
    ]
    responses = [client.post(reverse("operator_group_create"), data) for data in attempts]
    allowed = client.post(
        reverse("operator_group_create"), {"name": "Same", "permissions": [view.pk], "partitions": [partition.pk]}
    )

    assert [response.status_code for response in responses] == [200, 200, 200]
    assert all("permissions" in response.context["form"].errors for response in responses)
    assert allowed.status_code == 302
    assert list(
        OperatorGroup.objects.filter(name__in=["Wider", "Everywhere", "Stronger", "Same"]).values_list(
            "name", flat=True
        )
    ) == ["Same"]


def test_a_group_without_a_name_gets_a_field_error(client, admin):
    response = client.post(reverse("operator_group_create"), {"name": ""})

    assert response.status_code == 200
    assert "name" in response.context["form"].errors


def test_the_group_list_and_detail_show_permissions_readably(client, admin):
    group = make_group("accesscontrol.view_cardholder", "accesscontrol.change_cardholder", all_partitions=True)

    listing = client.get(reverse("operator_groups"))
    detail = client.get(reverse("operator_group", args=[group.pk]))

    assert b"Guards" in listing.content
    assert detail.context["permission_rows"] == [{"label": "Cardholders", "actions": ["view", "change"], "other": []}]
