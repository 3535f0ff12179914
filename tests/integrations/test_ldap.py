"""Operators from a directory, against a real OpenLDAP slapd started on a free local port.

The directory holds more than 1,000 operator entries and caps a search at 500 entries (as a
site's directory would), so only a paged search reads it whole. Space reads it with a service
account, not the root DN (to which no limit applies). Tests that change the directory put it back.
"""

import logging
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import authenticate, get_user
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.http import HttpRequest
from django.test import override_settings
from django.urls import NoReverseMatch, reverse

ldap = pytest.importorskip("ldap")
from ldap import modlist  # noqa: E402
from slapdtest import SlapdObject  # noqa: E402

from accesscontrol.models import Operator, OperatorGroup, SystemAuditEntry  # noqa: E402
from integrations import tasks  # noqa: E402
from integrations.ldap.config import directory_config, parse_group_map  # noqa: E402
from integrations.ldap.directory import auth_ldap_settings  # noqa: E402
from integrations.ldap.models import DirectoryAccount  # noqa: E402
from integrations.ldap.sync import sync_directory  # noqa: E402
from space.celery import directory_sync_entry  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

BASE_DIR = Path(__file__).resolve().parents[2]
SUFFIX = "dc=space,dc=test"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
SERVICE_DN = f"cn=space,ou=services,{SUFFIX}"
SERVICE_PASSWORD = "service-secret"
USERS = 1100  # user0000 ... user1099
STAFF = 1050  # user0000 ... user1049 are in cn=staff (the required group); the rest are not
SIZE_LIMIT = 500


def uid(number: int) -> str:
    return f"user{number:04d}"


def user_dn(number: int) -> str:
    return f"uid={uid(number)},{PEOPLE}"


def password(number: int) -> str:
    return f"pass-{number:04d}"


def group_dn(name: str) -> str:
    return f"cn={name},{GROUPS}"


class Directory(SlapdObject):
    """slapd with the schemas operators need and a size limit below the directory's size."""

    suffix = SUFFIX
    slapd_loglevel = "0"
    TMPDIR = tempfile.gettempdir()  # not the current directory (slapdtest's default)
    openldap_schema_files = ("core.ldif", "cosine.ldif", "inetorgperson.ldif", "nis.ldif")
    # The database's limits: 500 entries per search; paged searches may read past them in total.
    slapd_conf_template = (
        SlapdObject.slapd_conf_template + f"olcSizeLimit: {SIZE_LIMIT}\nolcLimits: users size.prtotal=unlimited\n"
    )


def directory_ldif() -> str:
    entries = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: space\no: Space test\n",
        f"dn: ou=services,{SUFFIX}\nobjectClass: organizationalUnit\nou: services\n",
        f"dn: {SERVICE_DN}\nobjectClass: person\ncn: space\nsn: Space\nuserPassword: {SERVICE_PASSWORD}\n",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
    ]
    entries += [
        f"dn: {user_dn(n)}\nobjectClass: inetOrgPerson\nuid: {uid(n)}\ncn: Person {n}\ngivenName: Given{n}\n"
        f"sn: Family{n}\nmail: {uid(n)}@example.test\nuserPassword: {password(n)}\n"
        for n in range(USERS)
    ]

    def group(name, members):
        return f"dn: {group_dn(name)}\nobjectClass: groupOfNames\ncn: {name}\n" + "".join(
            f"member: {user_dn(n)}\n" for n in members
        )

    entries += [
        group("staff", range(STAFF)),
        group("guards", [1, 2]),
        group("admins", [3]),
        group("visitors", [1, 4]),  # not in the map
        f"dn: cn=posixguards,{GROUPS}\nobjectClass: posixGroup\ncn: posixguards\ngidNumber: 5000\n"
        f"memberUid: {uid(6)}\n",
    ]
    return "\n".join(entries)


@pytest.fixture(scope="module")
def directory():
    server = Directory()
    server.start()
    try:
        server.ldapadd(directory_ldif())
        yield server
    finally:
        server.stop()


@contextmanager
def root_connection(server):
    connection = ldap.initialize(server.ldap_uri)
    connection.simple_bind_s(server.root_dn, server.root_pw)
    try:
        yield connection
    finally:
        connection.unbind_s()


def config_for(server, **values):
    settings = {
        "url": server.ldap_uri,
        "bind_dn": SERVICE_DN,
        "bind_password": SERVICE_PASSWORD,
        "start_tls": False,
        "ca_file": None,
        "user_base": PEOPLE,
        "user_filter": "(&(objectClass=inetOrgPerson)(uid=%(user)s))",
        "group_base": GROUPS,
        "group_type": "groupOfNames",
        "require_group": group_dn("staff"),
        "superuser_group": group_dn("admins"),
        "group_map": f'{{"{group_dn("guards")}": "Guards", "{group_dn("admins")}": ["Administrators", "Guards"]}}',
        "page_size": 500,
    }
    settings.update(values)
    return directory_config(**settings)


@contextmanager
def ldap_enabled(config):
    with override_settings(
        SPACE_LDAP=config,
        AUTHENTICATION_BACKENDS=[
            "integrations.ldap.backend.DirectoryBackend",
            "accesscontrol.backends.OperatorBackend",
        ],
        **auth_ldap_settings(config),
    ):
        yield


@pytest.fixture
def groups(db):
    return {name: OperatorGroup.objects.create(name=name) for name in ("Guards", "Administrators", "Local only")}


@pytest.fixture
def ldap_on(directory, groups):
    with ldap_enabled(config_for(directory)):
        yield


def names(operator) -> list[str]:
    return sorted(operator.operator_groups.values_list("name", flat=True))


# --- login --------------------------------------------------------------------------------------


def test_a_directory_operator_logs_in_with_the_directory_password_and_gets_its_entry(ldap_on):
    operator = authenticate(username=uid(1), password=password(1))

    assert operator is not None
    operator.refresh_from_db()
    assert (operator.username, operator.first_name, operator.last_name, operator.email) == (
        "user0001",
        "Given1",
        "Family1",
        "user0001@example.test",
    )
    assert operator.has_usable_password() is False
    assert operator.directory_account.dn == user_dn(1)
    assert (operator.is_superuser, operator.is_staff) == (False, False)


def test_a_wrong_password_is_refused_and_creates_no_operator(ldap_on):
    assert authenticate(username=uid(1), password="not-the-password") is None
    assert authenticate(username="nobody-here", password="whatever-it-is") is None

    assert Operator.objects.count() == 0


def test_mapped_groups_follow_the_directory_and_unmapped_ones_are_ignored(directory, ldap_on, groups):
    """user0001 is in guards (mapped to Guards) and visitors (not mapped); Local only is not in the map."""
    operator = authenticate(username=uid(1), password=password(1))
    groups["Local only"].members.add(operator)
    assert names(operator) == ["Guards", "Local only"]

    admins = authenticate(username=uid(3), password=password(3))
    assert names(admins) == ["Administrators", "Guards"]
    assert (admins.is_superuser, admins.is_staff) == (True, True)

    # The directory moves user0001 from guards to admins: the next login follows, Local only stays.
    with root_connection(directory) as connection:
        connection.modify_s(group_dn("guards"), [(ldap.MOD_DELETE, "member", [user_dn(1).encode()])])
        connection.modify_s(group_dn("admins"), [(ldap.MOD_ADD, "member", [user_dn(1).encode()])])
    try:
        again = authenticate(username=uid(1), password=password(1))
        assert names(again) == ["Administrators", "Guards", "Local only"]
        assert again.is_superuser is True

        with root_connection(directory) as connection:
            connection.modify_s(group_dn("admins"), [(ldap.MOD_DELETE, "member", [user_dn(1).encode()])])
        last = authenticate(username=uid(1), password=password(1))
        assert names(last) == ["Local only"]
        assert last.is_superuser is False
    finally:
        with root_connection(directory) as connection:
            connection.modify_s(group_dn("guards"), [(ldap.MOD_ADD, "member", [user_dn(1).encode()])])
    audit = SystemAuditEntry.objects.filter(action="ldap_login_sync", object_id=str(operator.pk)).order_by("pk")
    assert [(entry.detail["added_to"], entry.detail["removed_from"], entry.via) for entry in audit] == [
        (["Guards"], [], "web"),
        (["Administrators"], [], "web"),
        ([], ["Administrators", "Guards"], "web"),
    ]


def test_an_operator_outside_the_required_group_is_refused(ldap_on):
    assert authenticate(username=uid(1060), password=password(1060)) is None
    assert not Operator.objects.filter(username=uid(1060)).exists()


def test_a_local_operator_is_not_taken_over_by_a_directory_entry_of_the_same_name(ldap_on):
    local = Operator.objects.create_user(username=uid(5), password="local password 5!")

    assert authenticate(username=uid(5), password=password(5)) is None
    assert authenticate(username=uid(5), password="local password 5!") == local
    assert not DirectoryAccount.objects.exists()


def test_a_directory_that_is_down_refuses_the_login_with_an_error_in_the_log(directory, groups, caplog):
    local = Operator.objects.create_user(username="local", password="local password 1!")
    with ldap_enabled(config_for(directory, url=f"ldap://127.0.0.1:{free_port()}")):
        with caplog.at_level(logging.ERROR, logger="integrations.ldap.backend"):
            assert authenticate(username=uid(1), password=password(1)) is None
        # Local operators still log in against the database.
        assert authenticate(username="local", password="local password 1!") == local

    errors = [r for r in caplog.records if r.name == "integrations.ldap.backend" and r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].getMessage().startswith("LDAP login failed, directory error while looking up the user: ")
    assert "Can't contact LDAP server" in errors[0].getMessage()


def test_start_tls_checks_the_directory_certificate_against_the_ca_file(directory, groups):
    with ldap_enabled(config_for(directory, start_tls=True, ca_file=directory.cafile)):
        assert authenticate(username=uid(1), password=password(1)).username == uid(1)
    # A certificate the CA file does not vouch for: no login.
    with ldap_enabled(config_for(directory, start_tls=True, ca_file=directory.clientcert)):
        assert authenticate(username=uid(2), password=password(2)) is None


def test_posix_groups_are_mapped_by_member_uid(directory, groups):
    config = config_for(
        directory,
        group_type="posixGroup",
        require_group=None,
        superuser_group=None,
        group_map=f'{{"cn=posixguards,{GROUPS}": "Guards"}}',
    )
    with ldap_enabled(config):
        assert names(authenticate(username=uid(6), password=password(6))) == ["Guards"]
        assert names(authenticate(username=uid(7), password=password(7))) == []


def test_the_web_login_takes_directory_credentials(ldap_on, client):
    try:
        url = reverse("login")
    except NoReverseMatch:
        # The login page is another area's; until it is on this branch, the test client's login does the same.
        assert client.login(username=uid(2), password=password(2)) is True
        assert client.login(username=uid(2), password="wrong") is False
    else:
        refused = client.post(url, {"username": uid(2), "password": "wrong"})
        assert refused.status_code == 200
        response = client.post(url, {"username": uid(2), "password": password(2)})
        assert response.status_code == 302
    assert int(client.session["_auth_user_id"]) == Operator.objects.get(username=uid(2)).pk
    assert client.session["_auth_user_backend"] == "integrations.ldap.backend.DirectoryBackend"


# --- the paged sync ----------------------------------------------------------------------------


def test_a_plain_search_hits_the_size_limit_that_the_sync_reads_past(directory):
    connection = ldap.initialize(directory.ldap_uri)
    connection.simple_bind_s(SERVICE_DN, SERVICE_PASSWORD)
    with pytest.raises(ldap.SIZELIMIT_EXCEEDED):
        connection.search_s(PEOPLE, ldap.SCOPE_ONELEVEL, "(objectClass=inetOrgPerson)", ["uid"])
    connection.unbind_s()


def test_the_sync_creates_every_operator_of_the_directory_with_its_groups(directory, groups):
    config = config_for(directory)

    result = sync_directory(config)

    assert result.entries == USERS
    assert len(result.created) == STAFF
    assert result.outside_required_group == USERS - STAFF
    assert Operator.objects.filter(directory_account__isnull=False, is_active=True).count() == STAFF
    assert sorted(groups["Guards"].members.values_list("username", flat=True)) == [uid(1), uid(2), uid(3)]
    assert list(groups["Administrators"].members.values_list("username", flat=True)) == [uid(3)]
    assert list(Operator.objects.filter(is_superuser=True).values_list("username", flat=True)) == [uid(3)]
    last = Operator.objects.get(username=uid(STAFF - 1))
    assert (last.first_name, last.email, last.has_usable_password()) == (
        f"Given{STAFF - 1}",
        f"{uid(STAFF - 1)}@example.test",
        False,
    )
    audit = SystemAuditEntry.objects.get(action="ldap_sync")
    assert audit.via == "command"
    assert audit.detail["created"]["count"] == STAFF
    assert len(audit.detail["created"]["usernames"]) == 50
    assert audit.detail["groups"] == {
        "Administrators": {"added": 1, "removed": 0},
        "Guards": {"added": 3, "removed": 0},
    }

    # Nothing changed since: nothing to record.
    again = sync_directory(config)
    assert (again.created, again.updated, again.deactivated, again.changed) == ([], [], [], False)
    assert SystemAuditEntry.objects.filter(action="ldap_sync").count() == 1


def test_the_sync_deactivates_a_removed_entry_and_leaves_local_operators_alone(directory, groups):
    config = config_for(directory)
    local = Operator.objects.create_user(username="localadmin", password="local password 1!")
    groups["Guards"].members.add(local)
    local_namesake = Operator.objects.create_user(username=uid(8), password="local password 8!")
    sync_directory(config)
    removed = Operator.objects.get(username=uid(2))
    assert names(removed) == ["Guards"]

    with root_connection(directory) as connection:
        connection.delete_s(user_dn(2))
    try:
        result = sync_directory(config)
    finally:
        with root_connection(directory) as connection:
            connection.add_s(
                user_dn(2),
                modlist.addModlist(
                    {
                        "objectClass": [b"inetOrgPerson"],
                        "uid": [uid(2).encode()],
                        "cn": [b"Person 2"],
                        "givenName": [b"Given2"],
                        "sn": [b"Family2"],
                        "mail": [f"{uid(2)}@example.test".encode()],
                        "userPassword": [password(2).encode()],
                    }
                ),
            )

    assert result.entries == USERS - 1
    assert result.deactivated == [uid(2)]
    assert result.skipped_local == [uid(8)]
    removed.refresh_from_db()
    assert removed.is_active is False
    assert removed.directory_account.missing_since is not None
    assert names(removed) == []
    local.refresh_from_db()
    local_namesake.refresh_from_db()
    assert (local.is_active, names(local), local_namesake.is_active) == (True, ["Guards"], True)
    assert local_namesake.check_password("local password 8!")
    assert Operator.objects.filter(is_active=True, directory_account__isnull=False).count() == STAFF - 2
    audit = SystemAuditEntry.objects.filter(action="ldap_sync").order_by("pk").last()
    assert audit.detail["deactivated"] == {"count": 1, "usernames": [uid(2)]}
    assert audit.detail["groups"] == {"Guards": {"added": 0, "removed": 1}}

    # Back in the directory: the next sync makes it active again, with its groups.
    back = sync_directory(config)
    assert back.reactivated == [uid(2)]
    removed.refresh_from_db()
    assert (removed.is_active, names(removed)) == (True, ["Guards"])


def test_a_deactivated_directory_operator_loses_its_session(ldap_on, client):
    assert client.login(username=uid(1), password=password(1)) is True
    request = HttpRequest()
    request.session = client.session
    assert get_user(request).username == uid(1)

    Operator.objects.filter(username=uid(1)).update(is_active=False)

    assert get_user(request).is_authenticated is False


def test_an_operator_deactivated_by_an_administrator_stays_out(ldap_on):
    operator = authenticate(username=uid(1), password=password(1))
    Operator.objects.filter(pk=operator.pk).update(is_active=False)

    assert authenticate(username=uid(1), password=password(1)) is None
    operator.refresh_from_db()
    assert operator.is_active is False


def test_sync_ldap_prints_one_summary_line_and_the_celery_task_runs_the_same(directory, groups):
    out = StringIO()
    with ldap_enabled(config_for(directory)):
        call_command("sync_ldap", stdout=out)
        summary = tasks.sync_ldap()

    assert out.getvalue() == (
        f"LDAP sync: {USERS} directory entries; {STAFF} created, 0 updated, 0 deactivated, 0 reactivated; "
        f"4 group memberships added, 0 removed; {USERS - STAFF} outside the required group, "
        "0 skipped (a local operator has the username)\n"
    )
    assert summary.startswith(f"LDAP sync: {USERS} directory entries; 0 created,")


def test_sync_ldap_fails_cleanly_when_the_directory_is_down_or_ldap_is_off(directory, groups):
    with ldap_enabled(config_for(directory, url=f"ldap://127.0.0.1:{free_port()}")):
        with pytest.raises(CommandError, match="LDAP sync failed, nothing changed"):
            call_command("sync_ldap")
        assert tasks.sync_ldap().startswith("LDAP sync failed")
    with override_settings(SPACE_LDAP=None), pytest.raises(CommandError, match="LDAP is not configured"):
        call_command("sync_ldap")
    assert Operator.objects.count() == 0


def test_an_empty_answer_changes_nothing(directory, groups):
    operator = Operator.objects.create_user(username="gone", password=None)
    DirectoryAccount.objects.create(operator=operator, dn="uid=gone,ou=people,dc=space,dc=test")
    no_one = config_for(directory, user_filter="(&(objectClass=inetOrgPerson)(uid=%(user)s)(cn=nobody))")
    with ldap_enabled(no_one), pytest.raises(CommandError, match="no entries match"):
        call_command("sync_ldap")
    operator.refresh_from_db()
    assert operator.is_active is True


# --- configuration ------------------------------------------------------------------------------


def test_the_group_map_is_a_json_object_of_dns_to_names():
    assert parse_group_map('{"CN=Guards, OU=Groups,DC=example,DC=org": "Guards", "cn=it,dc=org": ["A", "B"]}') == {
        "cn=guards,ou=groups,dc=example,dc=org": ("Guards",),
        "cn=it,dc=org": ("A", "B"),
    }
    for bad in ('["cn=a,dc=org"]', '{"cn=a,dc=org": 3}', '{"not a dn": "A"}', "{nope"):
        with pytest.raises(ImproperlyConfigured):
            parse_group_map(bad)


def test_bad_directory_settings_refuse_to_start(directory):
    with pytest.raises(ImproperlyConfigured, match="SPACE_LDAP_GROUP_TYPE"):
        config_for(directory, group_type="group")
    with pytest.raises(ImproperlyConfigured, match="SPACE_LDAP_USER_FILTER"):
        config_for(directory, user_filter="(objectClass=person)")
    with pytest.raises(ImproperlyConfigured, match="SPACE_LDAP_GROUP_BASE"):
        config_for(directory, group_base=None)


def test_ldap_settings_come_from_the_environment(tmp_path):
    password_file = tmp_path / "bind-password"
    password_file.write_text("from-a-file\n")
    env = {
        **os.environ,
        "SPACE_VAR_DIR": str(tmp_path),
        "SPACE_LDAP_URL": "ldap://directory.example.test",
        "SPACE_LDAP_BIND_DN": "cn=space,dc=example,dc=test",
        "SPACE_LDAP_BIND_PASSWORD_FILE": str(password_file),
        "SPACE_LDAP_USER_BASE": "ou=people,dc=example,dc=test",
        "SPACE_LDAP_GROUP_BASE": "ou=groups,dc=example,dc=test",
        "SPACE_LDAP_GROUP_TYPE": "groupOfUniqueNames",
        "SPACE_LDAP_GROUP_MAP": '{"cn=guards,ou=groups,dc=example,dc=test": "Guards"}',
    }
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.AUTHENTICATION_BACKENDS, s.AUTH_LDAP_BIND_PASSWORD, type(s.AUTH_LDAP_GROUP_TYPE).__name__, "
        "s.SPACE_LDAP.group_map, s.SPACE_LDAP.username_attribute)"
    )
    env["DJANGO_SETTINGS_MODULE"] = "space.settings"
    output = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=BASE_DIR, capture_output=True, text=True, check=True
    ).stdout

    assert output.strip() == (
        "['integrations.ldap.backend.DirectoryBackend', 'accesscontrol.backends.OperatorBackend'] from-a-file "
        "GroupOfUniqueNamesType {'cn=guards,ou=groups,dc=example,dc=test': ('Guards',)} uid"
    )


def test_beat_syncs_only_when_ldap_is_configured(directory, settings):
    settings.SPACE_LDAP = None
    assert directory_sync_entry(settings) is None
    settings.SPACE_LDAP = config_for(directory)
    settings.SPACE_LDAP_SYNC_MINUTES = 15
    assert directory_sync_entry(settings) == {
        "task": "integrations.tasks.sync_ldap",
        "schedule": 900.0,
        "options": {"expires": 900.0},
    }
    settings.SPACE_LDAP_SYNC_MINUTES = 0
    assert directory_sync_entry(settings) is None
