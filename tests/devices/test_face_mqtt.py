"""Face terminals over MQTT with a real Mosquitto: the device CA, the broker's TLS and ACL configuration as Space
writes it, and Space's connector. What a broker drops silently is shown absent by a marker sent after it by the
same client: one client's messages reach a subscriber in order, so once the marker is in, the other would be too."""

import io
import json
import signal
import ssl
import subprocess
import threading

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.core.management import CommandError, call_command

from devices.face import pki, topics
from devices.face.connector import MAX_PAYLOAD, FaceConnector, tls_context
from devices.face.pki import SPACE_IDENTITY
from tests.support.metrics import own_sample
from tests.support.mosquitto import HOST, MOSQUITTO_PUB, other_ca_terminal, running_broker
from tests.support.services import RunningService
from tests.support.waiting import wait_until

WAIT = 10  # seconds for anything that should happen at once; a failing test waits this long, a passing one not


@pytest.fixture
def broker(tmp_path):
    with running_broker(tmp_path / "device-ca") as broker:
        yield broker


class Space:
    """Space's connector on an event loop thread of its own; what it hands on is in ``messages``."""

    def __init__(self, broker):
        self.messages = []
        self.connector = FaceConnector(HOST, broker.port, broker.paths.space, on_message=self.messages.append)
        self.running = RunningService(self.connector)
        wait_until(lambda: self.connector.connected, WAIT, broker.output)

    def answer(self, terminal_id: str, payload: dict) -> None:
        self.running.call(self.connector.answer(terminal_id, payload))

    def ids(self) -> list[tuple[str, str]]:
        return [(message.terminal_id, message.payload["id"]) for message in self.messages]


@pytest.fixture
def space(broker):
    space = Space(broker)
    yield space
    space.running.stop()


class Terminal:
    """A face terminal as the tests play it: paho-mqtt on a thread of its own, keeping what it receives."""

    def __init__(self, broker, identity, terminal_id: str):
        self.terminal_id = terminal_id
        self.received: list[tuple[str, bytes]] = []
        self.connack = threading.Event()
        self.refused: list = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=terminal_id)
        self.client.tls_set_context(tls_context(identity))
        self.client.on_connect = self._connected
        self.client.on_message = lambda client, userdata, message: self.received.append(
            (message.topic, message.payload)
        )
        self.client.connect(HOST, broker.port, keepalive=30)
        self.client.loop_start()
        assert self.connack.wait(WAIT), f"no CONNACK for {terminal_id}: {broker.output()}"
        assert not self.refused, self.refused

    def _connected(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            self.refused.append(reason)
        self.connack.set()

    def publish(self, topic: str, payload, qos: int = topics.QOS) -> None:
        data = payload if isinstance(payload, bytes | str) else json.dumps(payload)
        self.client.publish(topic, data, qos=qos).wait_for_publish(WAIT)

    def request(self, payload) -> None:
        self.publish(topics.topic(self.terminal_id, topics.REQUEST), payload)

    def subscribe(self, topic: str) -> None:
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.subscribe(topic, qos=topics.QOS)
        assert subscribed.wait(WAIT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def terminal(broker):
    terminals = []

    def connect(terminal_id: str, identity=None):
        made = Terminal(broker, identity or broker.terminal(terminal_id), terminal_id)
        terminals.append(made)
        return made

    yield connect
    for made in terminals:
        made.close()


def connects(broker, identity) -> bool:
    """Whether a client with ``identity`` (None: no certificate) gets a successful CONNACK from the broker."""
    context = ssl.create_default_context(cafile=str(broker.paths.ca.ca_cert))
    if identity is not None:
        context.load_cert_chain(str(identity.cert), str(identity.key))
    outcome = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="door-a")
    client.tls_set_context(context)
    client.on_connect = lambda client, userdata, flags, reason, properties: outcome.append(not reason.is_failure)
    try:
        client.connect(HOST, broker.port, keepalive=10)
        wait_until(lambda: outcome or client.loop(0.05) != mqtt.MQTT_ERR_SUCCESS, WAIT)
    except (ssl.SSLError, OSError):
        return False
    finally:
        client.disconnect()
    return outcome == [True]


def request(message_id: str, **fields) -> dict:
    return {"id": message_id, "type": "identify", **fields}


# --- the device CA --------------------------------------------------------------------------------------------


def test_a_terminal_certificate_names_the_terminal_and_serves_tls_clients_only(broker):
    identity = broker.terminal("door-a")
    certificate = x509.load_pem_x509_certificate(identity.cert.read_bytes())
    ca = x509.load_pem_x509_certificate(identity.ca.read_bytes())

    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "door-a"
    assert certificate.issuer == ca.subject
    certificate.verify_directly_issued_by(ca)
    usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert identity.key.stat().st_mode & 0o777 == 0o600
    assert broker.paths.ca.ca_key.stat().st_mode & 0o777 == 0o600


def test_a_terminal_id_that_is_not_a_topic_level_is_refused(tmp_path):
    from core.certificates import CertificateError
    from devices.face.pki import issue_terminal

    for bad in ("door/a", "door+", "#", "space.server", "", "x" * 65):
        with pytest.raises(CertificateError):
            issue_terminal(bad, tmp_path)
    assert not (tmp_path / "terminals").exists()


@pytest.mark.django_db  # --revoke disables the terminal's device when it has one
def test_the_commands_set_up_the_broker_and_commission_and_decommission_a_terminal(tmp_path):
    folder = tmp_path / "device-ca"
    output = io.StringIO()

    call_command("face_broker", "broker.site", "10.0.0.5", "--port", "18883", "--out", str(folder), stdout=output)
    call_command("face_terminal", "door-a", "--out", str(folder), stdout=output)

    paths = pki.DevicePaths(folder)
    config = (folder / "mosquitto.conf").read_text()
    assert "listener 18883\n" in config
    assert f"crlfile {paths.crl}" in config
    assert "max_queued_messages 100000\n" in config
    assert "pattern write space/face/%u/request" in (folder / "mosquitto.acl").read_text()
    for key in (paths.ca.ca_key, paths.broker.key, paths.space.key, paths.terminal("door-a").key):
        assert key.stat().st_mode & 0o777 == 0o600, key
    names = x509.load_pem_x509_certificate(paths.broker.cert.read_bytes()).extensions
    assert names.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == [
        "broker.site"
    ]

    call_command("face_terminal", "door-a", "--revoke", "--out", str(folder), stdout=output)
    assert len(pki.revocations(paths)) == 1
    with pytest.raises(CommandError, match="no certificate"):
        call_command("face_terminal", "door-a", "--revoke", "--out", str(folder))
    with pytest.raises(CommandError, match="not a terminal id"):
        call_command("face_terminal", "door/a", "--out", str(folder))
    with pytest.raises(CommandError, match="not a host name"):
        call_command("face_broker", "bad host", "--out", str(folder))


# --- connecting -----------------------------------------------------------------------------------------------


def test_a_commissioned_terminals_request_reaches_space(space, terminal):
    door = terminal("door-a")

    door.request(request("m-1", template="AAAA"))

    wait_until(lambda: space.messages, WAIT)
    [message] = space.messages
    assert (message.terminal_id, message.kind) == ("door-a", topics.REQUEST)
    assert message.payload == {"id": "m-1", "type": "identify", "template": "AAAA"}
    assert space.connector.counters["dropped"] == 0


def test_a_client_without_a_certificate_cannot_connect(broker):
    assert connects(broker, broker.terminal("door-a"))  # the same client with its certificate does

    assert not connects(broker, None)


def test_a_certificate_from_another_ca_cannot_connect(broker, tmp_path):
    stranger = other_ca_terminal("door-a", tmp_path / "other-ca", broker.paths.ca.ca_cert)

    assert not connects(broker, stranger)


def test_the_broker_certificate_is_no_client_certificate(broker):
    assert not connects(broker, broker.paths.broker)


def test_a_decommissioned_terminal_cannot_connect_once_the_broker_reloads(broker):
    identity = broker.terminal("door-a")
    held = pki.Identity(broker.folder / "held.crt", broker.folder / "held.key", identity.ca)  # the terminal's copy
    held.cert.write_bytes(identity.cert.read_bytes())
    held.key.write_bytes(identity.key.read_bytes())
    assert connects(broker, held)

    assert pki.revoke_terminal("door-a", broker.folder)
    broker.process.send_signal(signal.SIGHUP)

    wait_until(lambda: not connects(broker, held), WAIT, broker.output)  # the broker reloads on its own time
    assert connects(broker, broker.terminal("door-b"))  # the others still can
    assert not identity.cert.exists() and not identity.key.exists()


# --- a terminal's own topics only -----------------------------------------------------------------------------


def test_a_terminal_cannot_publish_as_another(space, terminal):
    door_a = terminal("door-a")
    terminal("door-b")

    door_a.publish(topics.topic("door-b", topics.REQUEST), request("forged"))
    door_a.publish(topics.topic("door-b", topics.EVENT), request("forged-event"))
    door_a.publish(topics.topic("door-b", topics.STATUS), "offline")
    door_a.request(request("marker"))

    wait_until(lambda: ("door-a", "marker") in space.ids(), WAIT)
    assert space.ids() == [("door-a", "marker")]
    assert "door-b" not in space.connector.statuses


def test_a_terminal_cannot_read_another_terminals_answers(space, terminal):
    door_a = terminal("door-a")
    door_a.subscribe(topics.topic("door-b", topics.ANSWER))
    door_a.subscribe(topics.every(topics.ANSWER))
    door_a.subscribe(topics.ROOT + "/#")

    space.answer("door-b", {"id": "secret", "granted": True})
    space.answer("door-a", {"id": "marker", "granted": False})

    wait_until(lambda: door_a.received, WAIT)
    assert [(topic, json.loads(payload)["id"]) for topic, payload in door_a.received] == [
        (topics.topic("door-a", topics.ANSWER), "marker")
    ]


def test_a_terminal_cannot_take_over_spaces_session(space, terminal, broker):
    rogue = Terminal(broker, broker.terminal("door-c"), SPACE_IDENTITY)  # asks for Space's client id
    try:
        terminal("door-a").request(request("after-rogue"))

        wait_until(lambda: space.messages, WAIT)
        assert space.ids() == [("door-a", "after-rogue")]
        assert space.connector.counters["disconnects"] == 0
    finally:
        rogue.close()


def test_requests_sent_while_space_is_away_reach_it_when_it_is_back(broker, terminal):
    space = Space(broker)
    space.running.stop()
    door = terminal("door-a")
    sent = [f"while-away-{n}" for n in range(1500)]  # more than Mosquitto's default queue (1,000) holds

    for message_id in sent:  # each acknowledged by the broker, which keeps it for Space's session
        door.request(request(message_id))
    space = Space(broker)
    try:
        wait_until(lambda: len(space.messages) >= len(sent), WAIT, broker.output)
        assert space.ids() == [("door-a", message_id) for message_id in sent]
    finally:
        space.running.stop()


# --- garbage --------------------------------------------------------------------------------------------------


def test_garbage_payloads_are_dropped_and_counted(space, terminal):
    door = terminal("door-a")
    garbage = [
        b"\xff\xfe not json",
        b"[1, 2, 3",
        json.dumps(["id", "type"]),
        json.dumps({"type": "identify"}),
        json.dumps({"id": 42, "type": "identify"}),
        json.dumps({"id": "x" * 65, "type": "identify"}),
        json.dumps({"id": "m", "type": ""}),
        json.dumps(request("big", template="A" * MAX_PAYLOAD)),
    ]
    for payload in garbage:
        door.request(payload)
    door.publish(topics.topic("door-a", topics.STATUS), "rebooting")
    door.request(request("marker"))

    wait_until(lambda: space.messages, WAIT)
    assert space.ids() == [("door-a", "marker")]
    counters = space.connector.counters
    assert (counters["dropped_not_json"], counters["dropped_fields"], counters["dropped_oversized"]) == (2, 5, 1)
    assert counters["dropped_status"] == 1
    assert counters["dropped"] == 9
    assert counters["received_request"] == 1


def test_drops_are_a_metric(space, terminal):
    def dropped() -> float:
        return own_sample("space_face_mqtt_dropped", "space_face_mqtt_dropped_total", reason="not_json")

    before = dropped()
    door = terminal("door-a")
    door.request(b"garbage")
    door.request(request("marker"))

    wait_until(lambda: space.messages, WAIT)
    assert dropped() == before + 1


def test_a_handler_that_fails_does_not_stop_the_connector(broker, terminal):
    handled = []

    def handler(message):
        if message.payload["id"] == "boom":
            raise RuntimeError("boom")
        handled.append(message.payload["id"])

    connector = FaceConnector(HOST, broker.port, broker.paths.space, on_message=handler)
    running = RunningService(connector)
    try:
        wait_until(lambda: connector.connected, WAIT, broker.output)
        door = terminal("door-a")
        door.request(request("boom"))
        door.request(request("after"))

        wait_until(lambda: handled, WAIT)
        assert handled == ["after"]
        assert connector.counters["handler_errors"] == 1
        assert connector.counters["disconnects"] == 0
    finally:
        running.stop()


def test_a_terminal_gets_its_retained_configuration_and_no_one_elses(space, terminal):
    space.running.call(space.connector.configure("door-b", {"id": "b", "threshold": 0.1}))
    space.running.call(space.connector.configure("door-a", {"id": "a", "threshold": 0.4}))
    door_a = terminal("door-a")

    door_a.subscribe(topics.every(topics.CONFIG))  # retained messages come with the SUBACK's flow

    wait_until(lambda: door_a.received, WAIT)
    door_a.subscribe(topics.topic("door-b", topics.CONFIG))
    door_a.subscribe(topics.topic("door-a", topics.CONFIG))  # the retained one again: a marker after door-b's
    wait_until(lambda: [json.loads(payload)["id"] for _, payload in door_a.received].count("a") == 2, WAIT)
    assert [(topic, json.loads(payload)["id"]) for topic, payload in door_a.received] == [
        (topics.topic("door-a", topics.CONFIG), "a"),
        (topics.topic("door-a", topics.CONFIG), "a"),
    ]


# --- online and offline ---------------------------------------------------------------------------------------


def test_the_last_will_marks_a_terminal_offline_when_its_connection_dies(space, broker):
    identity = broker.terminal("door-a")
    status = topics.topic("door-a", topics.STATUS)
    # mosquitto_pub, as a terminal's firmware would: a last will, then "online" retained; killed, it says nothing.
    command = [MOSQUITTO_PUB, "-h", HOST, "-p", str(broker.port), "--cafile", str(identity.ca)]
    command += ["--cert", str(identity.cert), "--key", str(identity.key), "-i", "door-a", "-q", "1", "-r", "-t", status]
    command += ["-l", "--will-topic", status, "--will-payload", topics.OFFLINE, "--will-qos", "1", "--will-retain"]
    process = subprocess.Popen(command, stdin=subprocess.PIPE)
    try:
        process.stdin.write(b"online\n")
        process.stdin.flush()
        wait_until(lambda: space.connector.statuses.get("door-a") == topics.ONLINE, WAIT, broker.output)

        process.kill()
        process.wait(WAIT)

        wait_until(lambda: space.connector.statuses.get("door-a") == topics.OFFLINE, WAIT, broker.output)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
