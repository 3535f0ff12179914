"""The Mosquitto configuration Space writes for the site's face terminal broker (docs/face-terminals.md).

One TLS listener (8883 by default) that takes only clients with a certificate
signed by the device CA, each named by its certificate's common name; no
anonymous clients; and an ACL in which a terminal reads and writes its own
topics only (``pattern`` lines with ``%u``, the user name = the terminal's id)
while Space's own identity reads and writes every face topic. A message the
ACL refuses is dropped by the broker without a word to the sender.
"""

from dataclasses import dataclass
from pathlib import Path

from core.certificates import write_public
from devices.face import topics
from devices.face.pki import SPACE_IDENTITY, DevicePaths, revocations, write_revocations

PORT = 8883
# The broker's ceiling for one packet; Space's own (devices.face.connector.MAX_PAYLOAD) is lower, so an
# oversized payload reaches Space and is counted there rather than only closing the terminal's connection.
MAX_PACKET_BYTES = 256 * 1024
MAX_QUEUED_MESSAGES = 100_000  # per client, QoS 1 messages waiting for it (Space's subscription above all)
MAX_INFLIGHT_MESSAGES = 100  # per client, QoS 1 messages sent and not yet acknowledged (default 20)


@dataclass(frozen=True)
class BrokerFiles:
    config: Path
    acl: Path


def acl_text() -> str:
    lines = [
        "# Written by Space (devices/face/broker.py); rewritten when the broker's configuration is written again.",
        f"user {SPACE_IDENTITY}",
        f"topic readwrite {topics.ROOT}/#",
        "",
        "# Each terminal: its own topics only (%u = its certificate's common name, its id).",
    ]
    lines += [f"pattern write {topics.ROOT}/%u/{kind}" for kind in topics.TERMINAL_WRITES]
    lines += [f"pattern read {topics.ROOT}/%u/{kind}" for kind in topics.TERMINAL_READS]
    return "\n".join(lines) + "\n"


def config_text(
    paths: DevicePaths, acl: Path, port: int = PORT, bind: str | None = None, run_as: str | None = None
) -> str:
    broker = paths.broker
    lines = [
        "# Written by Space (devices/face/broker.py).",
        f"listener {port}" + (f" {bind}" if bind else ""),
        f"cafile {broker.ca}",
        f"certfile {broker.cert}",
        f"keyfile {broker.key}",
        f"crlfile {paths.crl}",  # decommissioned terminals (devices.face.pki.revoke_terminal)
        "tls_version tlsv1.2",  # the least it takes; TLS 1.3 too
        "require_certificate true",
        "use_identity_as_username true",
        # The client id is the user name too, whatever the client asks: a terminal cannot take over Space's
        # session (or another terminal's) by connecting with its client id.
        "use_username_as_clientid true",
        "allow_anonymous false",
        f"acl_file {acl}",
        f"max_packet_size {MAX_PACKET_BYTES}",
        # Space's one connection carries every terminal's requests: the default queue (1,000 messages) would
        # drop requests in a burst or while Space restarts; this holds 100 s of 1,000 terminals at 1 a second.
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
        "set_tcp_nodelay true",  # answers go out at once, not after Nagle's delay
        "persistence true",  # retained configurations and statuses, and Space's queued messages, survive a restart
        f"persistence_location {paths.folder / 'broker-data'}/",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
    ]
    if run_as:
        lines.append(f"user {run_as}")
    return "\n".join(lines) + "\n"


def write_broker_config(
    paths: DevicePaths, port: int = PORT, bind: str | None = None, run_as: str | None = None
) -> BrokerFiles:
    """Write ``mosquitto.conf`` and ``mosquitto.acl`` beside the device CA (the broker's certificate must exist).

    ``run_as``: the user Mosquitto switches to when started as root (its default is ``mosquitto``, which must
    then be able to read the broker's key).
    """
    for path in (paths.broker.cert, paths.broker.key, paths.broker.ca):
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: issue the broker's certificate first")
    files = BrokerFiles(paths.folder / "mosquitto.conf", paths.folder / "mosquitto.acl")
    (paths.folder / "broker-data").mkdir(parents=True, exist_ok=True)
    if not paths.crl.exists():
        write_revocations(paths, revocations(paths))
    write_public(files.acl, acl_text().encode())
    write_public(files.config, config_text(paths, files.acl, port, bind, run_as).encode())
    return files
