"""An opening mode changed by editing the access point (web form, API, admin) is an operator's mode command:
stored as the operator's, queued to the doors, recorded as a mode_changed event by an operator."""

import pytest
from django.test import Client

from accesscontrol.choices import AuditKind, ModeSource
from accesscontrol.models import AccessPoint, AuditEvent
from devices.choices import CommandOp
from devices.models import Device, DeviceCommand, DeviceDoor
from tests.accesscontrol.web.test_places import edit_form
from tests.factories import make_access_point, make_operator
from tests.support.api import superuser_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def door():
    point = make_access_point(name="Front entrance", connection="online")
    device = Device(device_id=5150, name="Front unit", kind="control_unit")
    device.set_key()
    device.save()
    DeviceDoor.objects.create(device=device, number=2, access_point=point)
    return point


def told(point) -> list:
    commands = DeviceCommand.objects.filter(access_point=point, op=CommandOp.SET_MODE)
    return [command.args for command in commands]


def by_operator(point):
    event = AuditEvent.objects.get(kind=AuditKind.MODE_CHANGED, access_point=point)
    point = AccessPoint.objects.get(pk=point.pk)
    return event.detail["by"], event.detail["via"], point.opening_mode, point.mode_source


def test_the_web_form(door):
    client = Client()
    client.force_login(make_operator(is_superuser=True))
    response = client.post(f"/access-points/{door.pk}/edit/", edit_form(door, opening_mode="toggle"))
    assert response.status_code == 302
    assert told(door) == [{"door": 2, "mode": "toggle"}]
    assert by_operator(door) == ("operator", "web", "toggle", ModeSource.OPERATOR)


def test_the_web_form_without_a_new_mode_tells_no_door(door):
    client = Client()
    client.force_login(make_operator(is_superuser=True))
    client.post(f"/access-points/{door.pk}/edit/", edit_form(door, open_time=7))
    assert told(door) == [] and AccessPoint.objects.get(pk=door.pk).mode_source == ModeSource.CONFIGURED


def test_the_api(door):
    response = superuser_client().patch(f"/api/v1/access-points/{door.pk}/", {"opening_mode": "open"}, format="json")
    assert response.status_code == 200, response.content
    assert told(door) == [{"door": 2, "mode": "open"}]
    assert by_operator(door) == ("operator", "api", "open", ModeSource.OPERATOR)


def test_the_admin(door, admin_client):
    page = admin_client.get(f"/admin/accesscontrol/accesspoint/{door.pk}/change/")
    form = {name: value for name, value in page.context["adminform"].form.initial.items() if value is not None}
    form.update(opening_mode="locked", zones=[], partition=door.partition_id)
    form = {name: value for name, value in form.items() if not isinstance(value, list) or value}
    response = admin_client.post(f"/admin/accesscontrol/accesspoint/{door.pk}/change/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert told(door) == [{"door": 2, "mode": "locked"}]
    assert by_operator(door) == ("operator", "admin", "locked", ModeSource.OPERATOR)
