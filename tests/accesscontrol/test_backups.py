"""The site's backups: the record, the daily schedule, retention, the two alarms, the commands and the page."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accesscontrol import backups, jobs, photofiles, photos
from accesscontrol.choices import AuditKind
from accesscontrol.models import (
    AuditEvent,
    Backup,
    BackupOutcome,
    BackupTrigger,
    Cardholder,
    Job,
    JobStatus,
    SystemAuditEntry,
)
from core import backup as engine
from integrations.models import WebhookDelivery, WebhookSubscription
from tests.factories import make_cardholder, make_operator
from tests.support.photos import files, plain_jpeg

KEY = "the site's backup key, longer than thirty-two characters"


@pytest.fixture
def site(settings, tmp_path, transactional_db):
    """A backup folder and key of the test's own; the database holds committed rows (a backup sees those)."""
    settings.VAR_DIR = tmp_path
    settings.SPACE_BACKUP_DIR = tmp_path / "backups"
    settings.SPACE_BACKUP_KEY = KEY
    settings.SPACE_BACKUP_KEY_PATH = None
    settings.TIME_ZONE = "Europe/Madrid"
    settings.SPACE_BACKUP_TIME = "02:30"
    settings.SPACE_PHOTO_DIR = tmp_path / "photos"
    for n in range(3):
        holder = make_cardholder(first_name=f"Person {n}")
    photos.set_photo_from_source(holder, plain_jpeg())
    return tmp_path


def events_of(kind) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(kind=kind).order_by("id"))


def good_backup(finished_at: dt.datetime) -> Backup:
    return Backup.objects.create(
        started_at=finished_at - dt.timedelta(seconds=5),
        finished_at=finished_at,
        trigger=BackupTrigger.SCHEDULED,
        outcome=BackupOutcome.OK,
        file_name=engine.file_name(finished_at),
        size=1000,
    )


# --- making one --------------------------------------------------------------------------------------


def test_a_backup_is_recorded_with_its_file_size_and_rows(site):
    row = backups.back_up(BackupTrigger.MANUAL)

    path = site / "backups" / row.file_name
    assert row.outcome == BackupOutcome.OK
    assert row.finished_at is not None and row.seconds > 0
    assert row.size == path.stat().st_size
    manifest = engine.verify(path, KEY, database=backups.database(), work_dir=site / "work")
    assert manifest["tables"]["accesscontrol_cardholder"] == 3
    assert row.rows == sum(manifest["tables"].values())
    assert manifest["site"]["time_zone"] == "Europe/Madrid"
    assert manifest["space_version"] == django_settings.SPACE_VERSION
    assert ["accesscontrol", "0013_backups"] in manifest["migrations"]
    assert events_of(AuditKind.BACKUP_FAILED) == []


def test_a_backup_holds_every_photo(site):
    row = backups.back_up(BackupTrigger.MANUAL)

    manifest = engine.verify(site / "backups" / row.file_name, KEY, database=backups.database(), work_dir=site / "w")
    assert manifest["folders"]["photos"]["files"] == 2  # the photo and its thumbnail
    assert manifest["folders"]["photos"]["bytes"] == sum(
        (site / "photos" / name).stat().st_size for name in files(site / "photos")
    )


def test_no_photo_file_is_removed_while_a_backup_copies_the_folder(site):
    name = Cardholder.objects.exclude(photo="").get().photo.name

    with photofiles.deletions_held():
        photofiles.delete_photo_files(name)  # the commit that stopped naming it, while a backup runs
        assert len(files(site / "photos")) == 2
    Cardholder.objects.update(photo="")

    assert photos.sweep_orphans(timezone.now() + dt.timedelta(hours=2)) == 2
    assert files(site / "photos") == []


def test_a_backup_is_read_back_and_verified_after_it_is_made(site, settings):
    settings.SPACE_BACKUP_VERIFY = True

    verified = backups.back_up(BackupTrigger.MANUAL, now=timezone.now() - dt.timedelta(seconds=5))
    unverified = backups.back_up(BackupTrigger.MANUAL, verify=False)

    assert verified.outcome == unverified.outcome == BackupOutcome.OK
    assert verified.verified_at is not None and unverified.verified_at is None


def test_a_backup_spoiled_on_the_share_before_it_is_read_back_is_a_failed_one(site, monkeypatch):
    real_verify = engine.verify

    def verify_after_bit_rot(path, *args, **kwargs):
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(data))
        return real_verify(path, *args, **kwargs)

    monkeypatch.setattr(engine, "verify", verify_after_bit_rot)

    row = backups.back_up(BackupTrigger.SCHEDULED, verify=True)

    assert row.outcome == BackupOutcome.FAILED and row.verified_at is None
    assert row.error.startswith(f"Made ({row.size} bytes) but it does not verify: The backup is damaged")
    assert len(events_of(AuditKind.BACKUP_FAILED)) == 1


def test_a_failed_backup_is_recorded_and_raises_the_alarm_for_webhooks_too(site, settings):
    subscription = WebhookSubscription(
        name="NOC",
        url="https://127.0.0.1:9/hook",
        allow_private_target=True,
        kinds=["backup_failed", "backup_overdue"],
        all_partitions=True,
    )
    subscription.full_clean()  # the new kind is one a subscription may pick
    subscription.save()
    (site / "share").write_text("not a folder: the share is not mounted")
    settings.SPACE_BACKUP_DIR = site / "share"

    row = backups.back_up(BackupTrigger.SCHEDULED)

    assert row.outcome == BackupOutcome.FAILED
    assert "File exists" in row.error
    [alarm] = events_of(AuditKind.BACKUP_FAILED)
    assert alarm.detail == {"backup": row.pk, "file": row.file_name, "trigger": "scheduled", "error": row.error}
    assert WebhookDelivery.objects.filter(subscription=subscription).count() == 1


@pytest.mark.parametrize(
    ("key", "message"),
    [(None, "No backup key"), ("too short a key", "too short")],
)
def test_no_backup_is_made_without_a_key_of_adequate_length(site, settings, key, message):
    settings.SPACE_BACKUP_KEY = key

    row = backups.back_up(BackupTrigger.MANUAL)

    assert row.outcome == BackupOutcome.FAILED and message in row.error
    assert not any((site / "backups").glob("*.spacebackup"))
    assert len(events_of(AuditKind.BACKUP_FAILED)) == 1


def test_a_key_kept_in_the_backup_folder_is_refused(site, settings):
    settings.SPACE_BACKUP_KEY_PATH = str(site / "backups" / "key")

    row = backups.back_up(BackupTrigger.MANUAL)

    assert row.outcome == BackupOutcome.FAILED
    assert "keep it apart" in row.error


def test_retention_deletes_the_files_it_does_not_keep_and_marks_their_rows(site, settings):
    settings.SPACE_BACKUP_KEEP_DAILY, settings.SPACE_BACKUP_KEEP_WEEKLY, settings.SPACE_BACKUP_KEEP_MONTHLY = 2, 0, 0
    folder = site / "backups"
    folder.mkdir()
    now = timezone.now()
    old = [engine.file_name(now - dt.timedelta(days=days)) for days in (1, 2, 3)]
    for name in old:
        (folder / name).write_bytes(b"an older backup")
        Backup.objects.create(started_at=now, trigger="scheduled", outcome="ok", file_name=name)
    (folder / "notes.txt").write_text("not a backup: left alone")
    dead = folder / f".{engine.file_name(now - dt.timedelta(days=1))}.partial"  # its process died
    dead.write_bytes(b"half a backup")
    os.utime(dead, (now.timestamp() - 7 * 3600, now.timestamp() - 7 * 3600))

    row = backups.back_up(BackupTrigger.MANUAL, now=now)

    assert sorted(path.name for path in folder.iterdir()) == sorted([row.file_name, old[0], "notes.txt"])
    assert set(Backup.objects.exclude(pruned_at=None).values_list("file_name", flat=True)) == set(old[1:])


def test_the_backup_now_job_runs_a_backup_for_its_operator(site):
    operator = make_operator("accesscontrol.add_backup")
    job = Job.objects.create(kind="backup", operator=operator)

    jobs.run(job.pk)

    job.refresh_from_db()
    row = Backup.objects.get()
    assert job.status == JobStatus.SUCCEEDED, job.message
    assert (row.trigger, row.operator, row.outcome) == (BackupTrigger.OPERATOR, operator, BackupOutcome.OK)
    assert job.result == {"backup": row.pk}


# --- schedule and alarms -------------------------------------------------------------------------------


def madrid(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.timezone(dt.timedelta(hours=1)))  # December: Madrid is UTC+1


def test_the_daily_backup_starts_once_its_local_time_has_come_and_once_only(site, monkeypatch):
    monkeypatch.setattr(backups, "site_since", lambda: madrid(2026, 12, 1, 12, 0))

    before = backups.tick(madrid(2026, 12, 7, 2, 29))  # the 6th's backup is missed: Space was stopped
    Backup.objects.all().delete()
    at_time = backups.tick(madrid(2026, 12, 7, 2, 30))
    again = backups.tick(madrid(2026, 12, 7, 2, 31))

    assert before.startswith("backup space-20261207T012900Z.spacebackup: ok")  # the 6th's, caught up
    assert at_time.startswith("backup space-20261207T013000Z.spacebackup: ok")
    assert again == "nothing due"
    assert list(Backup.objects.values_list("trigger", flat=True)) == [BackupTrigger.SCHEDULED]


def test_no_daily_backup_is_due_before_the_site_existed(site, monkeypatch):
    monkeypatch.setattr(backups, "site_since", lambda: madrid(2026, 12, 7, 9, 0))

    assert backups.tick(madrid(2026, 12, 7, 10, 0)) == "nothing due"
    assert backups.next_instant(madrid(2026, 12, 7, 10, 0)) == madrid(2026, 12, 8, 2, 30)


def test_the_overdue_alarm_is_raised_once_per_episode(site, settings):
    settings.SPACE_BACKUP_MAX_AGE_HOURS = 26
    start = timezone.now() - dt.timedelta(days=10)
    good_backup(start)

    assert backups.check_overdue(start + dt.timedelta(hours=25)) is None
    first = backups.check_overdue(start + dt.timedelta(hours=27))
    assert backups.check_overdue(start + dt.timedelta(hours=28)) is None
    assert backups.check_overdue(start + dt.timedelta(hours=60)) is None
    good_backup(start + dt.timedelta(hours=61))  # a good one ends the episode
    assert backups.check_overdue(start + dt.timedelta(hours=62)) is None
    second = backups.check_overdue(start + dt.timedelta(hours=61 + 27))

    assert first is not None and second is not None
    assert events_of(AuditKind.BACKUP_OVERDUE) == [first, second]
    assert first.detail["age_hours"] == 27.0 and first.detail["max_age_hours"] == 26


def test_a_site_that_never_backed_up_is_overdue_from_when_it_was_made(site, monkeypatch):
    made = timezone.now() - dt.timedelta(hours=30)
    monkeypatch.setattr(backups, "site_since", lambda: made)

    alarm = backups.check_overdue()

    assert alarm.detail["newest"] is None and alarm.detail["age_hours"] == 30.0


def test_a_backup_whose_process_died_is_failed_and_alarmed(site):
    now = timezone.now()
    Backup.objects.create(started_at=now - dt.timedelta(hours=7), trigger="scheduled", file_name="space-x")

    assert backups.fail_interrupted(now) == 1
    assert Backup.objects.get().outcome == BackupOutcome.FAILED
    assert len(events_of(AuditKind.BACKUP_FAILED)) == 1


# --- the commands --------------------------------------------------------------------------------------


def test_manage_py_backup_prints_the_file_and_verify_checks_it(site, capsys):
    call_command("backup")
    path = next((site / "backups").glob("*.spacebackup"))
    call_command("restore", str(path), "--verify")

    out = capsys.readouterr().out
    assert str(path) in out and "bytes" in out
    assert f"{path.name} is sound" in out


def test_manage_py_backup_fails_with_the_reason(site, settings):
    settings.SPACE_BACKUP_KEY = None

    with pytest.raises(CommandError, match="The backup failed: No backup key"):
        call_command("backup")


def test_manage_py_restore_refuses_a_database_with_data_a_changed_file_and_a_wrong_key(site, tmp_path):
    call_command("backup")
    path = next((site / "backups").glob("*.spacebackup"))
    tampered = tmp_path / "tampered.spacebackup"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    tampered.write_bytes(bytes(data))
    other_key = tmp_path / "other.key"
    other_key.write_text("x" * 40)
    cardholders = connection.cursor().execute("SELECT count(*) FROM accesscontrol_cardholder").fetchone()[0]

    with pytest.raises(CommandError, match="is not empty"):
        call_command("restore", str(path))
    with pytest.raises(CommandError, match="damaged or was changed"):
        call_command("restore", "--verify", str(tampered))
    with pytest.raises(CommandError, match=r"another backup key.*SPACE_BACKUP_KEY_FILE"):
        call_command("restore", "--verify", "--key-file", str(other_key), str(path))
    with pytest.raises(CommandError, match="There is no backup file"):
        call_command("restore", "--verify", str(tmp_path / "none.spacebackup"))

    assert connection.cursor().execute("SELECT count(*) FROM accesscontrol_cardholder").fetchone()[0] == cardholders


@pytest.mark.slow
def test_manage_py_restore_brings_a_sqlite_site_back_in_an_empty_database(site, tmp_path):
    if connection.vendor != "sqlite":
        pytest.skip("the PostgreSQL round trip is tests/core/test_backup.py's")
    row = backups.back_up(BackupTrigger.MANUAL)
    key_file = tmp_path / "backup.key"
    key_file.write_text(KEY)
    restored = tmp_path / "new-machine"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPACE_", "DATABASE_URL"))}
    env.update(SPACE_VAR_DIR=str(restored), SPACE_BACKUP_KEY_FILE=str(key_file), SPACE_LOG_LEVEL="WARNING")
    manage = [sys.executable, str(Path(django_settings.BASE_DIR) / "manage.py")]

    def run(*arguments):
        return subprocess.run([*manage, *arguments], env=env, capture_output=True, text=True, check=False)

    first = run("restore", str(site / "backups" / row.file_name))
    second = run("restore", str(site / "backups" / row.file_name))

    assert first.returncode == 0, first.stderr
    assert "Restored" in first.stdout and "manage.py migrate" in first.stdout
    assert second.returncode == 1 and "is not empty" in second.stderr and "Traceback" not in second.stderr
    counts = engine.sqlite.counts_of_file(restored / "space.sqlite3")
    assert counts["accesscontrol_cardholder"] == 3
    assert "2 photo files" in first.stdout
    assert files(restored / "photos") == files(site / "photos") != []
    for name in files(site / "photos"):
        assert (restored / "photos" / name).read_bytes() == (site / "photos" / name).read_bytes()
    # The backup's own row was "running" in its snapshot; the restore notes it as the good backup it is.
    check = run("shell", "-c", "from accesscontrol.models import Backup; print(Backup.objects.get().outcome)")
    assert check.stdout.strip().splitlines()[-1] == "ok", check.stderr


# --- the page ---------------------------------------------------------------------------------------------


def test_the_backups_page_lists_the_last_backups_for_administrators(site):
    good_backup(timezone.now() - dt.timedelta(hours=30))
    Backup.objects.create(
        started_at=timezone.now(), trigger="manual", outcome="failed", file_name="space-y", error="Disk full"
    )
    client = Client()
    client.force_login(make_operator("accesscontrol.view_backup"))

    response = client.get(reverse("backups"))

    assert response.status_code == 200
    body = response.content.decode()
    assert "Disk full" in body and "Overdue" in body and str(site / "backups") in body
    assert "Back up now" not in body  # viewing is not running one
    assert reverse("backups") in body  # in the menu


def test_the_backups_page_and_the_button_are_refused_without_permission(site):
    client = Client()
    client.force_login(make_operator("accesscontrol.view_cardholder"))

    assert client.get(reverse("backups")).status_code == 403
    assert client.post(reverse("backup_now")).status_code == 403
    assert not Job.objects.exists() and not Backup.objects.exists()


def test_back_up_now_starts_a_backup_job(site, monkeypatch):
    monkeypatch.setattr(jobs, "dispatch", lambda job_id: None)  # the job itself is tested above
    operator = make_operator("accesscontrol.view_backup", "accesscontrol.add_backup")
    client = Client()
    client.force_login(operator)

    page = client.get(reverse("backups"))
    response = client.post(reverse("backup_now"))

    job = Job.objects.get()
    assert "Back up now" in page.content.decode()
    assert response.status_code == 302 and response["Location"] == reverse("job", args=[job.pk])
    assert (job.kind, job.operator) == ("backup", operator)
    assert SystemAuditEntry.objects.filter(action="back_up", operator=operator).count() == 1


# --- /readyz and /metrics -------------------------------------------------------------------------------


def test_readyz_reports_an_overdue_backup_without_failing(site, settings):
    good_backup(timezone.now() - dt.timedelta(hours=30))

    body = Client().get("/readyz").json()

    assert body["status"] == "ok"
    check = body["checks"]["backup"]
    assert check["ok"] is True and check["overdue"] is True
    assert 30 * 3600 - 5 <= check["age_seconds"] <= 30 * 3600 + 60
    assert check["last_outcome"] == "ok"


def test_metrics_export_the_backup_age_and_last_outcome(site, settings):
    from prometheus_client.parser import text_string_to_metric_families

    settings.SPACE_METRICS_ALLOWED_ADDRESSES = ["127.0.0.1"]
    good_backup(timezone.now() - dt.timedelta(hours=2))

    text = Client().get("/metrics").content.decode()

    families = {family.name: family for family in text_string_to_metric_families(text)}
    [age] = families["space_backup_age_seconds"].samples
    assert 2 * 3600 - 5 <= age.value <= 2 * 3600 + 60
    outcomes = {sample.labels["outcome"]: sample.value for sample in families["space_backup_last_outcome"].samples}
    assert outcomes == {"ok": 1.0, "failed": 0.0}


def test_runspace_checks_the_schedule_every_minute_when_no_beat_runs(settings):
    from core.periodic import PeriodicService
    from space.celery import BACKUP_TICK_SECONDS, app
    from space.services import embedded_services

    settings.CELERY_BROKER_URL = "memory://"

    [service] = [service for service in embedded_services() if getattr(service, "name", None) == "backups"]

    assert isinstance(service, PeriodicService)
    assert (service.function, service.every) == (backups.tick, BACKUP_TICK_SECONDS)
    assert app.conf.beat_schedule["backup-tick"] == {
        "task": "accesscontrol.tasks.backup_tick",
        "schedule": BACKUP_TICK_SECONDS,
        "options": {"expires": BACKUP_TICK_SECONDS},
    }


def test_the_admin_lists_backups_and_offers_no_way_to_change_them(site):
    good_backup(timezone.now())
    admin = make_operator(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)

    listing = client.get("/admin/accesscontrol/backup/")
    adding = client.get("/admin/accesscontrol/backup/add/")

    assert listing.status_code == 200 and "space-" in listing.content.decode()
    assert adding.status_code == 403
