"""core/tls.py without a server: the redirect a plain request gets, and the TLS options a certificate makes.

The server itself (runspace with TLS, over real sockets) is tested in tests/space/test_https.py.
"""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from OpenSSL import SSL

from core.certificates import make_site_certificate
from core.tls import TLSConfigError, https_redirect, server_options


def redirect(head: bytes, allowed=lambda host: True) -> tuple[str, dict[str, str]]:
    answer = https_redirect(head, "127.0.0.1", 8100, allowed).decode("ascii")
    status, _, rest = answer.partition("\r\n")
    headers = dict(line.split(": ", 1) for line in rest.split("\r\n\r\n")[0].split("\r\n"))
    return status, headers


def test_a_get_is_sent_to_the_same_host_port_and_path_over_https():
    status, headers = redirect(b"GET /monitor/?door=3 HTTP/1.1\r\nHost: space.example.com:8100\r\nAccept: */*")
    assert status == "HTTP/1.1 301 Moved Permanently"
    assert headers["Location"] == "https://space.example.com:8100/monitor/?door=3"
    assert headers["Connection"] == "close"


def test_a_post_gets_a_308_which_keeps_its_method():
    status, headers = redirect(b"POST /api/v1/keys/ HTTP/1.1\r\nHost: space")
    assert status == "HTTP/1.1 308 Permanent Redirect"
    assert headers["Location"] == "https://space:8100/api/v1/keys/"


def test_the_port_the_client_asked_for_is_kept_behind_a_port_mapping():
    assert redirect(b"GET / HTTP/1.1\r\nHost: space:443")[1]["Location"] == "https://space:443/"


def test_without_a_host_header_the_servers_own_address_is_used():
    assert redirect(b"GET / HTTP/1.0")[1]["Location"] == "https://127.0.0.1:8100/"


def test_an_ipv6_host_keeps_its_brackets():
    assert redirect(b"GET /x HTTP/1.1\r\nHost: [::1]:8100")[1]["Location"] == "https://[::1]:8100/x"


def test_an_absolute_target_keeps_its_path_only():
    head = b"GET http://elsewhere.example/login/?next=/ HTTP/1.1\r\nHost: space"
    assert redirect(head)[1]["Location"] == "https://space:8100/login/?next=/"


@pytest.mark.parametrize(
    "host",
    [b"evil.example/path", b"user@space", b"space:8100:1", b"spa ce", b"", b"-space"],
    ids=["path", "userinfo", "two-ports", "space", "empty", "leading-dash"],
)
def test_a_malformed_host_gets_400_and_no_location(host):
    status, headers = redirect(b"GET / HTTP/1.1\r\nHost: " + host)
    assert status == "HTTP/1.1 400 Bad Request"
    assert "Location" not in headers


def test_a_host_the_server_does_not_answer_for_gets_400():
    status, headers = redirect(b"GET / HTTP/1.1\r\nHost: evil.example", allowed=lambda host: host == "space")
    assert status == "HTTP/1.1 400 Bad Request"
    assert "Location" not in headers


@pytest.mark.parametrize(
    "head",
    [
        b"\x00\x01binary",
        b"GET / SPDY/3",
        b"GET\t/ HTTP/1.1",
        b"GET * HTTP/1.1",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b",
    ],
    ids=["binary", "not-http", "tab", "asterisk", "two-hosts"],
)
def test_what_is_not_a_plain_http_request_gets_400(head):
    assert redirect(head)[0] == "HTTP/1.1 400 Bad Request"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return make_site_certificate(["localhost", "127.0.0.1"], tmp_path_factory.mktemp("tls")).paths


def test_the_server_offers_tls_1_2_and_1_3_with_aead_ciphers_only(site):
    options = server_options(site.server_cert, site.server_key)
    context = options.getContext()
    flags = context.set_options(0)  # adds nothing, answers the options set (before a connection freezes it)
    ciphers = SSL.Connection(context).get_cipher_list()
    tls12 = [name for name in ciphers if not name.startswith("TLS_")]
    assert tls12 and all(name.startswith("ECDHE-") and ("GCM" in name or "CHACHA20" in name) for name in tls12)
    assert {"TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256"} <= set(ciphers)
    assert flags & SSL.OP_NO_TLSv1 and flags & SSL.OP_NO_TLSv1_1
    assert not flags & SSL.OP_NO_TLSv1_2


def test_a_missing_file_is_named(site, tmp_path):
    with pytest.raises(TLSConfigError, match=f"cannot read the certificate {tmp_path}/none.crt: No such file"):
        server_options(tmp_path / "none.crt", site.server_key)


def test_a_file_without_a_certificate_is_refused(site):
    with pytest.raises(TLSConfigError, match="holds no PEM certificate"):
        server_options(site.server_key, site.server_key)


def test_a_key_of_another_certificate_is_refused(site):
    with pytest.raises(TLSConfigError, match="does not belong to the certificate"):
        server_options(site.server_cert, site.ca_key)


def test_an_encrypted_key_is_refused(site, tmp_path):
    key = serialization.load_pem_private_key(site.server_key.read_bytes(), None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    with pytest.raises(TLSConfigError, match="encrypted with a passphrase"):
        server_options(site.server_cert, encrypted)


def test_a_key_browsers_cannot_use_is_refused(site, tmp_path):
    path = tmp_path / "ed25519.key"
    path.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(TLSConfigError, match="an RSA or ECDSA key is needed"):
        server_options(site.server_cert, path)
