"""Talking to the directory: a bound connection and searches that page (RFC 2696 simple paged results).

A directory caps the entries one search returns (OpenLDAP's olcSizeLimit, AD's MaxPageSize); a search
past the cap fails with SIZELIMIT_EXCEEDED. Every search Space makes asks for pages instead, so a
directory of any size is read whole, and a size limit the server still applies fails loudly rather
than returning part of the directory.
"""

from collections.abc import Iterator

import ldap
from django_auth_ldap.config import GroupOfNamesType, GroupOfUniqueNamesType, LDAPSearch, PosixGroupType
from ldap.controls import SimplePagedResultsControl

from integrations.ldap.config import PAGE_SIZE, USER_ATTR_MAP, DirectoryConfig, connection_options

Entry = tuple[str, dict[str, list[bytes]]]


def paged_search(
    connection, base: str, scope: int, filterstr: str, attrlist: list[str] | None = None, page_size: int = PAGE_SIZE
) -> Iterator[Entry]:
    """Yield (dn, attributes) of every entry found, asking the server for ``page_size`` entries at a time."""
    # Not critical: a server without paging answers the search plainly (and may then hit its size limit).
    control = SimplePagedResultsControl(criticality=False, size=page_size, cookie="")
    while True:
        msgid = connection.search_ext(base, scope, filterstr, attrlist, serverctrls=[control])
        _kind, entries, _msgid, response_controls = connection.result3(msgid)
        for dn, attributes in entries:
            if dn is not None:  # referrals come without a DN
                yield dn, attributes
        cookie = next(
            (c.cookie for c in response_controls if c.controlType == SimplePagedResultsControl.controlType), None
        )
        if not cookie:
            return
        control.cookie = cookie


class PagedLDAPSearch(LDAPSearch):
    """django-auth-ldap's search (user lookup, a user's groups), run in pages."""

    def __init__(self, base_dn, scope, filterstr="(objectClass=*)", attrlist=None, page_size=PAGE_SIZE):
        super().__init__(base_dn, scope, filterstr, attrlist)
        self.page_size = page_size

    def search_with_additional_terms(self, term_dict, escape=True):
        search = super().search_with_additional_terms(term_dict, escape)
        search.page_size = self.page_size
        return search

    def search_with_additional_term_string(self, filterstr):
        search = super().search_with_additional_term_string(filterstr)
        search.page_size = self.page_size
        return search

    def execute(self, connection, filterargs=(), escape=True):
        if escape:
            filterargs = self._escape_filterargs(filterargs)
        filterstr = self.filterstr % filterargs
        results = list(paged_search(connection, self.base_dn, self.scope, filterstr, self.attrlist, self.page_size))
        return self._process_results(results)


def connect(config: DirectoryConfig):
    """A connection bound with the service account (SPACE_LDAP_BIND_DN); raises ldap.LDAPError."""
    connection = ldap.initialize(config.url, bytes_mode=False)
    for option, value in connection_options(config).items():
        connection.set_option(option, value)
    if config.start_tls:
        connection.start_tls_s()
    connection.simple_bind_s(config.bind_dn, config.bind_password)
    return connection


def describe(exc: Exception) -> str:
    """python-ldap's errors carry a dict: its description and detail read better than its repr."""
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return ": ".join(str(info[key]) for key in ("desc", "info") if info.get(key)) or repr(exc)


def text(attributes: dict[str, list[bytes]], name: str) -> str:
    """The first value of an attribute as text ("" when the entry has none); attribute names are case-insensitive."""
    for key, values in attributes.items():
        if key.lower() == name.lower() and values:
            return values[0].decode("utf-8", "replace")
    return ""


def texts(attributes: dict[str, list[bytes]], name: str) -> list[str]:
    for key, values in attributes.items():
        if key.lower() == name.lower():
            return [value.decode("utf-8", "replace") for value in values]
    return []


def auth_ldap_settings(config: DirectoryConfig) -> dict:
    """The AUTH_LDAP_* settings of django-auth-ldap (used by integrations.ldap.backend.DirectoryBackend)."""
    group_type = {
        "groupOfNames": GroupOfNamesType,
        "groupOfUniqueNames": GroupOfUniqueNamesType,
        "posixGroup": PosixGroupType,
    }[config.group_type]()
    values = {
        "AUTH_LDAP_SERVER_URI": config.url,
        "AUTH_LDAP_BIND_DN": config.bind_dn,
        "AUTH_LDAP_BIND_PASSWORD": config.bind_password,
        "AUTH_LDAP_START_TLS": config.start_tls,
        "AUTH_LDAP_CONNECTION_OPTIONS": connection_options(config),
        "AUTH_LDAP_USER_SEARCH": PagedLDAPSearch(
            config.user_base, ldap.SCOPE_SUBTREE, config.user_filter, page_size=config.page_size
        ),
        "AUTH_LDAP_USER_ATTR_MAP": dict(USER_ATTR_MAP),
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_REQUIRE_GROUP": config.require_group,
        "AUTH_LDAP_USER_FLAGS_BY_GROUP": (
            {"is_superuser": config.superuser_group, "is_staff": config.superuser_group}
            if config.superuser_group
            else {}
        ),
        "AUTH_LDAP_GROUP_TYPE": group_type,
        "AUTH_LDAP_GROUP_SEARCH": None,
    }
    if config.group_base:
        values["AUTH_LDAP_GROUP_SEARCH"] = PagedLDAPSearch(
            config.group_base,
            ldap.SCOPE_SUBTREE,
            f"(objectClass={config.group_object_class})",
            attrlist=["cn"],
            page_size=config.page_size,
        )
    return values
