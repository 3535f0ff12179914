"""A real Mosquitto for the face terminal tests: the device CA, the configuration Space writes, on a free port."""

import contextlib
import getpass
import socket
import subprocess
from pathlib import Path

from devices.face import pki
from devices.face.broker import write_broker_config
from tests.support.ports import free_port
from tests.support.waiting import wait_until

HOST = "127.0.0.1"
MOSQUITTO = "/usr/sbin/mosquitto"  # Debian's (scripts/install.sh)
MOSQUITTO_PUB = "/usr/bin/mosquitto_pub"


def accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


class Broker:
    def __init__(self, folder: Path, port: int, process: subprocess.Popen, log: Path):
        self.folder, self.port, self.process, self.log = folder, port, process, log
        self.paths = pki.DevicePaths(folder)

    def terminal(self, terminal_id: str) -> pki.Identity:
        """Commission a terminal: its certificate and key (made once per broker)."""
        identity = self.paths.terminal(terminal_id)
        return identity if identity.cert.exists() else pki.issue_terminal(terminal_id, self.folder)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def running_broker(folder: Path):
    """Mosquitto with Space's configuration on a free loopback port, until the block ends."""
    pki.issue_broker([HOST], folder)
    pki.issue_space_client(folder)
    port = free_port()
    # Started as root (CI), Mosquitto would switch to the user "mosquitto", who cannot read the 0600 keys.
    files = write_broker_config(pki.DevicePaths(folder), port=port, bind=HOST, run_as=getpass.getuser())
    log = folder / "mosquitto.log"
    with open(log, "wb") as output:
        process = subprocess.Popen([MOSQUITTO, "-c", str(files.config)], stdout=output, stderr=subprocess.STDOUT)
    broker = Broker(folder, port, process, log)
    try:
        wait_until(
            lambda: process.poll() is not None or accepts(port), 10, lambda: f"Mosquitto listening: {broker.output()}"
        )
        assert process.poll() is None, f"Mosquitto exited: {broker.output()}"
        yield broker
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def other_ca_terminal(terminal_id: str, folder: Path, ca: Path) -> pki.Identity:
    """A certificate for ``terminal_id`` from another CA (made in ``folder``), by a client that trusts ``ca``."""
    made = pki.issue_terminal(terminal_id, folder)
    return pki.Identity(made.cert, made.key, ca)
