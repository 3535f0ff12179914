"""SHIP over TCP: a server speaking STP frames (``STP/00/<length>/`` + XML), one answer per request, in order.

Authentication: a connection's first request carries the API key in its Params
(``<ApiKey>spk_…</ApiKey>``, beside the request's own parameters; ``GetInfo`` does
for a request of its own); later requests on the connection act as the same key,
checked again each time (a key revoked meanwhile stops working at once), unless
they carry another. A request with no key yet, or a bad one, is answered with
exception 401 and the connection is closed.

Bad input: a well-framed request that is not a SHIP request gets an exception
answer and the connection stays; bytes that are not STP frames (a wrong prefix,
a bad or oversized length) get one exception answer and the connection is closed,
since a length-prefixed stream has nothing to resynchronise on. A peer gone
mid-frame is counted. Everything is counted in ``counters``; nothing stops the service.

Requests run off the event loop on a small thread pool (core.services.run_orm).
"""

import asyncio
import collections
import contextlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from accesscontrol.api.authentication import use_api_key
from core.services import close_connection, run_orm
from integrations import metrics
from integrations.ship import operations
from integrations.ship.xml import (
    NOT_AUTHENTICATED,
    FrameDecoder,
    FramingError,
    ShipError,
    build_error,
    frame,
    parse_request,
    text,
)

logger = logging.getLogger("space.ship")

READ_BYTES = 64 * 1024
WORKERS = 4
DRAIN_TIMEOUT_SECONDS = 10.0

# What one request came to.
ANSWERED = "answered"
BAD_REQUEST = "bad_requests"
UNAUTHENTICATED = "unauthenticated"


class Session:
    """One TCP connection's state: the API key its requests act as."""

    def __init__(self, address: str | None):
        self.address = address
        self.token = ""

    def answer(self, document: bytes) -> tuple[bytes, str]:
        """The answer to one request document and what it came to. Runs on a database thread."""
        try:
            request = parse_request(document)
        except ShipError as error:
            return build_error("", error), BAD_REQUEST
        self.token = text(request.params, "ApiKey") or self.token
        key = use_api_key(self.token) if self.token else None
        if key is None:
            message = "Give a valid API key: <ApiKey> in the first request's Params."
            return build_error(request.name, ShipError(NOT_AUTHENTICATED, message)), UNAUTHENTICATED
        return operations.handle(request, key.operator, self.address), ANSWERED


class ShipService:
    """The SHIP TCP server: a :class:`core.services.Service`."""

    name = "ship"

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        idle_seconds: float | None = None,
        max_connections: int | None = None,
    ):
        self.host = host if host is not None else settings.SPACE_SHIP_BIND
        self.port = port if port is not None else settings.SPACE_SHIP_PORT
        self.idle_seconds = idle_seconds if idle_seconds is not None else settings.SPACE_SHIP_IDLE_SECONDS
        self.max_connections = max_connections or settings.SPACE_SHIP_MAX_CONNECTIONS
        self.counters: collections.Counter = collections.Counter()
        self._server: asyncio.Server | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._connections: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(WORKERS, thread_name_prefix="ship-db")
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]  # the one given, or the one picked for port 0
        logger.info("SHIP listening on %s:%s (TCP)", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.to_thread(_close_connections, executor)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._connections) >= self.max_connections:
            self.counters["connections_refused"] += 1
            writer.close()
            return
        self._connections.add(task)
        self.counters["connections"] += 1
        peer = writer.get_extra_info("peername")
        session = Session(peer[0] if peer else None)
        metrics.SHIP_LINKS.inc()
        try:
            await self._converse(reader, writer, session)
        except (ConnectionError, TimeoutError) as error:
            self.counters["connection_errors"] += 1
            logger.info("SHIP: connection from %s lost: %s", session.address, error)
        except Exception:
            self.counters["internal_errors"] += 1
            logger.exception("SHIP: the connection from %s failed", session.address)
        finally:
            metrics.SHIP_LINKS.dec()
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _converse(self, reader, writer, session: Session) -> None:
        decoder = FrameDecoder()
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(READ_BYTES), self.idle_seconds)
            except TimeoutError:
                self.counters["idle_closed"] += 1
                return
            if not chunk:
                if decoder.pending:
                    self.counters["dropped_mid_frame"] += 1
                    logger.info("SHIP: %s left in the middle of a frame", session.address)
                return
            try:
                documents = decoder.feed(chunk)
            except FramingError as error:
                self.counters["bad_frames"] += 1
                logger.warning("SHIP: closing the connection from %s: %s", session.address, error.message)
                await self._send(writer, build_error("", error))
                return
            for document in documents:
                answer, outcome = await self._db(session.answer, document)
                self.counters["requests"] += 1
                self.counters[outcome] += 1
                await self._send(writer, answer)
                if outcome == BAD_REQUEST:
                    logger.info("SHIP: %s sent a frame that is not a SHIP request", session.address)
                if outcome == UNAUTHENTICATED:
                    logger.warning("SHIP: closing the connection from %s: no valid API key", session.address)
                    return

    async def _send(self, writer: asyncio.StreamWriter, document: bytes) -> None:
        writer.write(frame(document))
        await asyncio.wait_for(writer.drain(), DRAIN_TIMEOUT_SECONDS)

    async def _db(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, run_orm, function, *args)


def _close_connections(executor: ThreadPoolExecutor) -> None:
    """Close each worker thread's database connection, then the pool: one task per thread, held at a barrier."""
    barrier = threading.Barrier(WORKERS, timeout=5)

    def close() -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        close_connection()

    for _ in range(WORKERS):
        executor.submit(close)
    executor.shutdown(wait=True)
