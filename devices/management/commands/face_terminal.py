"""``manage.py face_terminal ID``: commission a face terminal (its certificate), or decommission it (``--revoke``)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from core.certificates import CertificateError
from devices.face import pki


class Command(BaseCommand):
    help = (
        "Issue a face terminal's client certificate (CN = its id) from the device CA, replacing any earlier one; "
        "with --revoke, revoke it (the broker refuses it after its next reload: SIGHUP)."
    )

    def add_arguments(self, parser):
        parser.add_argument("terminal_id", metavar="ID", help="The terminal's id: letters, digits, '-', '_'.")
        parser.add_argument("--revoke", action="store_true", help="Decommission: revoke the terminal's certificate.")
        parser.add_argument("--out", help="Folder of the device CA (default VAR_DIR/device-ca).")

    def handle(self, *args, **options):
        folder = Path(options["out"] or pki.device_ca_folder()).resolve()
        terminal_id = options["terminal_id"]
        paths = pki.DevicePaths(folder)
        if not paths.ca.ca_key.exists():
            raise CommandError(f"no device CA in {folder}: run manage.py face_broker first")
        try:
            if options["revoke"]:
                if not pki.revoke_terminal(terminal_id, folder):
                    raise CommandError(f"no certificate for the terminal {terminal_id!r} in {folder}")
                self.stdout.write(
                    f"Revoked {terminal_id}'s certificate ({paths.crl}); reload the broker (SIGHUP) to refuse it."
                )
                return
            identity = pki.issue_terminal(terminal_id, folder)
        except (CertificateError, OSError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Terminal {terminal_id}: certificate {identity.cert}, key {identity.key} (mode 0600), CA {identity.ca}.\n"
            "Load all three into the terminal."
        )
