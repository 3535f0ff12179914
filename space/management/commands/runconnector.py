"""``manage.py runconnector NAME``: an alias of ``manage.py runservice NAME`` for the PMS and SHIP connectors.

One connector alone, in a process of its own, until SIGTERM or SIGINT, holding
the lease ``connector-NAME`` when REDIS_URL is set (space/management/commands/runservice.py).
"""

from space.management.commands import runservice
from space.services import connectors


class Command(runservice.Command):
    help = "Run one PMS or SHIP connector alone, until SIGTERM or SIGINT (runservice NAME)."
    kind = "connector"
    buses = False

    def names(self) -> list[str]:
        return [entry.name for entry in connectors()]

    def add_address_arguments(self, parser):
        pass  # each connector listens where its settings say
