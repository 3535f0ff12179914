"""``manage.py face_terminal ID``: commission a face terminal (its certificate, and with ``--name`` and
``--access-point`` its device and terminal rows), or decommission it (``--revoke``)."""

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core.certificates import CertificateError
from devices import actions
from devices.face import pki
from devices.management.commands.commission_device import VIA, find_access_point
from devices.models import FaceTerminal


def errors_text(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(f"{name}: {' '.join(messages)}" for name, messages in error.message_dict.items())
    return " ".join(error.messages)


class Command(BaseCommand):
    help = (
        "Issue a face terminal's client certificate (CN = its id) from the device CA, replacing any earlier one; "
        "with --name and --access-point, also commission its device and terminal rows (as the web app does); "
        "with --revoke, revoke it and disable its device (the broker refuses it after its next reload: SIGHUP)."
    )

    def add_arguments(self, parser):
        parser.add_argument("terminal_id", metavar="ID", help="The terminal's id: letters, digits, '-', '_'.")
        parser.add_argument("--revoke", action="store_true", help="Decommission: revoke the terminal's certificate.")
        parser.add_argument("--out", help="Folder of the device CA (default VAR_DIR/device-ca).")
        parser.add_argument("--name", help="Commission the terminal's rows too: its device's name.")
        parser.add_argument(
            "--access-point", metavar="NAME_OR_ID", help="With --name: the door it guards (a name, or an id)."
        )

    def handle(self, *args, **options):
        folder = Path(options["out"] or pki.device_ca_folder()).resolve()
        terminal_id = options["terminal_id"]
        paths = pki.DevicePaths(folder)
        if not paths.ca.ca_key.exists():
            raise CommandError(f"no device CA in {folder}: run manage.py face_broker first")
        if options["revoke"]:
            self.revoke(terminal_id, folder, paths)
            return
        if (options["name"] is None) != (options["access_point"] is None):
            raise CommandError("--name and --access-point go together: they commission the terminal's rows.")
        if options["name"] is not None:
            self.commission(terminal_id, options["name"], options["access_point"])
        try:
            identity = pki.issue_terminal(terminal_id, folder)
        except (CertificateError, OSError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Terminal {terminal_id}: certificate {identity.cert}, key {identity.key} (mode 0600), CA {identity.ca}.\n"
            "Load all three into the terminal."
        )

    def commission(self, terminal_id: str, name: str, access_point: str) -> None:
        if FaceTerminal.objects.filter(terminal_id=terminal_id).exists():
            raise CommandError(
                f"the terminal {terminal_id!r} is commissioned already; without --name, this issues a new certificate"
            )
        try:
            terminal = actions.commission_face_terminal(
                name=name, terminal_id=terminal_id, access_point=find_access_point(access_point), operator=None, via=VIA
            )
        except ValidationError as error:
            raise CommandError(errors_text(error)) from None
        self.stdout.write(
            f"Commissioned {terminal} (device id {terminal.device.device_id}) at {terminal.access_point}."
        )

    def revoke(self, terminal_id: str, folder: Path, paths: pki.DevicePaths) -> None:
        terminal = FaceTerminal.objects.select_related("device").filter(terminal_id=terminal_id).first()
        if terminal is not None and terminal.device.enabled:
            actions.decommission_face_terminal(terminal, operator=None, via=VIA)
            self.stdout.write(f"Disabled {terminal.device} (its enrolments there are cancelled).")
        try:
            revoked = pki.revoke_terminal(terminal_id, folder)
        except (CertificateError, OSError) as error:
            raise CommandError(str(error)) from None
        if not revoked:
            if terminal is None:
                raise CommandError(f"no certificate for the terminal {terminal_id!r} in {folder}")
            self.stdout.write(f"No certificate for {terminal_id} in {folder}: none to revoke.")
            return
        self.stdout.write(
            f"Revoked {terminal_id}'s certificate ({paths.crl}); reload the broker (SIGHUP) to refuse it."
        )
