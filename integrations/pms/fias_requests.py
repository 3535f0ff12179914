"""What Space does with each FIAS record the PMS sends, and what it answers (docs/fias-in-space.md).

Plain functions from a :class:`~integrations.pms.fias.Record` to the answer
record (or ``None``), calling the hotel operations of ``hotel.actions``.
They run on the FIAS service's threads (they touch the database and wait for
encoders), never on its event loop. A :class:`~hotel.actions.HotelError`
becomes the negative answer status of :data:`ANSWER_STATUS`; bad fields become
``UR``; nothing escapes.
"""

import datetime as dt
import logging

from django.utils import timezone

from hotel import actions as hotel
from integrations.pms.fias import FiasError, Record, encode_data, format_date, format_time, parse_date, parse_time

logger = logging.getLogger("space.fias")

VIA = "fias"
OK, BUSY, DELETED, DENIED, GUEST_NOT_FOUND, RETRY, UNPROCESSABLE = "OK", "BY", "DE", "DN", "NG", "RY", "UR"
CLEAR_TEXT_MAX = 40

# Each HotelError code as a FIAS answer status (AS).
ANSWER_STATUS = {
    hotel.UNKNOWN_ROOM: UNPROCESSABLE,
    hotel.UNKNOWN_ENCODER: UNPROCESSABLE,
    hotel.ENCODER_BUSY: BUSY,
    hotel.ENCODER_OFFLINE: RETRY,
    hotel.NO_CARD: RETRY,
    hotel.WRONG_CARD: RETRY,
    hotel.ENCODE_FAILED: RETRY,
    hotel.TIMEOUT: RETRY,
    hotel.GUEST_NOT_FOUND: GUEST_NOT_FOUND,
    hotel.ROOM_OCCUPIED: DENIED,
    hotel.BAD_REQUEST: UNPROCESSABLE,
}
KEY_KINDS = {"N": hotel.NEW, "D": hotel.COPY, "O": hotel.ONE_SHOT}
RETURN_KEY_DATA = "4"  # RT4: the card data goes back in $3 of the KA
# Why a card read (KZ) holds a key that no longer opens: answered DE (deleted) with what the card says.
KEY_ENDED = ("cancelled", "expired", "other_card")


class Refusal(Exception):
    """A request answered with a negative status."""

    def __init__(self, status: str, text: str):
        super().__init__(text)
        self.status, self.text = status, text


def _clean(text: str) -> str:
    """A value a record can carry: no separator, no control characters (a guest's name is anyone's text)."""
    return "".join(char if char.isprintable() and char != "|" else " " for char in text)


def _clear_text(text: str) -> str:
    """CT: at most 40 characters."""
    return _clean(text)[:CLEAR_TEXT_MAX]


def _departure(record: Record, check_out_time: dt.time) -> dt.datetime:
    if not record.get("GD"):
        raise Refusal(UNPROCESSABLE, "GD (departure date) missing")
    day = parse_date(record.get("GD"))
    at = parse_time(record.get("DT")) if record.get("DT") else check_out_time
    return timezone.make_aware(dt.datetime.combine(day, at))


def _optional_departure(record: Record, check_out_time: dt.time) -> dt.datetime | None:
    return _departure(record, check_out_time) if record.get("GD") else None


def _arrival(record: Record) -> dt.datetime | None:
    if not record.get("GA"):
        return None
    return timezone.make_aware(dt.datetime.combine(parse_date(record.get("GA")), dt.time()))


def _suite(record: Record) -> tuple[str, ...]:
    return tuple(room for room in record.get("SI").split(";") if room)


def _room(record: Record, field_id: str = "RN") -> str:
    room = record.get(field_id)
    if not room:
        raise Refusal(UNPROCESSABLE, f"{field_id} (room) missing")
    return room


def _echo(record: Record, *field_ids: str) -> list[tuple[str, str]]:
    """The request's own fields the answer carries back, and its date and time (now when it had none)."""
    now = timezone.localtime()
    pairs = [(key, record.get(key)) for key in field_ids if record.get(key)]
    pairs.append(("DA", record.get("DA") or format_date(now)))
    pairs.append(("TI", record.get("TI") or format_time(now)))
    return pairs


def key_request(record: Record, check_out_time: dt.time) -> list[tuple[str, str]]:
    """KR: issue a guest key on the encoder KC; the KA's fields."""
    kind = KEY_KINDS.get(record.get("KT") or "N")
    if kind is None:
        raise Refusal(UNPROCESSABLE, f"key type {record.get('KT')!r} unknown")
    issued = _check_in(record, check_out_time, encoder=record.get("KC") or None, kind=kind)
    fields = [("AS", OK)]
    if record.get("RT") == RETURN_KEY_DATA:
        fields.append(("$3", issued.card_data.hex().upper()))
    return fields


def key_delete(record: Record, check_out_time: dt.time) -> list[tuple[str, str]]:
    """KD: the stay in RN ends and its keys are cancelled (check-out)."""
    hotel.check_out(room=_room(record), reservation=record.get("G#"), via=VIA)
    return [("AS", OK)]


def key_modify(record: Record, check_out_time: dt.time) -> list[tuple[str, str]]:
    """KM: room move (RO old room, RN new) and/or a new departure."""
    _change(record, check_out_time)
    return [("AS", OK)]


def _change(record: Record, check_out_time: dt.time) -> None:
    old_room = record.get("RO")
    room = _room(record)
    hotel.modify(
        room=old_room or room,
        new_room=room if old_room and old_room != room else "",
        departure=_optional_departure(record, check_out_time),
        reservation=record.get("G#"),
        guest_name=record.get("GN"),
        via=VIA,
    )


def key_read(record: Record, check_out_time: dt.time) -> list[tuple[str, str]]:
    """KZ: read the card on the encoder KC; the answer says whose key it is."""
    if not record.get("KC"):
        raise Refusal(UNPROCESSABLE, "KC (encoder) missing")
    read = hotel.read_key(encoder=record.get("KC"), via=VIA)
    reason = read.extra.get("reason", "")
    if not read.valid and reason not in KEY_ENDED:
        raise Refusal(UNPROCESSABLE, f"not a key of this hotel ({reason or 'unreadable'})")
    fields = [("AS", OK if read.valid else DELETED)]
    if read.rooms:
        fields.append(("RN", read.rooms[0]))
    if len(read.rooms) > 1:
        fields.append(("SI", ";".join(read.rooms[1:])))
    fields += [("GN", read.guest_name), ("G#", read.reservation)]
    if read.departure is not None:
        departure = timezone.localtime(read.departure)
        fields += [("GD", format_date(departure)), ("DT", format_time(departure))]
    return fields


def guest_in(record: Record, check_out_time: dt.time) -> None:
    """GI: the stay is recorded (a key with no card: the card comes with a KR)."""
    _check_in(record, check_out_time, encoder=None, kind=hotel.NEW)


def _check_in(record: Record, check_out_time: dt.time, *, encoder: str | None, kind: str) -> hotel.KeyIssued:
    return hotel.check_in(
        room=_room(record),
        departure=_departure(record, check_out_time),
        encoder=encoder,
        kind=kind,
        guest_name=record.get("GN"),
        reservation=record.get("G#"),
        arrival=_arrival(record),
        extra_rooms=_suite(record),
        via=VIA,
    )


def guest_out(record: Record, check_out_time: dt.time) -> None:
    """GO: check-out."""
    hotel.check_out(room=_room(record), reservation=record.get("G#"), via=VIA)


def guest_change(record: Record, check_out_time: dt.time) -> None:
    """GC: room move, new departure or name."""
    _change(record, check_out_time)


# Record type: (handler, answer record type or None, fields the answer echoes from the request).
HANDLERS = {
    "KR": (key_request, "KA", ("KC", "WS", "RN", "G#")),
    "KD": (key_delete, "KA", ("KC", "WS", "RN", "G#")),
    "KM": (key_modify, "KA", ("KC", "WS", "RN", "G#")),
    "KZ": (key_read, "KZ", ("KC", "WS")),
    "GI": (guest_in, None, ()),
    "GO": (guest_out, None, ()),
    "GC": (guest_change, None, ()),
}

# The fields Space reads of each record type, announced in the link start's LR records.
FIELDS_READ = {
    "KR": ("KC", "KT", "RN", "WS", "DA", "TI", "G#", "GA", "GD", "DT", "GN", "RT", "SI"),
    "KD": ("KC", "RN", "WS", "DA", "TI", "G#"),
    "KM": ("KC", "RN", "RO", "WS", "DA", "TI", "G#", "GD", "DT", "GN"),
    "KZ": ("KC", "WS", "DA", "TI"),
    "GI": ("RN", "G#", "GN", "GA", "GD", "DT", "SI"),
    "GO": ("RN", "G#"),
    "GC": ("RN", "RO", "G#", "GN", "GD", "DT"),
}


def handle(record: Record, check_out_time: dt.time) -> tuple[Record | None, str]:
    """Do what ``record`` asks; the answer (None for GI/GO/GC) and the outcome (an AS, for counters and logs)."""
    handler = HANDLERS[record.type][0]
    try:
        fields = handler(record, check_out_time) or []
    except hotel.HotelError as exc:
        fields = [("AS", ANSWER_STATUS.get(exc.code, UNPROCESSABLE)), ("CT", _clear_text(str(exc)))]
        logger.warning("FIAS %s refused (%s): %s", record.type, exc.code, exc)
    except Refusal as exc:
        fields = [("AS", exc.status), ("CT", _clear_text(exc.text))]
        logger.warning("FIAS %s refused: %s", record.type, exc.text)
    except FiasError as exc:
        fields = [("AS", UNPROCESSABLE), ("CT", _clear_text(str(exc)))]
        logger.warning("FIAS %s refused: %s", record.type, exc)
    except Exception:
        logger.exception("FIAS %s failed", record.type)
        fields = [("AS", UNPROCESSABLE), ("CT", "internal error")]
    status = dict(fields).get("AS", OK)
    return _answer(record, fields), status


def busy(record: Record) -> Record | None:
    """The answer to a request Space has no room to queue."""
    return _answer(record, [("AS", BUSY)])


def _answer(record: Record, fields: list[tuple[str, str]]) -> Record | None:
    """AS first, then the fields echoed from the request, then the rest."""
    _, answer_type, echoed = HANDLERS[record.type]
    if answer_type is None:
        return None
    status = [pair for pair in fields if pair[0] == "AS"]
    rest = [(key, _clean(value)) for key, value in fields if key != "AS"]
    answer = Record.make(answer_type, *status, *_echo(record, *echoed), *rest)
    try:
        encode_data(answer)
    except FiasError as exc:  # e.g. card data too long for a record: the PMS still gets an answer
        logger.warning("FIAS %s: the answer cannot be sent (%s)", record.type, exc)
        return Record.make(answer_type, ("AS", UNPROCESSABLE), *_echo(record, *echoed), ("CT", _clear_text(str(exc))))
    return answer
