"""One webhook request: POST a body to a checked target and say how it went. All webhook HTTP goes through here.

The request itself is Space's one outbound HTTP client (integrations/http.py):
the connection goes to an address ``targets`` has checked (never a fresh DNS
answer), with the URL's host name in ``Host`` and in TLS (SNI and certificate
verification); every step has a timeout and the whole request a deadline.
Redirects are not followed. Here the answer becomes what a delivery records.
"""

from dataclasses import dataclass

from integrations import http
from integrations.http import TLS_CONTEXT, Timeouts
from integrations.targets import Target

__all__ = ["TLS_CONTEXT", "Answer", "Timeouts", "post"]

ANSWER_READ_LIMIT = 2048


@dataclass(frozen=True)
class Answer:
    status: int | None  # the HTTP status; None when no answer came (timeout, refused, closed, TLS)
    error: str = ""

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(target: Target, body: bytes, headers: dict, timeouts: Timeouts | None = None) -> Answer:
    response = http.post(target, body, headers, timeouts, limit=ANSWER_READ_LIMIT)
    if response.status is None:
        return Answer(None, response.error)
    if response.ok:
        return Answer(response.status)
    detail = " ".join(response.body.decode("utf-8", "replace").split())
    if 300 <= response.status < 400:
        detail = f"redirects are not followed (Location: {response.headers.get('location', '')})"
    return Answer(response.status, http.short(f"HTTP {response.status}" + (f": {detail}" if detail else "")))
