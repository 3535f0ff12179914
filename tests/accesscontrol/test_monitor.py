"""The monitoring websocket: who may connect, and who sees which events (the real ASGI app, in-memory layer)."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from accesscontrol import events
from accesscontrol.models import ApiKey, AuditEvent
from space.asgi import application
from tests.factories import make_access_point, make_operator, make_partition

pytestmark = pytest.mark.django_db(transaction=True)

VIEW = "accesscontrol.view_auditevent"


def communicator(token: str | None = None) -> WebsocketCommunicator:
    headers = [(b"origin", b"http://127.0.0.1:8100"), (b"host", b"127.0.0.1:8100")]
    if token:
        headers.append((b"authorization", f"Api-Key {token}".encode()))
    return WebsocketCommunicator(application, "/ws/monitor/", headers=headers)


def token_for(operator) -> str:
    return ApiKey.issue(operator, "monitor")[1]


@database_sync_to_async
def raise_event(point=None, kind="door_opened") -> AuditEvent:
    return events.record(
        at=timezone.now(), kind=kind, access_point=point, access_point_name=point.name if point else ""
    )


async def items_of(ws, count: int, timeout: float = 3.0) -> list[dict]:
    items = []
    while len(items) < count:
        message = await ws.receive_json_from(timeout)
        assert message["type"] == "batch"
        items += message["items"]
    return items


async def nothing_more(ws) -> bool:
    return await ws.receive_nothing(timeout=0.3)


def test_a_connection_without_credentials_is_refused():
    async def scenario():
        ws = communicator()
        connected, code = await ws.connect()
        return connected, code

    assert asyncio.run(scenario()) == (False, 4403)


def test_an_operator_without_the_permission_to_view_events_is_refused():
    token = token_for(make_operator())

    async def scenario():
        return await communicator(token).connect()

    assert asyncio.run(scenario()) == (False, 4403)


def test_an_operator_of_all_partitions_sees_every_event():
    token = token_for(make_operator(VIEW, all_partitions=True))
    point = make_access_point(name="Lobby door")

    async def scenario():
        ws = communicator(token)
        assert (await ws.connect())[0]
        hello = await ws.receive_json_from()
        await raise_event(point)
        await raise_event(None, kind="device_offline")
        items = await items_of(ws, 2)
        await ws.disconnect()
        return hello, items

    hello, items = asyncio.run(scenario())
    assert hello["partitions"] == "all"
    assert [(i["kind"], i["access_point_name"]) for i in items] == [
        ("door_opened", "Lobby door"),
        ("device_offline", ""),
    ]
    assert items[0]["id"] and items[0]["key"] and items[0]["at"].endswith("Z")


def test_an_operator_limited_to_a_partition_sees_only_its_events():
    east, west = make_partition("East"), make_partition("West")
    token = token_for(make_operator(VIEW, partitions=[east]))
    east_door = make_access_point(name="East door", partition=east)
    west_door = make_access_point(name="West door", partition=west)

    async def scenario():
        ws = communicator(token)
        assert (await ws.connect())[0]
        hello = await ws.receive_json_from()
        await raise_event(west_door)
        await raise_event(None, kind="device_offline")
        await raise_event(east_door)
        items = await items_of(ws, 1)
        quiet = await nothing_more(ws)
        await ws.disconnect()
        return hello, items, quiet

    hello, items, quiet = asyncio.run(scenario())
    assert hello["partitions"] == [east.pk]
    assert [i["access_point_name"] for i in items] == ["East door"] and quiet


def test_a_browser_from_another_origin_is_refused():
    token = token_for(make_operator(VIEW, all_partitions=True))

    async def scenario():
        ws = WebsocketCommunicator(
            application,
            "/ws/monitor/",
            headers=[(b"origin", b"http://evil.example"), (b"authorization", f"Api-Key {token}".encode())],
        )
        return (await ws.connect())[0]

    assert asyncio.run(scenario()) is False


def test_a_client_that_sends_no_origin_connects_with_an_api_key():
    token = token_for(make_operator(VIEW, all_partitions=True))

    async def scenario():
        ws = WebsocketCommunicator(
            application, "/ws/monitor/", headers=[(b"authorization", f"Api-Key {token}".encode())]
        )
        connected = (await ws.connect())[0]
        await ws.disconnect()
        return connected

    assert asyncio.run(scenario()) is True
