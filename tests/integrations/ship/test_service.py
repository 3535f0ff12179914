"""The SHIP TCP service on a real socket on 127.0.0.1: STP frames in any chunks, the key, bad input, dropped peers.

The service runs on an event loop of its own thread, as under ``runspace``; its
database threads share the test's database.
"""

import socket
import time

import pytest
from django.test import override_settings
from django.utils import timezone

from accesscontrol.models import ApiKey, Cardholder
from integrations.ship import xml as ship
from integrations.ship.service import ShipService
from space.services import SERVICES
from tests.integrations.ship.conftest import api_key, integrator
from tests.integrations.test_eventstream_service import Loop
from tests.support.metrics import own_sample
from tests.support.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


class Client:
    """An integrator's end of a connection."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.decoder = ship.FrameDecoder()
        self.answers: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, name: str, params: list) -> ship.Response:
        self.send(ship.frame(ship.build_request(name, params)))
        return self.answer()

    def answer(self) -> ship.Response:
        while not self.answers:
            chunk = self.sock.recv(65536)
            assert chunk, "the service closed the connection without answering"
            self.answers += self.decoder.feed(chunk)
        return ship.parse_response(self.answers.pop(0))

    def closed(self) -> bool:
        """Whether the service closed its end (after anything it still had to send)."""
        try:
            return self.sock.recv(65536) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def service():
    loop = Loop()
    running = ShipService("127.0.0.1", 0, idle_seconds=30)
    loop.call(running.start())
    yield running
    loop.call(running.stop())
    loop.close()


@pytest.fixture
def token():
    return api_key(integrator())


@pytest.fixture
def client(service):
    connection = Client(service.port)
    yield connection
    connection.close()


def test_the_first_request_carries_the_key_and_the_next_ones_act_as_it(client, token):
    first = client.request("GetInfo", [("ApiKey", token)])
    second = client.request("SaltoDBUser.Insert", [("SaltoDBUser", [("ExtUserID", "U1"), ("LastName", "Ruiz")])])

    assert ship.text(first.params, "ProtocolID") == "SHIP"
    assert second.error is None
    assert Cardholder.objects.filter(ext_id="U1", last_name="Ruiz").exists()


def test_a_request_without_a_key_is_refused_and_the_connection_closed(service, client):
    response = client.request("SaltoDBUserList.Read", [])

    assert response.error.code == ship.NOT_AUTHENTICATED
    assert client.closed()
    assert service.counters["unauthenticated"] == 1


def test_a_bad_key_is_refused_and_the_connection_closed(client):
    assert client.request("GetInfo", [("ApiKey", "spk_nope_nope")]).error.code == ship.NOT_AUTHENTICATED
    assert client.closed()


def test_a_key_revoked_during_the_connection_stops_working_at_once(client, token):
    assert client.request("GetInfo", [("ApiKey", token)]).error is None
    ApiKey.objects.update(revoked_at=timezone.now())

    assert client.request("GetInfo", []).error.code == ship.NOT_AUTHENTICATED


def test_a_request_split_into_single_bytes_is_answered(client, token):
    data = ship.frame(ship.build_request("GetInfo", [("ApiKey", token)]))
    for byte in data:
        client.send(bytes([byte]))
        time.sleep(0.001)  # one segment per byte, not coalesced by the kernel

    assert client.answer().error is None


def test_requests_in_one_chunk_are_answered_in_order(client, token):
    client.send(
        ship.frame(ship.build_request("GetInfo", [("ApiKey", token)]))
        + ship.frame(ship.build_request("Nope", []))
        + ship.frame(ship.build_request("SaltoDBUserList.Read", []))
    )

    assert [client.answer().name for _ in range(3)] == ["GetInfo", "Nope", "SaltoDBUserList.Read"]


def test_bad_xml_in_a_good_frame_is_answered_and_the_connection_stays(service, client, token):
    client.send(ship.frame(b"<RequestCall><RequestName>GetInfo"))

    assert client.answer().error.code == ship.BAD_REQUEST
    assert client.request("GetInfo", [("ApiKey", token)]).error is None
    assert service.counters["bad_requests"] == 1


def test_an_oversized_frame_is_refused_and_the_connection_closed(service, client):
    client.send(b"STP/00/99999999/<RequestCall>")

    assert client.answer().error.code == ship.TOO_LARGE
    assert client.closed()
    assert service.counters["bad_frames"] == 1


def test_garbage_is_refused_and_the_connection_closed_and_others_are_served(service, client, token):
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")

    assert client.answer().error.code == ship.BAD_REQUEST
    assert client.closed()
    other = Client(service.port)
    assert other.request("GetInfo", [("ApiKey", token)]).error is None
    other.close()


def test_a_client_dropping_mid_frame_is_counted_and_the_service_keeps_serving(service, client, token):
    client.send(ship.frame(ship.build_request("GetInfo", [("ApiKey", token)]))[:25])
    client.close()

    assert wait_until(lambda: service.counters["dropped_mid_frame"] == 1, timeout=10)
    other = Client(service.port)
    assert other.request("GetInfo", [("ApiKey", token)]).error is None
    other.close()


def test_an_idle_connection_is_closed(token):
    loop = Loop()
    quick = ShipService("127.0.0.1", 0, idle_seconds=0.2)
    loop.call(quick.start())
    try:
        idle = Client(quick.port)
        assert idle.closed()
        assert quick.counters["idle_closed"] == 1
        idle.close()
    finally:
        loop.call(quick.stop())
        loop.close()


def test_connections_over_the_limit_are_refused(token):
    loop = Loop()
    small = ShipService("127.0.0.1", 0, idle_seconds=30, max_connections=1)
    loop.call(small.start())
    before = own_sample("space_connector_links", connector="ship")
    try:
        first = Client(small.port)
        assert first.request("GetInfo", [("ApiKey", token)]).error is None
        second = Client(small.port)
        assert second.closed()
        assert small.counters["connections_refused"] == 1
        assert own_sample("space_connector_links", connector="ship") == before + 1  # the refused one is no link
        first.close()
        second.close()
        assert wait_until(lambda: own_sample("space_connector_links", connector="ship") == before)
    finally:
        loop.call(small.stop())
        loop.close()


def test_ship_is_a_connector_turned_on_by_its_port():
    connector = SERVICES["ship"]

    with override_settings(SPACE_SHIP_PORT=0):
        assert not connector.configured
    with override_settings(SPACE_SHIP_PORT=7200, SPACE_SHIP_BIND="127.0.0.1"):
        assert connector.configured
        made = connector.make()
    assert isinstance(made, ShipService)
    assert (made.host, made.port) == ("127.0.0.1", 7200)
