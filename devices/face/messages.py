"""The JSON messages between face terminals and Space (docs/face-terminals.md, "Messages"), read and written once.

A terminal's request (``space/face/<id>/request``) is an access request
(``type: access``: face only, card + face or PIN + face) or an enrolment
capture (``type: enrol``, or ``enrol_failed`` when the terminal could not take
one). :func:`parse_request` turns one into an :class:`AccessRequest`,
:class:`EnrolCapture` or :class:`EnrolFailure`, or raises :class:`BadRequest`
naming the field, which Space answers with ``type: error`` — the protocol's
negative answer. Everything Space sends is built here too.

A template travels as ``template_b64``: base64 of the little-endian float32
values (2,732 characters for 512 values, and no float parsing), or as
``template``: a JSON array of numbers. Its length must be the dimension of the
terminal's face model (``accesscontrol.faces.FACE_MODELS``).
"""

import base64
import binascii
import math
from dataclasses import dataclass

import numpy as np

from accesscontrol.choices import Decision as Reason
from accesscontrol.faces import DTYPE, FACE_MODELS

ACCESS = "access"
ENROL = "enrol"
ENROL_FAILED = "enrol_failed"

FACE = "face"
CARD_FACE = "card_face"
PIN_FACE = "pin_face"
METHODS = (FACE, CARD_FACE, PIN_FACE)

MAX_CARD = 64
MAX_PIN = 12
MAX_ERROR = 200


class BadRequest(ValueError):
    """A request Space cannot take: ``field`` names what is wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True, slots=True)
class Face:
    """A capture as the terminal describes it."""

    model: str
    vector: np.ndarray  # float32, the model's dimension, not yet normalised
    quality: float | None
    live: bool | None  # the terminal's liveness verdict; None when it has no liveness check


@dataclass(frozen=True, slots=True)
class AccessRequest:
    message_id: str
    method: str  # FACE, CARD_FACE or PIN_FACE
    face: Face
    card: str = ""
    pin: str = ""


@dataclass(frozen=True, slots=True)
class EnrolCapture:
    message_id: str
    enrolment_id: int
    face: Face


@dataclass(frozen=True, slots=True)
class EnrolFailure:
    message_id: str
    enrolment_id: int
    error: str


Request = AccessRequest | EnrolCapture | EnrolFailure


def encode_template(vector) -> str:
    """``vector`` as ``template_b64``: base64 of its little-endian float32 values."""
    return base64.b64encode(np.ascontiguousarray(vector, dtype=DTYPE).tobytes()).decode("ascii")


def decode_template(payload: dict, model: str) -> np.ndarray:
    """The template of ``payload`` (``template_b64`` or ``template``), checked against ``model``'s dimension."""
    dimension = FACE_MODELS[model]
    encoded, listed = payload.get("template_b64"), payload.get("template")
    if isinstance(encoded, str):
        if len(encoded) > 4 * dimension * 4 // 3 + 8:
            raise BadRequest("template_b64", f"longer than {dimension} float32 values")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("template_b64", "not base64") from None
        if len(raw) != dimension * 4:
            raise BadRequest("template_b64", f"{len(raw) // 4} values, the model {model} has {dimension}")
        vector = np.frombuffer(raw, dtype=DTYPE)
    elif isinstance(listed, list):
        if len(listed) != dimension:
            raise BadRequest("template", f"{len(listed)} values, the model {model} has {dimension}")
        if not all(isinstance(value, int | float) and not isinstance(value, bool) for value in listed):
            raise BadRequest("template", "not a list of numbers")
        vector = np.asarray(listed, dtype=DTYPE)
    else:
        raise BadRequest("template_b64", "missing: give template_b64 (base64 float32) or template (numbers)")
    if not np.all(np.isfinite(vector)) or not np.any(vector):
        raise BadRequest("template", "values that are not finite, or all zeros")
    return vector


def _face(payload: dict) -> Face:
    model = payload.get("model")
    if not isinstance(model, str) or model not in FACE_MODELS:
        raise BadRequest("model", f"unknown face model; known: {', '.join(sorted(FACE_MODELS))}")
    quality = payload.get("quality")
    if quality is not None and (
        isinstance(quality, bool) or not isinstance(quality, int | float) or not math.isfinite(quality)
    ):
        raise BadRequest("quality", "not a number")
    live = payload.get("liveness")
    if live is not None and not isinstance(live, bool):
        raise BadRequest("liveness", "not true or false")
    return Face(model, decode_template(payload, model), None if quality is None else float(quality), live)


def _text(payload: dict, field: str, limit: int) -> str:
    value = payload.get(field)
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise BadRequest(field, f"a string of 1 to {limit} characters is required")
    return value


def _enrolment_id(payload: dict) -> int:
    value = payload.get("enrolment")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**63:
        raise BadRequest("enrolment", "the enrolment's id (a positive integer) is required")
    return value


def parse_request(payload: dict) -> Request:
    """A request's payload (its envelope already checked: ``id``, ``type``) as a typed request, or BadRequest."""
    message_id, kind = payload["id"], payload["type"]
    if kind == ACCESS:
        method = payload.get("method")
        if method not in METHODS:
            raise BadRequest("method", f"one of {', '.join(METHODS)}")
        card = _text(payload, "card", MAX_CARD) if method == CARD_FACE else ""
        pin = _text(payload, "pin", MAX_PIN) if method == PIN_FACE else ""
        return AccessRequest(message_id, method, _face(payload), card=card, pin=pin)
    if kind == ENROL:
        return EnrolCapture(message_id, _enrolment_id(payload), _face(payload))
    if kind == ENROL_FAILED:
        error = payload.get("error")
        return EnrolFailure(message_id, _enrolment_id(payload), error[:MAX_ERROR] if isinstance(error, str) else "")
    raise BadRequest("type", f"one of {ACCESS}, {ENROL}, {ENROL_FAILED}")


# --- what Space sends ----------------------------------------------------------------------------------------

# What the terminal shows for each answer (the reason stays in the answer for the terminal's own use).
TEXTS = {
    Reason.GRANTED.value: "Welcome",
    Reason.FACE_NOT_RECOGNISED.value: "Face not recognised",
    Reason.FACE_MISMATCH.value: "Face does not match the card",
    Reason.NO_FACE_ENROLLED.value: "No face enrolled: see security",
    Reason.LIVENESS_FAILED.value: "Please look at the camera",
    Reason.LOW_QUALITY.value: "Please look at the camera",
    Reason.METHOD_NOT_ACCEPTED.value: "Not accepted at this door",
    Reason.LOCKDOWN.value: "Lockdown: no entry",
    Reason.DOOR_LOCKED.value: "Door locked",
    Reason.OUTSIDE_SCHEDULE.value: "Not at this time",
    Reason.ANTI_PASSBACK.value: "Already inside",
    Reason.ZONE_FULL.value: "Area full",
    Reason.PIN_REQUIRED.value: "PIN required",
    Reason.WRONG_PIN.value: "Wrong PIN",
    Reason.UNKNOWN_PIN.value: "Wrong PIN",
    Reason.EXPIRED.value: "Access expired",
    Reason.NOT_YET_VALID.value: "Access not yet valid",
}
REFUSED_TEXT = "Access denied"


def answer(message_id: str, granted: bool, reason: str, open_time: int = 0) -> dict:
    """The answer to an access request: granted or refused, why, the text to show and how long to open."""
    text = TEXTS.get(reason, REFUSED_TEXT)
    return {
        "id": message_id,
        "type": "answer",
        "granted": granted,
        "reason": reason,
        "text": text,
        "open_time": open_time if granted else 0,
    }


def enrolled(message_id: str, enrolment_id: int, ok: bool, error: str = "") -> dict:
    """The answer to an enrolment capture."""
    result = {"id": message_id, "type": "enrolled", "enrolment": enrolment_id, "ok": ok}
    if error:
        result["error"] = error[:MAX_ERROR]
    return result


def error(message_id: str, problem: BadRequest) -> dict:
    """The negative answer to a request Space could not read."""
    return {"id": message_id, "type": "error", "field": problem.field, "error": problem.message}


def enrol_command(enrolment_id: int, cardholder_name: str, expires_at: str) -> dict:
    """Ask a terminal to capture a face for enrolment ``enrolment_id`` (sent on its command topic)."""
    return {
        "id": f"enrol-{enrolment_id}",
        "type": "enrol",
        "enrolment": enrolment_id,
        "name": cardholder_name,
        "expires": expires_at,
    }


def cancel_command(enrolment_id: int) -> dict:
    return {"id": f"cancel-{enrolment_id}", "type": "cancel_enrol", "enrolment": enrolment_id}


def configuration(
    revision: int,
    *,
    access_point: str,
    methods: list[str],
    model: str,
    min_quality: float,
    require_liveness: bool,
    enabled: bool,
) -> dict:
    """A terminal's configuration (retained on its config topic)."""
    return {
        "id": f"config-{revision}",
        "type": "config",
        "enabled": enabled,
        "access_point": access_point,
        "methods": methods,
        "model": model,
        "min_quality": min_quality,
        "require_liveness": require_liveness,
    }
