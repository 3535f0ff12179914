"""The face terminal service end to end: a real Mosquitto with Space's TLS and ACL configuration, terminals played
by paho-mqtt with their own certificates, and Space's FaceService deciding on the rules and templates in the
database. Identities are synthetic (simulation/synthetic_faces.py): a capture of an enrolled person scores about
0.6 against their template, anyone else about 0 — either side of the 0.40 threshold by a wide margin."""

import datetime as dt
import json
import threading

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from django.utils import timezone

from accesscontrol import faces
from accesscontrol.choices import AuditKind
from accesscontrol.choices import Decision as Reason
from accesscontrol.models import AuditEvent, FaceTemplate
from devices import actions
from devices.choices import DeviceKind
from devices.face import messages, topics
from devices.face.connector import tls_context
from devices.face.service import event_id
from devices.models import Device, FaceEnrolment, FaceTerminal
from simulation.synthetic_faces import Population
from tests.factories import make_access_level, make_access_point, make_cardholder, make_key, make_zone
from tests.support.mosquitto import HOST, face_service, running_broker
from tests.support.waiting import wait_until

WAIT = 15
MODEL = "xs4face-v1"


@pytest.fixture
def broker(tmp_path):
    with running_broker(tmp_path / "device-ca") as broker:
        yield broker


class Terminal:
    """A face terminal: paho-mqtt with its own certificate, subscribed to its answers and commands."""

    def __init__(self, broker, terminal_id: str):
        self.terminal_id = terminal_id
        self.answers: dict[str, dict] = {}
        self.commands: list[dict] = []
        self.configs: list[dict] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=terminal_id)
        self.client.tls_set_context(tls_context(broker.terminal(terminal_id)))
        self.client.will_set(topics.topic(terminal_id, topics.STATUS), topics.OFFLINE, qos=1, retain=True)
        self.client.on_message = self._received
        self.client.on_subscribe = lambda *args: ready.set()
        self.client.connect(HOST, broker.port, keepalive=30)
        self.client.loop_start()
        self.client.subscribe(
            [(topics.topic(terminal_id, kind), topics.QOS) for kind in (topics.ANSWER, topics.COMMAND, topics.CONFIG)]
        )
        assert ready.wait(WAIT), broker.output()
        self.client.publish(topics.topic(terminal_id, topics.STATUS), topics.ONLINE, qos=1, retain=True)
        self._next = 0

    def _received(self, client, userdata, message):
        payload = json.loads(message.payload)
        kind = message.topic.rsplit("/", 1)[1]
        with self._lock:
            if kind == topics.ANSWER:
                self.answers[payload["id"]] = payload
            elif kind == topics.COMMAND:
                self.commands.append(payload)
            else:
                self.configs.append(payload)

    def send(self, payload: dict) -> str:
        self.client.publish(topics.topic(self.terminal_id, topics.REQUEST), json.dumps(payload), qos=1)
        return payload["id"]

    def ask(self, method: str, vector, *, message_id=None, quality=0.9, liveness=True, **fields) -> dict:
        """Send an access request and wait for its answer."""
        self._next += 1
        payload = {
            "id": message_id or f"{self.terminal_id}-{self._next}",
            "type": "access",
            "method": method,
            "model": MODEL,
            "template_b64": messages.encode_template(vector),
            "quality": quality,
            "liveness": liveness,
            **fields,
        }
        return self.answer_to(self.send(payload))

    def answer_to(self, message_id: str) -> dict:
        return wait_until(lambda: self.answers.get(message_id), WAIT, lambda: f"no answer to {message_id}")

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def population():
    return Population(20, seed=7)


@pytest.fixture
def site(transactional_db, population):
    """A door behind a face terminal, two enrolled cardholders allowed there, one enrolled who is not."""
    door = make_access_point(name="Lab door")
    other_door = make_access_point(name="Store room")
    allowed = make_access_level(door)
    elsewhere = make_access_level(other_door)
    people = {}
    for index, (name, level) in enumerate((("Ada", allowed), ("Grace", allowed), ("Linus", elsewhere))):
        holder = make_cardholder(level, first_name=name, pin=f"{4000 + index}")
        make_key(holder, uid=f"CAFE000{index}")
        faces.record_consent(holder, operator=None, via="test")
        faces.store_template(holder, faces.Capture(MODEL, population.capture(index)), via="test")
        people[name] = (holder, index)
    device = Device.objects.create(device_id=9001, name="Lab face terminal", kind=DeviceKind.FACE_TERMINAL)
    terminal = FaceTerminal.objects.create(device=device, terminal_id="lab-1", access_point=door, pin_and_face=True)
    return {"door": door, "people": people, "terminal": terminal}


@pytest.fixture
def space(broker, site):
    running = face_service(broker, WAIT)
    yield running.service
    running.stop()


@pytest.fixture
def lab(broker, space):
    terminal = Terminal(broker, "lab-1")
    yield terminal
    terminal.close()


def events(**filters):
    return list(AuditEvent.objects.filter(device__isnull=False, **filters).order_by("id"))


def stored(count: int, **filters) -> list:
    return wait_until(lambda: (found := events(**filters)) and len(found) >= count and found, WAIT)


def test_a_genuine_face_is_granted_and_an_impostor_refused_at_the_threshold(lab, site, population):
    ada, index = site["people"]["Ada"]
    granted = lab.ask("face", population.capture(index))
    assert granted["granted"] is True and granted["reason"] == "granted" and granted["open_time"] > 0
    refused = lab.ask("face", population.impostors(1)[0])
    assert refused == {**refused, "granted": False, "reason": Reason.FACE_NOT_RECOGNISED.value, "open_time": 0}
    found = stored(2)
    assert [(e.kind, e.cardholder_id, e.reason) for e in found] == [
        (AuditKind.ACCESS_GRANTED, ada.pk, "granted"),
        (AuditKind.ACCESS_DENIED, None, Reason.FACE_NOT_RECOGNISED.value),
    ]
    assert found[0].detail["method"] == "face" and found[0].detail["score"] >= 0.4
    assert found[0].device_event_id == event_id("lab-1", granted["id"])


def test_face_only_searches_only_those_allowed_at_the_door_now(lab, site, population):
    _, index = site["people"]["Linus"]  # enrolled, with a level for another door only
    answer = lab.ask("face", population.capture(index))
    assert answer["granted"] is False and answer["reason"] == Reason.FACE_NOT_RECOGNISED.value


def test_card_and_face_match_the_card_holder_1_to_1(lab, site, population):
    _, ada = site["people"]["Ada"]
    _, grace = site["people"]["Grace"]
    assert lab.ask("card_face", population.capture(ada), card="CAFE0000")["granted"] is True
    # Grace's face with Ada's card: a stolen card is refused, and the record names the card's holder.
    stolen = lab.ask("card_face", population.capture(grace), card="CAFE0000")
    assert stolen["reason"] == Reason.FACE_MISMATCH.value
    assert lab.ask("card_face", population.capture(ada), card="FFFF9999")["reason"] == Reason.UNKNOWN_KEY.value
    found = stored(3)
    assert found[1].reason == Reason.FACE_MISMATCH.value and found[1].key_uid == "CAFE0000"
    assert found[1].cardholder_id == site["people"]["Ada"][0].pk and found[1].detail["score"] < 0.4


def test_pin_and_face(lab, site, population):
    _, ada = site["people"]["Ada"]
    assert lab.ask("pin_face", population.capture(ada), pin="4000")["granted"] is True
    assert lab.ask("pin_face", population.capture(ada), pin="4001")["reason"] == Reason.FACE_MISMATCH.value
    assert lab.ask("pin_face", population.capture(ada), pin="9999")["reason"] == Reason.UNKNOWN_PIN.value


def test_the_terminals_verdicts_and_its_methods_come_first(lab, site, population):
    _, ada = site["people"]["Ada"]
    face = population.capture(ada)
    assert lab.ask("face", face, liveness=False)["reason"] == Reason.LIVENESS_FAILED.value
    assert lab.ask("face", face, quality=0.2)["reason"] == Reason.LOW_QUALITY.value
    FaceTerminal.objects.filter(pk=site["terminal"].pk).update(face_only=False)
    Device.objects.filter(pk=site["terminal"].device_id).update(updated_at=timezone.now())
    wait_until(lambda: lab.ask("face", face)["reason"] == Reason.METHOD_NOT_ACCEPTED.value, WAIT)


def test_the_rules_of_the_engine_apply_to_a_face(lab, site, population, space):
    ada, index = site["people"]["Ada"]
    door = site["door"]
    zone = make_zone(name="Lab", anti_passback=True)
    door.zones.add(zone)
    door.direction = "entry"
    door.save()
    ada.use_anti_passback = True
    ada.save()

    def rules_seen():
        snapshot = space.store.snapshot
        return zone.pk in snapshot.access_points[door.pk].zone_ids and snapshot.cardholders[ada.pk].use_anti_passback

    wait_until(rules_seen, WAIT)
    assert lab.ask("face", population.capture(index))["granted"] is True
    assert lab.ask("face", population.capture(index))["reason"] == Reason.ANTI_PASSBACK.value
    door.lockdown = True
    door.save()
    _, grace = site["people"]["Grace"]
    wait_until(lambda: lab.ask("face", population.capture(grace))["reason"] == Reason.LOCKDOWN.value, WAIT)


def test_a_redelivered_request_is_answered_the_same_and_recorded_once(lab, site, population):
    _, ada = site["people"]["Ada"]
    first = lab.ask("face", population.capture(ada), message_id="same-1")
    lab.answers.clear()
    again = lab.ask("face", population.impostors(1)[0], message_id="same-1")  # the broker's second delivery
    assert again == first
    marker = lab.ask("face", population.capture(ada), message_id="marker")  # stored after the duplicate would be
    assert marker["granted"]
    stored(2)
    assert [e.detail["message"] for e in events()] == ["same-1", "marker"]


def test_bad_requests_get_the_protocols_negative_answer(lab, site):
    cases = [
        ({"id": "b1", "type": "access", "method": "face", "model": MODEL}, "template_b64"),
        ({"id": "b2", "type": "access", "method": "retina", "model": MODEL}, "method"),
        ({"id": "b3", "type": "access", "method": "face", "model": "nope", "template": [1.0]}, "model"),
        ({"id": "b4", "type": "access", "method": "face", "model": MODEL, "template": [1.0, 2.0]}, "template"),
        ({"id": "b5", "type": "access", "method": "face", "model": MODEL, "template_b64": "!!"}, "template_b64"),
        ({"id": "b6", "type": "access", "method": "card_face", "model": MODEL, "template": [0.1] * 512}, "card"),
        ({"id": "b7", "type": "dance"}, "type"),
    ]
    for payload, field in cases:
        answer = lab.answer_to(lab.send(payload))
        assert answer == {**answer, "type": "error", "field": field}, payload
    assert events() == []


def test_an_unknown_terminal_is_answered_with_an_error(broker, space, site, population):
    stranger = Terminal(broker, "not-commissioned")
    try:
        payload = {"id": "x1", "type": "access", "method": "face", "model": MODEL, "template": [0.1] * 512}
        assert stranger.answer_to(stranger.send(payload))["field"] == "terminal"
    finally:
        stranger.close()


def test_the_terminal_gets_its_configuration_and_its_status_is_followed(broker, lab, site):
    config = wait_until(lambda: lab.configs and lab.configs[-1], WAIT)
    assert config == {**config, "access_point": "Lab door", "methods": ["card_face", "face", "pin_face"]}
    wait_until(lambda: Device.objects.get(pk=site["terminal"].device_id).online, WAIT)
    lab.client.socket().close()  # dies without DISCONNECT: the broker publishes its last will
    wait_until(lambda: not Device.objects.get(pk=site["terminal"].device_id).online, WAIT)


def test_enrolment_round_trip(lab, site, population, space):
    newcomer = make_cardholder(first_name="Hedy")
    faces.record_consent(newcomer, operator=None, via="test")
    enrolment = FaceEnrolment.objects.create(
        cardholder=newcomer, terminal=site["terminal"], expires_at=timezone.now() + dt.timedelta(minutes=2)
    )
    command = wait_until(lambda: lab.commands and lab.commands[-1], WAIT)
    assert command == {**command, "type": "enrol", "enrolment": enrolment.pk, "name": "Hedy " + newcomer.last_name}
    face = np.random.default_rng(3).standard_normal(512).astype(np.float32)
    capture = {
        "id": "enrol-answer-1",
        "type": "enrol",
        "enrolment": enrolment.pk,
        "model": MODEL,
        "template_b64": messages.encode_template(face),
        "quality": 0.95,
        "liveness": True,
    }
    answer = lab.answer_to(lab.send(capture))
    assert answer == {"id": "enrol-answer-1", "type": "enrolled", "enrolment": enrolment.pk, "ok": True}
    enrolment.refresh_from_db()
    assert enrolment.status == FaceEnrolment.Status.COMPLETED
    template = FaceTemplate.objects.get(cardholder=newcomer)
    assert np.allclose(faces.template_vector(template), face / np.linalg.norm(face), atol=1e-6)


def test_an_enrolment_cancelled_after_it_was_sent_is_cancelled_at_the_terminal(lab, site, space):
    newcomer = make_cardholder(first_name="Alan")
    faces.record_consent(newcomer, operator=None, via="test")
    enrolment = FaceEnrolment.objects.create(
        cardholder=newcomer, terminal=site["terminal"], expires_at=timezone.now() + dt.timedelta(minutes=2)
    )
    wait_until(lambda: lab.commands and lab.commands[-1]["type"] == "enrol", WAIT)
    wait_until(lambda: FaceEnrolment.objects.get(pk=enrolment.pk).status == FaceEnrolment.Status.SENT, WAIT)
    actions.cancel_face_enrolment(FaceEnrolment.objects.get(pk=enrolment.pk), operator=None, via="test")
    cancel = wait_until(lambda: lab.commands[-1]["type"] == "cancel_enrol" and lab.commands[-1], WAIT)
    assert cancel["enrolment"] == enrolment.pk


def test_the_access_points_own_threshold_wins_over_the_sites(lab, site, population, space):
    _, ada = site["people"]["Ada"]
    assert lab.ask("card_face", population.capture(ada), card="CAFE0000")["granted"] is True
    site["door"].face_threshold = 0.95  # no capture scores that: genuine faces are refused here now
    site["door"].save()
    wait_until(lambda: space.terminals["lab-1"].threshold == 0.95, WAIT)
    assert lab.ask("card_face", population.capture(ada), card="CAFE0000")["reason"] == Reason.FACE_MISMATCH.value
    assert lab.ask("face", population.capture(ada))["reason"] == Reason.FACE_NOT_RECOGNISED.value
