"""Group mapping: which Space operator groups a directory operator belongs to, by its directory groups.

Only the groups named in SPACE_LDAP_GROUP_MAP are touched: an operator's membership of any other
operator group is the administrators' to set, and stays as it is.
"""

import logging

from accesscontrol.models import OperatorGroup
from integrations.ldap.config import DirectoryConfig

logger = logging.getLogger(__name__)


def mapped_operator_groups(config: DirectoryConfig) -> dict[str, OperatorGroup]:
    """The operator groups the map names, by name; names with no such group are logged and left out."""
    names = {name for names in config.group_map.values() for name in names}
    groups = {group.name: group for group in OperatorGroup.objects.filter(name__in=names)}
    for name in sorted(names - set(groups)):
        logger.warning("SPACE_LDAP_GROUP_MAP names operator group %r, which does not exist", name)
    return groups


def wanted_group_names(config: DirectoryConfig, directory_group_dns: set[str]) -> set[str]:
    """Names of the mapped operator groups an operator in these (normalized) directory groups belongs in."""
    return {name for dn in directory_group_dns for name in config.group_map.get(dn, ())}


def follow_directory(operator, wanted: set[str], groups: dict[str, OperatorGroup]) -> tuple[list[str], list[str]]:
    """Add ``operator`` to the mapped groups in ``wanted`` and remove it from the other mapped ones.

    Returns the names of the groups it was added to and removed from.
    """
    current = set(
        operator.operator_groups.filter(pk__in=[g.pk for g in groups.values()]).values_list("name", flat=True)
    )
    added = sorted((wanted & set(groups)) - current)
    removed = sorted(current - wanted)
    if added:
        operator.operator_groups.add(*(groups[name] for name in added))
    if removed:
        operator.operator_groups.remove(*(groups[name] for name in removed))
    return added, removed
