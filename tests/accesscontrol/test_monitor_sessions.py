"""The monitoring websocket lives no longer than the browser session it was opened with (idle log-off, log off)."""

import asyncio
import datetime as dt

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from accesscontrol import consumers, events
from accesscontrol.models import ApiKey
from accesscontrol.twofactor import ENROL_SESSION_KEY
from space.asgi import application
from tests.factories import make_operator

pytestmark = pytest.mark.django_db(transaction=True)

VIEW = "accesscontrol.view_auditevent"


@pytest.fixture(autouse=True)
def quick_checks(monkeypatch):
    monkeypatch.setattr(consumers, "SESSION_CHECK_SECONDS", 0.2)


def session_cookie(operator, **session_data) -> str:
    client = Client()
    client.force_login(operator)
    if session_data:
        session = client.session
        session.update(session_data)
        session.save()
    return client.cookies["sessionid"].value


def browser(session_key: str) -> WebsocketCommunicator:
    headers = [
        (b"origin", b"http://127.0.0.1:8100"),
        (b"host", b"127.0.0.1:8100"),
        (b"cookie", f"sessionid={session_key}".encode()),
    ]
    return WebsocketCommunicator(application, "/ws/monitor/", headers=headers)


end_session = database_sync_to_async(lambda key: Session.objects.filter(session_key=key).delete())
expire_session = database_sync_to_async(
    lambda key: Session.objects.filter(session_key=key).update(expire_date=timezone.now() - dt.timedelta(seconds=1))
)


async def closing_code(ws, timeout: float = 2.0):
    output = await ws.receive_output(timeout)
    return output["type"], output.get("code")


def test_a_browser_session_opens_the_monitor_and_stays_open_while_the_session_lives():
    key = session_cookie(make_operator(VIEW, all_partitions=True, username="ada"))

    async def scenario():
        ws = browser(key)
        connected, _ = await ws.connect()
        hello = await ws.receive_json_from()
        quiet = await ws.receive_nothing(timeout=0.6)  # three checks pass
        await ws.disconnect()
        return connected, hello["operator"], quiet

    assert asyncio.run(scenario()) == (True, "ada", True)


def test_logging_off_closes_the_monitor_with_4401():
    key = session_cookie(make_operator(VIEW, all_partitions=True))

    async def scenario():
        ws = browser(key)
        assert (await ws.connect())[0]
        await ws.receive_json_from()
        await end_session(key)
        return await closing_code(ws)

    assert asyncio.run(scenario()) == ("websocket.close", 4401)


def test_an_expired_session_closes_the_monitor_with_4401():
    key = session_cookie(make_operator(VIEW, all_partitions=True))

    async def scenario():
        ws = browser(key)
        assert (await ws.connect())[0]
        await ws.receive_json_from()
        await expire_session(key)
        return await closing_code(ws)

    assert asyncio.run(scenario()) == ("websocket.close", 4401)


def test_a_connection_with_an_api_key_has_no_session_to_end():
    operator = make_operator(VIEW, all_partitions=True)
    token = ApiKey.issue(operator, "monitor")[1]

    async def scenario():
        ws = WebsocketCommunicator(
            application, "/ws/monitor/", headers=[(b"authorization", f"Api-Key {token}".encode())]
        )
        assert (await ws.connect())[0]
        await ws.receive_json_from()
        quiet = await ws.receive_nothing(timeout=0.6)
        await ws.disconnect()
        return quiet

    assert asyncio.run(scenario()) is True


def test_a_session_that_must_first_set_up_two_factor_login_is_refused():
    key = session_cookie(make_operator(VIEW, all_partitions=True), **{ENROL_SESSION_KEY: True})

    async def scenario():
        return await browser(key).connect()

    assert asyncio.run(scenario()) == (False, 4403)


def test_a_batch_for_an_ended_session_is_not_sent_and_the_monitor_closes(monkeypatch):
    async def no_timer(self):
        return None

    monkeypatch.setattr(consumers.MonitorConsumer, "_watch_session", no_timer)
    key = session_cookie(make_operator(VIEW, all_partitions=True))
    raise_event = database_sync_to_async(
        lambda: events.record(at=timezone.now(), kind="door_opened", access_point_name="Lobby")
    )

    async def scenario():
        ws = browser(key)
        assert (await ws.connect())[0]
        await ws.receive_json_from()
        await end_session(key)
        await asyncio.sleep(0.3)  # past the check interval (0.2 s): time passing is what is tested
        await raise_event()
        return await closing_code(ws)

    assert asyncio.run(scenario()) == ("websocket.close", 4401)
