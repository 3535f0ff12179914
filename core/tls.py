"""TLS for a Twisted web server: the server's TLS options, and one port for both schemes.

``server_options`` loads a certificate (with its chain) and its key and allows
TLS 1.2 and 1.3 only, with AEAD ciphers only: ECDHE key exchange with AES-GCM
or ChaCha20-Poly1305 for TLS 1.2 (forward secrecy, no CBC, no RSA key
exchange); TLS 1.3's suites are all AEAD. Elliptic curves are OpenSSL 3's
defaults (X25519, P-256, X448, P-521, P-384).

``SchemeSniffingFactory`` listens for both on one port: a connection whose
first byte opens a TLS handshake goes on, through TLS, to the web server's
factory; one that speaks plain HTTP gets a redirect to the same host, port and
path over ``https://`` and is closed. So an operator who types
``http://space:8100`` lands on the HTTPS page instead of a reset connection.

It knows no application: the caller gives the factory to wrap and says which
host names a redirect may point at.
"""

import re
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from twisted.internet import protocol
from twisted.internet.ssl import AcceptableCiphers, CertificateOptions, TLSVersion
from twisted.protocols.policies import TimeoutMixin
from twisted.protocols.tls import TLSMemoryBIOFactory

# TLS 1.2's AEAD suites with forward secrecy, strongest first (the server's preference wins).
AEAD_CIPHERS_TLS12 = (
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
)
TLS_HANDSHAKE = 0x16  # the first byte of every TLS record that opens a connection (a ClientHello)
MAX_PLAIN_HEAD = 8192  # a plain request's line and headers, read to build its redirect
FIRST_BYTES_SECONDS = 30  # a connection that says nothing this long is closed


class TLSConfigError(Exception):
    """The certificate or key cannot be used; the message says which file and why."""


# --- the server's TLS options --------------------------------------------------------------------------------------


def read_pem(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise TLSConfigError(f"cannot read the {what} {path}: {error.strerror or error}") from None


def load_certificates(path: str | Path) -> list[x509.Certificate]:
    """The certificates of a PEM file: the server's first, then the chain that completes it (if any)."""
    data = read_pem(path, "certificate")
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TLSConfigError(f"{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)") from None
    return certificates


def load_private_key(path: str | Path):
    data = read_pem(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TLSConfigError(
            f"{path} is encrypted with a passphrase: Space needs the key unencrypted, readable by its user only"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise TLSConfigError(f"{path} holds no PEM private key (-----BEGIN PRIVATE KEY-----)") from None
    # Browsers take certificates with RSA and ECDSA keys only (not Ed25519).
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise TLSConfigError(f"{path}: an RSA or ECDSA key is needed, not {type(key).__name__}")
    return key


def public_bytes(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def server_options(cert_file: str | Path, key_file: str | Path) -> CertificateOptions:
    """TLS options for a server with this certificate (and chain) and key; TLSConfigError when they cannot serve."""
    certificates = load_certificates(cert_file)
    key = load_private_key(key_file)
    if public_bytes(certificates[0].public_key()) != public_bytes(key.public_key()):
        raise TLSConfigError(
            f"the key in {key_file} does not belong to the certificate in {cert_file} "
            "(the server's certificate must come first in its file)"
        )
    return CertificateOptions(
        # pyOpenSSL takes cryptography's objects (its own X509 and PKey are deprecated).
        privateKey=key,
        certificate=certificates[0],
        extraCertChain=certificates[1:],
        raiseMinimumTo=TLSVersion.TLSv1_2,
        acceptableCiphers=AcceptableCiphers.fromOpenSSLCipherString(":".join(AEAD_CIPHERS_TLS12)),
    )


# --- plain HTTP on the TLS port: a redirect ------------------------------------------------------------------------

# A Host header: a DNS name, an IPv4 address or a bracketed IPv6 address, and an optional port. Nothing else (no
# user info, no path, no spaces) may reach the Location header.
HOST = re.compile(r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?")
REQUEST_LINE = re.compile(rb"(?P<method>[A-Z]{1,16}) (?P<target>[\x21-\x7e]{1,4096}) HTTP/1\.[01]")
SAFE_METHODS = (b"GET", b"HEAD")


def plain_answer(status: str, headers: tuple[tuple[str, str], ...] = (), body: str = "") -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{name}: {value}" for name, value in headers)]
    lines += ["Content-Type: text/plain; charset=utf-8", f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("ascii")


def https_redirect(head: bytes, local_host: str, local_port: int, host_allowed: Callable[[str], bool]) -> bytes:
    """The answer to a plain HTTP request (its request line and headers) on the HTTPS port.

    The redirect keeps the host and port the client asked for (its Host header; else this server's address and
    port: TLS is on the same port) and the path with its query. GET and HEAD get 301; other methods 308, which
    keeps the method and body.
    """
    lines = head.split(b"\r\n")
    request = REQUEST_LINE.fullmatch(lines[0])
    if not request:
        return plain_answer("400 Bad Request", body="This port speaks HTTPS.\n")
    target = request["target"].decode("ascii")
    if target.startswith(("http://", "https://")):  # absolute form: keep its path only
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    if not target.startswith("/"):
        return plain_answer("400 Bad Request", body="This port speaks HTTPS.\n")

    host_values = [line.split(b":", 1)[1].strip() for line in lines[1:] if line.lower().startswith(b"host:")]
    if len(host_values) > 1:
        return plain_answer("400 Bad Request", body="More than one Host header.\n")
    if host_values:
        host = host_values[0].decode("latin-1")
        found = HOST.fullmatch(host)
        if not found or not host_allowed(found["name"]):
            return plain_answer("400 Bad Request", body="Unknown host.\n")
        name, port = found["name"], found["port"] or local_port
    else:
        name, port = f"[{local_host}]" if ":" in local_host else local_host, local_port
    status = "301 Moved Permanently" if request["method"] in SAFE_METHODS else "308 Permanent Redirect"
    location = f"https://{name}:{port}{target}"
    return plain_answer(status, (("Location", location),), f"This port speaks HTTPS: {location}\n")


# --- one port, both schemes ----------------------------------------------------------------------------------------


class SchemeSniffer(protocol.Protocol, TimeoutMixin):
    """Reads a connection's first bytes, then hands it to TLS or answers it with a redirect."""

    def __init__(self, factory: "SchemeSniffingFactory", address):
        self.factory = factory
        self.address = address
        self.next: protocol.Protocol | None = None  # the TLS protocol, once the first byte said TLS
        self.plain = b""
        self.answered = False

    def connectionMade(self):
        self.setTimeout(FIRST_BYTES_SECONDS)

    def timeoutConnection(self):
        self.transport.abortConnection()

    def dataReceived(self, data: bytes):
        if self.next is not None:
            self.next.dataReceived(data)
            return
        if self.answered:  # the rest of a plain request is not read
            return
        if not self.plain and data[0] == TLS_HANDSHAKE:
            self.setTimeout(None)  # from here the web server's own timeouts apply
            self.next = self.factory.tls.buildProtocol(self.address)
            self.next.makeConnection(self.transport)
            self.next.dataReceived(data)
            return
        self.plain += data
        end = self.plain.find(b"\r\n\r\n")
        if end < 0 and len(self.plain) < MAX_PLAIN_HEAD:
            return
        self.setTimeout(None)
        self.answered = True
        if end < 0:
            answer = plain_answer("431 Request Header Fields Too Large")
        else:
            local = self.transport.getHost()
            answer = https_redirect(self.plain[:end], local.host, local.port, self.factory.host_allowed)
        self.transport.write(answer)
        self.transport.loseConnection()

    def connectionLost(self, reason):
        self.setTimeout(None)
        if self.next is not None:
            self.next.connectionLost(reason)


class SchemeSniffingFactory(protocol.Factory):
    """Serves ``wrapped`` over TLS with ``options``, and redirects plain HTTP on the same port to https://."""

    def __init__(
        self,
        options: CertificateOptions,
        wrapped: protocol.Factory,
        host_allowed: Callable[[str], bool] = lambda host: True,
    ):
        self.tls = TLSMemoryBIOFactory(options, False, wrapped)
        self.host_allowed = host_allowed

    def startFactory(self):
        self.tls.doStart()

    def stopFactory(self):
        self.tls.doStop()

    def buildProtocol(self, addr):
        return SchemeSniffer(self, addr)
