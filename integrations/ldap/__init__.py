"""Operators from a directory over LDAP: login through django-auth-ldap, group mapping, and the paged sync.

Only ``config``, ``backend``, ``directory`` and ``sync`` import python-ldap (requirements-ldap.txt);
``models`` does not, so the app loads without it.
"""
