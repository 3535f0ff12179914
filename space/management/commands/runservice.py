"""``manage.py runservice NAME``: one long-lived service alone, in a process of its own, until SIGTERM or SIGINT.

For a site that runs a service (the device bridge, the event stream sender, a
PMS or SHIP connector: ``space.services.SERVICES``) as a system service of its
own rather than as a Celery task. With Redis (REDIS_URL) it holds the same
lease as the task ``space.tasks.run_service``, so beat does not start a second
copy beside it and a second ``runservice`` of the same name refuses to start.
It runs whatever ``SPACE_*_IN_RUNSPACE`` says: starting it is the operator's choice.
"""

import signal

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core import hosting, metrics
from space.services import BUS_PREFIX, SERVICES, Entry, hosted, lookup


class Command(BaseCommand):
    help = (
        "Run one long-lived service (the device bridge, the event stream, a connector) alone, until SIGTERM or SIGINT."
    )
    # What this command runs: any hosted service (runconnector narrows it to the connectors).
    kind = "service"

    # An OSDP bus is a service too (osdp-bus-<id>), named from the database.
    buses = True

    def names(self) -> list[str]:
        return [entry.name for entry in hosted()]

    def add_arguments(self, parser):
        also = f", or {BUS_PREFIX}<id> for an OSDP bus" if self.buses else ""
        parser.add_argument("name", help=f"The {self.kind}: {', '.join(self.names())}{also}.")
        self.add_address_arguments(parser)

    def add_address_arguments(self, parser):
        parser.add_argument("--host", help="Interface to listen on, for a service that listens (default: its setting).")
        parser.add_argument(
            "--port",
            type=int,
            help="Port to listen on, 0 for any free one, for a service that listens (default: its setting).",
        )

    def entry(self, options) -> Entry:
        name = options["name"]
        if self.buses and name.startswith(BUS_PREFIX):
            entry = lookup(name)
            if entry is None:
                raise CommandError(f"No enabled OSDP bus {name[len(BUS_PREFIX) :]!r}.")
            return entry
        if name not in self.names():
            raise CommandError(f"No {self.kind} {name!r}; there are: {', '.join(self.names())}.")
        return SERVICES[name]

    def handle(self, *args, **options):
        metrics.sweep()  # the metrics files of processes a kill left behind (core/metrics.py)
        entry = self.entry(options)
        if not entry.configured:
            raise CommandError(f"The {entry.title} is not configured: set {entry.setting}.")
        address = {key: options[key] for key in ("host", "port") if options.get(key) is not None}
        if address and not entry.listens:
            raise CommandError(f"The {entry.title} listens on no port: --host and --port are not for it.")
        service = entry.make(**address)
        self.running = entry
        lease = entry.lease_for() if settings.REDIS_URL else None
        try:
            outcome = hosting.run(
                service, lease, on_started=self.announce, stop_signals=(signal.SIGTERM, signal.SIGINT)
            )
        except redis.RedisError as error:
            raise CommandError(f"Redis, which holds the {entry.title}'s lease, cannot be reached: {error}") from error
        except OSError as error:
            raise CommandError(f"The {entry.title} could not start{where(entry, service)}: {error}") from error
        if outcome == hosting.ALREADY_RUNNING:
            raise CommandError(
                f"{capitalized(entry.a_title)} is already running: another process holds the lease {lease.key}."
            )
        if outcome == hosting.LEASE_LOST:
            raise CommandError(f"The {entry.title} stopped: it lost the lease {lease.key}.")
        self.stdout.write(f"{capitalized(entry.title)} stopped.")

    def announce(self, service):
        entry = self.running
        port = getattr(service, "port", None)
        if entry.listens and port is not None:
            host = getattr(service, "host", None) or "*"
            host = f"[{host}]" if ":" in host else host
            self.stdout.write(
                f"{capitalized(entry.title)} listening on {entry.listens}://{host}:{port} (SIGTERM or Ctrl-C stops it)"
            )
        else:
            self.stdout.write(f"{capitalized(entry.title)} running (SIGTERM or Ctrl-C stops it)")
        self.stdout.flush()


def where(entry: Entry, service) -> str:
    """ " on udp port 7100" for a service that listens and was given a port; else nothing."""
    port = getattr(service, "requested_port", getattr(service, "port", None))
    return f" on {entry.listens} port {port}" if entry.listens and port is not None else ""


def capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]
