"""Each SHIP request against the database, as an integrator's operator: permissions, partitions, the auditor."""

import datetime as dt

import pytest
from django.utils import timezone

from accesscontrol import engine, snapshot
from accesscontrol.choices import KeyStatus
from accesscontrol.models import BlacklistEntry, Cardholder, CardholderPermission, Key, SystemAuditEntry
from devices import carddata
from devices.cards import site_card_key
from devices.models import Device, DeviceCommand, DeviceDoor
from integrations.ship import xml as ship
from tests.factories import (
    give_permission,
    make_access_level,
    make_access_point,
    make_cardholder,
    make_key,
    make_partition,
    make_time_period,
    make_zone,
)
from tests.integrations.ship.conftest import call, integrator

pytestmark = pytest.mark.django_db


def user(ext_id="U1", **fields) -> list:
    return [("SaltoDBUser", [("ExtUserID", ext_id), *fields.items()])]


def local(moment: dt.datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%dT%H:%M:%S")


def ship_audit():
    return list(SystemAuditEntry.objects.filter(via="ship").order_by("id").values_list("action", "object_repr"))


# --- GetInfo and unknown requests ------------------------------------------------------------------------


def test_get_info_names_the_protocol(operator):
    response = call(operator, "GetInfo", [])

    assert ship.text(response.params, "ProtocolID") == "SHIP"
    assert ship.text(response.params, "ProtocolVersion") == "1.0"


def test_an_unknown_request_is_answered_502(operator):
    response = call(operator, "TransferMoney", [])

    assert (response.name, response.error.code) == ("TransferMoney", ship.UNKNOWN_REQUEST)


# --- SaltoDBUserList.Read -----------------------------------------------------------------------------


def test_the_user_list_is_paged_by_ext_user_id(operator):
    for ext_id in ("C", "A", "B", "D"):
        make_cardholder(ext_id=ext_id)
    make_cardholder(ext_id=None)  # not reachable through SHIP

    first = call(operator, "SaltoDBUserList.Read", [("MaxCount", "2")])
    rest = call(operator, "SaltoDBUserList.Read", [("MaxCount", "2"), ("StartingFromExtUserID", "C")])

    assert [ship.text(u, "ExtUserID") for u in first.params.findall("SaltoDBUserList/SaltoDBUser")] == ["A", "B"]
    assert ship.text(first.params, "EOF") == "0"
    assert [ship.text(u, "ExtUserID") for u in rest.params.findall("SaltoDBUserList/SaltoDBUser")] == ["C", "D"]
    assert ship.text(rest.params, "EOF") == "1"


def test_a_user_is_read_with_their_fields_permissions_and_groups(operator):
    door = make_access_point(ext_id="D-1")
    zone = make_zone(name="Lobby")
    period = make_time_period()
    level = make_access_level(door, name="Staff")
    expiration = timezone.now() + dt.timedelta(days=30)
    holder = make_cardholder(
        level, ext_id="U1", first_name="Ana", last_name="Ruiz", office=True, expiration=expiration, pin="1234"
    )
    give_permission(holder, door, period)
    give_permission(holder, zone)
    make_key(holder, uid="04AABBCC")
    flags = [(f"Return{name}", "1") for name in ("AccessPermissions_User_Door", "AccessPermissions_User_Zone")]

    response = call(operator, "SaltoDBUserList.Read", [*flags, ("ReturnMembership_User_Group", "1")])

    found = response.params.find("SaltoDBUserList/SaltoDBUser")
    assert ship.text(found, "FirstName") == "Ana"
    assert ship.text(found, "LastName") == "Ruiz"
    assert ship.text(found, "Office") == "1"
    assert ship.text(found, "UserExpiration.Enabled") == "1"
    assert ship.text(found, "UserExpiration") == local(expiration)
    assert ship.text(found, "PINEnabled") == "1"
    assert ship.text(found, "PINCode") == ""
    assert ship.text(found, "CurrentROMCode") == "04AABBCC"
    doors = found.findall("SaltoDB.AccessPermissionList.User_Door/SaltoDB.AccessPermission.User_Door")
    assert [(ship.text(d, "ExtDoorID"), ship.text(d, "TimezoneTableID")) for d in doors] == [("D-1", str(period.pk))]
    zones = found.findall("SaltoDB.AccessPermissionList.User_Zone/SaltoDB.AccessPermission.User_Zone")
    assert [ship.text(z, "ExtZoneID") for z in zones] == ["Lobby"]
    groups = found.findall("SaltoDB.MembershipList.User_Group/SaltoDB.Membership.User_Group")
    assert [ship.text(g, "ExtGroupID") for g in groups] == ["Staff"]


def test_the_user_list_shows_only_the_operators_partitions(db):
    mine, theirs = make_partition(), make_partition()
    make_cardholder(ext_id="MINE", partition=mine)
    make_cardholder(ext_id="THEIRS", partition=theirs)

    response = call(integrator(partitions=[mine]), "SaltoDBUserList.Read", [])

    assert [ship.text(u, "ExtUserID") for u in response.params.findall("SaltoDBUserList/SaltoDBUser")] == ["MINE"]


@pytest.mark.parametrize("count", ["0", "1001", "ten", "-1"])
def test_a_bad_max_count_is_refused(operator, count):
    assert call(operator, "SaltoDBUserList.Read", [("MaxCount", count)]).error.code == ship.BAD_REQUEST


# --- SaltoDBUser.Insert -------------------------------------------------------------------------------


def test_insert_creates_the_cardholder_with_every_field(operator):
    door = make_access_point(ext_id="D-1")
    zone = make_zone(name="Gym")
    period = make_time_period()
    level = make_access_level(name="Guests")
    fields = {
        "Title": "Dr",
        "FirstName": "Zoë",
        "LastName": "Ødegård",
        "Office": "1",
        "AuditOpenings": "0",
        "UseADA": "1",
        "UseAntipassback": "1",
        "OverrideLockdown": "1",
        "OverridePrivacy": "1",
        "IsBanned": "0",
        "KeyIsCancellableThroughBlacklist": "0",
        "PhoneNumber": "+34600000000",
        "UserActivation": "2030-01-01T08:00:00",
        "UserExpiration.Enabled": "1",
        "UserExpiration": "2030-12-31T24:00:00",
        "KeyRevalidation.UpdatePeriod": "30",
        "PINEnabled": "1",
        "PINCode": "4321",
    }
    permissions = [
        (
            "SaltoDB.AccessPermissionList.User_Door",
            [("SaltoDB.AccessPermission.User_Door", [("ExtDoorID", "D-1"), ("TimezoneTableID", str(period.pk))])],
        ),
        ("SaltoDB.AccessPermissionList.User_Zone", [("SaltoDB.AccessPermission.User_Zone", [("ExtZoneID", "Gym")])]),
        ("SaltoDB.MembershipList.User_Group", [("SaltoDB.Membership.User_Group", [("ExtGroupID", "Guests")])]),
    ]

    response = call(
        operator, "SaltoDBUser.Insert", [("SaltoDBUser", [("ExtUserID", "U1"), *fields.items(), *permissions])]
    )

    assert response.error is None
    assert ship.text(response.params, "ExtUserID") == "U1"
    holder = Cardholder.objects.get(ext_id="U1")
    assert (holder.title, holder.first_name, holder.last_name) == ("Dr", "Zoë", "Ødegård")
    assert (holder.office, holder.audit_openings, holder.extended_open_time, holder.use_anti_passback) == (
        True,
        False,
        True,
        True,
    )
    assert (holder.override_lockdown, holder.override_privacy, holder.banned) == (True, True, False)
    assert holder.key_cancellable_through_blacklist is False
    assert holder.phone_number == "+34600000000"
    assert local(holder.activation) == "2030-01-01T08:00:00"
    assert local(holder.expiration) == "2031-01-01T00:00:00"
    assert holder.key_revalidation_days == 30
    assert holder.check_pin("4321")
    assert list(holder.access_levels.all()) == [level]
    grants = {(g.access_point_id, g.zone_id, g.time_period_id) for g in holder.permissions.all()}
    assert grants == {(door.pk, None, period.pk), (None, zone.pk, None)}
    assert ship_audit() == [("create", str(holder)), ("set_pin", str(holder))] + [("set_permissions", str(holder))] * 2


def test_an_inserted_users_permission_reaches_the_decision_engine(operator):
    door = make_access_point(ext_id="D-1", connection="online")
    # A store of its own: the process's store may hold rules of another test's rolled-back transaction.
    store = snapshot.SnapshotStore()
    store.refresh()
    doors = [("SaltoDB.AccessPermission.User_Door", [("ExtDoorID", "D-1")])]

    call(
        operator,
        "SaltoDBUser.Insert",
        [
            (
                "SaltoDBUser",
                [("ExtUserID", "U1"), ("LastName", "Ruiz"), ("SaltoDB.AccessPermissionList.User_Door", doors)],
            )
        ],
    )
    holder = Cardholder.objects.get(ext_id="U1")
    make_key(holder, uid="0A0B0C0D")

    decision = engine.decide(store.refresh(), "0A0B0C0D", door.pk, timezone.now())
    assert decision.granted, decision.reason


def test_insert_of_an_existing_ext_user_id_is_refused(operator):
    make_cardholder(ext_id="U1", last_name="First")

    response = call(operator, "SaltoDBUser.Insert", user("U1", LastName="Second"))

    assert response.error.code == ship.ALREADY_EXISTS
    assert list(Cardholder.objects.values_list("last_name", flat=True)) == ["First"]


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({}, "LastName"),
        ({"LastName": "X", "Office": "yes"}, "Office"),
        ({"LastName": "X", "UserActivation": "tomorrow"}, "UserActivation"),
        (
            {"LastName": "X", "UserActivation": "2030-02-01T00:00:00", "UserExpiration": "2030-01-01T00:00:00"},
            "UserExpiration",
        ),
        ({"LastName": "X", "PINEnabled": "1", "PINCode": "12"}, "PINCode"),
        ({"LastName": "X", "PINEnabled": "1"}, "PINCode"),
        ({"LastName": "X", "KeyRevalidation.UpdatePeriod": "3", "KeyRevalidation.UnitOfUpdatePeriod": "1"}, "days"),
    ],
)
def test_insert_with_a_bad_field_is_refused_naming_it(operator, fields, words):
    response = call(operator, "SaltoDBUser.Insert", user("U1", **fields))

    assert response.error.code == ship.BAD_REQUEST
    assert words in response.error.message
    assert not Cardholder.objects.exists()
    assert ship_audit() == []


def test_insert_naming_an_unknown_door_changes_nothing(operator):
    doors = [("SaltoDB.AccessPermission.User_Door", [("ExtDoorID", "nope")])]

    response = call(
        operator,
        "SaltoDBUser.Insert",
        [("SaltoDBUser", [("ExtUserID", "U1"), ("LastName", "X"), ("SaltoDB.AccessPermissionList.User_Door", doors)])],
    )

    assert response.error.code == ship.NOT_FOUND
    assert "nope" in response.error.message
    assert not Cardholder.objects.exists()
    assert ship_audit() == []


def test_insert_without_the_add_permission_is_refused(db):
    viewer = integrator(permissions=("accesscontrol.view_cardholder",))

    response = call(viewer, "SaltoDBUser.Insert", user("U1", LastName="X"))

    assert response.error.code == ship.PERMISSION_DENIED
    assert not Cardholder.objects.exists()


def test_insert_into_a_partition_the_operator_may_not_use_is_refused(db):
    mine, theirs = make_partition(), make_partition()
    operator = integrator(partitions=[mine])

    refused = call(operator, "SaltoDBUser.Insert", user("U1", LastName="X", ExtPartitionID=theirs.name))
    allowed = call(operator, "SaltoDBUser.Insert", user("U2", LastName="Y", ExtPartitionID=mine.name))

    assert refused.error.code == ship.PERMISSION_DENIED
    assert allowed.error is None
    assert list(Cardholder.objects.values_list("ext_id", "partition")) == [("U2", mine.pk)]


# --- SaltoDBUser.Update -------------------------------------------------------------------------------


def test_update_changes_only_the_fields_given_and_records_the_changes(operator):
    keep = make_access_level(name="Keep")
    holder = make_cardholder(keep, ext_id="U1", first_name="Ana", last_name="Ruiz", pin="1234")

    response = call(operator, "SaltoDBUser.Update", user("U1", FirstName="Anna", **{"UserExpiration.Enabled": "0"}))

    assert response.error is None
    holder.refresh_from_db()
    assert (holder.first_name, holder.last_name, holder.expiration) == ("Anna", "Ruiz", None)
    assert holder.check_pin("1234")
    assert list(holder.access_levels.all()) == [keep]
    entry = SystemAuditEntry.objects.get(via="ship", action="update")
    assert entry.detail["changes"] == {"first_name": {"from": "Ana", "to": "Anna"}}
    assert entry.address == "192.0.2.7"


def test_update_replaces_the_door_permissions_and_keeps_the_zone_ones(operator):
    old, new = make_access_point(ext_id="OLD"), make_access_point(ext_id="NEW")
    zone = make_zone()
    holder = make_cardholder(ext_id="U1")
    give_permission(holder, old)
    give_permission(holder, zone)
    doors = [("SaltoDB.AccessPermission.User_Door", [("ExtDoorID", "NEW")])]

    call(
        operator,
        "SaltoDBUser.Update",
        [("SaltoDBUser", [("ExtUserID", "U1"), ("SaltoDB.AccessPermissionList.User_Door", doors)])],
    )

    assert {(g.access_point_id, g.zone_id) for g in holder.permissions.all()} == {(new.pk, None), (None, zone.pk)}


def test_pin_enabled_zero_removes_the_pin(operator):
    holder = make_cardholder(ext_id="U1", pin="1234")

    call(operator, "SaltoDBUser.Update", user("U1", PINEnabled="0"))

    holder.refresh_from_db()
    assert not holder.has_pin
    assert ("clear_pin", str(holder)) in ship_audit()


def test_update_of_an_unknown_user_is_not_found(operator):
    assert call(operator, "SaltoDBUser.Update", user("nobody", FirstName="X")).error.code == ship.NOT_FOUND


def test_update_of_a_user_the_operator_only_sees_is_refused_and_changes_nothing(db):
    viewer = integrator(permissions=("accesscontrol.view_cardholder",))
    holder = make_cardholder(ext_id="U1", first_name="Ana")

    response = call(viewer, "SaltoDBUser.Update", user("U1", FirstName="Eve"))

    assert response.error.code == ship.PERMISSION_DENIED
    holder.refresh_from_db()
    assert holder.first_name == "Ana"


def test_update_of_a_user_in_another_partition_is_not_found(db):
    mine, theirs = make_partition(), make_partition()
    make_cardholder(ext_id="U1", partition=theirs)

    response = call(integrator(partitions=[mine]), "SaltoDBUser.Update", user("U1", FirstName="Eve"))

    assert response.error.code == ship.NOT_FOUND


def test_update_cannot_move_a_user_into_another_partition(db):
    mine, theirs = make_partition(), make_partition()
    holder = make_cardholder(ext_id="U1", partition=mine)

    response = call(integrator(partitions=[mine]), "SaltoDBUser.Update", user("U1", ExtPartitionID=theirs.name))

    assert response.error.code == ship.PERMISSION_DENIED
    holder.refresh_from_db()
    assert holder.partition_id == mine.pk


def test_update_naming_a_group_of_another_partition_is_refused(db):
    mine, theirs = make_partition(), make_partition()
    make_access_level(name="Hidden", partition=theirs)
    make_cardholder(ext_id="U1", partition=mine)
    groups = [("SaltoDB.Membership.User_Group", [("ExtGroupID", "Hidden")])]

    response = call(
        integrator(partitions=[mine]),
        "SaltoDBUser.Update",
        [("SaltoDBUser", [("ExtUserID", "U1"), ("SaltoDB.MembershipList.User_Group", groups)])],
    )

    assert response.error.code == ship.BAD_REQUEST
    assert "SaltoDB.MembershipList.User_Group" in response.error.message


# --- SaltoDBUser.Delete -------------------------------------------------------------------------------


def test_delete_cancels_the_users_keys_then_deletes_them(operator):
    holder = make_cardholder(ext_id="U1", expiration=timezone.now() + dt.timedelta(days=10))
    make_key(holder, uid="0A0B0C0D")

    response = call(operator, "SaltoDBUser.Delete", [("ExtUserID", "U1")])

    assert response.error is None
    assert not Cardholder.objects.filter(ext_id="U1").exists()
    assert list(BlacklistEntry.objects.values_list("uid", flat=True)) == ["0A0B0C0D"]
    assert [action for action, _ in ship_audit()] == ["cancel_key", "delete"]


def test_delete_without_the_permission_is_refused_and_deletes_nothing(db):
    make_cardholder(ext_id="U1")
    changer = integrator(permissions=("accesscontrol.view_cardholder", "accesscontrol.change_cardholder"))

    assert call(changer, "SaltoDBUser.Delete", [("ExtUserID", "U1")]).error.code == ship.PERMISSION_DENIED
    assert Cardholder.objects.filter(ext_id="U1").exists()


# --- OnlineDoor.Open ----------------------------------------------------------------------------------


def online_door(ext_id: str, name: str, device_id: int, **fields):
    point = make_access_point(ext_id=ext_id, name=name, connection="online", **fields)
    device = Device(device_id=device_id, name=f"Unit {device_id}", kind="control_unit")
    device.set_key(bytes(range(16)))
    device.save()
    DeviceDoor.objects.create(device=device, number=1, access_point=point)
    return point


def test_open_queues_a_command_for_each_door_named(operator):
    front = online_door("D-1", "Front", 501)
    back = online_door("D-2", "Back", 502)

    response = call(
        operator, "OnlineDoor.Open", [("ExtDoorIDList", [("ExtDoorID", "D-1")]), ("DoorNameList", [("DoorID", "Back")])]
    )

    assert response.error is None
    opened = response.params.findall("OnlineDoorList/OnlineDoor")
    assert [(ship.text(d, "ExtDoorID"), ship.text(d, "CommandsQueued")) for d in opened] == [("D-1", "1"), ("D-2", "1")]
    assert sorted(DeviceCommand.objects.values_list("op", "access_point")) == [("open", front.pk), ("open", back.pk)]
    assert [action for action, _ in ship_audit()] == ["open", "open"]


def test_open_of_a_door_in_another_partition_is_not_found_and_opens_nothing(db):
    mine, theirs = make_partition(), make_partition()
    online_door("D-1", "Front", 501, partition=mine)
    online_door("D-2", "Back", 502, partition=theirs)

    response = call(
        integrator(partitions=[mine]),
        "OnlineDoor.Open",
        [("ExtDoorIDList", [("ExtDoorID", "D-1"), ("ExtDoorID", "D-2")])],
    )

    assert response.error.code == ship.NOT_FOUND
    assert not DeviceCommand.objects.exists()


def test_open_without_the_command_permission_is_refused(db):
    online_door("D-1", "Front", 501)
    operator = integrator(permissions=("accesscontrol.view_accesspoint", "accesscontrol.change_accesspoint"))

    assert call(operator, "OnlineDoor.Open", [("ExtDoorIDList", [("ExtDoorID", "D-1")])]).error.code == 403
    assert not DeviceCommand.objects.exists()


def test_open_without_doors_is_a_bad_request(operator):
    assert call(operator, "OnlineDoor.Open", []).error.code == ship.BAD_REQUEST


# --- EditNewKeyBinary ---------------------------------------------------------------------------------


def test_key_binary_is_the_card_file_of_the_users_key_in_hex(operator):
    holder = make_cardholder(ext_id="U1")
    key = make_key(holder, uid="04A1B2C3")

    response = call(operator, "EditNewKeyBinary", [("ExtUserID", "U1")])

    assert ship.text(response.params, "KeyID") == str(key.pk)
    assert ship.text(response.params, "ROMCode") == "04A1B2C3"
    site, card_key = site_card_key()
    card = carddata.decode(bytes.fromhex(ship.text(response.params, "BinaryData")), card_key, site)
    assert (card.key_id, card.uid, card.cardholder_id) == (key.pk, "04A1B2C3", holder.pk)
    assert ship_audit() == [("card_data", str(key))]


def test_key_binary_with_a_new_rom_code_issues_a_key_for_that_card(operator):
    holder = make_cardholder(ext_id="U1")

    response = call(operator, "EditNewKeyBinary", [("ExtUserID", "U1"), ("ROMCode", "04:de:ad:be")])

    key = Key.objects.get(cardholder=holder)
    assert (key.uid, key.status) == ("04DEADBE", KeyStatus.ISSUED)
    assert ship.text(response.params, "ROMCode") == "04DEADBE"
    assert [action for action, _ in ship_audit()] == ["issue_key", "card_data"]


def test_key_binary_for_a_card_another_user_holds_is_refused(operator):
    make_key(make_cardholder(ext_id="OTHER"), uid="04DEADBE")
    make_cardholder(ext_id="U1")

    response = call(operator, "EditNewKeyBinary", [("ExtUserID", "U1"), ("ROMCode", "04DEADBE")])

    assert response.error.code == ship.ALREADY_EXISTS
    assert Key.objects.count() == 1


def test_key_binary_for_a_user_without_a_key_names_what_is_missing(operator):
    make_cardholder(ext_id="U1")

    response = call(operator, "EditNewKeyBinary", [("ExtUserID", "U1")])

    assert response.error.code == ship.NOT_FOUND
    assert "ROMCode" in response.error.message


def test_key_binary_needs_the_right_to_issue_keys_for_a_new_card(db):
    make_cardholder(ext_id="U1")
    viewer = integrator(permissions=("accesscontrol.view_cardholder", "accesscontrol.view_key"))

    response = call(viewer, "EditNewKeyBinary", [("ExtUserID", "U1"), ("ROMCode", "04DEADBE")])

    assert response.error.code == ship.PERMISSION_DENIED
    assert not Key.objects.exists()
    assert not CardholderPermission.objects.exists()


def test_a_page_of_users_costs_the_same_queries_however_many_users(operator, django_assert_max_num_queries):
    door, zone, level = make_access_point(ext_id="D-1"), make_zone(), make_access_level(name="Staff")
    for number in range(30):
        holder = make_cardholder(level, ext_id=f"U{number:02}")
        give_permission(holder, door)
        give_permission(holder, zone)
        make_key(holder)
    flags = ["AccessPermissions_User_Door", "AccessPermissions_User_Zone", "Membership_User_Group"]

    with django_assert_max_num_queries(12):
        response = call(operator, "SaltoDBUserList.Read", [(f"Return{flag}", "1") for flag in flags])

    assert len(response.params.findall("SaltoDBUserList/SaltoDBUser")) == 30
