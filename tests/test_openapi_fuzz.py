"""Every operation of API v1, fuzzed from its OpenAPI schema (schemathesis), in-process through the WSGI
application: no request is answered with a 5xx, and every answer is one the schema documents (its status
code, its content type, its body's shape).

Each operation runs as an administrator and as an operator who may do everything in one partition only,
on a small seeded site; half of the generated ids are turned into ids of objects that exist, so item
operations reach their objects and not only their 404. The run is derandomized (repeatable) and bounded
per operation.
"""

import re

import pytest
import schemathesis
from django.contrib.auth.models import Permission
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.urls import Resolver404, resolve
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accesscontrol import faces
from accesscontrol.models import AccessPoint, ApiKey, Cardholder, Operator
from devices import actions
from devices.models import Alarm, Device, DeviceDoor, DeviceReader, OsdpBus, OsdpReader
from integrations.models import WebhookDelivery, WebhookSubscription
from tests.factories import (
    give_permission,
    make_access_level,
    make_access_point,
    make_calendar,
    make_cardholder,
    make_key,
    make_operator,
    make_partition,
    make_time_period,
    make_zone,
)
from tests.hotel.support import make_room

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

EXAMPLES_PER_OPERATION = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _api_schema() -> dict:
    # The schema as the server serves it (/api/schema/), made without a request: no database at collection.
    return SchemaGenerator().get_schema(request=None, public=True)


# Fuzzing only: the coverage phase (every boundary of every field, hundreds of requests per write
# operation) takes 7 minutes on 2 cores for the two roles, over the budget of a test run in CI.
CONFIG = SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}}})
schema = schemathesis.openapi.from_dict(_api_schema(), config=CONFIG)
schema.app = get_wsgi_application()


@pytest.fixture
def wsgi_in_test_transaction():
    """The WSGI handler closes the database connection after each request; the test's transaction must outlive it."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def seed_site():
    """A small site in two partitions: the partition operator sees the first only."""
    mine, theirs = make_partition("Mine"), make_partition("Theirs")
    bus = OsdpBus.objects.create(name="Lobby line", port="socket://192.0.2.40:4001")
    for partition in (mine, theirs):
        hours = make_time_period(("08:00", "18:00", "monday", "tuesday"), partition=partition)
        zone = make_zone(partition=partition)
        doors = [make_access_point(partition=partition, zones=[zone]) for _ in range(2)]
        level = make_access_level(doors[0], partition=partition)
        for _ in range(2):
            holder = make_cardholder(level, partition=partition)
            make_key(holder)
            give_permission(holder, doors[1], hours)
        device = Device(device_id=1000 + partition.pk, name=f"Unit {partition.name}", kind="control_unit")
        device.set_key()
        device.save()
        for number, door in enumerate(doors, start=1):
            DeviceDoor.objects.create(device=device, number=number, access_point=door)
            DeviceReader.objects.create(device=device, number=number, access_point=door)
        reader = Device(device_id=2000 + partition.pk, name=f"Reader {partition.name}", kind="osdp_reader")
        reader.set_key()
        reader.save()
        OsdpReader.objects.create(device=reader, bus=bus, address=partition.pk % 127)
        keypad = make_access_point(partition=partition, pin_only=True)
        DeviceDoor.objects.create(device=reader, number=1, access_point=keypad, relay=0, contact=1, rex=2)
        DeviceReader.objects.create(device=reader, number=1, access_point=keypad, direction="entry")
        Alarm.objects.create(kind="forced", access_point=keypad, device=reader, raised_at=timezone.now())
        Alarm.objects.create(kind="tamper", device=reader, raised_at=timezone.now(), acknowledged_at=timezone.now())
    for partition in (mine, theirs):  # after the devices with fixed ids: a terminal's device takes the next free one
        holder = Cardholder.objects.filter(partition=partition).first()
        door = AccessPoint.objects.filter(partition=partition).first()
        terminal = actions.commission_face_terminal(
            name=f"Face {partition.name}",
            terminal_id=f"face-{partition.pk}",
            access_point=door,
            operator=None,
            via="seed",
        )
        faces.record_consent(holder, operator=None, via="seed")
        actions.start_face_enrolment(holder, terminal, operator=None, via="seed")
    make_calendar(("2030-12-25", "holiday"), ("2030-05-01", "special1"))
    make_room("101")
    subscription = WebhookSubscription(name="Hook", url="https://192.0.2.10/space", all_partitions=True)
    subscription.set_secret("a secret of sufficient length")
    subscription.save()
    WebhookDelivery.objects.create(
        subscription=subscription,
        event_key="event-1",
        payload={"type": "audit_event", "key": "event-1", "kind": "tamper"},
        status="pending",
        tries=0,
        next_attempt_at=timezone.now(),
    )
    return mine


def everything_in(partition) -> Operator:
    permissions = Permission.objects.filter(
        content_type__app_label__in=["accesscontrol", "devices", "integrations"]
    ).select_related("content_type")
    names = [f"{permission.content_type.app_label}.{permission.codename}" for permission in permissions]
    return make_operator(*names, partitions=[partition])


def api_key_of(operator) -> dict:
    _, token = ApiKey.issue(operator, "fuzz")
    return {"Authorization": f"Api-Key {token}"}


@pytest.fixture
def as_administrator(db, wsgi_in_test_transaction):
    seed_site()
    return api_key_of(make_operator(is_superuser=True))


@pytest.fixture
def as_partition_operator(db, wsgi_in_test_transaction):
    return api_key_of(everything_in(seed_site()))


def _model_for(case, name):
    if name == "subscription_pk":
        return WebhookSubscription
    path = case.operation.path
    for parameter in ("id", "pk", "subscription_pk"):
        path = path.replace("{" + parameter + "}", "1")
    try:
        view = resolve(path).func
    except Resolver404:
        return None
    queryset = getattr(getattr(view, "cls", None), "queryset", None)
    return queryset.model if queryset is not None else None


def aim_at_existing_objects(case) -> None:
    """Half of the generated ids (by their parity: repeatable) become ids of objects that exist."""
    for name, value in list((case.path_parameters or {}).items()):
        model = _model_for(case, name)
        if model is None or not isinstance(value, int) or value % 2 == 0:
            continue
        ids = sorted(model.objects.values_list("pk", flat=True))
        if ids:
            case.path_parameters[name] = ids[value % len(ids)]


def without_name_lookups(case) -> None:
    """A webhook's URL is checked by resolving its host: a generated host name becomes a TEST-NET address, so
    the fuzz asks no DNS server about made-up names (the URL's form is still the generated one)."""
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("url"), str):
        body["url"] = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*", r"\g<1>192.0.2.10", body["url"])


def run(case, headers) -> None:
    aim_at_existing_objects(case)
    without_name_lookups(case)
    response = case.call(headers=headers)
    case.validate_response(response, checks=CHECKS, headers=headers)


FUZZ = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@FUZZ
def test_every_operation_answers_as_documented_to_an_administrator(case, as_administrator):
    run(case, as_administrator)


@schema.parametrize()
@FUZZ
def test_every_operation_answers_as_documented_to_an_operator_of_one_partition(case, as_partition_operator):
    run(case, as_partition_operator)
