"""A site's own certificate authority and server certificates signed by it (``manage.py make_certificate``).

Keys are ECDSA on P-256: every browser and TLS library takes them, they are
small and fast, and as strong as RSA 3072. The CA may sign server
certificates only (basic constraints CA:TRUE, path length 0; key usage
certificate and CRL signing); a server certificate names every host it serves
in its subject alternative names (DNS names and IP addresses, which browsers
check; the common name is only the first host, for people) and may serve TLS
only (extended key usage serverAuth).

The same pieces make a device CA (``make_ca``) whose client certificates
(``sign_client``) name one device in their common name and may authenticate a
TLS client only (extended key usage clientAuth): face terminals and Space
itself present them to the MQTT broker, which takes the common name as the
user name its ACL checks.
"""

import datetime
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 397  # what public CAs may issue; browsers refuse more than 825 days even from a site's own CA
SERVER_DAYS_MAX = 825
CLIENT_DAYS = 825  # a device's certificate; a terminal is commissioned again (a new key) before it runs out
CLOCK_SKEW = datetime.timedelta(hours=1)  # valid from a little before now, for clients whose clocks run slow


class CertificateError(Exception):
    """The hosts, the days or the files given cannot make a certificate; the message says why."""


@dataclass(frozen=True)
class SitePaths:
    folder: Path

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def server_key(self) -> Path:
        return self.folder / "server.key"

    @property
    def server_cert(self) -> Path:
        return self.folder / "server.crt"

    @property
    def server_request(self) -> Path:
        return self.folder / "server.csr"


def subject_names(hosts: list[str]) -> list[x509.GeneralName]:
    """Each host as a subject alternative name: an IP address, or a DNS name (``*.`` allowed first)."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        bare = host.strip("[]")
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(bare)))
            continue
        except ValueError:
            pass
        labels = host.lower().rstrip(".").split(".")
        if not host or not all(
            label and len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii()
            for label in (labels[1:] if labels[0] == "*" else labels)
        ):
            raise CertificateError(f"not a host name or IP address: {host!r}")
        names.append(x509.DNSName(".".join(labels)))
    if not names:
        raise CertificateError("name at least one host (its DNS name or IP address)")
    return names


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def write_private(path: Path, data: bytes) -> None:
    """Write a key readable by its owner only (0600), whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_public(path: Path, data: bytes) -> None:
    write_private(path, data)
    path.chmod(0o644)


def key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(common_name: str, now: datetime.datetime, days: int = CA_DAYS):
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def load_ca(paths: SitePaths):
    """The CA already in ``paths.folder``: its key and certificate, checked to be a pair and a CA."""
    try:
        key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
        certificate = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    except (OSError, ValueError, TypeError) as error:
        raise CertificateError(f"cannot use the CA in {paths.folder}: {error}") from None
    if key.public_key() != certificate.public_key():
        raise CertificateError(f"{paths.ca_key} is not the key of {paths.ca_cert}")
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CertificateError(f"{paths.ca_cert} is not a CA certificate")
    return key, certificate


def server_request(hosts: list[str], key) -> x509.CertificateSigningRequest:
    """A certificate signing request for a site's own PKI: the same names and use as ``sign_server``'s."""
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0].strip("[]"))]))
        .add_extension(x509.SubjectAlternativeName(subject_names(hosts)), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )


def _sign_leaf(common_name: str, key, ca_key, ca_cert: x509.Certificate, now, not_after, usage, alt_names=None):
    """An end-entity certificate (not a CA; signing only) for ``usage`` (an ExtendedKeyUsageOID), signed by the CA."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
    )
    if alt_names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def sign_server(hosts: list[str], key, ca_key, ca_cert: x509.Certificate, now: datetime.datetime, days: int):
    if not 1 <= days <= SERVER_DAYS_MAX:
        raise CertificateError(f"a server certificate is valid 1 to {SERVER_DAYS_MAX} days (browsers refuse more)")
    not_after = min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)
    return _sign_leaf(
        hosts[0].strip("[]"),
        key,
        ca_key,
        ca_cert,
        now,
        not_after,
        ExtendedKeyUsageOID.SERVER_AUTH,
        alt_names=subject_names(hosts),
    )


def sign_client(common_name: str, key, ca_key, ca_cert: x509.Certificate, now: datetime.datetime, days: int):
    """A certificate for a TLS client named ``common_name``, signed by the CA (chain: this one, then the CA)."""
    if not 1 <= days <= CLIENT_DAYS:
        raise CertificateError(f"a client certificate is valid 1 to {CLIENT_DAYS} days")
    not_after = min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)
    return _sign_leaf(common_name, key, ca_key, ca_cert, now, not_after, ExtendedKeyUsageOID.CLIENT_AUTH)


def sign_revocations(revoked: dict[int, datetime.datetime], ca_key, ca_cert: x509.Certificate, now: datetime.datetime):
    """The CA's revocation list of ``revoked`` (serial number → when), valid as long as the CA.

    A TLS server that checks a CRL refuses every client once the list is past its next update, so the list
    stays valid until the CA itself runs out; it is signed again at every revocation.
    """
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - CLOCK_SKEW)
        .next_update(ca_cert.not_valid_after_utc)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    for serial, when in sorted(revoked.items()):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    return builder.sign(ca_key, hashes.SHA256())


def certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def load_or_make_ca(paths: SitePaths, ca_name: str, now: datetime.datetime):
    """The CA in ``paths.folder``, made (key 0600) the first time; its key, its certificate and whether it is new."""
    if paths.ca_key.exists() or paths.ca_cert.exists():
        return (*load_ca(paths), False)
    ca_key, ca_cert = make_ca(ca_name, now)
    write_private(paths.ca_key, key_pem(ca_key))
    write_public(paths.ca_cert, certificate_pem(ca_cert))
    return ca_key, ca_cert, True


@dataclass(frozen=True)
class Made:
    paths: SitePaths
    ca_made: bool  # False: the CA already in the folder was used
    ca_cert: x509.Certificate
    server_cert: x509.Certificate


def make_site_certificate(
    hosts: list[str], folder: Path, days: int = SERVER_DAYS, ca_name: str = "Space site CA"
) -> Made:
    """Make (or reuse) the site CA in ``folder`` and a new server key and certificate for ``hosts`` signed by it."""
    subject_names(hosts)  # refuse bad hosts before writing anything
    paths = SitePaths(folder)
    now = datetime.datetime.now(datetime.UTC)
    if paths.ca_key.exists() or paths.ca_cert.exists():
        ca_key, ca_cert = load_ca(paths)
        ca_made = False
    else:
        ca_key, ca_cert = make_ca(ca_name, now)
        ca_made = True
    key = new_key()
    certificate = sign_server(hosts, key, ca_key, ca_cert, now, days)
    if ca_made:
        write_private(paths.ca_key, key_pem(ca_key))
        write_public(paths.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    write_private(paths.server_key, key_pem(key))
    write_public(paths.server_cert, certificate.public_bytes(serialization.Encoding.PEM))
    return Made(paths, ca_made, ca_cert, certificate)


def make_request(hosts: list[str], folder: Path) -> SitePaths:
    """A new server key and a signing request for ``hosts``, for a site whose own PKI signs the certificate."""
    subject_names(hosts)
    paths = SitePaths(folder)
    key = new_key()
    request = server_request(hosts, key)
    write_private(paths.server_key, key_pem(key))
    write_public(paths.server_request, request.public_bytes(serialization.Encoding.PEM))
    return paths
