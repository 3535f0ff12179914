"""The monitor's live channel: what happens, sent to the monitoring websockets.

Audit events reach it as a sink of :mod:`accesscontrol.events`, registered by
this app when it starts (:func:`register`): once the transaction that stored
them commits, :func:`publish` sends their payloads over the channel layer to
the monitoring websockets (``accesscontrol.consumers.MonitorConsumer``):
in-memory inside ``runspace``, channels-redis across processes when
``REDIS_URL`` is set. Door states, which are not audit events, are published
by the device bridge through the same :func:`publish`. An audit event of a
cardholder with a photo carries ``cardholder_photo``, the URL of their
thumbnail (accesscontrol/photos.py), for the monitor only.

The device bridge sends what happened in batches of its own, a few tens of
milliseconds apart, from its event loop: around its writes it gathers the
committed payloads (:func:`collect`) instead of having each commit publish them.
"""

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from accesscontrol import events, photos

logger = logging.getLogger("space.live")

MONITOR_GROUP = "monitor"
SINK = "monitor"


def door_state_payload(
    access_point_id: int | None, name: str, partition_id: int | None, device: int, door, state: str
) -> dict:
    return {
        "type": "door_state",
        "access_point": access_point_id,
        "access_point_name": name,
        "partition": partition_id,
        "device": device,
        "door": door,
        "state": state,
    }


async def publish(payloads: list[dict]) -> None:
    """Send payloads to every monitoring websocket (each consumer narrows them to what its operator may see).

    The batch is encoded once here: a consumer whose operator may see all of it
    sends the text as it is, so a hundred open monitors cost a hundred sends,
    not a hundred encodings (nor, on the in-memory layer, a hundred deep copies).
    """
    if not payloads:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    text = json.dumps({"type": "batch", "items": payloads, "sent": time.time()}, separators=(",", ":"))
    partitions = list({item.get("partition") for item in payloads})
    try:
        await layer.group_send(MONITOR_GROUP, {"type": "monitor.batch", "text": text, "partitions": partitions})
    except Exception:
        # Monitoring is best effort: the audit trail and the outbox already hold the events.
        logger.exception("Publishing %d live items failed", len(payloads))


def publish_sync(payloads: list[dict]) -> None:
    async_to_sync(publish)(payloads)


_collecting = threading.local()


@contextmanager
def collect() -> Iterator[list[dict]]:
    """Within this block, on this thread, committed audit events are gathered in the list, not published."""
    gathered: list[dict] = []
    outer = getattr(_collecting, "payloads", None)
    _collecting.payloads = gathered
    try:
        yield gathered
    finally:
        _collecting.payloads = outer


def _committed(payloads: list[dict]) -> None:
    # The cardholder's thumbnail URL beside each access event, so the operator compares a face with the name;
    # the browser loads the image (through a view that checks the operator may see the cardholder).
    payloads = photos.thumbnails.add_to(payloads)
    gathered = getattr(_collecting, "payloads", None)
    if gathered is not None:
        gathered.extend(payloads)
    else:
        publish_sync(payloads)


def register() -> None:
    """Audit events go to the monitor once their transaction commits (called by AccessControlConfig.ready)."""
    events.register_sink(SINK, committed=_committed)
