"""A deliberately plain, blocking SDP/1 device for tests: every byte it sends is under the test's control."""

import os
import socket
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from devices.sdp import codec as sdp1


class NoAnswer(AssertionError):
    pass


class Client:
    def __init__(self, port: int, device_id: int, key: bytes, timeout: float = 2.0):
        self.server = ("127.0.0.1", port)
        self.device_id = device_id
        self.key = key
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(timeout)
        self.session_id = 0
        self.seq = 0
        self.window = sdp1.ReplayWindow()
        self.d2s = self.s2d = None
        self.inbox: list[tuple[int, dict, bytes]] = []

    def close(self):
        self.sock.close()

    def send(self, datagram: bytes) -> None:
        self.sock.sendto(datagram, self.server)

    def receive(self, timeout: float | None = None) -> bytes:
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(2048)
        except TimeoutError:
            raise NoAnswer("the server did not answer") from None
        return data

    def silent(self, timeout: float = 0.3) -> bool:
        """True when nothing arrives within ``timeout``."""
        try:
            self.receive(timeout)
        except NoAnswer:
            return True
        finally:
            self.sock.settimeout(2.0)
        return False

    # --- handshake ----------------------------------------------------------

    def hello(self, nonce_d: bytes | None = None) -> bytes:
        self.nonce_d = nonce_d or os.urandom(16)
        datagram = sdp1.hello(self.device_id, self.nonce_d)
        self.send(datagram)
        return datagram

    def read_challenge(self) -> bytes:
        data = self.receive()
        frame = sdp1.parse(data, sdp1.FROM_SERVER)
        assert frame.type == sdp1.CHALLENGE
        self.pending_session = frame.session_id
        self.nonce_s = frame.body[:16]
        expected = sdp1.server_proof(self.key, self.device_id, frame.session_id, self.nonce_d, self.nonce_s)
        assert frame.body[16:] == expected, "the server does not know the key"
        return data

    def auth(self) -> bytes:
        proof = sdp1.device_proof(self.key, self.device_id, self.pending_session, self.nonce_d, self.nonce_s)
        datagram = sdp1.auth(self.device_id, self.pending_session, proof)
        self.send(datagram)
        self.session_id = self.pending_session
        k_d2s, k_s2d = sdp1.session_keys(self.key, self.device_id, self.session_id, self.nonce_d, self.nonce_s)
        self.d2s, self.s2d = AESGCM(k_d2s), AESGCM(k_s2d)
        self.seq = 0
        self.window = sdp1.ReplayWindow()
        return datagram

    def handshake(self) -> dict:
        """HELLO, CHALLENGE, AUTH, welcome; acknowledges the welcome and returns it."""
        self.hello()
        self.read_challenge()
        self.auth()
        seq, welcome = self.read()
        assert welcome["t"] == "welcome" and seq == 1
        self.request({"t": "ack", "seq": seq}, answer=False)
        return welcome

    # --- sealed frames --------------------------------------------------------

    def seal(self, message: dict, seq: int | None = None) -> bytes:
        if seq is None:
            self.seq += 1
            seq = self.seq
        return sdp1.seal(self.d2s, self.device_id, self.session_id, seq, sdp1.encode(message))

    def open(self, data: bytes) -> tuple[int, dict]:
        frame = sdp1.parse(data, sdp1.FROM_SERVER)
        assert frame.type == sdp1.SEALED and frame.session_id == self.session_id
        message = sdp1.decode(sdp1.unseal(self.s2d, frame))
        return frame.seq, message

    def read(self, timeout: float | None = None, skip_commands: bool = True) -> tuple[int, dict]:
        """The next sealed frame from the server, keeping ``cmd`` frames aside in ``inbox`` unless asked for."""
        while True:
            data = self.receive(timeout)
            seq, message = self.open(data)
            if skip_commands and message["t"] == "cmd":
                self.inbox.append((seq, message, data))
                continue
            return seq, message

    def request_retrying(self, message: dict, tries: int = 5) -> dict:
        """Send and retransmit the same datagram as the protocol says (250 ms, doubling) until an answer comes."""
        datagram = self.seal(message)
        wait = 0.25
        for _ in range(tries):
            self.send(datagram)
            deadline = time.monotonic() + wait
            try:
                while True:
                    answer = self.read(timeout=max(0.001, deadline - time.monotonic()))[1]
                    # A retransmitted request is answered twice; a late second answer to an earlier
                    # request is not this one's.
                    if "req" not in message or answer.get("req") in (None, message["req"]):
                        return answer
            except NoAnswer:
                wait *= 2
            finally:
                self.sock.settimeout(2.0)
        raise NoAnswer(f"no answer after {tries} tries")

    def request(self, message: dict, answer: bool = True) -> dict | None:
        self.send(self.seal(message))
        if not answer:
            return None
        return self.read()[1]
