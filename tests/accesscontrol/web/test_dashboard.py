"""The dashboard at "/": figures an operator cares about, limited to what they may see."""

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accesscontrol.choices import AuditKind, KeyStatus
from accesscontrol.models import AuditEvent
from devices.models import Device
from tests.factories import make_access_point, make_cardholder, make_key, make_operator, make_partition

pytestmark = pytest.mark.django_db


def client_for(operator) -> Client:
    client = Client()
    client.force_login(operator)
    return client


def event(point, kind=AuditKind.ACCESS_GRANTED, at=None, **fields):
    return AuditEvent.objects.create(
        at=at or timezone.now(), kind=kind, access_point=point, access_point_name=point.name, **fields
    )


def test_the_dashboard_is_the_root_and_needs_a_login(settings):
    settings.LOGIN_URL = "/sign-in/"

    response = Client().get("/")

    assert reverse("dashboard") == "/"
    assert response.status_code == 302
    assert response["Location"] == "/sign-in/?next=/"


def test_it_counts_cardholders_valid_keys_access_points_devices_and_todays_events():
    holder = make_cardholder(last_name="Okafor")
    make_key(holder)
    make_key(holder, status=KeyStatus.CANCELLED)
    make_key(holder, valid_until=timezone.now() - dt.timedelta(days=1))
    point = make_access_point(name="Lobby", lockdown=True)
    Device.objects.create(device_id=1, name="Gate", kind="control_unit", online=True, door_states={"1": "forced"})
    Device.objects.create(device_id=2, name="Annex", kind="control_unit", online=False, tamper=True)
    event(point, cardholder=holder, cardholder_name="Okafor")
    event(point, kind=AuditKind.ACCESS_DENIED)
    event(point, at=timezone.now() - dt.timedelta(days=2))

    response = client_for(make_operator(is_superuser=True)).get("/")

    stats = response.context["stats"]
    assert response.status_code == 200
    assert stats == {
        "cardholders": 1,
        "valid_keys": 1,
        "access_points": 1,
        "locked_down": 1,
        "devices_online": 1,
        "devices_offline": 1,
        "doors_in_alarm": 1,
        "tamper": 1,
        "events_today": 2,
        "denied_today": 1,
    }
    assert len(response.context["events"]) == 3
    assert reverse("cardholder", args=[holder.pk]) in response.content.decode()


def test_an_operator_sees_only_the_figures_of_their_permissions_and_partitions():
    mine, other = make_partition(), make_partition()
    make_cardholder(partition=mine)
    make_cardholder(partition=other)
    make_cardholder(partition=other)
    event(make_access_point(partition=other), cardholder_name="Elsewhere")
    operator = make_operator("accesscontrol.view_cardholder", partitions=[mine])

    response = client_for(operator).get("/")

    assert response.status_code == 200
    assert response.context["stats"] == {"cardholders": 1}
    assert response.context.get("events") is None
    assert "Elsewhere" not in response.content.decode()


def test_the_latest_events_are_those_of_the_operators_partitions():
    mine, other = make_partition(), make_partition()
    event(make_access_point(partition=mine), cardholder_name="Visible Person")
    event(make_access_point(partition=other), cardholder_name="Hidden Person")
    operator = make_operator("accesscontrol.view_auditevent", partitions=[mine])

    response = client_for(operator).get("/")

    page = response.content.decode()
    assert response.context["stats"] == {"events_today": 1, "denied_today": 0}
    assert "Visible Person" in page
    assert "Hidden Person" not in page
