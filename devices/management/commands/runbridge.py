"""``manage.py runbridge``: the device bridge alone, in a process of its own, until SIGTERM or SIGINT.

For a site that runs the bridge as a system service of its own rather than as
a Celery task. With Redis (REDIS_URL) it holds the same lease as the task
``devices.tasks.run_bridge``, so beat does not start a second bridge beside it
and a second ``runbridge`` refuses to start.
"""

import signal

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core import hosting
from devices.tasks import bridge_lease


class Command(BaseCommand):
    help = "Run the device bridge (SDP/1 over UDP) alone, until SIGTERM or SIGINT."

    def add_arguments(self, parser):
        parser.add_argument(
            "--host", help=f"Interface to listen on (SPACE_DEVICE_HOST, now {settings.SPACE_DEVICE_HOST})."
        )
        parser.add_argument(
            "--port",
            type=int,
            help=f"UDP port to listen on, 0 for any free one (SPACE_DEVICE_PORT, now {settings.SPACE_DEVICE_PORT}).",
        )

    def handle(self, *args, **options):
        from devices.sdp.bridge import Bridge

        self.host = settings.SPACE_DEVICE_HOST if options["host"] is None else options["host"]
        port = settings.SPACE_DEVICE_PORT if options["port"] is None else options["port"]
        bridge = Bridge(host=self.host, port=port)
        lease = bridge_lease() if settings.REDIS_URL else None
        try:
            outcome = hosting.run(bridge, lease, on_started=self.announce, stop_signals=(signal.SIGTERM, signal.SIGINT))
        except redis.RedisError as error:
            raise CommandError(f"Redis, which holds the bridge's lease, cannot be reached: {error}") from error
        except OSError as error:
            raise CommandError(f"The device bridge could not start on udp port {port}: {error}") from error
        if outcome == hosting.ALREADY_RUNNING:
            raise CommandError(f"A device bridge is already running: another process holds the lease {lease.key}.")
        if outcome == hosting.LEASE_LOST:
            raise CommandError(f"The device bridge stopped: it lost the lease {lease.key}.")
        self.stdout.write("Device bridge stopped.")

    def announce(self, bridge):
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.stdout.write(f"Device bridge listening on udp://{host}:{bridge.port} (SIGTERM or Ctrl-C stops it)")
        self.stdout.flush()
