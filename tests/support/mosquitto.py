"""A real Mosquitto for the face terminal tests: the device CA, the configuration Space writes, on a free port.

The broker itself is started by :mod:`simulation.face_broker` (the benches run the same one).
"""

from pathlib import Path

from devices.face import pki
from simulation.face_broker import HOST, MOSQUITTO, Broker, accepts, running_broker

MOSQUITTO_PUB = "/usr/bin/mosquitto_pub"

__all__ = ["HOST", "MOSQUITTO", "MOSQUITTO_PUB", "Broker", "accepts", "other_ca_terminal", "running_broker"]


def other_ca_terminal(terminal_id: str, folder: Path, ca: Path) -> pki.Identity:
    """A certificate for ``terminal_id`` from another CA (made in ``folder``), by a client that trusts ``ca``."""
    made = pki.issue_terminal(terminal_id, folder)
    return pki.Identity(made.cert, made.key, ca)
