"""A feed's settings (``CardholderSource.settings`` of kind "hr_feed"): where its file comes from, how to read it,
and which column holds which cardholder field. :func:`validate_settings` returns them cleaned, with defaults filled,
or raises ``ValidationError({field: message})`` naming the setting that is wrong."""

import datetime as dt
import fnmatch
import re
import urllib.parse
from pathlib import Path

from django.core.exceptions import ValidationError

LOCATIONS = ("folder", "https", "sftp")
FORMATS = ("auto", "csv", "xlsx")
ENCODINGS = ("utf-8-sig", "utf-8", "latin-1", "cp1252")
DELIMITERS = (",", ";", "\t", "|")

# Space's cardholder fields a column can fill, and what each holds.
FIELDS = {
    "key": "The person's stable id in HR (employee number); required.",
    "last_name": "Last name; required.",
    "first_name": "First name.",
    "email": "E-mail address.",
    "phone_number": "Phone number.",
    "department": "Department.",
    "job_title": "Job title.",
    "activation": "When access starts (a date: from the start of that day, site time).",
    "expiration": "When access ends, e.g. the leaving date (a date: to the end of that day, site time).",
    "groups": "Groups, mapped to access levels by the source's group map (several: set groups_separator).",
    "card_uid": "A card number (hex UID), issued as a key.",
    "blocked": "Blocked at HR: a leaver (which values mean blocked: blocked_values).",
}
REQUIRED_FIELDS = ("key", "last_name")
DEFAULT_DATE_FORMATS = ["%Y-%m-%d"]
DEFAULT_BLOCKED_VALUES = ["yes", "true", "1", "blocked"]
DEFAULT_SETTLE_SECONDS = 30
HOST_KEY = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}=?$")
HOST = re.compile(r"^[A-Za-z0-9.\-:\[\]]{1,253}$")


def validate_settings(settings) -> dict:
    """The settings cleaned and completed with defaults; ``ValidationError({setting: message})`` for each bad one."""
    if not isinstance(settings, dict):
        raise ValidationError({"settings": "An HR feed's settings are a JSON object."})
    errors: dict[str, str] = {}
    known = {
        "location", "path", "pattern", "settle_seconds", "url", "ca_file", "host", "port", "username", "host_key",
        "format", "sheet", "delimiter", "encoding", "columns", "date_formats", "groups_separator", "blocked_values",
        "archive", "failed",
    }  # fmt: skip
    unknown = sorted(set(settings) - known)
    if unknown:
        errors["settings"] = f"Unknown settings: {', '.join(unknown)}. Known: {', '.join(sorted(known))}."
    cleaned = {}
    location = settings.get("location")
    if location not in LOCATIONS:
        errors["location"] = f"Where the file comes from: one of {', '.join(LOCATIONS)}."
    cleaned["location"] = location
    try:
        if location == "folder":
            cleaned.update(_folder(settings, errors))
        elif location == "https":
            cleaned.update(_https(settings, errors))
        elif location == "sftp":
            cleaned.update(_sftp(settings, errors))
    except (TypeError, ValueError):  # a value of the wrong JSON type where a string or number was awaited
        errors.setdefault("location", "A setting of the location has the wrong type.")
    cleaned.update(_format(settings, errors))
    cleaned.update(_columns(settings, errors))
    for name in ("archive", "failed"):
        value = settings.get(name, "")
        if value and not _absolute(value):
            errors[name] = "An absolute folder path, or empty for the default."
        cleaned[name] = value or ""
    if errors:
        raise ValidationError(errors)
    return cleaned


def _absolute(value) -> bool:
    return isinstance(value, str) and value.strip() == value and Path(value).is_absolute()


def _folder(settings, errors) -> dict:
    path = settings.get("path")
    if not _absolute(path):
        errors["path"] = "The watched folder: an absolute path."
    pattern = settings.get("pattern", "*")
    if not isinstance(pattern, str) or not pattern or "/" in pattern:
        errors["pattern"] = "A file name pattern such as *.csv (no folder)."
    settle = settings.get("settle_seconds", DEFAULT_SETTLE_SECONDS)
    if not isinstance(settle, int) or isinstance(settle, bool) or not 1 <= settle <= 3600:
        errors["settle_seconds"] = "Seconds a file must be left unchanged before it is read: 1 to 3600."
    return {"path": path, "pattern": pattern, "settle_seconds": settle}


def _https(settings, errors) -> dict:
    url = settings.get("url")
    parts = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme != "https" or not parts.hostname:
        errors["url"] = "An https:// address (plain http is refused: the file holds personal data)."
    elif parts.username or parts.password:
        errors["url"] = "No user or password in the address: a bearer token goes in the source's secret."
    ca_file = settings.get("ca_file", "")
    if ca_file and not _absolute(ca_file):
        errors["ca_file"] = "The CA certificate (PEM) that signed the server's certificate: an absolute path."
    return {"url": url, "ca_file": ca_file or ""}


def _sftp(settings, errors) -> dict:
    host = settings.get("host")
    if not isinstance(host, str) or not HOST.match(host):
        errors["host"] = "The SFTP server's host name or IP address."
    port = settings.get("port", 22)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        errors["port"] = "A TCP port, 1 to 65535."
    username = settings.get("username")
    if not isinstance(username, str) or not username.strip():
        errors["username"] = "The user name to log in with (the password or private key is the source's secret)."
    path = settings.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        errors["path"] = "The file's absolute path on the server."
    host_key = settings.get("host_key")
    if not isinstance(host_key, str) or not HOST_KEY.match(host_key.strip()):
        errors["host_key"] = (
            "The server's host key fingerprint, pinned: SHA256:… as `ssh-keygen -lf` prints it "
            "(an unknown host key is refused)."
        )
    return {"host": host, "port": port, "username": username, "path": path, "host_key": (host_key or "").strip()}


def _format(settings, errors) -> dict:
    cleaned = {}
    cleaned["format"] = settings.get("format", "auto")
    if cleaned["format"] not in FORMATS:
        errors["format"] = f"One of {', '.join(FORMATS)} (auto: an XLSX workbook is recognised, anything else is CSV)."
    cleaned["sheet"] = settings.get("sheet", "")
    if not isinstance(cleaned["sheet"], str):
        errors["sheet"] = "The worksheet's name, or empty for the first one."
    cleaned["delimiter"] = settings.get("delimiter", ",")
    if cleaned["delimiter"] not in DELIMITERS:
        errors["delimiter"] = "One of , ; | or a tab."
    cleaned["encoding"] = settings.get("encoding", "utf-8-sig")
    if cleaned["encoding"] not in ENCODINGS:
        errors["encoding"] = f"One of {', '.join(ENCODINGS)}."
    return cleaned


def _columns(settings, errors) -> dict:
    cleaned = {}
    columns = settings.get("columns")
    if not isinstance(columns, dict) or not all(isinstance(v, str) for v in columns.values()):
        errors["columns"] = "The column map: a JSON object {field: column header}."
        columns = {}
    columns = {name: header.strip() for name, header in columns.items() if header.strip()}
    unknown = sorted(set(columns) - set(FIELDS))
    missing = [name for name in REQUIRED_FIELDS if name not in columns]
    headers = [header.casefold() for header in columns.values()]
    twice = sorted({header for header in columns.values() if headers.count(header.casefold()) > 1})
    if "columns" in errors:
        pass
    elif unknown:
        errors["columns"] = f"Unknown fields: {', '.join(unknown)}. Fields: {', '.join(FIELDS)}."
    elif missing:
        errors["columns"] = f"Map a column to {' and '.join(missing)}: {' and '.join(missing)} is required."
    elif twice:
        errors["columns"] = f"A column fills one field only: {', '.join(twice)} is mapped twice."
    cleaned["columns"] = columns

    formats = settings.get("date_formats", DEFAULT_DATE_FORMATS)
    if not isinstance(formats, list) or not formats or not all(_date_format(f) for f in formats):
        errors["date_formats"] = "A list of date formats such as %Y-%m-%d, %d.%m.%Y or %d/%m/%Y %H:%M (tried in order)."
    cleaned["date_formats"] = formats
    separator = settings.get("groups_separator", ";")
    if not isinstance(separator, str) or len(separator) > 3:
        errors["groups_separator"] = "What separates several groups in one cell, e.g. ; (empty: one group a cell)."
    cleaned["groups_separator"] = separator
    blocked = settings.get("blocked_values", DEFAULT_BLOCKED_VALUES)
    if not isinstance(blocked, list) or not blocked or not all(isinstance(v, str) and v.strip() for v in blocked):
        errors["blocked_values"] = 'A list of the values of the blocked column that mean blocked, e.g. ["yes"].'
    else:
        blocked = sorted({value.strip().casefold() for value in blocked})
    cleaned["blocked_values"] = blocked
    return cleaned


def _date_format(text) -> bool:
    """A strftime format that writes and reads back a date (so a typo such as %Y-%m-%q is caught here)."""
    if not isinstance(text, str) or "%" not in text:
        return False
    sample = dt.datetime(2026, 12, 31, 23, 58, 57)
    try:
        return dt.datetime.strptime(sample.strftime(text), text).date() == sample.date()
    except ValueError:
        return False


def matches(settings: dict, name: str) -> bool:
    """A file of the watched folder that the feed reads (a hidden or partial file never is)."""
    if name.startswith((".", "~")) or name.endswith((".part", ".tmp", ".filepart", ".partial", ".crdownload")):
        return False
    return fnmatch.fnmatch(name.casefold(), settings.get("pattern", "*").casefold())
