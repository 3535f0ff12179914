"""What makes a webhook request checkable by its receiver: the headers and the signature.

The signature is ``v1=`` and the hex HMAC-SHA256, keyed with the
subscription's secret, of the timestamp, a dot and the body, exactly as sent
(docs/webhooks.md shows a receiver verifying it).
"""

import hashlib
import hmac
import time

VERSION = "v1"
USER_AGENT = "Space-Webhooks/1"
# A receiver should refuse a timestamp further than this from its clock (replays).
TOLERANCE_SECONDS = 300

ID_HEADER = "Space-Webhook-Id"
TIMESTAMP_HEADER = "Space-Webhook-Timestamp"
SIGNATURE_HEADER = "Space-Webhook-Signature"
ATTEMPT_HEADER = "Space-Webhook-Attempt"
EVENT_HEADER = "Space-Webhook-Event"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"{VERSION}={digest}"


def headers(*, secret: str, idempotency_key: str, body: bytes, attempt: int, event: str, timestamp: int) -> dict:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        ID_HEADER: idempotency_key,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        ATTEMPT_HEADER: str(attempt),
        EVENT_HEADER: event,
    }


def verify(secret: str, timestamp: str, signatures: str, body: bytes, now: float | None = None) -> bool:
    """A receiver's check: one of the ``v1=`` signatures matches, and the timestamp is recent."""
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - sent) > TOLERANCE_SECONDS:
        return False
    expected = signature(secret, sent, body)
    return any(hmac.compare_digest(expected, item.strip()) for item in signatures.split(","))
