"""The topic layout between face terminals and Space (docs/face-terminals.md), written once.

Every topic is ``space/face/<terminal id>/<kind>``. The broker's ACL lets a
terminal write and read only the topics with its own id (its certificate's
common name), so the id in a topic Space receives is the terminal's proven
identity: a terminal cannot speak for another.
"""

from devices.choices import FACE_TERMINAL_ID

ROOT = "space/face"
REQUEST = "request"  # terminal → Space: an access request or an enrolment capture (JSON)
EVENT = "event"  # terminal → Space: what happened at the terminal (JSON)
STATUS = "status"  # terminal → Space: "online" (retained), "offline" (its last will, retained)
ANSWER = "answer"  # Space → terminal: the answer to a request (JSON)
CONFIG = "config"  # Space → terminal: the terminal's configuration (JSON, retained)
COMMAND = "command"  # Space → terminal: what an operator asks of it, e.g. capture a face for enrolment (JSON)

TERMINAL_WRITES = (REQUEST, EVENT, STATUS)
TERMINAL_READS = (ANSWER, CONFIG, COMMAND)
KINDS = TERMINAL_WRITES + TERMINAL_READS

# At least once everywhere: the broker and the client store a message until it is acknowledged, and Space
# records each request and event once by its message id, so a redelivered one changes nothing. QoS 2's two
# extra round trips would buy nothing more.
QOS = 1
# Except Space's answers: one is of use only while the person waits at the door. At QoS 0 the broker never
# queues an answer for a terminal that is away (to be shown minutes later), and no acknowledgement travels
# back for each; a terminal that misses one (its link broke) asks again with the same message id and gets
# the same answer, without a second event.
ANSWER_QOS = 0

ONLINE = "online"
OFFLINE = "offline"

TERMINAL_ID = FACE_TERMINAL_ID


def topic(terminal_id: str, kind: str) -> str:
    return f"{ROOT}/{terminal_id}/{kind}"


def every(kind: str) -> str:
    """The subscription filter for ``kind`` of every terminal."""
    return f"{ROOT}/+/{kind}"


def parse(name: str) -> tuple[str, str] | None:
    """``(terminal id, kind)`` of a topic of the layout, or None for any other topic."""
    prefix = ROOT + "/"
    if not name.startswith(prefix):
        return None
    parts = name[len(prefix) :].split("/")
    if len(parts) != 2 or parts[1] not in KINDS or not TERMINAL_ID.fullmatch(parts[0]):
        return None
    return parts[0], parts[1]
