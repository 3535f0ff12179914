"""The shared test helpers do what the tests rely on."""

import asyncio
import itertools
import socket

import pytest

from accesscontrol import snapshot
from core import hosting
from devices import cards, jobwake
from integrations import webhooks
from integrations.eventstream import service as eventstream
from tests.support.caches import reset_process_caches
from tests.support.ports import free_port, udp_port_in_use
from tests.support.waiting import until, wait_until


def test_wait_until_returns_the_first_true_value_of_the_predicate():
    calls = itertools.count()

    assert wait_until(lambda: next(calls) >= 3 and "ready", timeout=5) == "ready"


def test_wait_until_fails_after_the_timeout_saying_what_was_awaited():
    with pytest.raises(AssertionError, match=r"the door opening did not come true within 0\.1 s"):
        wait_until(lambda: False, timeout=0.1, message=lambda: "the door opening")


def test_until_waits_in_a_coroutine_and_fails_alike():
    calls = itertools.count()

    assert asyncio.run(until(lambda: next(calls) == 2 and 7, timeout=5)) == 7
    with pytest.raises(AssertionError, match=r"a reply did not come true within 0\.1 s"):
        asyncio.run(until(lambda: None, timeout=0.1, message="a reply"))


def test_a_free_udp_port_can_be_bound_and_shows_as_in_use_while_bound():
    port = free_port("udp")

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))
        assert udp_port_in_use(port)
    assert not udp_port_in_use(port)


def test_nothing_listens_on_a_free_tcp_port():
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", free_port()), timeout=2)


@pytest.mark.django_db
def test_the_reset_empties_every_process_cache():
    snapshot.get_store()
    cards.site_card_key()
    webhooks.subscribers()
    eventstream.active_streams()
    jobwake.add_waker(lambda: None)
    hosting._running.add(object())

    reset_process_caches()

    assert snapshot._store is None
    assert cards._cached_key is None
    assert webhooks._cached == (0.0, ())
    assert eventstream._streams is None
    assert jobwake._wakers == []
    assert hosting._running == set()
