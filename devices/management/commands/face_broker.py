"""``manage.py face_broker HOST...``: the device CA, the broker's and Space's certificates, Mosquitto's files."""

import getpass
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.certificates import CertificateError
from devices.face import pki
from devices.face.broker import PORT, write_broker_config


class Command(BaseCommand):
    help = (
        "Make the face terminals' device CA (or reuse it), a server certificate for the MQTT broker naming every "
        "HOST, Space's client certificate, and Mosquitto's configuration and ACL (docs/face-terminals.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument("hosts", nargs="+", metavar="HOST", help="A name or address terminals use for the broker.")
        parser.add_argument("--port", type=int, default=PORT, help=f"The broker's TLS port (default {PORT}).")
        parser.add_argument("--bind", help="Listen on this address only (default: every address).")
        parser.add_argument(
            "--user",
            default=getpass.getuser(),
            help="The account Mosquitto runs as when started as root; it must read the broker's key "
            "(default: this account, which owns the key).",
        )
        parser.add_argument("--out", help="Folder of the device CA (default VAR_DIR/device-ca).")

    def handle(self, *args, **options):
        folder = Path(options["out"] or pki.device_ca_folder()).resolve()
        if not 1 <= options["port"] <= 65535:
            raise CommandError(f"not a port: {options['port']}")
        try:
            broker = pki.issue_broker(options["hosts"], folder)
            space = pki.issue_space_client(folder)
            files = write_broker_config(pki.DevicePaths(folder), options["port"], options["bind"], options["user"])
        except (CertificateError, OSError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Device CA: {broker.ca} (key beside it, mode 0600).\n"
            f"Broker: {broker.cert} for {', '.join(options['hosts'])}; configuration {files.config}, ACL {files.acl}.\n"
            f"Space's client certificate: {space.cert}.\n"
            f"Start the broker with: mosquitto -c {files.config}\n"
            "Commission each terminal with: manage.py face_terminal ID"
        )
