"""Cardholders from a directory (OpenLDAP, Active Directory): the ``ldap`` kind of cardholder source.

The core (accesscontrol/sync.py) plans and applies; this module only reads. A source's settings
(:func:`validate_settings`) say where to look (one or more search bases and a filter) and which
attribute holds what (:data:`FLAVOURS` gives OpenLDAP's and Active Directory's defaults).

:func:`read_directory` reads in pages (RFC 2696, the control Active Directory supports too), so a
directory larger than its size limit is read whole:

- a full run reads every entry under the bases, then the groups of interest (the source's group
  map and scope groups) by a base read of each group entry, and answers a complete snapshot;
- an incremental run (there is a cursor, the settings it was made with have not changed, and the
  last full run is recent) reads in full only the entries changed since the cursor (OpenLDAP's
  ``modifyTimestamp``, Active Directory's ``uSNChanged``), then every entry's key alone (cheap: no
  photos) to know who is still there (leavers are the rest), and the groups again, so a
  membership change (which changes the group's entry, not the person's) is seen.

Values are decoded by pure functions (objectGUID as its GUID string, accountExpires' FILETIME,
userAccountControl's disabled bit); an entry that cannot be read becomes a RowError with its key,
so a person with one bad attribute is reported, not taken for a leaver.
"""

import datetime as dt
import hashlib
import json
import re
import time

import ldap
import ldap.dn
from django.core.exceptions import ValidationError

from accesscontrol import sync
from integrations.ldap.config import PAGE_SIZE, DirectoryConfig, normalize_dn
from integrations.ldap.directory import connect, describe, paged_search

NEVER = 0x7FFF_FFFF_FFFF_FFFF  # accountExpires: never (0 says the same)
ACCOUNT_DISABLE = 0x2  # userAccountControl: the account is disabled
FILETIME_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)
# An incremental cursor on modifyTimestamp starts this much before the read that set it began, so an
# entry changed while a read was under way (after the read had passed it) is read again next time.
TIMESTAMP_OVERLAP = dt.timedelta(minutes=1)

# The Person fields an attribute may fill; "key" and "last_name" must be mapped.
FIELDS = (
    "key",
    "first_name",
    "last_name",
    "email",
    "department",
    "job_title",
    "phone_number",
    "photo",
    "card_uid",
    "expiration",
    "disabled",
)
FLAVOURS = {
    "openldap": {
        "filter": "(objectClass=inetOrgPerson)",
        "group_type": "groupOfNames",
        "incremental": "modifyTimestamp",
        "attributes": {
            "key": "entryUUID",
            "first_name": "givenName",
            "last_name": "sn",
            "email": "mail",
            "department": "departmentNumber",
            "job_title": "title",
            "phone_number": "telephoneNumber",
            "photo": "jpegPhoto",
            "card_uid": "",
            "expiration": "",
            "disabled": "",
        },
    },
    "active_directory": {
        "filter": "(&(objectCategory=person)(objectClass=user))",
        "group_type": "group",
        "incremental": "uSNChanged",
        "attributes": {
            "key": "objectGUID",
            "first_name": "givenName",
            "last_name": "sn",
            "email": "mail",
            "department": "department",
            "job_title": "title",
            "phone_number": "telephoneNumber",
            "photo": "thumbnailPhoto",
            "card_uid": "",
            "expiration": "accountExpires",
            "disabled": "userAccountControl",
        },
    },
}
# The group's object class -> the attribute naming its members (by DN).
GROUP_TYPES = {"groupOfNames": "member", "groupOfUniqueNames": "uniqueMember", "group": "member"}
INCREMENTAL = ("modifyTimestamp", "uSNChanged", "")
SETTINGS = (
    "url",
    "bind_dn",
    "start_tls",
    "ca_file",
    "bases",
    "filter",
    "flavour",
    "attributes",
    "group_type",
    "member_attribute",
    "incremental",
    "page_size",
)
ATTRIBUTE_NAME = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)$")
_RDN = r"[A-Za-z][A-Za-z0-9-]*=[^,=+\"\\<>;#\s](?:[^,=+\"\\<>;]*[^,=+\"\\<>;\s])?"
PLAIN_DN = re.compile(rf"^{_RDN}(?:,{_RDN})*$")
GENERALIZED_TIME = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:[.,](\d+))?(Z|[+-]\d{4})$")


# --- settings -----------------------------------------------------------------------------------


def validate_settings(settings: dict) -> dict:
    """The settings as given, cleaned (what is saved); ValidationError({setting: message}) on a mistake.

    The flavour's defaults are not written into them, so a source switched to another flavour takes
    that flavour's defaults for whatever it does not set itself.
    """
    full = settings_with_defaults(settings)
    cleaned = {name: full[name] for name in SETTINGS if name in settings}
    if "attributes" in settings:
        cleaned["attributes"] = {name: full["attributes"][name] for name in settings["attributes"]}
    return cleaned


def settings_with_defaults(settings: dict) -> dict:
    """The settings with the flavour's defaults filled in; ValidationError({setting: message}) on a mistake."""
    if not isinstance(settings, dict):
        raise ValidationError({"settings": "The settings must be a JSON object."})
    errors: dict[str, str] = {}
    for name in sorted(set(settings) - set(SETTINGS)):
        errors[name] = f"Unknown setting; the settings are: {', '.join(SETTINGS)}."
    flavour = settings.get("flavour", "openldap")
    if flavour not in FLAVOURS:
        errors["flavour"] = f"Must be one of {', '.join(FLAVOURS)}."
        flavour = "openldap"
    defaults = FLAVOURS[flavour]
    cleaned = {"flavour": flavour}

    url = settings.get("url")
    if not isinstance(url, str) or not re.match(r"^ldaps?://[^\s/]+/?$", url.strip()):
        errors["url"] = "An address such as ldaps://dc1.example.com or ldap://ldap.example.com:389."
    else:
        cleaned["url"] = url.strip()
    cleaned["bind_dn"] = _dn_setting(settings.get("bind_dn", ""), "bind_dn", errors, blank=True)
    for name in ("start_tls",):
        value = settings.get(name, False)
        if not isinstance(value, bool):
            errors[name] = "true or false."
        cleaned[name] = value is True
    ca_file = settings.get("ca_file") or ""
    if not isinstance(ca_file, str) or (ca_file and not ca_file.startswith("/")):
        errors["ca_file"] = "The absolute path of a file of CA certificates (PEM), or empty."
    cleaned["ca_file"] = ca_file if isinstance(ca_file, str) else ""

    bases = settings.get("bases")
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not bases:
        errors["bases"] = 'One or more search bases (DNs), such as ["ou=people,dc=example,dc=com"].'
        bases = []
    cleaned["bases"] = []
    for base in bases:
        dn = _dn_setting(base, "bases", errors, blank=False)
        if dn and normalize_dn(dn) not in {normalize_dn(b) for b in cleaned["bases"]}:
            cleaned["bases"].append(dn)

    search_filter = settings.get("filter") or defaults["filter"]
    if not isinstance(search_filter, str) or not _is_filter(search_filter.strip()):
        errors["filter"] = "An LDAP filter in parentheses, such as (objectClass=inetOrgPerson)."
    else:
        cleaned["filter"] = search_filter.strip()

    attributes = settings.get("attributes", {})
    if not isinstance(attributes, dict):
        errors["attributes"] = f"A JSON object from field ({', '.join(FIELDS)}) to attribute name."
        attributes = {}
    mapped = dict(defaults["attributes"])
    problems = []
    for name, attribute in attributes.items():
        if name not in FIELDS:
            problems.append(f"{name}: not a field ({', '.join(FIELDS)})")
        elif attribute is None or attribute == "":
            mapped[name] = ""
        elif not isinstance(attribute, str) or not ATTRIBUTE_NAME.match(attribute.strip()):
            problems.append(f"{name}: {attribute!r} is not an attribute name")
        else:
            mapped[name] = attribute.strip()
    problems += [f"{name}: must be mapped" for name in ("key", "last_name") if not mapped[name]]
    if problems:
        errors["attributes"] = "; ".join(problems) + "."
    cleaned["attributes"] = mapped

    group_type = settings.get("group_type") or defaults["group_type"]
    if group_type not in GROUP_TYPES:
        errors["group_type"] = f"Must be one of {', '.join(GROUP_TYPES)}."
        group_type = defaults["group_type"]
    cleaned["group_type"] = group_type
    member_attribute = settings.get("member_attribute") or GROUP_TYPES[group_type]
    if not isinstance(member_attribute, str) or not ATTRIBUTE_NAME.match(member_attribute):
        errors["member_attribute"] = "An attribute name, such as member."
    cleaned["member_attribute"] = member_attribute

    incremental = settings.get("incremental", defaults["incremental"])
    if incremental is None:
        incremental = ""
    if incremental not in INCREMENTAL:
        errors["incremental"] = "modifyTimestamp (OpenLDAP), uSNChanged (Active Directory), or empty: always full."
    cleaned["incremental"] = incremental

    page_size = settings.get("page_size", PAGE_SIZE)
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 10_000:
        errors["page_size"] = "Entries per page, 1 to 10,000 (at or below the directory's size limit)."
    cleaned["page_size"] = page_size
    if errors:
        raise ValidationError(errors)
    return cleaned


def _dn_setting(value, name: str, errors: dict, *, blank: bool) -> str:
    if (value is None or value == "") and blank:
        return ""
    if not isinstance(value, str) or not value.strip():
        errors[name] = "A distinguished name, such as ou=people,dc=example,dc=com."
        return ""
    try:
        normalize_dn(value)
    except ValueError as exc:
        errors[name] = f"{exc}."
        return ""
    return value.strip()


def _is_filter(text: str) -> bool:
    if not (text.startswith("(") and text.endswith(")")) or "=" not in text:
        return False
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def describe_source(source) -> str:
    settings = source.settings or {}
    bases = settings.get("bases") or []
    return f"{settings.get('url', '?')} {'; '.join(bases if isinstance(bases, list) else [str(bases)])}"


# --- decoders (pure) -----------------------------------------------------------------------------


def guid_text(raw: bytes) -> str:
    """objectGUID (16 bytes, the first three fields little-endian) as Active Directory writes it, in lower case."""
    if len(raw) != 16:
        raise ValueError(f"an objectGUID is 16 bytes, not {len(raw)}")
    # uuid.UUID(bytes_le=raw), without making a UUID for each of 100,000 entries.
    h = (raw[3::-1] + raw[5:3:-1] + raw[7:5:-1] + raw[8:]).hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def filetime(value: str | int) -> dt.datetime | None:
    """accountExpires (100-nanosecond intervals since 1601-01-01 UTC) as an aware datetime; None: never."""
    ticks = int(value)
    if ticks < 0:
        raise ValueError(f"not a FILETIME: {value}")
    if ticks in (0, NEVER):
        return None
    try:
        return FILETIME_EPOCH + dt.timedelta(microseconds=ticks // 10)
    except OverflowError:  # past the year 9999: as good as never
        return None


def generalized_time(value: str) -> dt.datetime:
    """An LDAP GeneralizedTime (20261207153000Z, 202612071530+0100, with a fraction of a second) as a datetime."""
    match = GENERALIZED_TIME.match(value.strip())
    if match is None:
        raise ValueError(f"not a GeneralizedTime: {value!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    moment = dt.datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second or 0),
        int((fraction or "0")[:6].ljust(6, "0")),
        tzinfo=dt.UTC,
    )
    if zone != "Z":
        offset = dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
        moment = moment - offset if zone[0] == "+" else moment + offset
    return moment


def expiration(value: str) -> dt.datetime | None:
    """An expiration attribute: a GeneralizedTime, or Active Directory's FILETIME (accountExpires)."""
    value = value.strip()
    if GENERALIZED_TIME.match(value):
        return generalized_time(value)
    if not re.fullmatch(r"-?\d+", value):
        raise ValueError(f"neither a GeneralizedTime nor a FILETIME: {value!r}")
    return filetime(value)


def disabled(value: str) -> bool:
    """userAccountControl (bit 2: disabled), or a boolean attribute such as nsAccountLock (TRUE: disabled)."""
    value = value.strip()
    if value.upper() in ("TRUE", "FALSE"):
        return value.upper() == "TRUE"
    return bool(int(value) & ACCOUNT_DISABLE)


def value_range(option: str) -> tuple[int, int | None] | None:
    """Active Directory's ranged values, ``member;range=1500-2999`` (None: the last part, ``1500-*``)."""
    match = re.search(r";range=(\d+)-(\d+|\*)$", option, re.IGNORECASE)
    if match is None:
        return None
    end = match.group(2)
    return int(match.group(1)), None if end == "*" else int(end)


# --- reading -------------------------------------------------------------------------------------


class Entries:
    """A directory entry's attributes, by lower-cased name (LDAP attribute names are case-insensitive)."""

    def __init__(self, attributes: dict[str, list[bytes]]):
        self.values = {name.lower(): values for name, values in attributes.items()}

    def raw(self, attribute: str) -> bytes | None:
        values = self.values.get(attribute.lower()) if attribute else None
        return values[0] if values else None

    def text(self, attribute: str) -> str:
        raw = self.raw(attribute)
        return raw.decode("utf-8", "replace").strip() if raw is not None else ""


class Reader:
    def __init__(self, source, settings: dict, progress):
        self.source = source
        self.settings = settings
        self.progress = progress
        self.map = settings["attributes"]
        self.groups = _groups_of_interest(source)
        self.errors: list[sync.RowError] = []
        self.read = 0

    # The connection ------------------------------------------------------------------------------

    def connect(self):
        settings = self.settings
        config = DirectoryConfig(
            url=settings["url"],
            user_base=settings["bases"][0],
            bind_dn=settings["bind_dn"],
            bind_password=self.source.secret or "",
            start_tls=settings["start_tls"],
            ca_file=settings["ca_file"] or None,
            page_size=settings["page_size"],
        )
        try:
            return connect(config)
        except ldap.LDAPError as exc:
            raise sync.SourceError(f"Cannot reach or bind to {settings['url']}: {describe(exc)}") from None

    # Searches ------------------------------------------------------------------------------------

    def search(self, connection, search_filter: str, attributes: list[str]):
        """(dn, attributes) of every entry under every base, each entry once (bases may overlap)."""
        seen: set[str] = set()
        for base in self.settings["bases"]:
            try:
                for dn, values in paged_search(
                    connection, base, ldap.SCOPE_SUBTREE, search_filter, attributes, self.settings["page_size"]
                ):
                    if dn in seen:
                        continue
                    seen.add(dn)
                    yield dn, values
            except ldap.NO_SUCH_OBJECT:
                raise sync.SourceError(f"The search base {base} is not in the directory.") from None
            except ldap.SIZELIMIT_EXCEEDED:
                raise sync.SourceError(
                    f"The directory stopped the search under {base} at its size limit: it does not page "
                    "(control 1.2.840.113556.1.4.319), or page_size is above its limit."
                ) from None
            except ldap.LDAPError as exc:
                raise sync.SourceError(f"The search under {base} failed: {describe(exc)}") from None

    def full_attributes(self) -> list[str]:
        names = {attribute for attribute in self.map.values() if attribute}
        if self.settings["incremental"]:
            names.add(self.settings["incremental"])
        return sorted(names)

    def people(self, connection, search_filter: str) -> tuple[list[sync.Person], dict[str, str], str | None]:
        """Every entry the filter finds, as people; their DNs (lower-cased) -> key; the highest change mark seen."""
        people: list[sync.Person] = []
        keys_by_dn: dict[str, str] = {}
        keys: set[str] = set()
        highest = None
        changed = self.settings["incremental"]
        for dn, values in self.search(connection, search_filter, self.full_attributes()):
            entry = Entries(values)
            if changed:
                mark = entry.text(changed)
                if mark and (highest is None or _mark_after(changed, mark, highest)):
                    highest = mark
            person = self.person(dn, entry)
            self.count()
            if person is None:
                continue
            if person.key in keys:
                self.errors.append(sync.RowError(dn, self.map["key"], f"Another entry has the key {person.key}."))
                continue
            keys.add(person.key)
            keys_by_dn[dn.lower()] = person.key
            people.append(person)
        return people, keys_by_dn, highest

    def keys(self, connection) -> dict[str, str]:
        """Every entry's DN (lower-cased) -> key, reading the key attribute alone (the hot loop of a run)."""
        keys_by_dn: dict[str, str] = {}
        attribute = self.map["key"]
        for dn, values in self.search(connection, self.settings["filter"], [attribute]):
            # The answer holds the one attribute asked for (or none): no need to look it up by name.
            raw = next(iter(values.values()))[0] if values else None
            try:
                key = _key(attribute, raw)
            except ValueError:
                continue  # reported when the entry itself is read
            if key:
                keys_by_dn[dn.lower()] = key
        self.read += len(keys_by_dn)
        self.progress.advance(len(keys_by_dn), f"{self.read:,} directory entries read")
        return keys_by_dn

    def count(self):
        self.read += 1
        if self.read % 1000 == 0:
            self.progress.advance(1000, f"{self.read:,} directory entries read")

    def person(self, dn: str, entry: Entries) -> sync.Person | None:
        where = dn
        key_attribute = self.map["key"]
        try:
            key = _key(key_attribute, entry.raw(key_attribute))
        except ValueError as exc:
            self.errors.append(sync.RowError(where, key_attribute, str(exc)))
            return None
        if not key:
            self.errors.append(sync.RowError(where, key_attribute, "The entry has no key."))
            return None
        fields = {}
        for name in ("first_name", "last_name", "email", "department", "job_title", "phone_number"):
            fields[name] = entry.text(self.map[name])
        if not fields["last_name"]:
            self.errors.append(sync.RowError(where, self.map["last_name"], "The entry has no last name.", key))
            return None
        try:
            fields.update(self.decoded(entry))
        except _BadValue as exc:
            self.errors.append(sync.RowError(where, exc.attribute, exc.message, key))
            return None
        photo = entry.raw(self.map["photo"]) if self.map["photo"] else None
        return sync.Person(key=key, photo=photo, origin=dn, **fields)

    def decoded(self, entry: Entries) -> dict:
        fields = {}
        for name, decode in (("expiration", expiration), ("disabled", disabled)):
            attribute = self.map[name]
            value = entry.text(attribute)
            if not value:
                continue
            try:
                fields[name] = decode(value)
            except (ValueError, OverflowError) as exc:
                raise _BadValue(attribute, f"Cannot read {value!r}: {exc}.") from None
        if "disabled" in fields:
            fields["blocked"] = fields.pop("disabled")
        card = entry.text(self.map["card_uid"])
        if card:
            fields["card_uid"] = card  # the core checks it is a UID (hex) and reports one that is not
        return fields

    # Groups --------------------------------------------------------------------------------------

    def memberships(self, connection, keys_by_dn: dict[str, str]) -> dict[str, set[str]]:
        """Key -> the groups of interest (as the source's configuration spells them) the entry is in.

        ``keys_by_dn``: the entries' DNs, lower-cased, as the directory answered them. A member value is
        nearly always spelt as its entry's DN (Active Directory keeps it so); one that is not is compared
        normalized (escapes, spaces), which costs more and is done only then.
        """
        groups: dict[str, set[str]] = {}
        normalized: dict[str, str] | None = None
        attribute = self.settings["member_attribute"]
        for dn, spellings in sorted(self.groups.items()):
            members = self.members(connection, dn, attribute)
            if members is None:
                raise sync.SourceError(
                    f"The group {dn} (in the source's group map or scope groups) is not in the directory."
                )
            for member in members:
                text = _member_dn(member)
                key = keys_by_dn.get(text.lower())
                if key is None:
                    if normalized is None:
                        normalized = {dn_key(entry): key for entry, key in keys_by_dn.items()}
                    key = normalized.get(dn_key(text))
                if key is not None:
                    groups.setdefault(key, set()).update(spellings)
        return groups

    @staticmethod
    def members(connection, dn: str, attribute: str) -> list[bytes] | None:
        """A group's member values, read at its DN (a base read: no size limit cuts it), Active Directory's
        ranged values (``member;range=0-1499``, then the next range) included; None: no such group."""
        members: list[bytes] = []
        wanted = attribute
        while True:
            try:
                found = connection.search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", [wanted])
            except ldap.NO_SUCH_OBJECT:
                return None
            except ldap.LDAPError as exc:
                raise sync.SourceError(f"Cannot read the group {dn}: {describe(exc)}") from None
            if not found:
                return None
            values = found[0][1]
            ranged = None
            for name, part in values.items():
                if name.lower() == attribute.lower():
                    members += part
                elif name.lower().startswith(attribute.lower() + ";range="):
                    members += part
                    ranged = value_range(name)
            if ranged is None or ranged[1] is None:
                return members
            wanted = f"{attribute};range={ranged[1] + 1}-*"


class _BadValue(Exception):
    def __init__(self, attribute: str, message: str):
        super().__init__(message)
        self.attribute, self.message = attribute, message


def _key(attribute: str, raw: bytes | None) -> str:
    if raw is None:
        return ""
    if attribute.lower() == "objectguid":
        return guid_text(raw)
    text = raw.decode("utf-8", "strict").strip()
    return text.lower() if attribute.lower() == "entryuuid" else text


def dn_key(dn: str) -> str:
    """The DN as :func:`normalize_dn` spells it; a plain DN (no escapes, no spaces around separators, one
    attribute per RDN: nearly all) is only lower-cased, 50 times faster, which counts at 100,000 entries."""
    if PLAIN_DN.match(dn):
        return dn.lower()
    try:
        return normalize_dn(dn)
    except ValueError:
        return dn.lower()


def _member_dn(value: bytes) -> str:
    text = value.decode("utf-8", "replace")
    # groupOfUniqueNames: a member may carry an optional UID after '#' (nameAndOptionalUID).
    if "#'" in text:
        text = text.split("#'", 1)[0]
    return text


def _groups_of_interest(source) -> dict[str, set[str]]:
    """Normalized DN -> the spellings the source's configuration uses, which Person.groups carries."""
    groups: dict[str, set[str]] = {}
    for name in [*(source.group_map or {}), *(source.scope_groups or [])]:
        try:
            groups.setdefault(normalize_dn(name), set()).add(name)
        except ValueError:
            message = f"The group {name!r} in the source's group map or scope groups is not a DN."
            raise sync.SourceError(message) from None
    return groups


def _mark_after(attribute: str, mark: str, other: str) -> bool:
    if attribute == "uSNChanged":
        return int(mark) > int(other)
    return generalized_time(mark) > generalized_time(other)


def _fingerprint(settings: dict) -> str:
    """What decides which entries are read and how: a cursor made under other settings is not used."""
    relevant = {name: settings[name] for name in ("url", "bases", "filter", "attributes", "incremental")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def _wants_full(source, settings: dict, full: bool) -> bool:
    """The core asks for a full read when there is no cursor or the last full read is old (full_every_hours);
    a cursor made on another attribute or under other settings is not used either."""
    cursor = source.cursor or {}
    if full or not settings["incremental"] or not cursor.get("since"):
        return True
    return cursor.get("fingerprint") != _fingerprint(settings) or cursor.get("attribute") != settings["incremental"]


def domain_controller(connection) -> tuple[str, int | None]:
    """Active Directory's rootDSE: the domain controller answering (dsServiceName) and its highestCommittedUSN.

    USNs count one controller's changes: a cursor is used only with the controller that gave it. ("", None)
    from a directory that is not Active Directory.
    """
    try:
        found = connection.search_s("", ldap.SCOPE_BASE, "(objectClass=*)", ["dsServiceName", "highestCommittedUSN"])
    except ldap.LDAPError:
        return "", None
    entry = Entries(found[0][1] if found else {})
    committed = entry.text("highestCommittedUSN")
    return entry.text("dsServiceName"), int(committed) if committed.isdigit() else None


def _next_cursor(
    settings: dict, highest: str | None, previous: str | None, started: float, entries: int, server: tuple
) -> dict:
    attribute = settings["incremental"]
    if not attribute:
        return {"entries": entries}
    since = previous
    controller, committed = server
    if attribute == "uSNChanged" and committed is not None:
        # Everything committed before the read began was read; what came during it is read next time.
        since = str(committed + 1)
    elif highest is not None:
        if attribute == "uSNChanged":
            candidate = str(int(highest) + 1)
            if since is None or int(candidate) > int(since):
                since = candidate
        else:
            # Entries changed during this read, behind the page it was on, are read again next time.
            elapsed = dt.timedelta(seconds=time.monotonic() - started)
            moment = generalized_time(highest) - elapsed - TIMESTAMP_OVERLAP
            candidate = moment.strftime("%Y%m%d%H%M%SZ")
            if since is None or candidate > since:
                since = candidate
    if since is None:
        return {"entries": entries}
    cursor = {"attribute": attribute, "since": since, "fingerprint": _fingerprint(settings), "entries": entries}
    if controller:
        cursor["server"] = controller
    return cursor


def managed_fields(settings: dict) -> frozenset[str]:
    """The cardholder fields the directory manages: those its attribute map fills (activation: none), so a
    field left unmapped (an OpenLDAP directory's expiration) keeps what is set in Space."""
    mapped = {name for name, attribute in settings["attributes"].items() if attribute}
    return frozenset(name for name in sync.FIELDS if name in mapped)


def read_directory(source, *, full: bool, progress) -> sync.Snapshot:
    """Read the source's directory: everyone (full) or what changed since the cursor (incremental)."""
    try:
        settings = settings_with_defaults(source.settings)
    except ValidationError as exc:
        raise sync.SourceError(f"The source's settings are wrong: {'; '.join(exc.messages)}") from None
    reader = Reader(source, settings, progress)
    incremental = not _wants_full(source, settings, full)
    # Entries to read, as the last run found them (an incremental run reads each twice: changed, then keys).
    progress.set_total(int((source.cursor or {}).get("entries") or 1000))
    started = time.monotonic()
    connection = reader.connect()
    try:
        server = domain_controller(connection) if settings["incremental"] == "uSNChanged" else ("", None)
        if incremental and (source.cursor or {}).get("server", "") != server[0]:
            incremental = False  # another domain controller: its USNs are not the cursor's
        if incremental:
            previous = source.cursor["since"]
            changed_filter = f"(&{settings['filter']}({settings['incremental']}>={previous}))"
            people, _dns, highest = reader.people(connection, changed_filter)
            keys_by_dn = reader.keys(connection)
        else:
            previous = None
            people, keys_by_dn, highest = reader.people(connection, settings["filter"])
        groups = reader.memberships(connection, keys_by_dn)
    finally:
        connection.unbind_s()
    for person in people:
        person.groups = frozenset(groups.get(person.key, ()))
    where = f"{settings['url']} {'; '.join(settings['bases'])}"
    snapshot = sync.Snapshot(
        people=people,
        complete=not incremental,
        cursor=_next_cursor(settings, highest, previous, started, len(keys_by_dn), server),
        errors=reader.errors,
        fields=managed_fields(settings),
    )
    if incremental:
        snapshot.present = set(keys_by_dn.values()) | {person.key for person in people}
        snapshot.memberships = {key: frozenset(groups.get(key, ())) for key in snapshot.present}
        snapshot.description = f"{where}: {len(people):,} changed of {len(snapshot.present):,} entries"
    else:
        snapshot.description = f"{where}: {len(people):,} entries"
    return snapshot


def register() -> None:
    sync.register_kind(
        "ldap",
        label="LDAP / Active Directory",
        read=read_directory,
        validate=validate_settings,
        describe=describe_source,
    )
