"""slapd filled with people, for the cardholder sync's tests and ``manage.py bench_directory``.

:class:`Directory` is python-ldap's test slapd with the schemas people need (inetOrgPerson and
``adlike.ldif``, Active Directory's own attribute types), a size limit below the directory's size
(as a site's directory has: only a paged search reads it whole), a service account to read it with,
and its entries loaded offline by slapadd before it starts (100,000 entries in seconds, where
adding them over LDAP takes minutes).

Entries come from :func:`ad_user` (shaped as Active Directory answers: a binary objectGUID,
userAccountControl, accountExpires, uSNChanged) and :func:`openldap_user` (inetOrgPerson; slapd
gives it entryUUID and modifyTimestamp). A domain controller raises an entry's uSNChanged at each
change; slapd does not, so :class:`Writer` does it for every change it makes.
"""

import datetime as dt
import io
import os
import tempfile
import uuid
from pathlib import Path

import ldap
import ldif
from ldap import modlist
from slapdtest import SlapdObject

SCHEMA = Path(__file__).with_name("adlike.ldif")
SUFFIX = "dc=corp,dc=test"
SERVICE_DN = f"cn=space,ou=services,{SUFFIX}"
SERVICE_PASSWORD = "service-secret"  # noqa: S105 (a test directory's)
USERS = f"ou=users,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
PEOPLE = f"ou=people,{SUFFIX}"  # inetOrgPerson entries (the OpenLDAP flavour)
NEVER = 0x7FFF_FFFF_FFFF_FFFF  # accountExpires: the account never expires (0 says the same)
NORMAL_ACCOUNT, ACCOUNT_DISABLE = 0x200, 0x2
GUID_NAMESPACE = uuid.UUID("6f0d1b52-6a43-4c39-9d0e-5b0c6c2f3b8e")

FIRST_NAMES = ["Anna", "Ben", "Chloé", "David", "Eva", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Katja", "Lars"]
LAST_NAMES = ["Müller", "Schmidt", "Nowak", "García", "Rossi", "Dubois", "Jansen", "Silva", "Kowalski", "Berg"]
DEPARTMENTS = ["Engineering", "Sales", "Finance", "Facilities", "Research"]
TITLES = ["Engineer", "Manager", "Analyst", "Technician", "Assistant"]

Entry = tuple[str, dict[str, list[bytes]]]


class Directory(SlapdObject):
    """slapd in a folder of its own, with people loaded before it starts; a context manager (stops and cleans up)."""

    suffix = SUFFIX
    slapd_loglevel = "0"
    openldap_schema_files = ("core.ldif", "cosine.ldif", "inetorgperson.ldif", str(SCHEMA))

    def __init__(self, entries: list[Entry] | None = None, *, size_limit: int = 500, folder: str | None = None):
        self.TMPDIR = folder or tempfile.gettempdir()  # not the current directory (slapdtest's default)
        # Searches stop at size_limit entries; paged ones may read past it in total (olcLimits).
        self.slapd_conf_template = SlapdObject.slapd_conf_template + (
            f"olcSizeLimit: {size_limit}\n"
            "olcLimits: users size.prtotal=unlimited\n"
            "olcDbMaxSize: 4294967296\n"  # mdb's default (10 MB) holds a few thousand entries
            "olcDbIndex: objectClass eq\n"
            "olcDbIndex: entryUUID eq\n"
            "olcDbIndex: uSNChanged eq\n"
            "olcDbIndex: modifyTimestamp eq\n"
        )
        self.initial = [*base_entries(), *(entries or [])]
        super().__init__()

    def _write_config(self):
        # The schemas before the database, whose indexes name their attribute types (slapdtest adds them after).
        config, database = self.gen_config().split("dn: olcDatabase=")
        self.slapadd(config, ["-n0"])
        for schema in self.openldap_schema_files:
            path = schema if os.path.exists(schema) else os.path.join(self.SCHEMADIR, schema)
            self.slapadd(None, ["-n0", "-l", path])
        self.slapadd("dn: olcDatabase=" + database, ["-n0"])
        path = Path(self.testrundir) / "initial.ldif"
        write_ldif(path, self.initial)
        self.initial = []
        self.slapadd(None, ["-q", "-b", self.suffix, "-l", str(path)])
        path.unlink()

    def writer(self) -> "Writer":
        return Writer(self)


class Writer:
    """Changes to the directory as its root, each raising uSNChanged as a domain controller would."""

    def __init__(self, server: Directory):
        self.connection = ldap.initialize(server.ldap_uri, bytes_mode=False)
        self.connection.simple_bind_s(server.root_dn, server.root_pw)
        self.usn = highest_usn(self.connection)

    def next_usn(self) -> bytes:
        self.usn += 1
        return str(self.usn).encode()

    def modify(self, dn: str, changes: dict[str, list[bytes] | None]) -> None:
        """Replace each attribute's values (None: remove the attribute)."""
        mods = [(ldap.MOD_REPLACE, name, values) for name, values in changes.items() if values is not None]
        mods += [(ldap.MOD_DELETE, name, None) for name, values in changes.items() if values is None]
        if self.is_ad(dn):
            mods.append((ldap.MOD_REPLACE, "uSNChanged", [self.next_usn()]))
        self.connection.modify_s(dn, mods)

    def add_member(self, group: str, dn: str) -> None:
        self.connection.modify_s(group, [(ldap.MOD_ADD, "member", [dn.encode()])])
        self.connection.modify_s(group, [(ldap.MOD_REPLACE, "uSNChanged", [self.next_usn()])])

    def remove_member(self, group: str, dn: str) -> None:
        self.connection.modify_s(group, [(ldap.MOD_DELETE, "member", [dn.encode()])])
        self.connection.modify_s(group, [(ldap.MOD_REPLACE, "uSNChanged", [self.next_usn()])])

    def add(self, entry: Entry) -> None:
        dn, attributes = entry
        if "uSNChanged" in attributes:
            attributes = attributes | {"uSNChanged": [self.next_usn()]}
        self.connection.add_s(dn, modlist.addModlist(attributes))

    def delete(self, dn: str) -> None:
        self.connection.delete_s(dn)

    def is_ad(self, dn: str) -> bool:
        found = self.connection.search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", ["objectClass"])
        return any(value.lower() in (b"user", b"group") for value in found[0][1].get("objectClass", []))

    def close(self) -> None:
        self.connection.unbind_s()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def highest_usn(connection) -> int:
    """The highest uSNChanged in the directory (a domain controller's highestCommittedUSN)."""
    found = connection.search_s(SUFFIX, ldap.SCOPE_SUBTREE, "(uSNChanged=*)", ["uSNChanged"])
    return max((int(values["uSNChanged"][0]) for _dn, values in found), default=0)


def base_entries() -> list[Entry]:
    def ou(name):
        return f"ou={name},{SUFFIX}", {"objectClass": [b"organizationalUnit"], "ou": [name.encode()]}

    return [
        (SUFFIX, {"objectClass": [b"dcObject", b"organization"], "dc": [b"corp"], "o": [b"Corp"]}),
        ou("services"),
        (
            SERVICE_DN,
            {
                "objectClass": [b"person"],
                "cn": [b"space"],
                "sn": [b"Space"],
                "userPassword": [SERVICE_PASSWORD.encode()],
            },
        ),
        ou("users"),
        ou("groups"),
        ou("people"),
    ]


def guid(number: int) -> uuid.UUID:
    """The objectGUID of AD user ``number`` (its key as Space reads it: ``str(guid(n))``)."""
    return uuid.uuid5(GUID_NAMESPACE, f"user-{number}")


def user_dn(number: int, ou: str = USERS) -> str:
    return f"cn=User {number:06d},{ou}"


def filetime(moment: dt.datetime) -> int:
    """accountExpires' FILETIME: 100-nanosecond intervals since 1601-01-01 UTC."""
    delta = moment - dt.datetime(1601, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def ad_user(
    number: int,
    *,
    ou: str = USERS,
    usn: int | None = None,
    disabled: bool = False,
    expires: int = NEVER,
    photo: bytes | None = None,
    card: str | None = None,
) -> Entry:
    """A user entry as Active Directory answers it (its card number, if any, in ``pager``)."""
    first, last = FIRST_NAMES[number % len(FIRST_NAMES)], LAST_NAMES[number // 7 % len(LAST_NAMES)]
    attributes = {
        "objectClass": [b"top", b"person", b"organizationalPerson", b"user"],
        "cn": [f"User {number:06d}".encode()],
        "sn": [last.encode()],
        "givenName": [first.encode()],
        "displayName": [f"{first} {last}".encode()],
        "sAMAccountName": [f"u{number:06d}".encode()],
        "employeeID": [f"E{number:06d}".encode()],
        "mail": [f"u{number:06d}@corp.test".encode()],
        "department": [DEPARTMENTS[number % len(DEPARTMENTS)].encode()],
        "title": [TITLES[number % len(TITLES)].encode()],
        "telephoneNumber": [f"+4930{number:07d}".encode()],
        "objectGUID": [guid(number).bytes_le],
        "userAccountControl": [str(NORMAL_ACCOUNT | (ACCOUNT_DISABLE if disabled else 0)).encode()],
        "accountExpires": [str(expires).encode()],
        "uSNCreated": [str(usn if usn is not None else number + 1).encode()],
        "uSNChanged": [str(usn if usn is not None else number + 1).encode()],
    }
    if photo is not None:
        attributes["thumbnailPhoto"] = [photo]
    if card is not None:
        attributes["pager"] = [card.encode()]
    return user_dn(number, ou), attributes


def openldap_user(number: int, *, ou: str = PEOPLE) -> Entry:
    first, last = FIRST_NAMES[number % len(FIRST_NAMES)], LAST_NAMES[number // 7 % len(LAST_NAMES)]
    return f"uid=p{number:06d},{ou}", {
        "objectClass": [b"inetOrgPerson"],
        "uid": [f"p{number:06d}".encode()],
        "cn": [f"{first} {last}".encode()],
        "sn": [last.encode()],
        "givenName": [first.encode()],
        "mail": [f"p{number:06d}@corp.test".encode()],
        "title": [TITLES[number % len(TITLES)].encode()],
        "employeeNumber": [f"P{number:06d}".encode()],
    }


def organizational_unit(dn: str) -> Entry:
    name = ldap.dn.str2dn(dn)[0][0][1]
    return dn, {"objectClass": [b"organizationalUnit"], "ou": [name.encode()]}


def ad_group(name: str, members: list[str], *, usn: int = 1) -> Entry:
    attributes = {
        "objectClass": [b"top", b"group"],
        "cn": [name.encode()],
        "sAMAccountName": [name.encode()],
        "groupType": [b"-2147483646"],  # a global security group
        "objectGUID": [uuid.uuid5(GUID_NAMESPACE, f"group-{name}").bytes_le],
        "uSNCreated": [str(usn).encode()],
        "uSNChanged": [str(usn).encode()],
    }
    if members:
        attributes["member"] = [dn.encode() for dn in members]
    return group_dn(name), attributes


def group_of_names(name: str, members: list[str]) -> Entry:
    return f"cn={name},{GROUPS}", {
        "objectClass": [b"groupOfNames"],
        "cn": [name.encode()],
        "member": [dn.encode() for dn in members] or [SUFFIX.encode()],
    }


def group_dn(name: str) -> str:
    return f"cn={name},{GROUPS}"


def write_ldif(path: Path, entries: list[Entry]) -> None:
    with open(path, "w", encoding="utf-8") as file:
        writer = ldif.LDIFWriter(file, cols=10_000)
        for dn, attributes in entries:
            writer.unparse(dn, attributes)


def ldif_text(entries: list[Entry]) -> str:
    buffer = io.StringIO()
    writer = ldif.LDIFWriter(buffer, cols=10_000)
    for dn, attributes in entries:
        writer.unparse(dn, attributes)
    return buffer.getvalue()


os.environ.setdefault("LDAPNOINIT", "1")  # no ~/.ldaprc or ldap.conf in the way (slapdtest sets it too)
