"""``manage.py runspace``: the whole embedded server in one process.

Daphne serves the ASGI app (HTTP, websockets) on Twisted's asyncio reactor;
the services of ``space.services.embedded_services()`` run on the same event
loop, started once the reactor runs and stopped before it shuts down. SIGTERM
and SIGINT stop the reactor, which stops the services and then the server.

With a certificate and key (SPACE_TLS_CERT_FILE, SPACE_TLS_KEY_FILE) it serves
HTTPS and wss:// (core/tls.py), and answers plain HTTP on the same port with a
redirect to https://. The production profile serves plain HTTP only behind a
declared TLS proxy (SPACE_BEHIND_TLS_PROXY).
"""

import asyncio
import logging
import signal

# Daphne installs Twisted's asyncio reactor when imported, so daphne.server
# must be imported before twisted.internet.reactor (import order does it).
import daphne.server
from daphne.endpoints import build_endpoint_description_strings
from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.http.request import validate_host
from twisted.internet import defer, reactor

from core import metrics
from core.services import start_all, stop_all
from core.tls import SchemeSniffingFactory, TLSConfigError, server_options
from space.services import embedded_services

logger = logging.getLogger("space.runspace")
http_logger = logging.getLogger("space.http")


class WebServer(daphne.server.Server):
    """daphne's server, saying when it listens; with ``wrap_factory``, its HTTP factory wrapped (TLS)."""

    def __init__(self, *args, on_listening=None, wrap_factory=None, **kwargs):
        self.wrap_factory = wrap_factory
        super().__init__(*args, **kwargs)
        self.on_listening = on_listening

    # daphne's run() makes its HTTP factory and listens with it straight away: its assignment is where to wrap it.
    @property
    def http_factory(self):
        return self._http_factory

    @http_factory.setter
    def http_factory(self, factory):
        self._http_factory = self.wrap_factory(factory) if self.wrap_factory else factory

    def listen_success(self, port):
        super().listen_success(port)
        if self.on_listening and hasattr(port, "getHost"):
            self.on_listening(port.getHost())


def log_request(protocol, action, details):
    if protocol == "http" and action == "complete":
        level = logging.WARNING if details["status"] >= 500 else logging.INFO
        http_logger.log(
            level,
            "%(method)s %(path)s %(status)s %(time_taken).3fs %(client)s",
            details,
        )


def run_coroutine(coroutine) -> defer.Deferred:
    return defer.Deferred.fromFuture(asyncio.ensure_future(coroutine))


class Command(BaseCommand):
    help = "Run Space: the web server (HTTP and websockets) and the services beside it, until SIGTERM or SIGINT."

    def add_arguments(self, parser):
        parser.add_argument("--host", help=f"Interface to listen on (SPACE_HTTP_HOST, now {settings.SPACE_HTTP_HOST}).")
        parser.add_argument(
            "--port", type=int, help=f"TCP port to listen on (SPACE_HTTP_PORT, now {settings.SPACE_HTTP_PORT})."
        )
        parser.add_argument(
            "--no-migrate",
            action="store_true",
            help="Do not apply migrations first (when several servers share one database).",
        )

    def handle(self, *args, **options):
        host = options["host"] or settings.SPACE_HTTP_HOST
        port = options["port"] if options["port"] is not None else settings.SPACE_HTTP_PORT
        self.tls_options = self.tls()
        metrics.sweep()  # the metrics files of processes a kill left behind (core/metrics.py)
        if not options["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=max(0, options["verbosity"] - 1))

        self.services = embedded_services()
        self.started = []
        self.failure = None
        reactor.callWhenRunning(self.start_services)
        reactor.addSystemEventTrigger("before", "shutdown", self.stop_services)

        # daphne binds the port before the reactor installs its signal handlers: a SIGINT or SIGTERM in that
        # gap (an operator's Ctrl-C, a supervisor stopping a slow start) would be lost. Until then, these
        # stop the reactor as soon as it runs; Twisted then keeps the SIGINT one and sets its own for SIGTERM.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self.stop_when_running)

        server = WebServer(
            application=self.application(),
            endpoints=build_endpoint_description_strings(host=host, port=port),
            signal_handlers=True,
            action_logger=log_request,
            on_listening=self.announce,
            wrap_factory=self.serve_tls if self.tls_options else None,
            **self.proxy_headers(),
        )
        server.run()

        if not server.listening_addresses:
            raise CommandError(f"Could not listen on {host}:{port} (is another server using that port?).")
        if self.failure:
            raise CommandError(f"Stopped: {self.failure}")
        self.stdout.write("Space stopped.")

    @staticmethod
    def tls():
        """The TLS options from the certificate and key, or None for plain HTTP; refuses what cannot serve."""
        if settings.SPACE_TLS:
            try:
                return server_options(settings.SPACE_TLS_CERT_FILE, settings.SPACE_TLS_KEY_FILE)
            except TLSConfigError as error:
                raise CommandError(f"Cannot serve HTTPS: {error}.") from None
        if settings.PRODUCTION and not settings.SPACE_BEHIND_TLS_PROXY:
            raise CommandError(
                "The production profile serves HTTPS only: set SPACE_TLS_CERT_FILE and SPACE_TLS_KEY_FILE "
                "(Space's own TLS; manage.py make_certificate makes them), or declare the TLS reverse proxy in "
                "front with SPACE_BEHIND_TLS_PROXY=true."
            )
        return None

    def serve_tls(self, http_factory):
        # A redirect names only hosts Django would answer for (SPACE_ALLOWED_HOSTS).
        return SchemeSniffingFactory(
            self.tls_options, http_factory, lambda host: validate_host(host, settings.ALLOWED_HOSTS)
        )

    def application(self):
        from space.asgi import application

        if settings.SPACE_BEHIND_TLS_PROXY:
            # The proxy also serves the collected static files.
            return application
        return ASGIStaticFilesHandler(application)

    def proxy_headers(self) -> dict:
        if not settings.SPACE_BEHIND_TLS_PROXY:
            return {}
        return {
            "proxy_forwarded_address_header": "X-Forwarded-For",
            "proxy_forwarded_port_header": "X-Forwarded-Port",
            "proxy_forwarded_proto_header": "X-Forwarded-Proto",
        }

    def announce(self, address):
        host = f"[{address.host}]" if ":" in address.host else address.host
        scheme = "https" if self.tls_options else "http"
        self.stdout.write(f"Space is listening on {scheme}://{host}:{address.port}/ (SIGTERM or Ctrl-C stops it)")
        self.stdout.flush()

    def start_services(self):
        def started(services):
            self.started = services

        def failed(failure):
            self.failure = f"a service failed to start: {failure.getErrorMessage()}"
            reactor.stop()

        run_coroutine(start_all(self.services)).addCallbacks(started, failed)

    @staticmethod
    def stop_when_running(signum, frame):
        reactor.callFromThread(reactor.stop)

    def stop_services(self):
        # Returning the Deferred makes the reactor wait for the services before it stops.
        return run_coroutine(stop_all(self.started))
