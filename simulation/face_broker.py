"""A real Mosquitto with the configuration Space writes, on a free loopback port: for simulations, benches, tests.

:func:`running_broker` makes the device CA, the broker's and Space's
certificates in ``folder`` (devices/face/pki.py), writes ``mosquitto.conf`` and
its ACL (devices/face/broker.py) and runs ``/usr/sbin/mosquitto`` with them
until the block ends. Mosquitto runs as the current user (it would switch to
the user ``mosquitto`` when started as root, who cannot read the 0600 keys),
with its open-file limit raised to the hard limit: a thousand terminals are a
thousand sockets, past the usual soft limit of 1,024.
"""

import contextlib
import getpass
import resource
import socket
import subprocess
import time
from pathlib import Path

from devices.face import pki
from devices.face.broker import write_broker_config

HOST = "127.0.0.1"
MOSQUITTO = "/usr/sbin/mosquitto"  # Debian's (scripts/install.sh)
START_SECONDS = 10.0


def raise_open_files() -> int:
    """Raise this process's soft limit of open files to its hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    """A loopback port the system just handed out and released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


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
        """A terminal's certificate and key: issued the first time, then taken from the device CA folder."""
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
    files = write_broker_config(pki.DevicePaths(folder), port=port, bind=HOST, run_as=getpass.getuser())
    log = folder / "mosquitto.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(  # noqa: S603 (Debian's mosquitto, our own configuration)
            [MOSQUITTO, "-c", str(files.config)],
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=raise_open_files,  # only setrlimit: safe between fork and exec
        )
    broker = Broker(folder, port, process, log)
    try:
        deadline = time.monotonic() + START_SECONDS
        while process.poll() is None and not accepts(port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"Mosquitto is not listening after {START_SECONDS} s: {broker.output()}")
            time.sleep(0.02)
        if process.poll() is not None:
            raise RuntimeError(f"Mosquitto exited: {broker.output()}")
        yield broker
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
