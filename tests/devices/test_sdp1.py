"""The SDP/1 codec reproduces the protocol's test vectors and survives any input."""

import json
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

from devices.sdp import codec as sdp1

VECTORS_PATH = Path(__file__).resolve().parents[1] / "data" / "sdp1" / "vectors.json"
V = json.loads(VECTORS_PATH.read_text())
K = bytes.fromhex(V["K"])
DEVICE = V["device_id"]
SESSION = V["session_id"]
NONCE_D = bytes.fromhex(V["nonce_d"])
NONCE_S = bytes.fromhex(V["nonce_s"])


def test_the_hello_frame_matches_the_vector():
    assert sdp1.hello(DEVICE, NONCE_D).hex() == V["hello"]


def test_the_server_proof_and_challenge_match_the_vectors():
    proof = sdp1.server_proof(K, DEVICE, SESSION, NONCE_D, NONCE_S)
    assert proof.hex() == V["proof_s"]
    assert sdp1.challenge(DEVICE, SESSION, NONCE_S, proof).hex() == V["challenge"]


def test_the_device_proof_and_auth_match_the_vectors():
    proof = sdp1.device_proof(K, DEVICE, SESSION, NONCE_D, NONCE_S)
    assert proof.hex() == V["proof_d"]
    assert sdp1.auth(DEVICE, SESSION, proof).hex() == V["auth"]


def test_the_session_keys_match_the_vectors():
    k_d2s, k_s2d = sdp1.session_keys(K, DEVICE, SESSION, NONCE_D, NONCE_S)
    assert (k_d2s.hex(), k_s2d.hex()) == (V["k_d2s"], V["k_s2d"])


@pytest.mark.parametrize(("direction", "key"), [("device_to_server", "k_d2s"), ("server_to_device", "k_s2d")])
def test_sealed_frames_match_the_vectors(direction, key):
    vector = V[direction]
    aead = AESGCM(bytes.fromhex(V[key]))
    plaintext = vector["plaintext"].encode()
    frame = sdp1.seal(aead, DEVICE, SESSION, vector["seq"], plaintext)
    assert frame.hex() == vector["frame"]
    accepted = sdp1.FROM_DEVICE if direction == "device_to_server" else sdp1.FROM_SERVER
    assert sdp1.unseal(aead, sdp1.parse(frame, accepted)) == plaintext


def test_the_server_encodes_a_decision_as_the_vector_does():
    message = {"t": "decision", "req": 7, "grant": True, "reason": "granted", "open_ms": 6000}
    assert sdp1.encode(message).decode() == V["server_to_device"]["plaintext"]


def test_the_parser_reads_the_vector_frames():
    hello = sdp1.parse(bytes.fromhex(V["hello"]), sdp1.FROM_DEVICE)
    assert (hello.type, hello.device_id, hello.session_id, hello.seq) == (sdp1.HELLO, DEVICE, 0, 0)
    assert hello.body[:16] == NONCE_D
    auth = sdp1.parse(bytes.fromhex(V["auth"]), sdp1.FROM_DEVICE)
    assert (auth.type, auth.session_id, auth.body.hex()) == (sdp1.AUTH, SESSION, V["proof_d"])
    challenge = sdp1.parse(bytes.fromhex(V["challenge"]), sdp1.FROM_SERVER)
    assert challenge.session_id == SESSION


def mutate(hex_frame: str, offset: int, value: int) -> bytes:
    data = bytearray(bytes.fromhex(hex_frame))
    data[offset] = value
    return bytes(data)


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"", "short"),
        (bytes.fromhex(V["hello"])[:19], "short"),
        (mutate(V["hello"], 0, 0x54), "bad_magic"),
        (mutate(V["hello"], 2, 0x02), "bad_magic"),
        (bytes.fromhex(V["hello"])[:-1], "bad_length"),
        (bytes.fromhex(V["hello"]) + b"\0", "bad_length"),
        (mutate(V["hello"], 11, 1), "bad_header"),  # session id in HELLO
        (mutate(V["hello"], 19, 1), "bad_header"),  # seq in HELLO
        (mutate(V["hello"], 67, 1), "bad_padding"),
        (bytes.fromhex(V["challenge"]), "bad_type"),  # a server frame sent to the server
        (mutate(V["hello"], 3, 0x7F), "bad_type"),
        (bytes.fromhex(V["auth"])[:-1], "bad_length"),
        (mutate(V["auth"], 19, 1), "bad_header"),
        (bytes.fromhex(V["auth"])[:4] + bytes(4) + bytes(4) + bytes.fromhex(V["auth"])[12:], "bad_header"),
        (bytes.fromhex(V["device_to_server"]["frame"])[:36], "bad_length"),
        (bytes.fromhex(V["device_to_server"]["frame"])[:20] + bytes(1200), "bad_length"),
        (mutate(V["device_to_server"]["frame"], 19, 0), "bad_header"),  # seq 0
    ],
)
def test_the_parser_refuses_bad_frames(datagram, reason):
    with pytest.raises(sdp1.Malformed) as caught:
        sdp1.parse(datagram, sdp1.FROM_DEVICE)
    assert caught.value.reason == reason


def test_a_tampered_sealed_frame_does_not_verify():
    aead = AESGCM(bytes.fromhex(V["k_d2s"]))
    for offset in (5, 12, 18, 30, -1):
        data = bytearray(bytes.fromhex(V["device_to_server"]["frame"]))
        data[offset] ^= 0x01
        frame = sdp1.parse(bytes(data), sdp1.FROM_DEVICE)
        with pytest.raises(InvalidTag):
            sdp1.unseal(aead, frame)


def test_a_frame_sealed_for_one_direction_does_not_open_with_the_other_key():
    frame = sdp1.parse(bytes.fromhex(V["device_to_server"]["frame"]), sdp1.FROM_DEVICE)
    with pytest.raises(InvalidTag):
        sdp1.unseal(AESGCM(bytes.fromhex(V["k_s2d"])), frame)


@pytest.mark.parametrize("size", [0, sdp1.MAX_PLAINTEXT + 1])
def test_sealing_refuses_a_plaintext_that_does_not_fit(size):
    with pytest.raises(ValueError, match="1 to 1164"):
        sdp1.seal(AESGCM(K), DEVICE, SESSION, 1, b"x" * size)


def test_the_largest_plaintext_makes_a_1200_byte_datagram():
    frame = sdp1.seal(AESGCM(K), DEVICE, SESSION, 1, b"x" * sdp1.MAX_PLAINTEXT)
    assert len(frame) == sdp1.MAX_DATAGRAM
    assert sdp1.parse(frame, sdp1.FROM_DEVICE).seq == 1


@pytest.mark.parametrize(
    "plaintext",
    [b"\xef\xbb\xbf{}", b"[]", b'{"t": 1}', b"{}", b"not json", b"\xff\xfe", b"[" * 100000],
)
def test_a_plaintext_that_is_not_a_message_decodes_to_none(plaintext):
    assert sdp1.decode(plaintext) is None


def test_a_message_decodes():
    assert sdp1.decode(b'{"t":"ack","seq":3}') == {"t": "ack", "seq": 3}


class TestReplayWindow:
    def test_a_new_seq_is_accepted_once(self):
        window = sdp1.ReplayWindow()
        assert window.in_window(1) and window.accept(1)
        assert window.in_window(1) and not window.accept(1)

    def test_seq_zero_is_never_valid(self):
        assert not sdp1.ReplayWindow().in_window(0)

    def test_out_of_order_seqs_inside_the_window_are_accepted_once(self):
        window = sdp1.ReplayWindow()
        assert window.accept(100)
        assert window.in_window(37) and window.accept(37)
        assert not window.accept(37)
        assert window.accept(99)
        assert not window.in_window(36)

    def test_a_jump_beyond_the_window_forgets_the_old_seqs(self):
        window = sdp1.ReplayWindow()
        window.accept(5)
        window.accept(500)
        assert not window.in_window(5)
        assert window.accept(499)
        assert not window.accept(500)


@given(st.binary(max_size=1300))
def test_the_parser_never_raises_anything_but_malformed(datagram):
    for accepted in (sdp1.FROM_DEVICE, sdp1.FROM_SERVER):
        try:
            frame = sdp1.parse(datagram, accepted)
        except sdp1.Malformed:
            continue
        assert frame.type in accepted and len(datagram) <= sdp1.MAX_DATAGRAM


@given(st.binary(min_size=20, max_size=1200), st.integers(0, 19), st.integers(0, 255))
def test_a_mutated_valid_frame_is_refused_or_fails_its_tag(body, offset, value):
    aead = AESGCM(bytes.fromhex(V["k_d2s"]))
    original = bytes.fromhex(V["device_to_server"]["frame"])
    data = bytearray(original[:20] + body[: 1200 - 20])
    data[offset] = value
    try:
        frame = sdp1.parse(bytes(data), sdp1.FROM_DEVICE)
    except sdp1.Malformed:
        return
    if bytes(data) == original:
        return
    with pytest.raises(InvalidTag):
        sdp1.unseal(aead, frame)


@given(st.binary(max_size=2000))
def test_decode_never_raises(plaintext):
    message = sdp1.decode(plaintext)
    assert message is None or isinstance(message["t"], str)


@given(st.lists(st.integers(1, 2**64 - 1), max_size=200))
def test_the_window_accepts_each_seq_at_most_once(seqs):
    window = sdp1.ReplayWindow()
    accepted = []
    for seq in seqs:
        if window.in_window(seq) and window.accept(seq):
            accepted.append(seq)
    assert len(accepted) == len(set(accepted))
