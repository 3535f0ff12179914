"""``manage.py make_certificate``: a site CA and a server certificate that a client verifies as a browser would."""

import datetime
import ipaddress
import stat
from io import StringIO

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from django.core.management import CommandError, call_command


def make(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("make_certificate", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def read(folder, name) -> x509.Certificate:
    return x509.load_pem_x509_certificate((folder / name).read_bytes())


def verify(folder, host: x509.verification.Subject) -> list[x509.Certificate]:
    """The chain a TLS client (cryptography's verifier, the web PKI's rules) builds for ``host``, or an error."""
    verifier = PolicyBuilder().store(Store([read(folder, "ca.crt")])).build_server_verifier(host)
    return verifier.verify(read(folder, "server.crt"), [])


@pytest.fixture
def made(tmp_path):
    folder = tmp_path / "tls"
    out, err = make("space.example.com", "10.0.0.5", "localhost", "--out", str(folder))
    return folder, out, err


def test_the_server_certificate_verifies_against_the_ca_for_every_host(made):
    folder, _, _ = made
    for host in (
        x509.DNSName("space.example.com"),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("10.0.0.5")),
    ):
        chain = verify(folder, host)
        assert [c.subject for c in chain] == [read(folder, "server.crt").subject, read(folder, "ca.crt").subject]
    with pytest.raises(VerificationError):
        verify(folder, x509.DNSName("other.example.com"))


def test_the_certificates_say_what_they_may_do(made):
    folder, _, _ = made
    ca, server = read(folder, "ca.crt"), read(folder, "server.crt")
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert (constraints.critical, constraints.value.ca, constraints.value.path_length) == (True, True, 0)
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert list(server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["space.example.com", "localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5")]
    assert isinstance(server.public_key(), ec.EllipticCurvePublicKey) and server.public_key().curve.name == "secp256r1"
    lifetime = server.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=396) < lifetime <= datetime.timedelta(days=397)


def test_keys_are_readable_by_their_owner_only_and_match_their_certificates(made):
    folder, _, _ = made
    for key, cert in (("ca.key", "ca.crt"), ("server.key", "server.crt")):
        assert stat.S_IMODE((folder / key).stat().st_mode) == 0o600
        assert stat.S_IMODE((folder / cert).stat().st_mode) == 0o644
        private = serialization.load_pem_private_key((folder / key).read_bytes(), None)
        assert private.public_key() == read(folder, cert).public_key()


def test_it_prints_the_four_steps_and_warns_that_its_ca_is_for_testing(made):
    folder, out, err = made
    assert "1. CA: Made a new site CA" in out
    assert f"2. Distribute: import {folder / 'ca.crt'}" in out
    assert "3. Sign: made a server key and certificate for space.example.com, 10.0.0.5, localhost" in out
    assert f"SPACE_TLS_CERT_FILE={folder / 'server.crt'}" in out
    assert f"SPACE_TLS_KEY_FILE={folder / 'server.key'}" in out
    assert "self-signed" in err and "for testing" in err and "should have it sign" in err


def test_a_second_run_reuses_the_ca_so_browsers_keep_trusting_it(made):
    folder, _, _ = made
    ca_before, server_before = (folder / "ca.crt").read_bytes(), read(folder, "server.crt")
    out, _ = make("space2.example.com", "--out", str(folder), "--days", "30")
    assert "Reused the site CA already there" in out
    assert (folder / "ca.crt").read_bytes() == ca_before
    assert read(folder, "server.crt").serial_number != server_before.serial_number
    verify(folder, x509.DNSName("space2.example.com"))


def test_a_key_that_is_not_the_cas_is_refused_and_nothing_written(made):
    folder, _, _ = made
    (folder / "ca.key").write_bytes((folder / "server.key").read_bytes())
    server_before = (folder / "server.crt").read_bytes()
    with pytest.raises(CommandError, match="is not the key of"):
        make("localhost", "--out", str(folder))
    assert (folder / "server.crt").read_bytes() == server_before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bad host"], "not a host name or IP address: 'bad host'"),
        (["space_1.example"], "not a host name or IP address"),
        (["localhost", "--days", "900"], "valid 1 to 825 days"),
    ],
    ids=["space", "underscore", "too-long"],
)
def test_bad_input_is_refused_before_anything_is_written(tmp_path, args, message):
    with pytest.raises(CommandError, match=message):
        make(*args, "--out", str(tmp_path / "tls"))
    assert not (tmp_path / "tls").exists()


def test_a_site_with_its_own_pki_gets_a_signing_request(tmp_path):
    folder = tmp_path / "tls"
    out, _ = make("space.corp.example", "10.1.2.3", "--request", "--out", str(folder))
    request = x509.load_pem_x509_csr((folder / "server.csr").read_bytes())
    key = serialization.load_pem_private_key((folder / "server.key").read_bytes(), None)
    assert request.is_signature_valid and request.public_key() == key.public_key()
    names = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["space.corp.example"]
    assert stat.S_IMODE((folder / "server.key").stat().st_mode) == 0o600
    assert not (folder / "ca.key").exists()
    assert "Have the site's CA sign it" in out
