"""A lease in Redis: at most one holder of a name at a time, for as long as it keeps renewing.

Long-lived services (the device bridge, the PMS and SHIP connectors) take one
by name before they start, so a redelivered or duplicated Celery task, or a
second ``runservice``, cannot run a second copy. The value is a random token,
so only the holder can renew or release it; a holder that dies stops
renewing and the lease expires after ``ttl`` seconds.

``held`` is measured on this side: from the moment before the last successful
SET or renewal was sent, so it turns false no later than Redis expires the
key, even when Redis cannot be reached to say so.
"""

import logging
import os
import secrets
import socket
import time

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

KEY_PREFIX = "space:lease:"
DEFAULT_TTL_SECONDS = 15.0

# Compare-and-act, atomically: only the token's owner may extend or delete the key.
RENEW = """
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("pexpire", KEYS[1], ARGV[2])
end
return 0
"""
RELEASE = """
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("del", KEYS[1])
end
return 0
"""


def redis_client(url: str | None = None, timeout: float = 1.5) -> redis.Redis:
    """A client for ``url`` (settings.REDIS_URL by default) whose commands give up within about four times ``timeout``.

    One quick retry (a pooled connection may have gone stale), no backoff: a
    renewal must fail fast enough to be tried again before the lease runs out.
    """
    url = url or settings.REDIS_URL
    if not url:
        raise ImproperlyConfigured("A lease needs Redis: set REDIS_URL.")
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
        decode_responses=True,
    )


class Lease:
    def __init__(self, name: str, ttl: float = DEFAULT_TTL_SECONDS, client: redis.Redis | None = None):
        self.name = name
        self.key = KEY_PREFIX + name
        self.ttl = ttl
        # Renewed every ttl / 3: even a failed renewal must be over well before the next one is due.
        self.client = client or redis_client(timeout=max(ttl / 10, 0.05))
        self.token: str | None = None
        self.valid_until = 0.0  # time.monotonic() after which ``held`` is false
        self._renew = self.client.register_script(RENEW)
        self._release = self.client.register_script(RELEASE)

    def __repr__(self):
        return f"<Lease {self.key} {'held' if self.held else 'not held'}>"

    @property
    def held(self) -> bool:
        return self.token is not None and time.monotonic() < self.valid_until

    @property
    def ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    def holder(self) -> str | None:
        """The token of whoever holds the lease now (this one or another), or None when it is free."""
        return self.client.get(self.key)

    def acquire(self) -> bool:
        """Take the lease if it is free (or renew it if already ours); False when another holds it."""
        if self.token is not None:
            return self.renew()
        token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"
        sent_at = time.monotonic()
        if not self.client.set(self.key, token, nx=True, px=self.ttl_ms):
            return False
        self.token, self.valid_until = token, sent_at + self.ttl
        logger.info("Lease %s taken (%s)", self.key, token)
        return True

    def renew(self) -> bool:
        """Extend the lease by ``ttl``; False once it is lost (expired, or taken by another holder).

        When Redis cannot be reached the lease is kept until it would have
        expired anyway, so a short outage does not stop the service holding it.
        """
        if self.token is None:
            return False
        sent_at = time.monotonic()
        try:
            renewed = self._renew(keys=[self.key], args=[self.token, self.ttl_ms])
        except redis.RedisError as error:
            logger.warning("Lease %s not renewed (%s); it stays held for %.1fs", self.key, error, self.remaining())
            return self.held
        if not renewed:
            logger.warning("Lease %s lost: it expired or another holder took it", self.key)
            self.token = None
            return False
        self.valid_until = sent_at + self.ttl
        return True

    def release(self) -> bool:
        """Give the lease up now; True if it was still ours. Never removes another holder's lease."""
        token, self.token = self.token, None
        if token is None:
            return False
        try:
            released = bool(self._release(keys=[self.key], args=[token]))
        except redis.RedisError as error:
            logger.warning("Lease %s not released (%s); it will expire", self.key, error)
            return False
        if released:
            logger.info("Lease %s released", self.key)
        return released

    def remaining(self) -> float:
        return max(0.0, self.valid_until - time.monotonic()) if self.token is not None else 0.0
