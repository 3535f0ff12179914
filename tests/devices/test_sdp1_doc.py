"""The worked example in docs/sdp1.md is what the codec makes and reads, and what the test vectors say."""

import json
import re
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from devices.sdp import codec as sdp1

ROOT = Path(__file__).resolve().parents[2]
VECTORS = json.loads((ROOT / "tests" / "data" / "sdp1" / "vectors.json").read_text())
BLOCK = re.compile(r"^```sdp1 (\S+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def doc_blocks() -> dict[str, str]:
    blocks = {}
    for name, text in BLOCK.findall((ROOT / "docs" / "sdp1.md").read_text()):
        assert name not in blocks, f"two blocks named {name}"
        blocks[name] = text
    return blocks


BLOCKS = doc_blocks()


def doc_bytes(name: str) -> bytes:
    """A hex block: spaces, line breaks and ``#`` comments do not count."""
    return bytes.fromhex("".join(re.sub(r"#.*", "", line) for line in BLOCKS[name].splitlines()).replace(" ", ""))


def doc_int(name: str) -> int:
    return int.from_bytes(doc_bytes(name), "big")


def doc_text(name: str) -> bytes:
    return BLOCKS[name].removesuffix("\n").encode()


K = doc_bytes("K")
DEVICE = doc_int("device_id")
SESSION = doc_int("session_id")
NONCE_D = doc_bytes("nonce_d")
NONCE_S = doc_bytes("nonce_s")


def test_the_doc_has_every_block_of_the_worked_example():
    assert set(BLOCKS) == {
        "K",
        "device_id",
        "session_id",
        "nonce_d",
        "nonce_s",
        "hello",
        "server_proof_message",
        "proof_s",
        "challenge",
        "device_proof_message",
        "proof_d",
        "auth",
        "hkdf_info",
        "k_d2s",
        "k_s2d",
        "access_plaintext",
        "access_frame",
        "decision_plaintext",
        "decision_frame",
    }


def test_the_docs_handshake_frames_are_the_codecs():
    hello = sdp1.parse(doc_bytes("hello"), sdp1.FROM_DEVICE)
    assert (hello.type, hello.device_id, hello.session_id, hello.seq) == (sdp1.HELLO, DEVICE, 0, 0)
    assert doc_bytes("hello") == sdp1.hello(DEVICE, NONCE_D)

    challenge = sdp1.parse(doc_bytes("challenge"), sdp1.FROM_SERVER)
    assert (challenge.type, challenge.device_id, challenge.session_id, challenge.seq) == (
        sdp1.CHALLENGE,
        DEVICE,
        SESSION,
        0,
    )
    assert challenge.body == NONCE_S + doc_bytes("proof_s")

    auth = sdp1.parse(doc_bytes("auth"), sdp1.FROM_DEVICE)
    assert (auth.type, auth.device_id, auth.session_id, auth.seq) == (sdp1.AUTH, DEVICE, SESSION, 0)
    assert auth.body == doc_bytes("proof_d")


def test_the_docs_proofs_and_their_messages_are_the_codecs():
    ids = DEVICE.to_bytes(4, "big") + SESSION.to_bytes(4, "big")
    assert doc_bytes("server_proof_message") == b"SDP1 server" + ids + NONCE_D + NONCE_S
    assert doc_bytes("device_proof_message") == b"SDP1 device" + ids + NONCE_S + NONCE_D
    assert doc_bytes("proof_s") == sdp1.server_proof(K, DEVICE, SESSION, NONCE_D, NONCE_S)
    assert doc_bytes("proof_d") == sdp1.device_proof(K, DEVICE, SESSION, NONCE_D, NONCE_S)


def test_the_docs_session_keys_are_the_codecs():
    assert doc_bytes("hkdf_info") == b"SDP1 keys" + DEVICE.to_bytes(4, "big") + SESSION.to_bytes(4, "big")
    assert (doc_bytes("k_d2s"), doc_bytes("k_s2d")) == sdp1.session_keys(K, DEVICE, SESSION, NONCE_D, NONCE_S)


def test_the_docs_sealed_frames_open_with_the_docs_keys_to_the_docs_plaintexts():
    access = sdp1.parse(doc_bytes("access_frame"), sdp1.FROM_DEVICE)
    assert (access.type, access.device_id, access.session_id, access.seq) == (sdp1.SEALED, DEVICE, SESSION, 1)
    assert sdp1.unseal(AESGCM(doc_bytes("k_d2s")), access) == doc_text("access_plaintext")
    assert sdp1.decode(doc_text("access_plaintext"))["t"] == "access"

    decision = sdp1.parse(doc_bytes("decision_frame"), sdp1.FROM_SERVER)
    assert (decision.type, decision.device_id, decision.session_id, decision.seq) == (sdp1.SEALED, DEVICE, SESSION, 2)
    assert sdp1.unseal(AESGCM(doc_bytes("k_s2d")), decision) == doc_text("decision_plaintext")
    message = {"t": "decision", "req": 7, "grant": True, "reason": "granted", "open_ms": 6000}
    assert sdp1.encode(message) == doc_text("decision_plaintext")


def test_the_docs_example_is_the_test_vectors():
    assert {name: doc_bytes(name).hex() for name in ("K", "nonce_d", "nonce_s")} == {
        name: VECTORS[name] for name in ("K", "nonce_d", "nonce_s")
    }
    assert (VECTORS["device_id"], VECTORS["session_id"]) == (DEVICE, SESSION)
    for name in ("hello", "challenge", "auth", "proof_s", "proof_d", "k_d2s", "k_s2d"):
        assert doc_bytes(name).hex() == VECTORS[name], name
    for prefix, direction in (("access", "device_to_server"), ("decision", "server_to_device")):
        assert doc_bytes(f"{prefix}_frame").hex() == VECTORS[direction]["frame"]
        assert doc_text(f"{prefix}_plaintext").decode() == VECTORS[direction]["plaintext"]
