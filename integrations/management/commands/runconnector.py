"""``manage.py runconnector NAME``: one PMS or SHIP connector alone, in a process of its own, until SIGTERM or SIGINT.

For a site that runs a connector as a system service of its own rather than as a
Celery task. With Redis (REDIS_URL) it holds the same lease as the task
``integrations.connectors.run_connector``, so beat does not start a second copy
beside it and a second ``runconnector`` of the same name refuses to start.
"""

import signal

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core import hosting
from integrations.connectors import CONNECTORS


class Command(BaseCommand):
    help = "Run one PMS or SHIP connector alone, until SIGTERM or SIGINT."

    def add_arguments(self, parser):
        parser.add_argument("name", help=f"The connector: {', '.join(CONNECTORS) or 'none yet'}.")

    def handle(self, *args, **options):
        connector = CONNECTORS.get(options["name"])
        if connector is None:
            raise CommandError(f"No connector {options['name']!r}; there are: {', '.join(CONNECTORS) or 'none'}.")
        if not connector.configured:
            raise CommandError(f"The {connector.name} connector is not configured: set {connector.setting}.")
        self.connector = connector
        lease = connector.lease() if settings.REDIS_URL else None
        try:
            outcome = hosting.run(
                connector.make(), lease, on_started=self.announce, stop_signals=(signal.SIGTERM, signal.SIGINT)
            )
        except redis.RedisError as error:
            raise CommandError(f"Redis, which holds the connector's lease, cannot be reached: {error}") from error
        except OSError as error:
            raise CommandError(f"The {connector.name} connector could not start: {error}") from error
        if outcome == hosting.ALREADY_RUNNING:
            raise CommandError(f"The {connector.name} connector is already running: the lease {lease.key} is held.")
        if outcome == hosting.LEASE_LOST:
            raise CommandError(f"The {connector.name} connector stopped: it lost the lease {lease.key}.")
        self.stdout.write(f"{connector.description} stopped.")

    def announce(self, service):
        self.stdout.write(f"{self.connector.description} running (SIGTERM or Ctrl-C stops it)")
        self.stdout.flush()
