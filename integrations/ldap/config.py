"""The directory's settings: checked once at start-up, then handed to django-auth-ldap and the sync.

space/settings.py reads the SPACE_LDAP_* variables and calls :func:`directory_config`; a
mistake there stops the start with ImproperlyConfigured rather than failing at the first login.
"""

import json
import re
from dataclasses import dataclass, field

from django.core.exceptions import ImproperlyConfigured

try:
    import django_auth_ldap.config  # noqa: F401 (checked here, used by integrations.ldap.directory)
    import ldap
    import ldap.dn
except ImportError as exc:  # pragma: no cover - the setup installs it
    raise ImproperlyConfigured(
        "SPACE_LDAP_URL is set but django-auth-ldap is not installed: run scripts/install.sh "
        f"(pip install -r requirements-ldap.txt) ({exc})"
    ) from exc

# Entries per page of a paged search: at or below the size limit directories usually set (OpenLDAP 500, AD 1000).
PAGE_SIZE = 500
# Seconds to wait for the directory to answer a connect, and then an operation.
NETWORK_TIMEOUT = 5
OPERATION_TIMEOUT = 15

# SPACE_LDAP_GROUP_TYPE: the object class of the directory's groups and how they name their members.
GROUP_TYPES = {
    "groupOfNames": ("groupOfNames", "member"),
    "groupOfUniqueNames": ("groupOfUniqueNames", "uniqueMember"),
    "posixGroup": ("posixGroup", "memberUid"),
}

# Operator fields taken from the directory entry at each login and sync.
USER_ATTR_MAP = {"first_name": "givenName", "last_name": "sn", "email": "mail"}


def normalize_dn(dn: str) -> str:
    """One spelling of a DN, so that group map keys, member values and entry DNs compare equal."""
    try:
        return ldap.dn.dn2str(ldap.dn.str2dn(dn.strip())).lower()
    except ldap.DECODING_ERROR:
        raise ValueError(f"not a distinguished name: {dn!r}") from None


def parse_group_map(text: str | None) -> dict[str, tuple[str, ...]]:
    """SPACE_LDAP_GROUP_MAP: a JSON object from directory group DN to Space operator group name(s).

    ``{"cn=guards,ou=groups,dc=example,dc=org": "Guards", "cn=it,ou=groups,dc=example,dc=org": ["Admins", "Guards"]}``
    """
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"SPACE_LDAP_GROUP_MAP is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ImproperlyConfigured("SPACE_LDAP_GROUP_MAP must be a JSON object: {group DN: group name or [names]}")
    mapping: dict[str, set[str]] = {}
    for dn, names in raw.items():
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise ImproperlyConfigured(f"SPACE_LDAP_GROUP_MAP: {dn!r} must map to a group name or a list of names")
        try:
            key = normalize_dn(dn)
        except ValueError as exc:
            raise ImproperlyConfigured(f"SPACE_LDAP_GROUP_MAP: {exc}") from None
        mapping.setdefault(key, set()).update(n.strip() for n in names)
    return {dn: tuple(sorted(names)) for dn, names in mapping.items()}


@dataclass(frozen=True)
class DirectoryConfig:
    url: str
    user_base: str
    user_filter: str = "(uid=%(user)s)"
    bind_dn: str = ""
    bind_password: str = ""
    start_tls: bool = False
    ca_file: str | None = None
    group_base: str | None = None
    group_type: str = "groupOfNames"
    require_group: str | None = None
    superuser_group: str | None = None
    group_map: dict[str, tuple[str, ...]] = field(default_factory=dict)
    page_size: int = PAGE_SIZE

    @property
    def username_attribute(self) -> str:
        """The attribute the user filter matches the username against, e.g. ``uid`` in ``(uid=%(user)s)``."""
        return re.search(r"\(([\w;-]+)=%\(user\)s\)", self.user_filter).group(1)

    @property
    def all_users_filter(self) -> str:
        """The user filter with a presence test for the username: every operator entry of the directory."""
        return self.user_filter.replace("%(user)s", "*")

    @property
    def group_object_class(self) -> str:
        return GROUP_TYPES[self.group_type][0]

    @property
    def member_attribute(self) -> str:
        return GROUP_TYPES[self.group_type][1]

    def groups_of_interest(self) -> set[str]:
        """Normalized DNs of the directory groups Space reads: the mapped ones, the required and the superuser group."""
        dns = set(self.group_map)
        dns.update(normalize_dn(dn) for dn in (self.require_group, self.superuser_group) if dn)
        return dns


def directory_config(
    *,
    url: str,
    user_base: str | None,
    user_filter: str | None,
    bind_dn: str | None,
    bind_password: str | None,
    start_tls: bool,
    ca_file: str | None,
    group_base: str | None,
    group_type: str | None,
    require_group: str | None,
    superuser_group: str | None,
    group_map: str | None,
    page_size: int,
) -> DirectoryConfig:
    """Check the SPACE_LDAP_* values and return them as one object; raise ImproperlyConfigured on a mistake."""
    if not re.match(r"^ldaps?://", url):
        raise ImproperlyConfigured(f"SPACE_LDAP_URL must start with ldap:// or ldaps://, not {url!r}")
    if not user_base:
        raise ImproperlyConfigured("SPACE_LDAP_USER_BASE must be set when SPACE_LDAP_URL is")
    user_filter = user_filter or DirectoryConfig.user_filter
    if not re.search(r"\([\w;-]+=%\(user\)s\)", user_filter):
        raise ImproperlyConfigured(
            f"SPACE_LDAP_USER_FILTER must contain an (attribute=%(user)s) term, such as (uid=%(user)s): {user_filter!r}"
        )
    group_type = group_type or DirectoryConfig.group_type
    if group_type not in GROUP_TYPES:
        raise ImproperlyConfigured(f"SPACE_LDAP_GROUP_TYPE must be one of {', '.join(GROUP_TYPES)}, not {group_type!r}")
    mapping = parse_group_map(group_map)
    if (mapping or require_group or superuser_group) and not group_base:
        raise ImproperlyConfigured(
            "SPACE_LDAP_GROUP_BASE must be set for SPACE_LDAP_GROUP_MAP, _REQUIRE_GROUP or _SUPERUSER_GROUP"
        )
    for name, dn in (("SPACE_LDAP_REQUIRE_GROUP", require_group), ("SPACE_LDAP_SUPERUSER_GROUP", superuser_group)):
        if dn:
            try:
                normalize_dn(dn)
            except ValueError as exc:
                raise ImproperlyConfigured(f"{name}: {exc}") from None
    if not 1 <= page_size <= 10000:
        raise ImproperlyConfigured(f"SPACE_LDAP_PAGE_SIZE must be between 1 and 10000, not {page_size}")
    return DirectoryConfig(
        url=url,
        user_base=user_base,
        user_filter=user_filter,
        bind_dn=bind_dn or "",
        bind_password=bind_password or "",
        start_tls=start_tls,
        ca_file=ca_file,
        group_base=group_base,
        group_type=group_type,
        require_group=require_group,
        superuser_group=superuser_group,
        group_map=mapping,
        page_size=page_size,
    )


def connection_options(config: DirectoryConfig) -> dict:
    options = {
        ldap.OPT_PROTOCOL_VERSION: 3,
        ldap.OPT_REFERRALS: 0,
        ldap.OPT_NETWORK_TIMEOUT: NETWORK_TIMEOUT,
        ldap.OPT_TIMEOUT: OPERATION_TIMEOUT,
    }
    if config.ca_file:
        options[ldap.OPT_X_TLS_REQUIRE_CERT] = ldap.OPT_X_TLS_DEMAND
        options[ldap.OPT_X_TLS_CACERTFILE] = config.ca_file
        options[ldap.OPT_X_TLS_NEWCTX] = 0  # last: applies the TLS options above to this connection
    return options
