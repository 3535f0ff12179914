"""A real Mosquitto for the face terminal tests: the device CA, the configuration Space writes, on a free port.

The broker itself is started by :mod:`simulation.face_broker` (the benches run the same one).
"""

from pathlib import Path

from accesscontrol.facematch import GalleryStore
from accesscontrol.snapshot import SnapshotStore
from devices.face import pki
from devices.face.service import FaceService
from simulation.face_broker import HOST, MOSQUITTO, Broker, accepts, running_broker
from tests.support.services import RunningService
from tests.support.waiting import wait_until

MOSQUITTO_PUB = "/usr/bin/mosquitto_pub"

__all__ = [
    "HOST",
    "MOSQUITTO",
    "MOSQUITTO_PUB",
    "Broker",
    "accepts",
    "face_service",
    "other_ca_terminal",
    "running_broker",
]


def other_ca_terminal(terminal_id: str, folder: Path, ca: Path) -> pki.Identity:
    """A certificate for ``terminal_id`` from another CA (made in ``folder``), by a client that trusts ``ca``."""
    made = pki.issue_terminal(terminal_id, folder)
    return pki.Identity(made.cert, made.key, ca)


def face_service(broker: Broker, timeout: float = 15) -> RunningService:
    """Space's face terminal service connected to ``broker``, with a rules snapshot and galleries of its own
    (the process's are shared by every test); ``.service`` is the FaceService, ``stop()`` ends it."""
    stores: dict[str, GalleryStore] = {}
    service = FaceService(
        HOST,
        broker.port,
        broker.paths.space,
        store=SnapshotStore(),
        galleries=lambda model: stores.setdefault(model, GalleryStore(model)),
    )
    running = RunningService(service)
    wait_until(lambda: service.connector.connected, timeout, broker.output)
    return running
