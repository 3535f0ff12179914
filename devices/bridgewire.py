"""The local bridge's websocket protocol (``/ws/encoder/``, docs/usb-encoder.md): proof and message checks.

Free of Django: the local bridge program imports it on a desk PC, the server's
consumer (devices/consumers.py) on the server. Messages are JSON objects with a
``type``; :func:`bridge_message` turns what a bridge sent into a checked dict or
None (the consumer drops and counts it).
"""

import hashlib
import hmac
import json
import re
import struct

PATH = "/ws/encoder/"
PROOF_LABEL = b"Space local bridge"
CHALLENGE_SIZE = 16
# Close codes of the server (4000-4999 are the application's).
REFUSED = 4403  # unknown device, not a USB encoder, disabled, or the proof does not hold
AUTH_TIMEOUT = 4408
REPLACED = 4409  # a newer connection of the same encoder took over

STAGES = ("waiting_card", "writing")
# Errors a bridge may report for a job; anything else is stored as ``encoder_error``.
ERRORS = frozenset(
    {"no_card", "wrong_card_type", "wrong_card", "write_failed", "checksum", "encoder_offline", "timeout", "busy"}
)
HEX_UID = re.compile(r"^[0-9A-F]{2,32}$")
MAX_JOB = 2**63 - 1


def proof(key: bytes, device_id: int, challenge: bytes) -> str:
    """HMAC-SHA256(device key, label ‖ device id (u32, big-endian) ‖ challenge), in hex."""
    message = PROOF_LABEL + struct.pack(">I", device_id) + challenge
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def proof_holds(key: bytes, device_id: int, challenge: bytes, answer: object) -> bool:
    return isinstance(answer, str) and hmac.compare_digest(proof(key, device_id, challenge), answer)


def _is_job(value) -> bool:
    return type(value) is int and 1 <= value <= MAX_JOB


def _auth(message: dict) -> bool:
    device_id = message.get("device_id")
    return type(device_id) is int and 1 <= device_id <= 2**32 - 1 and isinstance(message.get("mac"), str)


def _progress(message: dict) -> bool:
    percent = message.get("percent", 0)
    return (
        _is_job(message.get("job")) and message.get("stage") in STAGES and type(percent) is int and 0 <= percent <= 100
    )


def _result(message: dict) -> bool:
    if not _is_job(message.get("job")) or type(message.get("ok")) is not bool:
        return False
    if message["ok"]:
        return isinstance(message.get("uid"), str) and HEX_UID.match(message["uid"]) is not None
    return isinstance(message.get("error"), str) and len(message["error"]) <= 64


_CHECKS = {"auth": _auth, "progress": _progress, "result": _result, "ping": lambda message: True}


def bridge_message(text: str | None) -> dict | None:
    """The message a bridge sent, checked; None for anything else (not JSON, unknown type, bad fields)."""
    if not text or len(text) > 4096:
        return None
    try:
        message = json.loads(text)
    except ValueError:
        return None
    if not isinstance(message, dict):
        return None
    check = _CHECKS.get(message.get("type"))
    return message if check is not None and check(message) else None


def job_error(error: str) -> str:
    """The error stored on the job for what a bridge reported."""
    return error if error in ERRORS else "encoder_error"
