"""A Redis lease has one holder at a time, for as long as the holder renews it; a hosted
service keeps its lease renewed and stops when it loses it (real Redis)."""

import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from core import hosting
from core.hosting import Host
from core.lease import KEY_PREFIX, Lease, redis_client
from tests.core.test_hosting import Hosted, UdpEcho, port_is_free
from tests.support.waiting import wait_until

BASE_DIR = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("SPACE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def client():
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        client.ping()
    except redis.ConnectionError as error:
        pytest.fail(f"These tests need Redis at {REDIS_URL} (scripts/services.sh starts it): {error}")
    yield client
    client.close()


@pytest.fixture
def name(client):
    """A lease name no other test uses; its key is removed afterwards."""
    name = f"test-{uuid.uuid4().hex}"
    yield name
    client.delete(KEY_PREFIX + name)


def test_only_one_holder_takes_a_lease(client, name):
    first, second = Lease(name, ttl=10, client=client), Lease(name, ttl=10, client=client)

    assert first.acquire() is True
    assert second.acquire() is False

    assert first.held and not second.held
    assert client.get(KEY_PREFIX + name) == first.token
    assert second.holder() == first.token


def test_the_lease_key_expires_after_its_ttl(client, name):
    lease = Lease(name, ttl=10, client=client)

    lease.acquire()

    assert 9000 < client.pttl(KEY_PREFIX + name) <= 10000


def test_renewing_keeps_the_lease_past_its_first_ttl(client, name):
    lease, other = Lease(name, ttl=1.0, client=client), Lease(name, ttl=1.0, client=client)
    lease.acquire()
    started = time.monotonic()

    while time.monotonic() - started < 2.5:  # past two lifetimes of the lease: time passing is what is tested
        assert lease.renew() is True
        time.sleep(0.2)

    assert lease.held
    assert other.acquire() is False
    assert client.get(KEY_PREFIX + name) == lease.token


def test_a_lease_whose_holder_died_expires_and_another_takes_it(client, name):
    # The holder is a real process, killed without a chance to release.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, redis; from core.lease import Lease;"
            "lease = Lease(sys.argv[2], ttl=1.5, client=redis.Redis.from_url(sys.argv[1]));"
            "assert lease.acquire(); print('held', flush=True); time.sleep(600)",
            REDIS_URL,
            name,
        ],
        cwd=BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "space.settings"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        holder.kill()
        holder.wait(10)
        successor = Lease(name, ttl=10, client=client)

        taken_at_once = successor.acquire()
        taken_later = wait_until(successor.acquire, timeout=10)

        assert taken_at_once is False
        assert taken_later is True
        assert client.get(KEY_PREFIX + name) == successor.token
    finally:
        holder.kill()
        holder.wait(10)
        holder.stdout.close()


def test_a_holder_that_stopped_renewing_learns_on_renew_that_it_lost_the_lease(client, name):
    stale, successor = Lease(name, ttl=0.3, client=client), Lease(name, ttl=10, client=client)
    stale.acquire()
    assert wait_until(successor.acquire)

    renewed = stale.renew()

    assert renewed is False
    assert not stale.held
    assert client.get(KEY_PREFIX + name) == successor.token
    assert 9000 < client.pttl(KEY_PREFIX + name) <= 10000  # the stale holder did not extend it


def test_held_turns_false_when_the_ttl_passes_without_a_renewal(client, name):
    lease = Lease(name, ttl=0.3, client=client)
    started = time.monotonic()
    lease.acquire()
    assert lease.held

    wait_until(lambda: not lease.held, timeout=5, message="the lease running out")

    assert time.monotonic() - started >= 0.3  # not before its time


def test_releasing_frees_the_lease_at_once(client, name):
    lease, other = Lease(name, ttl=10, client=client), Lease(name, ttl=10, client=client)
    lease.acquire()

    released = lease.release()

    assert released is True
    assert not lease.held
    assert client.exists(KEY_PREFIX + name) == 0
    assert other.acquire() is True


def test_a_stale_holder_cannot_release_its_successors_lease(client, name):
    stale, successor = Lease(name, ttl=0.3, client=client), Lease(name, ttl=10, client=client)
    stale.acquire()
    assert wait_until(successor.acquire)

    released = stale.release()

    assert released is False
    assert client.get(KEY_PREFIX + name) == successor.token


def test_acquiring_a_lease_already_held_renews_it(client, name):
    lease = Lease(name, ttl=10, client=client)
    lease.acquire()
    token = lease.token
    client.pexpire(KEY_PREFIX + name, 500)

    assert lease.acquire() is True

    assert lease.token == token
    assert client.pttl(KEY_PREFIX + name) > 9000


def test_the_lease_stays_held_through_a_redis_outage_shorter_than_its_ttl(name):
    lease = Lease(name, ttl=5, client=redis_client("redis://127.0.0.1:1/0", timeout=0.2))
    # As if taken just now, before Redis went away.
    lease.token, lease.valid_until = "a-token", time.monotonic() + 5

    assert lease.renew() is True
    assert lease.held

    lease.valid_until = time.monotonic()
    assert lease.renew() is False
    assert not lease.held


# --- a service hosted under a lease (core.hosting) ----------------------------------


def test_a_hosted_service_keeps_its_lease_renewed_and_releases_it_when_stopped(client, name):
    lease = Lease(name, ttl=1.2, client=client)
    hosted = Hosted(UdpEcho(), lease)
    assert hosted.started.wait(10)
    started = time.monotonic()
    token = lease.token  # read now: stopping releases the lease, and the release may come before the asserts

    holders = []
    while time.monotonic() - started < 3.0:  # more than two lifetimes of the lease
        holders.append(client.get(KEY_PREFIX + name))
        time.sleep(0.05)
    hosted.host.stop()

    assert token is not None and set(holders) == {token}
    assert hosted.result() == hosting.STOPPED
    assert client.exists(KEY_PREFIX + name) == 0
    assert hosted.service.log == ["start", "stop"]


def test_a_hosted_service_stops_when_its_lease_is_lost(client, name):
    lease = Lease(name, ttl=1.2, client=client)
    hosted = Hosted(UdpEcho(), lease)
    assert hosted.started.wait(10)

    client.set(KEY_PREFIX + name, "another-holder", px=10_000)  # as if it had expired and been taken

    assert hosted.result() == hosting.LEASE_LOST
    assert hosted.service.log == ["start", "stop"]
    assert port_is_free(hosted.service.port)
    assert client.get(KEY_PREFIX + name) == "another-holder"  # not released: it is not ours


def test_a_second_host_returns_at_once_while_another_holds_the_lease(client, name):
    first = Hosted(UdpEcho(), Lease(name, ttl=10, client=client))
    assert first.started.wait(10)
    second = UdpEcho()

    outcome = asyncio.run(Host(second, Lease(name, ttl=10, client=client)).run())
    first.host.stop()

    assert outcome == hosting.ALREADY_RUNNING
    assert second.log == []
    assert first.result() == hosting.STOPPED


def test_a_service_that_fails_to_start_raises_and_releases_its_lease(client, name):
    service = UdpEcho(fail_start=True)

    with pytest.raises(OSError, match="no such interface"):
        asyncio.run(Host(service, Lease(name, ttl=10, client=client)).run())

    assert client.exists(KEY_PREFIX + name) == 0
