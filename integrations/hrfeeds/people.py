"""A feed's rows as people: each row through the feed's column map, validated field by field.

A bad row is a ``RowError`` naming where it stands and the column's field ("line 17, email: not an e-mail
address"), with the person's key when it could be read, so the core keeps that person as they were (a bad row
never makes someone a leaver). Every row of a key that appears twice is refused the same way: which one is
right is for HR to say.
"""

import datetime as dt
import functools
import re
from collections.abc import Callable

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from accesscontrol import sync
from accesscontrol.models.cardholders import UID_PATTERN, normalize_uid
from integrations.hrfeeds.table import Table, TableError, cell_text

TEXT_LIMITS = {
    "key": 64,
    "last_name": 100,
    "first_name": 100,
    "phone_number": 32,
    "department": 100,
    "job_title": 100,
    "email": 254,
}
PROGRESS_EVERY = 100
# Addresses of the commonest shape, all of which Django's EmailValidator accepts too (it is tried for the others).
PLAIN_EMAIL = re.compile(
    r"^[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}\Z"
)


def column_indexes(table: Table, columns: dict[str, str]) -> dict[str, int]:
    """{field: index of its column}; TableError naming the mapped columns missing and the columns found."""
    found = {header.casefold(): index for index, header in reversed(list(enumerate(table.header)))}
    missing = [header for header in columns.values() if header.casefold() not in found]
    if missing:
        raise TableError(
            f"The header row has no column {', '.join(map(repr, missing))} of the feed's column map; "
            f"its columns: {', '.join(repr(header) for header in table.header if header) or 'none'}."
        )
    return {name: found[header.casefold()] for name, header in columns.items()}


def read_people(
    table: Table, settings: dict, zone: dt.tzinfo, advance: Callable[[int], None] = lambda count: None
) -> tuple[list[sync.Person], list[sync.RowError]]:
    indexes = column_indexes(table, settings["columns"])
    readers = [(name, index, _FIELD_READERS.get(name, _text)) for name, index in indexes.items()]
    people, errors, lines_of = [], [], {}
    done = 0
    for where, cells in table.rows:
        person, row_errors = read_row(where, cells, readers, settings, zone)
        errors.extend(row_errors)
        if person is not None:
            people.append(person)
            lines_of.setdefault(person.key, []).append(where)
        done += 1
        if done % PROGRESS_EVERY == 0:
            advance(PROGRESS_EVERY)
    advance(done % PROGRESS_EVERY)
    twice = {key for key, wheres in lines_of.items() if len(wheres) > 1}
    if twice:
        for person in people:
            if person.key in twice:
                others = [where for where in lines_of[person.key] if where != person.origin]
                message = f"the key {person.key!r} is also on {', '.join(others)}: no row of it is read"
                errors.append(sync.RowError(person.origin, "key", message, key=person.key))
        people = [person for person in people if person.key not in twice]
    return people, errors


def read_row(where, cells, readers, settings, zone) -> tuple[sync.Person | None, list[sync.RowError]]:
    """One row as a Person, or None with the row's errors (each field's, with the key when it was read).
    ``readers``: (field, index of its column, the function reading it) of each mapped field."""
    values, problems = {}, []
    width = len(cells)
    for name, index, reader in readers:
        try:
            values[name] = reader(name, cells[index] if index < width else None, settings, zone)
        except ValidationError as error:
            problems.append((name, error.messages[0]))
    key = values.get("key", "")
    if "key" in values and not key:
        problems.insert(0, ("key", "empty: every row needs the person's key"))
    if "last_name" in values and not values["last_name"] and not any(n == "last_name" for n, _ in problems):
        problems.append(("last_name", "empty: a cardholder needs a last name"))
    activation, expiration = values.get("activation"), values.get("expiration")
    if activation and expiration and expiration <= activation:
        problems.append(("expiration", "before the activation date"))
    if problems:
        return None, [sync.RowError(where, name, message, key=key) for name, message in problems]
    return sync.Person(origin=where, **values), []


def _text(name, cell, settings, zone) -> str:
    text = cell_text(cell)
    limit = TEXT_LIMITS.get(name, 100)
    if len(text) > limit:
        raise ValidationError(f"longer than {limit} characters")
    return text


def _email(name, cell, settings, zone) -> str:
    text = _text(name, cell, settings, zone)
    if text and not PLAIN_EMAIL.match(text):  # the common shape first: Django's full check is slow for 100,000
        try:
            validate_email(text)
        except ValidationError:
            raise ValidationError(f"{text!r} is not an e-mail address") from None
    return text


def _phone(name, cell, settings, zone) -> str:
    text = _text(name, cell, settings, zone)
    if text and not all(char.isdigit() or char in "+-() ./" for char in text):
        raise ValidationError(f"{text!r} is not a phone number")
    return text


def _date(name, cell, settings, zone) -> dt.datetime | None:
    """A date (the whole day: activation from its start, expiration to its end, site time) or a date and time."""
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        return None
    if isinstance(cell, dt.datetime):
        moment, whole_day = cell, cell.time() == dt.time()
    elif isinstance(cell, dt.date):
        moment, whole_day = dt.datetime.combine(cell, dt.time()), True
    else:
        text = cell_text(cell)
        parsed = _parse_date(text, tuple(settings["date_formats"]))
        if parsed is None:
            raise ValidationError(f"{text!r} is not a date ({' or '.join(settings['date_formats'])})")
        moment, whole_day = parsed
    if moment.tzinfo is None:
        if whole_day and name == "expiration":
            moment = dt.datetime.combine(moment.date(), dt.time(23, 59, 59))
        moment = moment.replace(tzinfo=zone)
    return moment


@functools.lru_cache(maxsize=4096)
def _parse_date(text: str, formats: tuple[str, ...]) -> tuple[dt.datetime, bool] | None:
    """(the moment, whether it is a whole day) by the first format that reads ``text``; cached, as strptime is slow
    and an HR file repeats its dates (start of the month, end of the quarter)."""
    for pattern in formats:
        try:
            moment = dt.datetime.strptime(text, pattern)
        except ValueError:
            continue
        return moment, not any(part in pattern for part in ("%H", "%I", "%M"))
    return None


def _groups(name, cell, settings, zone) -> frozenset[str]:
    text = cell_text(cell)
    separator = settings.get("groups_separator", ";")
    parts = text.split(separator) if separator else [text]
    return frozenset(part.strip() for part in parts if part.strip())


def _card_uid(name, cell, settings, zone) -> str:
    text = normalize_uid(cell_text(cell))
    if text and not UID_PATTERN.match(text):
        raise ValidationError(f"{cell_text(cell)!r} is not a card UID (2 to 64 hexadecimal digits)")
    return text


def _blocked(name, cell, settings, zone) -> bool:
    return cell_text(cell).casefold() in settings["blocked_values"]


_FIELD_READERS = {
    "email": _email,
    "phone_number": _phone,
    "activation": _date,
    "expiration": _date,
    "groups": _groups,
    "card_uid": _card_uid,
    "blocked": _blocked,
}
