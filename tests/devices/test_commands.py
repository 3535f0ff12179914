"""devices.commands: remote opening, opening modes and emergencies for a door, a zone or the site."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accesscontrol.choices import Decision
from accesscontrol.engine import decide
from accesscontrol.models import AccessPoint, AuditEvent, RuleChange, SiteSettings, SystemAuditEntry, Zone
from accesscontrol.snapshot import SnapshotStore
from devices import actions as device_actions
from devices import commands
from devices.models import Device, DeviceCommand, DeviceDoor
from tests.factories import (
    make_access_level,
    make_access_point,
    make_cardholder,
    make_key,
    make_operator,
    make_partition,
    make_time_period,
    make_zone,
)

pytestmark = pytest.mark.django_db

UID = "04A1B2C3"
KEY = bytes(range(16))


def make_device(device_id, *doors, key=KEY, **fields) -> Device:
    """A device whose door 1, 2, ... drive ``doors``."""
    device = Device(device_id=device_id, name=fields.pop("name", f"Device {device_id}"), kind="control_unit", **fields)
    if key is not None:
        device.set_key(key)
    device.save()
    for number, point in enumerate(doors, start=1):
        DeviceDoor.objects.create(device=device, number=number, access_point=point)
    return device


@pytest.fixture
def operator():
    return make_operator(is_superuser=True)


@pytest.fixture
def lobby():
    """A zone of two doors on one control unit (doors 1 and 2) and a third door with no device."""
    zone = make_zone(name="Lobby")
    front = make_access_point(name="Front door", zones=[zone])
    side = make_access_point(name="Side door", zones=[zone])
    gate = make_access_point(name="Garden gate", zones=[zone])
    unit = make_device(1001, front, side)
    return {"zone": zone, "front": front, "side": side, "gate": gate, "unit": unit}


def decision_for(store: SnapshotStore, point) -> str:
    return decide(store.refresh(), UID, point.pk, timezone.now()).reason


# --- remote opening ---------------------------------------------------------------------------


def test_a_remote_open_queues_one_command_for_the_door_and_records_who_asked(lobby, operator):
    issued = commands.remote_open(lobby["side"], operator=operator, via="api")

    command = DeviceCommand.objects.get()
    assert issued.commands == [command] and issued.queued == 1
    assert (command.device, command.op, command.args) == (lobby["unit"], "open", {"door": 2})
    assert (command.access_point, command.status, command.operator) == (lobby["side"], "queued", operator)
    event = AuditEvent.objects.get()
    assert (event.kind, event.access_point_id, event.access_point_name) == (
        "remote_open",
        lobby["side"].pk,
        "Side door",
    )
    assert (event.operator_id, event.device_id) == (operator.pk, lobby["unit"].pk)
    assert event.detail == {"access_point": lobby["side"].pk, "via": "api", "command": command.pk}
    entry = SystemAuditEntry.objects.get()
    assert (entry.action, entry.object_type, entry.object_id, entry.via) == (
        "open",
        "accesscontrol.accesspoint",
        str(lobby["side"].pk),
        "api",
    )
    assert entry.detail["commands"] == [command.pk]


def test_a_zone_command_reaches_every_door_of_the_zone_and_says_which_have_no_device(lobby, operator):
    issued = commands.remote_open(lobby["zone"], operator=operator, via="api")

    assert issued.access_points == sorted([lobby["front"].pk, lobby["side"].pk, lobby["gate"].pk])
    assert sorted(command.args["door"] for command in issued.commands) == [1, 2]
    assert issued.without_device == [lobby["gate"].pk]
    assert AuditEvent.objects.filter(kind="remote_open").count() == 3
    assert AuditEvent.objects.get(access_point=lobby["gate"]).detail["command"] is None


def test_a_disabled_device_or_one_without_a_key_gets_no_command(operator):
    first, second = make_access_point(), make_access_point()
    make_device(7, first, enabled=False)
    make_device(8, second, key=None)
    zone = make_zone()
    zone.access_points.set([first, second])

    issued = commands.remote_open(zone, operator=operator, via="api")

    assert issued.queued == 0
    assert sorted(issued.without_device) == sorted([first.pk, second.pk])
    assert not DeviceCommand.objects.exists()


def test_a_command_from_a_management_command_has_no_operator(lobby):
    commands.remote_open(lobby["front"], operator=None, via="command")

    assert DeviceCommand.objects.get().operator is None
    assert SystemAuditEntry.objects.get().operator_name == ""


def test_only_door_operations_are_issued(lobby, operator):
    with pytest.raises(ValueError, match="not a command"):
        commands.issue("set_time", lobby["front"], operator=operator, via="api")
    with pytest.raises(ValueError, match="mode"):
        commands.issue("open", lobby["front"], mode="office", operator=operator, via="api")
    with pytest.raises(TypeError):
        commands.issue("open", make_cardholder(), operator=operator, via="api")

    assert not DeviceCommand.objects.exists()


# --- opening modes ----------------------------------------------------------------------------


def test_setting_a_mode_stores_it_on_the_access_points_and_sends_it_to_their_doors(lobby, operator):
    before = RuleChange.objects.count()

    issued = commands.set_opening_mode(lobby["zone"], "office", operator=operator, via="api")

    assert set(AccessPoint.objects.values_list("opening_mode", flat=True)) == {"office"}
    assert sorted((c.op, c.args["door"], c.args["mode"]) for c in issued.commands) == [
        ("set_mode", 1, "office"),
        ("set_mode", 2, "office"),
    ]
    assert RuleChange.objects.count() == before + 3
    assert {event.kind for event in AuditEvent.objects.all()} == {"mode_changed"}
    assert SystemAuditEntry.objects.get().detail["mode"] == "office"


def test_timed_mode_for_doors_without_a_time_period_is_refused_and_changes_nothing(lobby, operator):
    lobby["front"].timed_period = make_time_period()
    lobby["front"].save()

    with pytest.raises(ValidationError) as refused:
        commands.set_opening_mode(lobby["zone"], "timed", operator=operator, via="api")

    assert "Side door" in refused.value.message_dict["mode"][0]
    assert set(AccessPoint.objects.values_list("opening_mode", flat=True)) == {"standard"}
    assert not DeviceCommand.objects.exists()
    assert not AuditEvent.objects.exists()
    assert not SystemAuditEntry.objects.exists()


def test_an_unknown_mode_is_refused(lobby, operator):
    with pytest.raises(ValidationError):
        commands.set_opening_mode(lobby["front"], "party", operator=operator, via="api")

    assert AccessPoint.objects.get(pk=lobby["front"].pk).opening_mode == "standard"


# --- emergencies ------------------------------------------------------------------------------


@pytest.fixture
def ada(lobby):
    """Ada's key opens the lobby's doors."""
    holder = make_cardholder(make_access_level(lobby["zone"]), first_name="Ada")
    make_key(holder, uid=UID)
    return holder


def test_an_emergency_close_of_a_door_makes_the_engine_refuse_it_at_once(lobby, ada, operator):
    store = SnapshotStore()
    granted = decision_for(store, lobby["front"])

    issued = commands.emergency_close(lobby["front"], operator=operator, via="api")

    assert granted == Decision.GRANTED
    assert decision_for(store, lobby["front"]) == Decision.LOCKDOWN
    assert decision_for(store, lobby["side"]) == Decision.GRANTED
    assert AccessPoint.objects.get(pk=lobby["front"].pk).lockdown
    assert [(c.op, c.args) for c in issued.commands] == [("emergency_close", {"door": 1})]
    assert AuditEvent.objects.get().kind == "emergency_close"


def test_an_emergency_close_of_a_zone_locks_its_doors_down_and_its_end_opens_them_again(lobby, ada, operator):
    store = SnapshotStore()
    store.refresh()

    closed = commands.emergency_close(lobby["zone"], operator=operator, via="api")
    during = [decision_for(store, lobby[door]) for door in ("front", "side", "gate")]
    ended = commands.end_emergency(lobby["zone"], operator=operator, via="api")

    assert during == [Decision.LOCKDOWN] * 3
    assert decision_for(store, lobby["front"]) == Decision.GRANTED
    assert not Zone.objects.get().lockdown
    assert not AccessPoint.objects.filter(lockdown=True).exists()
    assert (closed.queued, ended.queued) == (2, 2)
    assert {c.op for c in ended.commands} == {"end_emergency"}
    assert ended.still_in_lockdown == []
    assert sorted(AuditEvent.objects.values_list("kind", flat=True)) == ["emergency_close"] * 3 + ["emergency_end"] * 3


def test_a_site_lockdown_refuses_every_door_until_it_ends(lobby, ada, operator):
    store = SnapshotStore()
    store.refresh()
    site = SiteSettings.load()

    closed = commands.emergency_close(site, operator=operator, via="api")
    during = decision_for(store, lobby["side"])
    commands.end_emergency(site, operator=operator, via="api")

    assert during == Decision.LOCKDOWN
    assert decision_for(store, lobby["side"]) == Decision.GRANTED
    assert not SiteSettings.load().lockdown
    assert closed.queued == 2 and len(closed.access_points) == 3
    entry = SystemAuditEntry.objects.filter(action="emergency_close").get()
    assert (entry.object_type, entry.detail["site"], entry.detail["access_points"]) == (
        "accesscontrol.sitesettings",
        True,
        3,
    )


def test_ending_a_doors_emergency_leaves_it_closed_while_its_zone_is_locked_down(lobby, ada, operator):
    commands.emergency_close(lobby["front"], operator=operator, via="api")
    commands.emergency_close(lobby["zone"], operator=operator, via="api")
    store = SnapshotStore()

    ended = commands.end_emergency(lobby["front"], operator=operator, via="api")

    assert not AccessPoint.objects.get(pk=lobby["front"].pk).lockdown
    assert ended.still_in_lockdown == [lobby["front"].pk]
    assert ended.commands == []
    assert decision_for(store, lobby["front"]) == Decision.LOCKDOWN
    assert not AuditEvent.objects.filter(kind="emergency_end").exists()


def test_an_emergency_open_sends_the_command_and_changes_no_flag(lobby, ada, operator):
    issued = commands.emergency_open(lobby["zone"], operator=operator, via="api")

    assert {c.op for c in issued.commands} == {"emergency_open"}
    assert not Zone.objects.get().lockdown
    assert not AccessPoint.objects.filter(lockdown=True).exists()
    assert AuditEvent.objects.filter(kind="emergency_open").count() == 3


def test_a_lockdown_flag_already_set_is_not_written_again(lobby, operator):
    commands.emergency_close(lobby["front"], operator=operator, via="api")
    before = RuleChange.objects.count()

    commands.emergency_close(lobby["front"], operator=operator, via="api")

    assert RuleChange.objects.count() == before
    assert DeviceCommand.objects.filter(op="emergency_close").count() == 2


# --- keys and who sees commands -----------------------------------------------------------------


def test_rekeying_a_device_seals_a_new_key_and_moves_updated_at(lobby, operator):
    device = lobby["unit"]
    stamp = device.updated_at - dt.timedelta(seconds=5)
    Device.objects.filter(pk=device.pk).update(updated_at=stamp)
    device.refresh_from_db()

    key = device_actions.rekey_device(device, operator=operator, via="api")

    device.refresh_from_db()
    assert len(key) == 16 and key != KEY
    assert device.key() == key
    assert key not in bytes(device.key_sealed)
    assert device.updated_at > stamp
    entry = SystemAuditEntry.objects.get()
    assert (entry.action, entry.detail) == ("rekey_device", {"device_id": 1001})
    assert key.hex() not in str(entry.detail)


def test_an_operator_limited_to_partitions_sees_the_commands_of_their_access_points(operator):
    mine, theirs = make_partition(), make_partition()
    here, there = make_access_point(partition=mine), make_access_point(partition=theirs)
    make_device(5, here, there)
    commands.remote_open(here, operator=operator, via="api")
    commands.remote_open(there, operator=operator, via="api")
    limited = make_operator("devices.view_devicecommand", partitions=[mine])

    visible = commands.visible_commands(DeviceCommand.objects.all(), limited)

    assert [command.access_point_id for command in visible] == [here.pk]
    assert commands.visible_commands(DeviceCommand.objects.all(), operator).count() == 2
