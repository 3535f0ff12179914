"""``manage.py runbridge [--host H] [--port P]``: an alias of ``manage.py runservice device-bridge``.

The device bridge alone, in a process of its own, until SIGTERM or SIGINT,
holding the lease ``device-bridge`` when REDIS_URL is set (space/management/commands/runservice.py).
"""

from django.conf import settings

from space.management.commands import runservice


class Command(runservice.Command):
    help = "Run the device bridge (SDP/1 over UDP) alone, until SIGTERM or SIGINT (runservice device-bridge)."

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
        return super().handle(*args, **options, name="device-bridge")
