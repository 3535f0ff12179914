"""The sync core (accesscontrol/sync.py) with a reader of its own: what a plan says, what applying it does.

The directory and HR readers have their own tests against slapd, sshd and files (tests/integrations/); here
the source is a list of people the test sets, so every rule of the core is checked on its own.
"""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from accesscontrol import sync
from accesscontrol.choices import AuditKind, KeyStatus
from accesscontrol.models import (
    AuditEvent,
    BlacklistEntry,
    Cardholder,
    CardholderSource,
    Key,
    SourcedCardholder,
    SyncRun,
    SyncStatus,
    SystemAuditEntry,
)
from tests.factories import make_access_level, make_cardholder, make_partition
from tests.support.photos import camera_jpeg, files, plain_jpeg

pytestmark = pytest.mark.django_db

# What the test reader returns, by source name: a Snapshot, None (nothing new) or an exception to raise.
ANSWERS: dict[str, object] = {}
FINISHED: list[tuple[str, bool]] = []


def read(source, *, full, progress):
    answer = ANSWERS[source.name]
    if isinstance(answer, Exception):
        raise answer
    if answer is not None:
        progress.set_total(len(answer.people))
        progress.advance(len(answer.people))
        answer.finish = lambda applied: FINISHED.append((source.name, applied))
    return answer


def validate(settings_: dict) -> dict:
    if settings_.get("bad"):
        raise ValidationError({"bad": "Not allowed."})
    return settings_


@pytest.fixture(autouse=True)
def test_kind():
    sync.register_kind("test", label="Test", read=read, validate=validate)
    ANSWERS.clear()
    FINISHED.clear()
    yield
    sync._KINDS.pop("test", None)


@pytest.fixture
def site():
    staff, office = make_access_level(name="Staff doors"), make_access_level(name="Office")
    lab = make_partition("Lab")
    source = CardholderSource.objects.create(
        name="HR",
        kind="test",
        default_partition_id=make_partition("Main").pk,
        group_map={
            "staff": {"access_levels": ["Staff doors"], "partition": ""},
            "office": {"access_levels": ["Office"], "partition": ""},
            "lab": {"access_levels": [], "partition": "Lab"},
        },
    )
    return {"source": source, "staff": staff, "office": office, "lab": lab}


def person(n: int, **fields) -> sync.Person:
    values = {"last_name": f"Person{n:04d}", "first_name": "Ann", "groups": frozenset({"staff"})}
    values.update(fields)
    return sync.Person(key=f"k{n:04d}", origin=f"line {n + 2}", **values)


def answer(source, people, **fields):
    ANSWERS[source.name] = sync.Snapshot(people=list(people), complete=fields.pop("complete", True), **fields)


def holder(key: str) -> Cardholder:
    return SourcedCardholder.objects.select_related("cardholder").get(key=key).cardholder


def test_a_first_run_adds_everyone_with_their_groups_levels_partition_and_cards(site):
    source = site["source"]
    answer(
        source,
        [
            person(1, groups=frozenset({"staff", "office"}), email="a@example.org", card_uid="04:a1:b2:c3"),
            person(2, groups=frozenset({"staff", "lab"}), department="R&D", job_title="Chemist"),
        ],
    )
    row = sync.run(source)
    assert row.status == SyncStatus.APPLIED, row.message
    assert row.counts["added"] == 2 and row.counts["keys_issued"] == 1
    first, second = holder("k0001"), holder("k0002")
    assert set(first.access_levels.values_list("name", flat=True)) == {"Staff doors", "Office"}
    assert first.partition.name == "Main" and first.ext_id == "k0001" and first.email == "a@example.org"
    assert second.partition == site["lab"] and (second.department, second.job_title) == ("R&D", "Chemist")
    assert list(first.keys.values_list("uid", "status")) == [("04A1B2C3", KeyStatus.ISSUED)]
    audit = SystemAuditEntry.objects.get(action="sync_add")
    assert audit.via == "sync" and {c["key"] for c in audit.detail["cardholders"]} == {"k0001", "k0002"}
    assert FINISHED == [("HR", True)]
    # The same answer again changes nothing.
    row = sync.run(source)
    assert row.counts["unchanged"] == 2 and row.counts["added"] == row.counts["changed"] == 0


def test_a_change_is_applied_field_by_field_and_levels_outside_the_map_stay(site):
    source = site["source"]
    answer(source, [person(1)])
    sync.run(source)
    by_hand = make_access_level(name="Granted by hand")
    holder("k0001").access_levels.add(by_hand)
    answer(source, [person(1, last_name="Married", groups=frozenset({"office"}))])
    preview = sync.run(source, dry_run=True)
    assert preview.status == SyncStatus.PREVIEWED
    (change,) = preview.diff["changed"]
    assert change["changes"]["last_name"] == ["Person0001", "Married"]
    assert change["changes"]["access_levels"] == [
        ["Granted by hand", "Staff doors"],
        ["Granted by hand", "Office"],
    ]
    assert holder("k0001").last_name == "Person0001"  # a dry run changes nothing
    row = sync.run(source)
    assert row.status == SyncStatus.APPLIED and row.counts["changed"] == 1
    changed = holder("k0001")
    assert changed.last_name == "Married"
    assert set(changed.access_levels.values_list("name", flat=True)) == {"Office", "Granted by hand"}
    assert SystemAuditEntry.objects.filter(action="sync_update").count() == 1


@pytest.mark.parametrize(
    "leaving, reason",
    [
        (None, "gone"),
        ({"blocked": True}, "blocked"),
        ({"groups": frozenset({"contractors"})}, "out_of_scope"),
    ],
)
def test_leavers_are_deactivated_with_their_keys_cancelled_and_blacklisted(site, leaving, reason):
    source = site["source"]
    source.scope_groups = ["staff", "office"]
    source.max_leaver_percent = 50
    source.save()
    answer(source, [person(n, card_uid=f"0A0B0C{n:02d}") for n in range(1, 5)])
    sync.run(source)
    leaver = holder("k0004")
    extra = Key.objects.create(cardholder=leaver, uid="DEADBEEF")
    people = [person(n, card_uid=f"0A0B0C{n:02d}") for n in range(1, 4)]
    if leaving is not None:
        people.append(person(4, card_uid="0A0B0C04", **leaving))
    answer(source, people)
    row = sync.run(source)
    assert row.status == SyncStatus.APPLIED, row.message
    assert row.counts["left"] == 1 and row.counts["keys_cancelled"] == 2
    assert row.diff["left"] == [{"id": leaver.pk, "key": "k0004", "name": str(leaver), "reason": reason, "keys": 2}]
    leaver.refresh_from_db()
    assert leaver.expiration is not None and leaver.expiration <= timezone.now()
    assert set(leaver.keys.values_list("status", flat=True)) == {KeyStatus.CANCELLED}
    assert set(BlacklistEntry.objects.values_list("uid", flat=True)) == {"0A0B0C04", extra.uid}
    assert SystemAuditEntry.objects.filter(action="deactivate", object_id=str(leaver.pk), via="sync").exists()
    assert SystemAuditEntry.objects.get(action="sync_leave").detail["cardholders"][0]["reason"] == reason
    link = SourcedCardholder.objects.get(key="k0004")
    assert link.left_at is not None and link.left_reason == reason
    assert Cardholder.objects.filter(pk=leaver.pk).exists()  # deactivated, never deleted
    # Back in the source: reactivated (a new key has to be issued by hand or from the source).
    answer(source, [person(n) for n in range(1, 5)])
    row = sync.run(source)
    assert row.counts["reactivated"] == 1
    leaver.refresh_from_db()
    assert leaver.expiration is None
    assert SourcedCardholder.objects.get(key="k0004").left_at is None


def test_an_empty_answer_is_held_at_the_safety_limit_and_an_approval_applies_it(site):
    source = site["source"]
    answer(source, [person(n) for n in range(20)])
    sync.run(source)
    answer(source, [])
    row = sync.run(source)
    assert row.status == SyncStatus.HELD
    assert "20 of 20 cardholders would be deactivated" in row.message
    alarm = AuditEvent.objects.get(kind=AuditKind.SYNC_HELD)
    assert alarm.detail == {"source": "HR", "run": row.pk, "message": row.message}
    assert SourcedCardholder.objects.filter(left_at__isnull=True).count() == 20
    assert not Cardholder.objects.filter(expiration__isnull=False).exists()
    assert FINISHED[-1:] == [("HR", True)]  # the first run's; a held run does not finish its read
    assert sync.held(source) and not sync.due(source, timezone.now())
    # Two leavers of twenty (10%) are allowed alone.
    answer(source, [person(n) for n in range(2, 20)])
    assert sync.run(source).status == SyncStatus.APPLIED
    # An approval applies at most the leavers approved.
    answer(source, [])
    held = sync.run(source)
    assert held.status == SyncStatus.HELD and held.counts["left"] == 18
    answer(source, [person(n) for n in range(2, 10)])
    approved = sync.run(source, approves=held)
    assert approved.status == SyncStatus.APPLIED and approved.counts["left"] == 10
    assert SourcedCardholder.objects.filter(left_at__isnull=True).count() == 8


def test_an_approval_does_not_cover_more_leavers_than_were_seen(site):
    source = site["source"]
    answer(source, [person(n) for n in range(10)])
    sync.run(source)
    answer(source, [person(n) for n in range(5)])
    held = sync.run(source)
    assert held.status == SyncStatus.HELD
    answer(source, [person(n) for n in range(3)])
    again = sync.run(source, approves=held)
    assert again.status == SyncStatus.HELD and "The approved run deactivated 5" in again.message


def test_an_incremental_read_sees_changes_leavers_and_group_moves(site):
    source = site["source"]
    answer(source, [person(n) for n in range(1, 11)])
    sync.run(source)
    memberships = {f"k{n:04d}": frozenset({"staff"}) for n in range(1, 10)}
    memberships["k0002"] = frozenset({"staff", "lab"})
    answer(
        source,
        [person(1, first_name="Anna")],
        complete=False,
        present={f"k{n:04d}" for n in range(1, 10)},
        memberships=memberships,
        cursor={"usn": 42},
    )
    row = sync.run(source)
    assert row.status == SyncStatus.APPLIED, row.message
    assert (row.counts["changed"], row.counts["left"], row.counts["unchanged"]) == (2, 1, 7)
    assert holder("k0001").first_name == "Anna"
    assert holder("k0002").partition == site["lab"]
    assert SourcedCardholder.objects.get(key="k0010").left_reason == "gone"
    source.refresh_from_db()
    assert source.cursor == {"usn": 42}
    # Without `present`, an incremental read cannot tell who left: nobody does.
    answer(source, [], complete=False)
    row = sync.run(source)
    assert row.counts["left"] == 0


def test_a_bad_row_never_makes_its_person_a_leaver_and_duplicates_are_reported(site):
    source = site["source"]
    answer(source, [person(1), person(2)])
    sync.run(source)
    error = sync.RowError("line 4", "email", "not an e-mail address", key="k0002")
    answer(source, [person(1), person(1, first_name="Twin")], errors=[error])
    row = sync.run(source)
    assert row.counts["left"] == 0
    assert {(e["where"], e["field"]) for e in row.errors} == {("line 4", "email"), ("line 3", "key")}
    assert holder("k0001").first_name == "Ann"  # the first of two rows with one key counts


def test_existing_cardholders_are_adopted_by_external_id_not_duplicated(site):
    source = site["source"]
    existing = make_cardholder(last_name="Old", ext_id="k0001")
    answer(source, [person(1)])
    row = sync.run(source)
    assert row.counts["adopted"] == 1 and row.counts["added"] == 0
    assert holder("k0001").pk == existing.pk and holder("k0001").last_name == "Person0001"


def test_a_card_taken_by_another_cardholder_is_an_error_not_a_second_key(site):
    source = site["source"]
    other = make_cardholder(last_name="Other")
    Key.objects.create(cardholder=other, uid="CAFE0001")
    answer(source, [person(1, card_uid="cafe0001"), person(2, card_uid="not hex")])
    row = sync.run(source)
    assert row.status == SyncStatus.APPLIED
    assert {e["field"] for e in row.errors} == {"card_uid"}
    assert Key.objects.filter(uid="CAFE0001").count() == 1


def test_a_changed_card_number_cancels_the_old_key_and_issues_the_new(site):
    source = site["source"]
    answer(source, [person(1, card_uid="AA01")])
    sync.run(source)
    answer(source, [person(1, card_uid="AA02")])
    sync.run(source)
    keys = dict(holder("k0001").keys.values_list("uid", "status"))
    assert keys == {"AA01": KeyStatus.CANCELLED, "AA02": KeyStatus.ISSUED}
    assert BlacklistEntry.objects.filter(uid="AA01").exists()


def test_a_source_error_fails_the_run_and_changes_nothing(site):
    source = site["source"]
    ANSWERS[source.name] = sync.SourceError("ldap://dc1: cannot connect")
    row = sync.run(source)
    assert row.status == SyncStatus.FAILED and row.message == "ldap://dc1: cannot connect"
    assert AuditEvent.objects.filter(kind=AuditKind.SYNC_FAILED).count() == 1
    ANSWERS[source.name] = None
    assert sync.run(source).status == SyncStatus.NOTHING
    assert sync.run(source, scheduled=True) is None


def test_a_group_map_naming_a_missing_level_fails_rather_than_taking_access_away(site):
    source = site["source"]
    answer(source, [person(1)])
    sync.run(source)
    site["staff"].delete()
    row = sync.run(source)
    assert row.status == SyncStatus.FAILED and "Staff doors" in row.message


def test_validation_of_a_source(site):
    source = site["source"]
    source.group_map = {"staff": {"access_levels": ["Nope"]}, "x": "y"}
    with pytest.raises(ValidationError) as error:
        sync.validate_source(source)
    assert "group_map" in error.value.message_dict
    source.group_map, source.settings = {}, {"bad": True}
    with pytest.raises(ValidationError) as error:
        sync.validate_source(source)
    assert error.value.message_dict == {"bad": ["Not allowed."]}


def test_the_tick_runs_due_sources_and_skips_others(site):
    source = site["source"]
    answer(source, [person(1)])
    now = timezone.now()
    assert "HR: applied" in sync.tick(now)
    source.refresh_from_db()
    assert not sync.due(source, now + dt.timedelta(minutes=59))
    assert sync.due(source, now + dt.timedelta(minutes=61))
    # Nothing new is not a run to keep, and waits for the next interval all the same.
    ANSWERS[source.name] = None
    assert sync.tick(now + dt.timedelta(minutes=61)) == "nothing due"
    source.refresh_from_db()
    assert source.last_run_at == now + dt.timedelta(minutes=61) and SyncRun.objects.count() == 1
    source.enabled = False
    source.save()
    assert sync.tick(now + dt.timedelta(hours=3)) == "nothing due"


def test_a_watched_source_is_looked_at_every_minute_and_after_a_failure_less_often(site):
    sync.register_kind("test", label="Test", read=read, validate=validate, watch=True)
    source = site["source"]
    now = timezone.now()
    ANSWERS[source.name] = None
    assert sync.due(source, now) and sync.tick(now) == "nothing due"
    assert not SyncRun.objects.exists()
    ANSWERS[source.name] = sync.SourceError("The folder /srv/hr is not readable.")
    assert "failed" in sync.tick(now + dt.timedelta(minutes=1))
    source.refresh_from_db()
    assert not sync.due(source, now + dt.timedelta(minutes=2))
    assert sync.due(source, now + dt.timedelta(minutes=62))


def test_one_run_at_a_time(site):
    source = site["source"]
    SyncRun.objects.create(source=source, started_at=timezone.now(), status=SyncStatus.RUNNING)
    answer(source, [person(1)])
    with pytest.raises(sync.SyncBusy):
        sync.run(source)
    # One that has been running for hours lost its process.
    SyncRun.objects.update(started_at=timezone.now() - dt.timedelta(hours=3))
    assert sync.run(source).status == SyncStatus.APPLIED


def test_the_command_previews_and_applies(site, capsys):
    source = site["source"]
    answer(source, [person(1, groups=frozenset({"staff", "lab"}))])
    call_command("sync_cardholders", "HR", "--dry-run")
    out = capsys.readouterr().out
    assert "Previewed" in out and "+ Ann Person0001 (k0001): Lab; Staff doors" in out
    assert not SourcedCardholder.objects.exists()
    call_command("sync_cardholders")
    assert SourcedCardholder.objects.count() == 1
    with pytest.raises(CommandError, match="No source named Nope"):
        call_command("sync_cardholders", "Nope")


# --- the web app's pages and the job ---------------------------------------------------------------------------


def operator_client(*permissions):
    from django.test import Client

    from tests.factories import make_operator

    operator = make_operator(*permissions, all_partitions=True)
    client = Client()
    client.force_login(operator)
    return client, operator


def test_preview_then_approve_through_the_web_app_with_the_diff_shown(site, monkeypatch):
    from django.urls import reverse

    from accesscontrol import jobs
    from accesscontrol.models import Job

    monkeypatch.setattr(jobs, "dispatch", lambda job_id: None)  # run below, in this thread
    source = site["source"]
    answer(source, [person(n, card_uid=f"BB{n:02d}") for n in range(10)])
    sync.run(source)
    client, operator = operator_client(
        "accesscontrol.view_cardholdersource", "accesscontrol.change_cardholdersource", "accesscontrol.view_cardholder"
    )
    answer(
        source,
        [person(n, last_name="Renamed" if n == 0 else f"Person{n:04d}", card_uid=f"BB{n:02d}") for n in range(5)],
    )

    response = client.post(reverse("source_run", args=[source.pk]), {"what": "preview"})
    job = Job.objects.get()
    assert response["Location"] == reverse("job", args=[job.pk])
    jobs.run(job.pk)
    job.refresh_from_db()
    assert job.status == "succeeded" and job.percent == 100, job.message
    preview = SyncRun.objects.get(pk=job.result["run"])
    assert preview.status == SyncStatus.PREVIEWED and preview.operator == operator
    assert "See the run" in client.get(reverse("job", args=[job.pk])).content.decode()
    page = client.get(reverse("sync_run", args=[preview.pk])).content.decode()
    assert "Renamed" in page and "Gone from the source" in page and "Approve" not in page
    assert page.count('<td class="num">1</td>') >= 5  # each leaver's one key to cancel

    client.post(reverse("source_run", args=[source.pk]), {"what": "sync"})
    held_job = Job.objects.latest("id")
    jobs.run(held_job.pk)
    held = SyncRun.objects.get(pk=Job.objects.get(pk=held_job.pk).result["run"])
    assert held.status == SyncStatus.HELD
    page = client.get(reverse("sync_run", args=[held.pk])).content.decode()
    assert "Approve: deactivate 5" in page
    assert "held" in client.get(reverse("source", args=[source.pk])).content.decode()

    client.post(reverse("source_run", args=[source.pk]), {"what": "approve", "run": held.pk})
    approve_job = Job.objects.latest("id")
    assert approve_job.parameters["approves"] == held.pk
    jobs.run(approve_job.pk)
    applied = SyncRun.objects.get(pk=Job.objects.get(pk=approve_job.pk).result["run"])
    assert applied.status == SyncStatus.APPLIED and applied.approved_by == operator and applied.approves == held
    assert BlacklistEntry.objects.count() == 5
    assert SystemAuditEntry.objects.filter(action="sync_approve", operator=operator).count() == 1
    listing = client.get(reverse("sources")).content.decode()
    assert "HR" in listing and "Applied" in listing
    detail = client.get(reverse("cardholder", args=[holder("k0009").pk])).content.decode()
    assert "deactivated" in detail and "k0009" in detail


def test_the_pages_need_their_permissions(site):
    from django.urls import reverse

    client, _operator = operator_client("accesscontrol.view_cardholdersource")
    source = site["source"]
    assert client.get(reverse("sources")).status_code == 200
    assert "Sync now" not in client.get(reverse("sources")).content.decode()
    assert client.post(reverse("source_run", args=[source.pk]), {"what": "sync"}).status_code == 403
    nobody, _ = operator_client("accesscontrol.view_cardholder")
    assert nobody.get(reverse("sources")).status_code == 403
    assert nobody.get(reverse("source", args=[source.pk])).status_code == 403


def test_the_admin_checks_the_settings_and_seals_the_secret(site, admin_client):
    from django.urls import reverse

    source = site["source"]
    url = reverse("admin:accesscontrol_cardholdersource_change", args=[source.pk])
    data = {
        "name": "HR",
        "kind": "test",
        "enabled": "on",
        "settings": '{"bad": true}',
        "group_map": '{"staff": {"access_levels": ["Missing"]}}',
        "scope_groups": "[]",
        "default_partition": source.default_partition_id,
        "max_leaver_percent": 10,
        "sync_minutes": 60,
        "full_every_hours": 24,
        "secret": "s3cret",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["settings"] == ["Not allowed."]
    assert "no access level named Missing" in str(errors["group_map"])
    data.update(settings="{}", group_map='{"staff": {"access_levels": ["Staff doors"]}}')
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    source.refresh_from_db()
    assert source.secret == "s3cret" and b"s3cret" not in bytes(source.secret_sealed)
    assert source.group_map == {"staff": {"access_levels": ["Staff doors"], "partition": ""}}


# --- the REST API ------------------------------------------------------------------------------------------------


def test_the_api_lists_sources_and_runs_starts_a_run_and_approves_a_held_one(site, monkeypatch):
    from accesscontrol import jobs
    from accesscontrol.models import Job
    from tests.support.api import client_with

    monkeypatch.setattr(jobs, "dispatch", lambda job_id: None)
    source = site["source"]
    source.set_secret("bind-password")
    source.save()
    answer(source, [person(n) for n in range(4)])
    sync.run(source)
    viewer = client_with("accesscontrol.view_cardholdersource")
    runner = client_with("accesscontrol.view_cardholdersource", "accesscontrol.change_cardholdersource")

    listed = viewer.get("/api/v1/cardholder-sources/").json()["results"]
    assert [(s["name"], s["cardholders"]) for s in listed] == [("HR", 4)]
    assert "bind-password" not in str(listed) and "secret" not in listed[0]
    assert viewer.post(f"/api/v1/cardholder-sources/{source.pk}/sync/", {}, format="json").status_code == 403
    bad = runner.post(f"/api/v1/cardholder-sources/{source.pk}/sync/", {"dry_run": "perhaps"}, format="json")
    assert bad.status_code == 400 and "dry_run" in bad.json()

    answer(source, [])
    started = runner.post(f"/api/v1/cardholder-sources/{source.pk}/sync/", {"full": True}, format="json")
    assert started.status_code == 202
    job = Job.objects.get(pk=started.json()["job"])
    assert job.parameters == {"source": source.pk, "dry_run": False, "full": True}
    jobs.run(job.pk)
    (held,) = viewer.get(f"/api/v1/sync-runs/?job={job.pk}").json()["results"]
    assert held["status"] == "held" and held["counts"]["left"] == 4
    assert viewer.post(f"/api/v1/sync-runs/{held['id']}/approve/").status_code == 403

    approved = runner.post(f"/api/v1/sync-runs/{held['id']}/approve/")
    assert approved.status_code == 202
    jobs.run(approved.json()["job"])
    (applied,) = viewer.get(f"/api/v1/sync-runs/?job={approved.json()['job']}").json()["results"]
    assert applied["status"] == "applied" and applied["approves"] == held["id"]
    again = runner.post(f"/api/v1/sync-runs/{held['id']}/approve/")
    assert again.status_code == 400 and "status" in again.json()
    assert client_with("accesscontrol.view_cardholder").get("/api/v1/sync-runs/").status_code == 403


def test_only_the_fields_the_source_has_are_written(site):
    source = site["source"]
    answer(source, [person(1, email="hr@example.org")])
    sync.run(source)
    typed = holder("k0001")
    typed.phone_number = "+4930123456"
    typed.save()
    # A source without phone numbers (an HR feed with no such column) leaves the one typed in Space.
    answer(source, [person(1, last_name="Changed", email="new@example.org")], fields=frozenset({"last_name", "email"}))
    row = sync.run(source)
    assert set(row.diff["changed"][0]["changes"]) == {"last_name", "email"}
    changed = holder("k0001")
    assert (changed.last_name, changed.email, changed.phone_number) == ("Changed", "new@example.org", "+4930123456")


def test_a_sources_photos_are_stored_stripped_and_a_bad_one_is_a_row_error(
    site, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.SPACE_PHOTO_DIR = photo_dir = tmp_path / "photos"
    source = site["source"]
    answer(source, [person(1, photo=camera_jpeg()), person(2, photo=b"not a photo"), person(3)])

    row = sync.run(source)

    assert row.status == SyncStatus.APPLIED, row.message
    first = holder("k0001")
    assert first.photo and b"Acme Camera Works" not in (photo_dir / first.photo.name).read_bytes()
    assert not holder("k0002").photo and not holder("k0003").photo
    assert any("not an image Space reads" in str(error) for error in row.errors), row.errors
    assert not SystemAuditEntry.objects.filter(action="set_photo").exists()  # the run records it, not the action
    answer(source, [person(1, photo=plain_jpeg()), person(2), person(3)])
    with django_capture_on_commit_callbacks(execute=True):
        assert sync.run(source).status == SyncStatus.APPLIED
    assert Cardholder.objects.get(pk=first.pk).photo.name != first.photo.name
    assert len(files(photo_dir)) == 2  # the old photo's files went once the run committed
