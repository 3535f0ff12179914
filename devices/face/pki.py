"""The device CA of face terminals, under ``VAR_DIR/device-ca`` like the site CA under ``VAR_DIR/tls``.

One CA, kept apart from the site's HTTPS CA, signs three kinds of certificate:
each terminal's client certificate (common name = the terminal's id, which the
broker takes as its user name), Space's own client certificate (common name
``SPACE_IDENTITY``) and the broker's server certificate (its host names and
addresses). A terminal trusts the broker because the CA signed it; the broker
lets in only clients the CA signed and has not revoked (``revoke_terminal``
adds a decommissioned terminal's certificate to the CA's revocation list, which
the broker reads when it starts or is sent SIGHUP). Keys are written 0600, whole or not at all.
"""

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.conf import settings

from core.certificates import (
    CLIENT_DAYS,
    SERVER_DAYS,
    CertificateError,
    SitePaths,
    certificate_pem,
    key_pem,
    load_ca,
    load_or_make_ca,
    new_key,
    sign_client,
    sign_revocations,
    sign_server,
    subject_names,
    write_private,
    write_public,
)
from devices.face.topics import TERMINAL_ID

SPACE_IDENTITY = "space.server"  # a dot, which no terminal id may have
CA_NAME = "Space device CA (face terminals)"


@dataclass(frozen=True)
class Identity:
    """A certificate, its key, and the CA certificate its holder checks the other end with."""

    cert: Path
    key: Path
    ca: Path


@dataclass(frozen=True)
class DevicePaths:
    folder: Path

    @property
    def ca(self) -> SitePaths:
        return SitePaths(self.folder)

    def identity(self, name: str) -> Identity:
        return Identity(self.folder / f"{name}.crt", self.folder / f"{name}.key", self.ca.ca_cert)

    @property
    def crl(self) -> Path:
        return self.folder / "crl.pem"

    @property
    def broker(self) -> Identity:
        return self.identity("broker")

    @property
    def space(self) -> Identity:
        return self.identity("space-client")

    def terminal(self, terminal_id: str) -> Identity:
        return Identity(
            self.folder / "terminals" / f"{terminal_id}.crt",
            self.folder / "terminals" / f"{terminal_id}.key",
            self.ca.ca_cert,
        )


def device_ca_folder() -> Path:
    """SPACE_FACE_CA_DIR, or VAR_DIR/device-ca."""
    return Path(getattr(settings, "SPACE_FACE_CA_DIR", "") or Path(settings.VAR_DIR) / "device-ca")


def _issue(paths: DevicePaths, identity: Identity, sign) -> Identity:
    now = datetime.datetime.now(datetime.UTC)
    ca_key, ca_cert, _ = load_or_make_ca(paths.ca, CA_NAME, now)
    key = new_key()
    certificate = sign(key, ca_key, ca_cert, now)
    write_private(identity.key, key_pem(key))
    write_public(identity.cert, certificate_pem(certificate))
    return identity


def issue_terminal(terminal_id: str, folder: Path | None = None, days: int = CLIENT_DAYS) -> Identity:
    """Commission ``terminal_id``: a new key and client certificate (CN = the id), replacing any earlier one."""
    if not TERMINAL_ID.fullmatch(terminal_id):
        raise CertificateError(
            f"not a terminal id: {terminal_id!r} (letters, digits, '-' and '_', 1 to 64, a letter or digit first)"
        )
    paths = DevicePaths(folder or device_ca_folder())
    return _issue(
        paths,
        paths.terminal(terminal_id),
        lambda key, ca_key, ca_cert, now: sign_client(terminal_id, key, ca_key, ca_cert, now, days),
    )


def issue_space_client(folder: Path | None = None, days: int = CLIENT_DAYS) -> Identity:
    """Space's own client certificate for the broker (CN = ``SPACE_IDENTITY``, allowed every face topic)."""
    paths = DevicePaths(folder or device_ca_folder())
    return _issue(
        paths,
        paths.space,
        lambda key, ca_key, ca_cert, now: sign_client(SPACE_IDENTITY, key, ca_key, ca_cert, now, days),
    )


def issue_broker(hosts: list[str], folder: Path | None = None, days: int = SERVER_DAYS) -> Identity:
    """The broker's server certificate for ``hosts`` (the names and addresses terminals and Space connect to)."""
    subject_names(hosts)  # refuse bad hosts before making anything
    paths = DevicePaths(folder or device_ca_folder())
    return _issue(
        paths, paths.broker, lambda key, ca_key, ca_cert, now: sign_server(hosts, key, ca_key, ca_cert, now, days)
    )


def revocations(paths: DevicePaths) -> dict[int, datetime.datetime]:
    """The serial numbers the CA has revoked, and when."""
    if not paths.crl.exists():
        return {}
    crl = x509.load_pem_x509_crl(paths.crl.read_bytes())
    return {entry.serial_number: entry.revocation_date_utc for entry in crl}


def write_revocations(paths: DevicePaths, revoked: dict[int, datetime.datetime]) -> Path:
    """Sign and write the CA's revocation list (an empty one the first time: the broker needs the file)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, ca_cert, _ = load_or_make_ca(paths.ca, CA_NAME, now)
    crl = sign_revocations(revoked, ca_key, ca_cert, now)
    write_public(paths.crl, crl.public_bytes(serialization.Encoding.PEM))
    return paths.crl


def revoke_terminal(terminal_id: str, folder: Path | None = None) -> bool:
    """Decommission ``terminal_id``: its certificate is revoked and its files removed. False if it had none.

    The broker refuses the certificate from its next reload (SIGHUP) on; a connection already open stays
    until it closes.
    """
    paths = DevicePaths(folder or device_ca_folder())
    identity = paths.terminal(terminal_id)
    if not TERMINAL_ID.fullmatch(terminal_id) or not identity.cert.exists():
        return False
    load_ca(paths.ca)  # the CA must be there, and be this terminal's
    certificate = x509.load_pem_x509_certificate(identity.cert.read_bytes())
    revoked = revocations(paths)
    revoked[certificate.serial_number] = datetime.datetime.now(datetime.UTC)
    write_revocations(paths, revoked)
    identity.key.unlink(missing_ok=True)
    identity.cert.unlink(missing_ok=True)
    return True
