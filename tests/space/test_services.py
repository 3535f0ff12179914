"""The table of long-lived services: each entry makes a service, runspace runs the ones its profile says,
and ``manage.py runservice`` runs one of the others alone or says why not."""

import asyncio

import pytest
from django.core.management import CommandError, call_command

from core.periodic import PeriodicService
from devices.osdp.service import Buses
from devices.scheduler import ModeScheduler
from devices.sdp.bridge import Bridge
from devices.usb_encoders import EncoderSweep
from integrations.eventstream.service import EventStreamService
from integrations.webhooks.service import WebhookService
from space.services import SERVICES, bus_entries, connectors, embedded_services, hosted, lookup


@pytest.fixture
def everything_configured(settings):
    settings.SPACE_FIAS_ADDRESS = "127.0.0.1:9"  # discard: nothing answers, the client keeps trying
    settings.SPACE_INDUSTRY_ENABLED = True
    settings.SPACE_INDUSTRY_PORT = 0
    settings.SPACE_INDUSTRY_SERIAL = ""
    settings.SPACE_SHIP_PORT = 7200
    settings.SPACE_SHIP_BIND = "127.0.0.1"
    settings.SPACE_FACE_MQTT_HOST = "127.0.0.1"  # no broker, no certificates: the link keeps trying
    settings.SPACE_FACE_MQTT_PORT = 9


# --- the table ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_every_entry_makes_a_service_that_starts_and_stops(everything_configured):
    async def start_and_stop(service):
        await service.start()
        await service.stop()

    started = []
    for entry in SERVICES.values():
        # Listening ones on a free port of the loopback, so that nothing else on this machine is in the way.
        service = entry.make(**({"host": "127.0.0.1", "port": 0} if entry.listens else {}))
        asyncio.run(start_and_stop(service))
        started.append(entry.name)

    assert started == [
        "device-bridge",
        "osdp",
        "usb-encoder-sweep",
        "webhooks",
        "blacklist-purge",
        "backups",
        "sources",
        "audit-retention",
        "event-stream",
        "mode-scheduler",
        "face-terminals",
        "fias",
        "industry",
        "ship",
    ]


def test_the_leases_keep_their_names_and_the_other_services_run_inside_runspace_only():
    leases = {entry.name: entry.lease for entry in hosted()}
    runspace_only = [entry.name for entry in SERVICES.values() if not entry.hosted]

    assert leases == {
        "device-bridge": "device-bridge",
        "event-stream": "event-stream",
        "mode-scheduler": "mode-scheduler",
        "face-terminals": "face-terminals",
        "fias": "connector-fias",
        "industry": "connector-industry",
        "ship": "connector-ship",
    }
    assert runspace_only == [
        "osdp",
        "usb-encoder-sweep",
        "webhooks",
        "blacklist-purge",
        "backups",
        "sources",
        "audit-retention",
    ]
    assert [entry.name for entry in connectors()] == ["fias", "industry", "ship"]


def test_a_connector_is_on_when_its_setting_is_set_and_the_others_always_are(settings):
    settings.SPACE_FIAS_ADDRESS = ""
    settings.SPACE_INDUSTRY_ENABLED = False
    settings.SPACE_SHIP_PORT = 0
    settings.SPACE_FACE_MQTT_HOST = ""

    off = [entry.name for entry in SERVICES.values() if not entry.configured]
    settings.SPACE_SHIP_PORT = 7200

    assert off == ["face-terminals", "fias", "industry", "ship"]
    assert SERVICES["ship"].configured


# --- where the services come from ------------------------------------------------


def test_the_embedded_profile_runs_the_bridge_webhooks_and_event_stream_inside_runspace(settings):
    settings.SPACE_BRIDGE_IN_RUNSPACE = True
    settings.SPACE_OSDP_IN_RUNSPACE = True
    settings.SPACE_EVENT_STREAM_IN_RUNSPACE = True
    settings.SPACE_MODE_SCHEDULER_IN_RUNSPACE = True
    settings.CELERY_BROKER_URL = "memory://"

    services = embedded_services()

    assert [type(service) for service in services] == [
        Bridge,
        Buses,
        EncoderSweep,
        WebhookService,
        PeriodicService,  # blacklist purge
        PeriodicService,  # backups
        PeriodicService,  # cardholder sources
        PeriodicService,  # audit retention
        EventStreamService,
        ModeScheduler,
    ]


def test_the_production_profile_leaves_them_to_the_celery_workers_and_keeps_the_usb_encoder_sweep(settings):
    settings.SPACE_BRIDGE_IN_RUNSPACE = False
    settings.SPACE_OSDP_IN_RUNSPACE = False
    settings.SPACE_EVENT_STREAM_IN_RUNSPACE = False
    settings.SPACE_MODE_SCHEDULER_IN_RUNSPACE = False
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"

    # Local bridges of USB encoders connect to the web server itself: the sweep of their jobs stays beside it.
    assert [type(service) for service in embedded_services()] == [EncoderSweep]


# --- runservice: what it refuses (tests/devices/test_runbridge.py runs it) -------------------------------


def test_runservice_of_an_unknown_name_fails_with_the_names_it_knows():
    with pytest.raises(CommandError) as refused:
        call_command("runservice", "bridge")

    assert str(refused.value) == (
        "No service 'bridge'; there are: "
        "device-bridge, event-stream, mode-scheduler, face-terminals, fias, industry, ship."
    )


def test_runservice_of_a_service_that_runs_inside_runspace_only_fails_the_same_way():
    with pytest.raises(CommandError, match=r"^No service 'webhooks'; there are: device-bridge, "):
        call_command("runservice", "webhooks")


def test_runservice_of_an_unconfigured_connector_fails_naming_its_setting(settings):
    settings.SPACE_FIAS_ADDRESS = ""

    with pytest.raises(CommandError) as refused:
        call_command("runservice", "fias")

    assert str(refused.value) == "The FIAS connector is not configured: set SPACE_FIAS_ADDRESS."


def test_runservice_refuses_a_port_for_a_service_that_listens_on_none(settings):
    settings.SPACE_FIAS_ADDRESS = "127.0.0.1:9"

    with pytest.raises(CommandError) as refused:
        call_command("runservice", "fias", "--port", "7000")

    assert str(refused.value) == "The FIAS connector listens on no port: --host and --port are not for it."


def test_runconnector_is_runservice_for_the_connectors_only(settings):
    settings.SPACE_SHIP_PORT = 0

    with pytest.raises(CommandError) as not_a_connector:
        call_command("runconnector", "device-bridge")
    with pytest.raises(CommandError) as not_configured:
        call_command("runconnector", "ship")

    assert str(not_a_connector.value) == "No connector 'device-bridge'; there are: fias, industry, ship."
    assert str(not_configured.value) == "The SHIP connector is not configured: set SPACE_SHIP_PORT."


@pytest.mark.django_db
def test_each_enabled_osdp_bus_is_an_entry_of_its_own_under_its_own_lease(settings):
    from devices.models import OsdpBus
    from devices.osdp.service import BusService

    settings.SPACE_OSDP_IN_RUNSPACE = False
    first = OsdpBus.objects.create(name="Line A", port="/dev/ttyUSB0")
    OsdpBus.objects.create(name="Line B", port="socket://10.0.0.5:4001", enabled=False)

    (entry,) = bus_entries()
    assert (entry.name, entry.lease, entry.title) == (f"osdp-bus-{first.pk}", f"osdp-bus-{first.pk}", "OSDP bus Line A")
    assert entry.hosted and not entry.in_runspace()
    assert isinstance(entry.make(), BusService) and entry.make().bus_id == first.pk
    assert lookup(entry.name).lease == entry.lease
    assert lookup("osdp-bus-999999") is None and lookup("device-bridge") is SERVICES["device-bridge"]
    # Inside runspace the "osdp" service runs every bus: the bus entries then say so.
    settings.SPACE_OSDP_IN_RUNSPACE = True
    assert entry.in_runspace()
