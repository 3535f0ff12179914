"""Cardholders from a directory (integrations/ldap/cardholders.py), against a real slapd started on a free port.

The directory (simulation/ldap/directory.py) is Active-Directory-like: its schema has AD's own attribute
types (a binary objectGUID, userAccountControl, accountExpires, uSNChanged), it holds 5,000 user entries
and caps a search at 500, and Space reads it with a service account, so only paged searches read it whole.
It is loaded once per module by slapadd before slapd starts. Most tests sync the 100 entries of
ou=branch (quick to apply); one syncs all 5,000. A test that changes the directory puts it back.

- ou=hq (users 0-4899) and ou=branch (4900-4999) under ou=users;
- cn=Staff (the scope group): everyone but every 500th (499, 999, ... 4999);
- cn=Engineering (the Engineering access level): every 5th; cn=Lab (the Lab partition): every 50th;
- disabled (userAccountControl 514): 913, 1913, ... 4913; accountExpires 30 June 2027 for n % 100 == 1;
- a card number in ``pager`` for n % 10 == 3; a thumbnailPhoto for 4900;
- ou=people: 600 inetOrgPerson entries (the OpenLDAP flavour), last modified an hour apart from 1 January 2026;
- ou=odd: entries that cannot be read whole; ou=empty: nothing.
"""

import datetime as dt
import uuid

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

ldap = pytest.importorskip("ldap")

from accesscontrol import sync  # noqa: E402
from accesscontrol.choices import KeyStatus  # noqa: E402
from accesscontrol.models import (  # noqa: E402
    BlacklistEntry,
    Cardholder,
    CardholderSource,
    Key,
    SourcedCardholder,
    SyncStatus,
    SystemAuditEntry,
)
from integrations.ldap import cardholders  # noqa: E402
from integrations.ldap.config import normalize_dn  # noqa: E402
from simulation.ldap import directory as corp  # noqa: E402
from tests.factories import make_access_level, make_partition  # noqa: E402
from tests.support.photos import plain_jpeg  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

HQ = f"ou=hq,{corp.USERS}"
BRANCH = f"ou=branch,{corp.USERS}"
ODD = f"ou=odd,{corp.SUFFIX}"
EMPTY = f"ou=empty,{corp.SUFFIX}"
STAFF = corp.group_dn("Staff")
ENGINEERING = corp.group_dn("Engineering")
LAB = corp.group_dn("Lab")
PEOPLE_GROUP = f"cn=doors,{corp.GROUPS}"
ENTRIES = 5000
EXPIRES = dt.datetime(2027, 6, 30, 18, 0, tzinfo=dt.UTC)
OLD = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)  # the inetOrgPerson entries' first modifyTimestamp
PHOTO = plain_jpeg((96, 96))  # a thumbnailPhoto


def ou_of(number: int) -> str:
    return BRANCH if number >= 4900 else HQ


def dn(number: int) -> str:
    return corp.user_dn(number, ou_of(number))


def key(number: int) -> str:
    return str(corp.guid(number))


def card(number: int) -> str | None:
    return f"04{number:08X}" if number % 10 == 3 else None


def user(number: int) -> corp.Entry:
    return corp.ad_user(
        number,
        ou=ou_of(number),
        disabled=number % 1000 == 913,
        expires=corp.filetime(EXPIRES) if number % 100 == 1 else corp.NEVER,
        card=card(number),
        photo=PHOTO if number == 4900 else None,
    )


def in_staff(number: int) -> bool:
    return number % 500 != 499


def directory_entries() -> list[corp.Entry]:
    entries = [corp.organizational_unit(ou) for ou in (HQ, BRANCH, ODD, EMPTY)]
    entries += [user(n) for n in range(ENTRIES)]
    entries += [
        corp.ad_group("Staff", [dn(n) for n in range(ENTRIES) if in_staff(n)]),
        corp.ad_group("Engineering", [dn(n) for n in range(0, ENTRIES, 5)]),
        # Some member values spelt otherwise than their entry's DN (case, spaces): the same DN all the same.
        corp.ad_group("Lab", [dn(n) if n % 100 else dn(n).upper().replace(",", ", ") for n in range(0, ENTRIES, 50)]),
    ]
    odd_guid = corp.ad_user(9001, ou=ODD)
    odd_guid[1]["objectGUID"] = [b"\x01" * 15]
    odd_expires = corp.ad_user(9002, ou=ODD, expires=-5)
    no_name = corp.ad_user(9003, ou=ODD)
    del no_name[1]["displayName"]
    entries += [odd_guid, odd_expires, no_name]
    people = [corp.openldap_user(n) for n in range(600)]
    for number, (_dn, attributes) in enumerate(people):
        stamp = (OLD + dt.timedelta(hours=number)).strftime("%Y%m%d%H%M%SZ").encode()
        attributes["modifyTimestamp"] = attributes["createTimestamp"] = [stamp]
    entries += people
    entries.append(corp.group_of_names("doors", [people[n][0] for n in range(0, 600, 3)]))
    return entries


@pytest.fixture(scope="module")
def directory():
    with corp.Directory(directory_entries(), size_limit=500) as server:
        yield server


@pytest.fixture
def writer(directory):
    with directory.writer() as writer:
        yield writer


@pytest.fixture
def site(db):
    return {
        "main": make_partition("Main"),
        "lab": make_partition("Lab"),
        "engineering": make_access_level(name="Engineering"),
    }


def ad_source(server, site, *, bases=(BRANCH,), name="Corp AD", **settings) -> CardholderSource:
    values = {
        "url": server.ldap_uri,
        "bind_dn": corp.SERVICE_DN,
        "bases": list(bases),
        "flavour": "active_directory",
        "filter": "(objectClass=user)",
        "attributes": {"card_uid": "pager"},
    }
    values.update(settings)
    source = CardholderSource.objects.create(
        name=name,
        kind="ldap",
        settings=cardholders.validate_settings(values),
        group_map={
            ENGINEERING: {"access_levels": ["Engineering"], "partition": ""},
            LAB: {"access_levels": [], "partition": "Lab"},
        },
        scope_groups=[STAFF],
        default_partition=site["main"],
    )
    source.set_secret(corp.SERVICE_PASSWORD)
    source.save()
    return source


def run(source, **options):
    source.refresh_from_db()  # the cursor the last run saved
    row = sync.run(source, **options)
    return row


def holder(number: int) -> Cardholder:
    return SourcedCardholder.objects.select_related("cardholder").get(key=key(number)).cardholder


def levels(cardholder) -> set[str]:
    return set(cardholder.access_levels.values_list("name", flat=True))


# --- the directory ---------------------------------------------------------------------------------------


def test_a_plain_search_stops_at_the_size_limit_that_paged_reads_go_past(directory):
    connection = ldap.initialize(directory.ldap_uri)
    connection.simple_bind_s(corp.SERVICE_DN, corp.SERVICE_PASSWORD)
    with pytest.raises(ldap.SIZELIMIT_EXCEEDED):
        connection.search_s(corp.USERS, ldap.SCOPE_SUBTREE, "(objectClass=user)", ["cn"])
    connection.unbind_s()


# --- syncing -----------------------------------------------------------------------------------------------


def test_the_first_sync_creates_a_cardholder_per_entry_with_levels_partition_validity_and_cards(directory, site):
    source = ad_source(directory, site, bases=(corp.USERS,))

    row = run(source)

    assert row.status == SyncStatus.APPLIED, row.message
    expected = [n for n in range(ENTRIES) if in_staff(n) and n % 1000 != 913]
    assert row.counts["read"] == ENTRIES
    assert (row.counts["added"], row.counts["skipped"], row.counts["errors"]) == (len(expected), 15, 0)
    assert Cardholder.objects.count() == len(expected) == 4985
    engineer = holder(4950)  # in Engineering and Lab
    assert (engineer.first_name, engineer.last_name, engineer.email) == ("Greta", "Silva", "u004950@corp.test")
    assert (engineer.department, engineer.job_title, engineer.phone_number) == (
        "Engineering",
        "Engineer",
        "+49300004950",
    )
    assert levels(engineer) == {"Engineering"} and engineer.partition == site["lab"]
    assert engineer.ext_id == key(4950) and engineer.expiration is None
    assert holder(4900).photo and not holder(4901).photo
    plain = holder(4904)
    assert levels(plain) == set() and plain.partition == site["main"]
    assert holder(4901).expiration == EXPIRES
    assert Key.objects.filter(status=KeyStatus.ISSUED).count() == row.counts["keys_issued"] == 500 - 5
    assert list(holder(4903).keys.values_list("uid", flat=True)) == [card(4903)]
    assert Cardholder.objects.filter(access_levels=site["engineering"]).count() == 1000
    assert Cardholder.objects.filter(partition=site["lab"]).count() == 100
    assert SystemAuditEntry.objects.filter(action="sync_add", via="sync").count() == 10  # one row per 500
    source.refresh_from_db()
    assert source.cursor["attribute"] == "uSNChanged" and int(source.cursor["since"]) > ENTRIES
    assert source.last_full_at is not None


def test_a_changed_attribute_updates_the_cardholder_in_an_incremental_run(directory, site, writer):
    source = ad_source(directory, site)
    assert run(source).counts["added"] == 98
    try:
        writer.modify(dn(4901), {"title": [b"Director"], "sn": [b"Berg-Nowak"], "accountExpires": [b"0"]})

        row = run(source)

        assert row.status == SyncStatus.APPLIED, row.message
        assert row.full is False
        assert (row.counts["read"], row.counts["changed"], row.counts["added"]) == (1, 1, 0)
        (change,) = row.diff["changed"]
        assert change["changes"]["job_title"] == ["Manager", "Director"]
        assert change["changes"]["last_name"] == ["Müller", "Berg-Nowak"]
        assert change["changes"]["expiration"][1] == ""
        changed = holder(4901)
        assert (changed.job_title, changed.last_name, changed.expiration) == ("Director", "Berg-Nowak", None)
        assert SystemAuditEntry.objects.filter(action="sync_update", via="sync").count() == 1
    finally:
        writer.modify(dn(4901), {name: user(4901)[1][name] for name in ("title", "sn", "accountExpires")})


def test_an_incremental_read_returns_the_changed_entries_and_every_key_with_its_groups(directory, site, writer):
    source = ad_source(directory, site, bases=(corp.USERS,))
    first = cardholders.read_directory(source, full=True, progress=sync.Progress())
    assert first.complete and len(first.people) == ENTRIES
    source.cursor = first.cursor
    try:
        writer.modify(dn(10), {"title": [b"Head of Engineering"]})
        writer.modify(dn(4321), {"telephoneNumber": [b"+4930999"]})
        writer.add_member(ENGINEERING, dn(11))  # its entry is unchanged; the group's is

        later = cardholders.read_directory(source, full=False, progress=sync.Progress())

        assert later.complete is False
        assert sorted(person.key for person in later.people) == sorted([key(10), key(4321)])
        assert later.present == {key(n) for n in range(ENTRIES)}
        assert later.memberships[key(11)] == frozenset({STAFF, ENGINEERING})
        assert later.memberships[key(12)] == frozenset({STAFF})
        assert later.memberships[key(499)] == frozenset()
        assert int(later.cursor["since"]) > int(first.cursor["since"])
    finally:
        writer.remove_member(ENGINEERING, dn(11))
        writer.modify(dn(10), {"title": user(10)[1]["title"]})
        writer.modify(dn(4321), {"telephoneNumber": user(4321)[1]["telephoneNumber"]})


def test_a_group_change_alone_changes_levels_and_partition(directory, site, writer):
    source = ad_source(directory, site)
    run(source)
    assert levels(holder(4910)) == {"Engineering"} and levels(holder(4911)) == set()
    try:
        writer.remove_member(ENGINEERING, dn(4910))
        writer.add_member(ENGINEERING, dn(4911))
        writer.add_member(LAB, dn(4911))

        row = run(source)

        assert row.status == SyncStatus.APPLIED and row.full is False
        assert (row.counts["read"], row.counts["changed"]) == (0, 2)
        assert levels(holder(4910)) == set() and holder(4910).partition == site["main"]
        assert levels(holder(4911)) == {"Engineering"} and holder(4911).partition == site["lab"]
    finally:
        writer.add_member(ENGINEERING, dn(4910))
        writer.remove_member(ENGINEERING, dn(4911))
        writer.remove_member(LAB, dn(4911))


def test_leavers_gone_disabled_or_out_of_scope_are_deactivated_with_their_keys_blacklisted(directory, site, writer):
    source = ad_source(directory, site)
    run(source)
    gone, disabled, outside = holder(4903), holder(4923), holder(4933)
    extra = Key.objects.create(cardholder=gone, uid="0A0B0C0D")
    assert BlacklistEntry.objects.count() == 0
    try:
        writer.delete(dn(4903))
        writer.modify(dn(4923), {"userAccountControl": [b"514"]})
        writer.remove_member(STAFF, dn(4933))

        row = run(source)

        assert row.status == SyncStatus.APPLIED, row.message
        assert (row.counts["left"], row.counts["keys_cancelled"]) == (3, 4)
        reasons = {left["key"]: (left["reason"], left["keys"]) for left in row.diff["left"]}
        assert reasons == {key(4903): ("gone", 2), key(4923): ("blocked", 1), key(4933): ("out_of_scope", 1)}
        for leaver in (gone, disabled, outside):
            leaver.refresh_from_db()
            assert leaver.expiration is not None
            assert set(leaver.keys.values_list("status", flat=True)) == {KeyStatus.CANCELLED}
            assert SystemAuditEntry.objects.filter(action="deactivate", object_id=str(leaver.pk), via="sync").exists()
        assert set(BlacklistEntry.objects.values_list("uid", flat=True)) == {
            card(4903),
            extra.uid,
            card(4923),
            card(4933),
        }
        assert SystemAuditEntry.objects.filter(action="sync_leave").count() == 1
        assert Cardholder.objects.filter(pk__in=[gone.pk, disabled.pk, outside.pk]).count() == 3  # never deleted
        assert Cardholder.objects.filter(expiration__lte=timezone.now()).count() == 3
    finally:
        writer.add(user(4903))
        writer.modify(dn(4923), {"userAccountControl": user(4923)[1]["userAccountControl"]})
        writer.add_member(STAFF, dn(4933))


@pytest.mark.parametrize("base", [EMPTY, HQ])
def test_an_emptied_or_wrong_base_holds_the_run_at_the_safety_limit_and_changes_nothing(directory, site, base):
    source = ad_source(directory, site)
    run(source)
    source.settings = cardholders.validate_settings({**source.settings, "bases": [base]})
    source.save()

    row = run(source)

    assert row.status == SyncStatus.HELD
    assert row.counts["left"] == 98
    assert "98 of 98 cardholders would be deactivated" in row.message
    assert not Cardholder.objects.filter(expiration__lte=timezone.now()).exists()
    assert SourcedCardholder.objects.filter(left_at__isnull=False).count() == 0


def test_a_base_that_is_not_in_the_directory_fails_the_run_and_changes_nothing(directory, site):
    source = ad_source(directory, site)
    run(source)
    source.settings = cardholders.validate_settings({**source.settings, "bases": [f"ou=nowhere,{corp.SUFFIX}"]})
    source.save()

    row = run(source)

    assert row.status == SyncStatus.FAILED
    assert row.message == f"The search base ou=nowhere,{corp.SUFFIX} is not in the directory."
    assert SourcedCardholder.objects.filter(left_at__isnull=False).count() == 0


def test_a_dry_run_changes_nothing(directory, site, writer):
    source = ad_source(directory, site)
    preview = run(source, dry_run=True)
    assert preview.status == SyncStatus.PREVIEWED and preview.counts["added"] == 98
    assert Cardholder.objects.count() == 0
    source.refresh_from_db()
    assert source.cursor == {}
    run(source)
    try:
        writer.delete(dn(4953))
        row = run(source, dry_run=True)
        assert row.status == SyncStatus.PREVIEWED
        assert row.diff["left"][0]["key"] == key(4953) and row.diff["left"][0]["keys"] == 1
        assert holder(4953).expiration is None
        assert not BlacklistEntry.objects.exists()
    finally:
        writer.add(user(4953))


def test_sync_cardholders_dry_run_prints_the_diff(directory, site, capsys):
    ad_source(directory, site)

    call_command("sync_cardholders", "Corp AD", "--dry-run")

    out = capsys.readouterr().out
    assert out.startswith("Corp AD: Previewed (dry run). 100 read: 98 would be added")
    assert f"  + Greta Silva ({key(4950)}): Lab; Engineering" in out
    assert Cardholder.objects.count() == 0


def test_entries_that_cannot_be_read_are_reported_and_not_taken_for_leavers(directory, site):
    source = ad_source(directory, site, bases=(ODD,), attributes={"last_name": "displayName"})
    source.scope_groups = []
    source.save()

    snapshot = cardholders.read_directory(source, full=True, progress=sync.Progress())

    assert [person.key for person in snapshot.people] == []
    errors = sorted((e.where, e.field, e.message, e.key) for e in snapshot.errors)
    assert errors == [
        (corp.user_dn(9001, ODD), "objectGUID", "an objectGUID is 16 bytes, not 15", ""),
        (corp.user_dn(9002, ODD), "accountExpires", "Cannot read '-5': not a FILETIME: -5.", key(9002)),
        (corp.user_dn(9003, ODD), "displayName", "The entry has no last name.", key(9003)),
    ]


def test_fields_the_attribute_map_leaves_out_keep_what_is_set_in_space(directory, site):
    source = ad_source(directory, site, attributes={"expiration": "", "phone_number": ""})
    run(source)
    holder_ = holder(4904)
    until = dt.datetime(2027, 3, 31, tzinfo=dt.UTC)
    Cardholder.objects.filter(pk=holder_.pk).update(expiration=until, phone_number="+4930111")

    snapshot = cardholders.read_directory(source, full=True, progress=sync.Progress())
    assert "expiration" not in snapshot.fields and "phone_number" not in snapshot.fields
    assert {"first_name", "last_name", "email", "department", "job_title"} <= snapshot.fields
    run(source, full=True)

    holder_.refresh_from_db()
    assert (holder_.expiration, holder_.phone_number) == (until, "+4930111")


def test_photos_and_card_numbers_are_read_as_they_are(directory, site):
    source = ad_source(directory, site)
    snapshot = cardholders.read_directory(source, full=True, progress=sync.Progress())
    people = {person.key: person for person in snapshot.people}
    assert people[key(4900)].photo == PHOTO and people[key(4901)].photo is None
    assert people[key(4903)].card_uid == card(4903) and people[key(4904)].card_uid == ""
    assert people[key(4913)].blocked is True and people[key(4914)].blocked is False
    assert people[key(4950)].origin == dn(4950)


def test_the_openldap_flavour_keys_on_entry_uuid_and_reads_what_changed_by_modify_timestamp(directory, site, writer):
    source = CardholderSource.objects.create(
        name="OpenLDAP",
        kind="ldap",
        settings=cardholders.validate_settings(
            {"url": directory.ldap_uri, "bind_dn": corp.SERVICE_DN, "bases": [corp.PEOPLE]}
        ),
        group_map={PEOPLE_GROUP.upper(): {"access_levels": ["Engineering"], "partition": ""}},
        default_partition=site["main"],
    )
    source.set_secret(corp.SERVICE_PASSWORD)
    source.save()
    first = run(source)
    assert first.status == SyncStatus.APPLIED and first.counts["added"] == 600
    link = SourcedCardholder.objects.select_related("cardholder").get(cardholder__email="p000003@corp.test")
    assert uuid.UUID(link.key) and levels(link.cardholder) == {"Engineering"}
    person_dn = corp.openldap_user(4)[0]
    try:
        writer.modify(person_dn, {"title": [b"Curator"]})

        row = run(source)

        assert row.status == SyncStatus.APPLIED and row.full is False
        # The newest entry before the cursor is read again (the cursor overlaps the last read by a minute).
        assert (row.counts["read"], row.counts["changed"]) == (2, 1)
        assert Cardholder.objects.get(email="p000004@corp.test").job_title == "Curator"
    finally:
        writer.modify(person_dn, {"title": corp.openldap_user(4)[1]["title"]})


def test_a_directory_that_cannot_be_reached_or_refuses_the_password_fails_the_run(directory, site):
    source = ad_source(directory, site, url=f"ldap://127.0.0.1:{free_port()}")
    row = run(source)
    assert row.status == SyncStatus.FAILED and row.message.startswith("Cannot reach or bind to ldap://127.0.0.1:")
    source = ad_source(directory, site, name="Wrong password")
    source.set_secret("not the password")
    source.save()
    row = run(source)
    assert row.status == SyncStatus.FAILED and "Invalid credentials" in row.message
    with pytest.raises(CommandError, match="Invalid credentials"):
        call_command("sync_cardholders", "Wrong password")
    assert Cardholder.objects.count() == 0


def test_a_mapped_group_missing_from_the_directory_fails_the_run(directory, site):
    source = ad_source(directory, site)
    source.scope_groups = [corp.group_dn("Nobody")]
    source.save()
    row = run(source)
    assert row.status == SyncStatus.FAILED
    assert "The group cn=nobody,ou=groups,dc=corp,dc=test" in row.message
    assert Cardholder.objects.count() == 0


def test_start_tls_checks_the_certificate_against_the_ca_file(directory, site):
    trusted = ad_source(directory, site, start_tls=True, ca_file=directory.cafile)
    assert run(trusted, dry_run=True).status == SyncStatus.PREVIEWED
    untrusted = ad_source(directory, site, name="Untrusted", start_tls=True, ca_file=directory.clientcert)
    assert run(untrusted, dry_run=True).status == SyncStatus.FAILED


# --- settings ----------------------------------------------------------------------------------------------


def test_the_ldap_kind_is_registered():
    kind = sync.kinds()["ldap"]
    assert (kind.label, kind.read, kind.validate) == (
        "LDAP / Active Directory",
        cardholders.read_directory,
        cardholders.validate_settings,
    )


def test_settings_take_the_flavour_defaults():
    cleaned = cardholders.settings_with_defaults(
        {"url": "ldaps://dc1.corp.test", "bases": "OU=Staff,DC=corp,DC=test", "flavour": "active_directory"}
    )
    assert cleaned["bases"] == ["OU=Staff,DC=corp,DC=test"]
    assert cleaned["filter"] == "(&(objectCategory=person)(objectClass=user))"
    assert cleaned["attributes"]["key"] == "objectGUID"
    assert cleaned["attributes"]["expiration"] == "accountExpires"
    assert cleaned["attributes"]["disabled"] == "userAccountControl"
    assert cleaned["attributes"]["photo"] == "thumbnailPhoto"
    assert (cleaned["group_type"], cleaned["member_attribute"], cleaned["incremental"]) == (
        "group",
        "member",
        "uSNChanged",
    )
    given = {"url": " ldap://ldap.test:389", "bases": ["ou=people,dc=test"], "attributes": {"key": "employeeNumber"}}
    plain = cardholders.settings_with_defaults(given)
    assert plain["attributes"]["key"] == "employeeNumber" and plain["incremental"] == "modifyTimestamp"
    assert plain["attributes"]["photo"] == "jpegPhoto" and plain["page_size"] == 500
    # What is saved is what was given, cleaned: a change of flavour later takes the new flavour's defaults.
    assert cardholders.validate_settings(given) == {
        "url": "ldap://ldap.test:389",
        "bases": ["ou=people,dc=test"],
        "attributes": {"key": "employeeNumber"},
    }


@pytest.mark.parametrize(
    "settings, field",
    [
        ({"url": "http://dc1", "bases": ["dc=test"]}, "url"),
        ({"url": "ldap://dc1", "bases": []}, "bases"),
        ({"url": "ldap://dc1", "bases": ["not a dn"]}, "bases"),
        ({"url": "ldap://dc1", "bases": ["dc=test"], "filter": "objectClass=user"}, "filter"),
        ({"url": "ldap://dc1", "bases": ["dc=test"], "flavour": "novell"}, "flavour"),
        ({"url": "ldap://dc1", "bases": ["dc=test"], "attributes": {"key": ""}}, "attributes"),
        ({"url": "ldap://dc1", "bases": ["dc=test"], "attributes": {"badge": "pager"}}, "attributes"),
        ({"url": "ldap://dc1", "bases": ["dc=test"], "attributes": {"photo": "jpeg photo"}}, "attributes"),
        ({"url": "ldap://dc1", "bases": ["dc=test"], "page_size": 0}, "page_size"),
        ({"url": "ldap://dc1", "bases": ["dc=test"], "group_type": "posixGroup"}, "group_type"),
        ({"url": "ldap://dc1", "bases": ["dc=test"], "incremental": "whenChanged"}, "incremental"),
        ({"url": "ldap://dc1", "bases": ["dc=test"], "ca_file": "certs/ca.pem"}, "ca_file"),
        ({"url": "ldap://dc1", "bases": ["dc=test"], "password": "x"}, "password"),
    ],
)
def test_a_mistake_in_the_settings_names_its_field(settings, field):
    with pytest.raises(ValidationError) as raised:
        cardholders.validate_settings(settings)
    assert list(raised.value.message_dict) == [field]


def test_the_source_check_runs_the_kind_validation(site):
    source = CardholderSource(name="x", kind="ldap", settings={"url": "ftp://x"}, default_partition=site["main"])
    with pytest.raises(ValidationError) as raised:
        sync.validate_source(source)
    assert set(raised.value.message_dict) == {"url", "bases"}


# --- decoding ----------------------------------------------------------------------------------------------


def test_object_guid_is_read_as_active_directory_writes_it():
    # The bytes AD stores for {01234567-89ab-cdef-0123-456789abcdef}: the first three fields little-endian.
    raw = bytes.fromhex("67452301ab89efcd0123456789abcdef")
    assert cardholders.guid_text(raw) == "01234567-89ab-cdef-0123-456789abcdef"
    with pytest.raises(ValueError, match="16 bytes"):
        cardholders.guid_text(raw[:15])


@given(st.uuids())
def test_any_guid_reads_back_from_its_bytes(value):
    assert cardholders.guid_text(value.bytes_le) == str(value)


def test_account_expires_zero_and_the_largest_value_mean_never():
    assert cardholders.filetime("0") is None
    assert cardholders.filetime(str(0x7FFFFFFFFFFFFFFF)) is None
    assert cardholders.filetime("133801632000000000") == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert cardholders.filetime(str(0x7FFFFFFFFFFFFFFE)) is None  # past the year 9999
    with pytest.raises(ValueError):
        cardholders.filetime("-1")


@given(st.datetimes(min_value=dt.datetime(1601, 1, 2), max_value=dt.datetime(9999, 1, 1), timezones=st.just(dt.UTC)))
def test_any_moment_reads_back_from_its_filetime(moment):
    assert cardholders.filetime(str(corp.filetime(moment))) == moment


def test_expiration_reads_a_generalized_time_or_a_filetime():
    assert cardholders.expiration("20270630180000Z") == EXPIRES
    assert cardholders.expiration("202706302000+0200") == EXPIRES
    assert cardholders.expiration("20270630180000.5Z") == EXPIRES + dt.timedelta(milliseconds=500)
    assert cardholders.expiration(str(corp.filetime(EXPIRES))) == EXPIRES
    with pytest.raises(ValueError):
        cardholders.expiration("next week")


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_user_account_control_is_disabled_by_its_second_bit(flags):
    assert cardholders.disabled(str(flags)) is bool(flags & 2)


def test_a_boolean_lock_attribute_reads_as_disabled():
    assert (cardholders.disabled("TRUE"), cardholders.disabled("false")) == (True, False)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["cn", "CN", "ou", "OU", "dc", "uid"]),
            st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=12).filter(
                lambda value: value == value.strip()  # normalize_dn strips the DN: an edge space is lost
            ),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_a_dn_key_is_the_normalized_dn(rdns):
    distinguished_name = ",".join(f"{attribute}={ldap.dn.escape_dn_chars(value)}" for attribute, value in rdns)
    assert cardholders.dn_key(distinguished_name) == normalize_dn(distinguished_name)


def test_active_directory_ranged_values_name_their_range():
    assert cardholders.value_range("member;range=0-1499") == (0, 1499)
    assert cardholders.value_range("member;range=1500-*") == (1500, None)
    assert cardholders.value_range("member") is None
