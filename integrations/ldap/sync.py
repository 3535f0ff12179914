"""The directory sync (``manage.py sync_ldap``, the Celery task ``integrations.tasks.sync_ldap``).

It reads every operator entry of the directory in pages, then in one transaction creates the
operators it has not seen, updates names, e-mail and mapped groups, deactivates operators that came
from the directory and are gone from it (never local ones), and reactivates those that came back.
What changed goes into the system auditor as one summary row.
"""

import logging
from collections import Counter
from dataclasses import dataclass, field

import ldap
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone

from accesscontrol.actions import record_operator_action
from accesscontrol.models import OperatorGroup
from integrations.ldap.config import DirectoryConfig, normalize_dn
from integrations.ldap.directory import connect, paged_search, text, texts
from integrations.ldap.groups import mapped_operator_groups, wanted_group_names
from integrations.ldap.models import DirectoryAccount

logger = logging.getLogger(__name__)

# Usernames listed per kind of change in the system auditor's row; the counts are always whole.
AUDIT_NAMES = 50


class DirectoryUnusable(Exception):
    """The directory answered, but with nothing a sync can trust (no operator entries at all)."""


@dataclass
class DirectoryEntry:
    username: str
    dn: str
    first_name: str
    last_name: str
    email: str
    groups: set[str] = field(default_factory=set)  # normalized DNs of the groups of interest it is in


@dataclass
class SyncResult:
    entries: int = 0
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)
    reactivated: list[str] = field(default_factory=list)
    skipped_local: list[str] = field(default_factory=list)
    outside_required_group: int = 0
    memberships_added: Counter = field(default_factory=Counter)  # operator group name -> operators added
    memberships_removed: Counter = field(default_factory=Counter)

    @property
    def changed(self) -> bool:
        return bool(
            self.created
            or self.updated
            or self.deactivated
            or self.reactivated
            or self.memberships_added
            or self.memberships_removed
        )

    def summary(self) -> str:
        return (
            f"LDAP sync: {self.entries} directory entries; {len(self.created)} created, "
            f"{len(self.updated)} updated, {len(self.deactivated)} deactivated, {len(self.reactivated)} reactivated; "
            f"{sum(self.memberships_added.values())} group memberships added, "
            f"{sum(self.memberships_removed.values())} removed; "
            f"{self.outside_required_group} outside the required group, "
            f"{len(self.skipped_local)} skipped (a local operator has the username)"
        )

    def audit_detail(self) -> dict:
        def names(values):
            values = sorted(values)
            return {"count": len(values), "usernames": values[:AUDIT_NAMES]}

        return {
            "entries": self.entries,
            "created": names(self.created),
            "updated": names(self.updated),
            "deactivated": names(self.deactivated),
            "reactivated": names(self.reactivated),
            "skipped_local": names(self.skipped_local),
            "groups": {
                name: {"added": self.memberships_added[name], "removed": self.memberships_removed[name]}
                for name in sorted(set(self.memberships_added) | set(self.memberships_removed))
            },
        }


def read_directory(connection, config: DirectoryConfig) -> dict[str, DirectoryEntry]:
    """Every operator entry under the user base (paged), with the groups of interest each one is in."""
    username_attribute = config.username_attribute
    attributes = [username_attribute, "givenName", "sn", "mail", "gidNumber"]
    entries: dict[str, DirectoryEntry] = {}
    gid_numbers: dict[str, str] = {}
    for dn, values in paged_search(
        connection, config.user_base, ldap.SCOPE_SUBTREE, config.all_users_filter, attributes, config.page_size
    ):
        username = text(values, username_attribute).strip().lower()
        if not username:
            continue
        if username in entries:
            logger.warning(
                "LDAP sync: %s and %s have the same username %r; keeping the first", entries[username].dn, dn, username
            )
            continue
        entries[username] = DirectoryEntry(
            username=username,
            dn=dn,
            first_name=text(values, "givenName"),
            last_name=text(values, "sn"),
            email=text(values, "mail"),
        )
        gid_numbers[username] = text(values, "gidNumber")
    _read_memberships(connection, config, entries, gid_numbers)
    return entries


def _read_memberships(connection, config, entries, gid_numbers) -> None:
    by_dn = {normalize_dn(entry.dn): entry for entry in entries.values()}
    member_attribute = config.member_attribute
    for group_dn in sorted(config.groups_of_interest()):
        # One entry, read at its DN: a base read is not a search, so no size limit cuts its member list.
        try:
            found = connection.search_s(
                group_dn, ldap.SCOPE_BASE, f"(objectClass={config.group_object_class})", [member_attribute, "gidNumber"]
            )
        except ldap.NO_SUCH_OBJECT:
            found = []
        if not found:
            logger.warning("LDAP sync: group %s is not in the directory (or is not a %s)", group_dn, config.group_type)
            continue
        _dn, values = found[0]
        if config.group_type == "posixGroup":
            member_uids = {uid.strip().lower() for uid in texts(values, member_attribute)}
            gid = text(values, "gidNumber")
            members = [
                entry
                for entry in entries.values()
                if entry.username in member_uids or (gid and gid_numbers.get(entry.username) == gid)
            ]
        else:
            members = []
            for member in texts(values, member_attribute):
                try:
                    entry = by_dn.get(normalize_dn(member))
                except ValueError:
                    continue
                if entry is not None:
                    members.append(entry)
        for entry in members:
            entry.groups.add(group_dn)


def sync_directory(config: DirectoryConfig) -> SyncResult:
    """Read the directory and bring the operators into line with it; raises ldap.LDAPError or DirectoryUnusable."""
    connection = connect(config)
    try:
        entries = read_directory(connection, config)
    finally:
        connection.unbind_s()
    if not entries:
        # An empty answer is far likelier a wrong base or filter than a directory with nobody in it.
        raise DirectoryUnusable(f"no entries match {config.all_users_filter} under {config.user_base}: nothing changed")
    return apply_directory(config, entries)


def apply_directory(config: DirectoryConfig, entries: dict[str, DirectoryEntry]) -> SyncResult:
    Operator = get_user_model()
    result = SyncResult(entries=len(entries))
    if config.require_group:
        required = normalize_dn(config.require_group)
        allowed = {name: entry for name, entry in entries.items() if required in entry.groups}
        result.outside_required_group = len(entries) - len(allowed)
        entries = allowed
    superuser_group = normalize_dn(config.superuser_group) if config.superuser_group else None
    now = timezone.now()
    groups = mapped_operator_groups(config)

    with transaction.atomic():
        operators = {operator.username.lower(): operator for operator in Operator.objects.all()}
        accounts = {account.operator_id: account for account in DirectoryAccount.objects.all()}
        to_create, to_update, accounts_to_update = [], [], []
        wanted: dict[int, set[str]] = {}  # operator pk -> names of the mapped groups it belongs in
        new_entries = []

        for username, entry in entries.items():
            fields = _fields(entry, superuser_group, Operator)
            operator = operators.get(username)
            if operator is None:
                to_create.append(Operator(username=username, password=make_password(None), **fields))
                new_entries.append(entry)
                continue
            account = accounts.get(operator.pk)
            if account is None:
                result.skipped_local.append(username)
                continue
            changed = [name for name, value in fields.items() if getattr(operator, name) != value]
            for name in changed:
                setattr(operator, name, fields[name])
            if not operator.is_active and account.missing_since is not None:
                operator.is_active = True
                changed.append("is_active")
                result.reactivated.append(username)
            elif changed:
                result.updated.append(username)
            if changed:
                to_update.append(operator)
            if account.dn != entry.dn or account.missing_since is not None:
                account.dn, account.missing_since = entry.dn, None
                accounts_to_update.append(account)
            wanted[operator.pk] = wanted_group_names(config, entry.groups)

        if to_create:
            Operator.objects.bulk_create(to_create, batch_size=500)
            DirectoryAccount.objects.bulk_create(
                [
                    DirectoryAccount(operator=operator, dn=entry.dn, seen_at=now)
                    for operator, entry in zip(to_create, new_entries, strict=True)
                ],
                batch_size=500,
            )
            for operator, entry in zip(to_create, new_entries, strict=True):
                result.created.append(operator.username)
                wanted[operator.pk] = wanted_group_names(config, entry.groups)
        if to_update:
            Operator.objects.bulk_update(
                to_update, ["first_name", "last_name", "email", "is_active", "is_superuser", "is_staff"], batch_size=500
            )
        if accounts_to_update:
            DirectoryAccount.objects.bulk_update(accounts_to_update, ["dn", "missing_since"], batch_size=500)

        # Directory operators gone from it (or out of the required group): deactivated, and in no mapped group.
        unseen = [operator_id for operator_id in accounts if operator_id not in wanted]
        DirectoryAccount.objects.exclude(operator_id__in=unseen).update(seen_at=now)
        newly_gone = [operator_id for operator_id in unseen if accounts[operator_id].missing_since is None]
        gone_operators = Operator.objects.filter(pk__in=newly_gone, is_active=True)
        result.deactivated = sorted(gone_operators.values_list("username", flat=True))
        deactivated_ids = list(gone_operators.values_list("pk", flat=True))
        Operator.objects.filter(pk__in=deactivated_ids).update(is_active=False)
        DirectoryAccount.objects.filter(operator_id__in=deactivated_ids).update(missing_since=now)
        for operator_id in unseen:
            wanted[operator_id] = set()

        _follow_directory_groups(groups, wanted, result)
        if result.changed:
            record_operator_action(None, "ldap_sync", via="command", detail=result.audit_detail())
    return result


def _fields(entry: DirectoryEntry, superuser_group: str | None, Operator) -> dict:
    def fit(name, value):
        return value[: Operator._meta.get_field(name).max_length]

    fields = {
        "first_name": fit("first_name", entry.first_name),
        "last_name": fit("last_name", entry.last_name),
        "email": fit("email", entry.email),
    }
    if superuser_group:
        fields["is_superuser"] = fields["is_staff"] = superuser_group in entry.groups
    return fields


def _follow_directory_groups(groups: dict[str, OperatorGroup], wanted: dict[int, set[str]], result: SyncResult):
    """Set the mapped groups' members among the directory operators in ``wanted``; others' memberships stay."""
    if not groups:
        return
    Membership = OperatorGroup.members.through
    names = {group.pk: name for name, group in groups.items()}
    # Every directory operator is in ``wanted``; local operators' memberships are never read, so never changed.
    current = set(
        Membership.objects.filter(operatorgroup_id__in=names, operator__directory_account__isnull=False).values_list(
            "operatorgroup_id", "operator_id"
        )
    )
    desired = {
        (groups[name].pk, operator_id)
        for operator_id, group_names in wanted.items()
        for name in group_names
        if name in groups
    }
    to_add = desired - current
    to_remove = current - desired
    Membership.objects.bulk_create(
        [Membership(operatorgroup_id=group_id, operator_id=operator_id) for group_id, operator_id in to_add],
        batch_size=500,
    )
    leaving: dict[int, list[int]] = {}
    for group_id, operator_id in to_remove:
        leaving.setdefault(group_id, []).append(operator_id)
    for group_id, operator_ids in leaving.items():
        Membership.objects.filter(operatorgroup_id=group_id, operator_id__in=operator_ids).delete()
    result.memberships_added.update(names[group_id] for group_id, _ in to_add)
    result.memberships_removed.update(names[group_id] for group_id, _ in to_remove)
