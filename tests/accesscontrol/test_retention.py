"""Audit retention: each class goes at its own cut-off, into a signed archive, and only then out of the database."""

import datetime as dt
import fcntl
import gzip
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from accesscontrol import archive, events, retention
from accesscontrol.archive import ArchiveError, verify
from accesscontrol.choices import ALARM_KINDS, AuditKind
from accesscontrol.models import AppendOnlyError, AuditEvent, SystemAuditEntry
from accesscontrol.retention import Policy
from integrations.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from tests.factories import make_access_point, make_cardholder, make_operator

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
DAY = dt.timedelta(days=1)
POLICY = Policy(access_days=30, alarm_days=60, system_days=90)


@pytest.fixture
def folder(tmp_path, settings):
    settings.SPACE_AUDIT_ARCHIVE_DIR = tmp_path / "archive"
    return settings.SPACE_AUDIT_ARCHIVE_DIR


@pytest.fixture
def now():
    # An hour ahead: the events the test stores are not "stored in the last minutes" (retention.RECENT).
    return timezone.now() + dt.timedelta(hours=1)


def store(at: dt.datetime, kind: str = AuditKind.ACCESS_GRANTED, **fields) -> AuditEvent:
    """One audit event of time ``at``, stored through the event exit (so the outbox sees it) and recorded then."""
    [event] = events.record_many([AuditEvent(at=at, kind=kind, **fields)], now=at)
    return event


def archived_records(folder: Path) -> dict[str, list[dict]]:
    return {
        path.name: [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
        for path in sorted(folder.glob("*.jsonl.gz"))
    }


def remaining() -> set[int]:
    return set(AuditEvent.objects.values_list("id", flat=True))


# --- the policy ------------------------------------------------------------------------------------------


def test_each_class_goes_at_its_own_cutoff(folder, now):
    old_access = store(now - 40 * DAY)
    young_access = store(now - 20 * DAY, AuditKind.DOOR_OPENED)
    middle_alarm = store(now - 40 * DAY, AuditKind.DOOR_FORCED)
    old_alarm = store(now - 70 * DAY, AuditKind.TAMPER)

    report = retention.purge(now, policy=POLICY)

    assert remaining() == {young_access.pk, middle_alarm.pk}
    assert (report.classes["access"].archived, report.classes["access"].deleted) == (1, 1)
    assert (report.classes["alarm"].archived, report.classes["alarm"].deleted) == (1, 1)
    names = {name: [r["id"] for r in records] for name, records in archived_records(folder).items()}
    assert names == {
        archive.file_name("access", *_month(old_access.at)): [old_access.pk],
        archive.file_name("alarm", *_month(old_alarm.at)): [old_alarm.pk],
    }


def test_the_system_auditor_goes_at_its_own_cutoff(folder):
    entry = SystemAuditEntry.objects.create(
        action="login", operator_name="ada", address="10.0.0.5", via="web", detail={"totp": True}
    )
    created = entry.at

    kept = retention.purge(created + 89 * DAY, policy=POLICY)
    gone = retention.purge(created + 91 * DAY, policy=POLICY)

    assert kept.classes["system"].deleted == 0
    assert gone.classes["system"].deleted == 1
    assert not SystemAuditEntry.objects.filter(pk=entry.pk).exists()
    [(name, [record])] = archived_records(folder).items()
    assert name == archive.file_name("system", *_month(created))
    assert record == {
        "id": entry.pk,
        "at": archive.rfc3339(created),
        "operator_id": None,
        "operator_name": "ada",
        "action": "login",
        "object_type": "",
        "object_id": "",
        "object_repr": "",
        "via": "web",
        "address": "10.0.0.5",
        "detail": {"totp": True},
    }
    # The purge is in the system auditor itself.
    [run] = SystemAuditEntry.objects.filter(action="audit_purged")
    assert run.detail["classes"]["system"]["deleted"] == 1 and run.via == "scheduler"


def test_a_class_kept_forever_is_never_touched(folder, now):
    event = store(now - 4000 * DAY, AuditKind.DOOR_FORCED)

    report = retention.purge(now, policy=Policy(access_days=30, alarm_days=0, system_days=0))

    assert remaining() == {event.pk}
    assert report.classes["alarm"].cutoff is None
    assert not list(folder.glob("*.gz"))


def test_the_alarm_kinds_are_alarms_and_the_rest_access_and_door_events():
    assert retention.class_of("door_forced") == retention.class_of("tamper") == "alarm"
    assert retention.class_of("access_granted") == retention.class_of("door_opened") == "access"
    assert set(AuditKind.values) >= ALARM_KINDS


@pytest.mark.parametrize(
    ("access", "alarm", "system", "refused"),
    [(365, 730, 2555, False), (365, 730, 0, False), (365, 730, 500, True), (0, 730, 2555, True), (-1, 7, 9, True)],
)
def test_settings_refuse_a_system_auditor_kept_less_long_than_the_others(access, alarm, system, refused, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPACE_", "DATABASE_URL"))}
    env.update(
        SPACE_VAR_DIR=str(tmp_path),
        SPACE_AUDIT_KEEP_ACCESS_DAYS=str(access),
        SPACE_AUDIT_KEEP_ALARM_DAYS=str(alarm),
        SPACE_AUDIT_KEEP_SYSTEM_DAYS=str(system),
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check"], env=env, capture_output=True, text=True, check=False
    )

    assert (done.returncode != 0) == refused, done.stderr
    if refused:
        assert "SPACE_AUDIT_KEEP_" in done.stderr


# --- the archive -----------------------------------------------------------------------------------------


def test_the_archive_holds_exactly_the_deleted_rows_with_their_names(folder, now, make_device):
    point = make_access_point(name="Main entrance")
    holder = make_cardholder(first_name="Grace", last_name="Hopper")
    device = make_device(device_id=77, name="Lobby controller")
    operator = make_operator(username="opal")
    old = [
        store(
            now - (40 + n) * DAY,
            access_point=point,
            access_point_name=point.name,
            cardholder=holder,
            cardholder_name="Grace Hopper",
            key_uid=f"04AA{n:02d}",
            device=device,
            device_event_id=n,
            reason="granted",
            detail={"n": n, "text": "ü"},
        )
        for n in range(5)
    ]
    remote = store(now - 50 * DAY, AuditKind.REMOTE_OPEN, operator=operator, access_point_name=point.name)
    young = store(now - DAY)

    retention.purge(now, policy=POLICY)

    records = [record for records in archived_records(folder).values() for record in records]
    assert sorted(r["id"] for r in records) == sorted(e.pk for e in [*old, remote])
    assert remaining() == {young.pk}
    first = next(r for r in records if r["id"] == old[0].pk)
    assert first == {
        "id": old[0].pk,
        "at": archive.rfc3339(old[0].at),
        "recorded_at": archive.rfc3339(old[0].at),
        "kind": "access_granted",
        "kind_label": "Access granted",
        "reason": "granted",
        "reason_label": "Granted",
        "access_point_id": point.pk,
        "access_point_name": "Main entrance",
        "cardholder_id": holder.pk,
        "cardholder_name": "Grace Hopper",
        "key_uid": "04AA00",
        "device_id": device.pk,
        "device_name": "Lobby controller",
        "device_event_id": 0,
        "operator_id": None,
        "operator_name": "",
        "detail": {"n": 0, "text": "ü"},
    }
    assert next(r for r in records if r["id"] == remote.pk)["operator_name"] == "opal"
    for path in folder.glob("*.jsonl.gz"):
        assert verify(path).events == len(archived_records(folder)[path.name])


def test_a_second_run_appends_a_member_and_the_file_still_verifies(folder, now):
    first = store(now - 40 * DAY)
    retention.purge(now, policy=POLICY)
    second = store(first.at + dt.timedelta(seconds=1))  # same month, a later id
    retention.purge(now, policy=POLICY)

    [path] = folder.glob("*.jsonl.gz")
    summary = verify(path)

    assert (summary.events, summary.members) == (2, 2)
    assert [r["id"] for r in archived_records(folder)[path.name]] == [first.pk, second.pk]


@pytest.fixture
def one_archive(folder, now):
    for n in range(20):  # twenty events of March 2025, archived by windows of 7 ids: three members
        store(dt.datetime(2025, 3, 10 + n % 3, 8, n, tzinfo=dt.UTC), detail={"n": n})
    retention.purge(now, policy=POLICY, batch=7)
    [path] = folder.glob("*.jsonl.gz")
    return path


def test_verify_archive_accepts_a_good_file(one_archive, capsys):
    call_command("verify_archive", str(one_archive))

    assert capsys.readouterr().out.startswith(f"OK {one_archive.name}: ")


def test_verify_archive_refuses_a_changed_byte(one_archive):
    data = bytearray(one_archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    one_archive.write_bytes(bytes(data))

    with pytest.raises(ArchiveError, match="signature does not match"):
        verify(one_archive)
    with pytest.raises(CommandError, match="1 of 1 archive files failed"):
        call_command("verify_archive", str(one_archive))


def test_verify_archive_refuses_a_file_cut_short(one_archive):
    one_archive.write_bytes(one_archive.read_bytes()[:-10])

    with pytest.raises(ArchiveError, match="cut short"):
        verify(one_archive)


def test_verify_archive_refuses_another_master_key(one_archive, settings):
    settings.SPACE_MASTER_KEY = "another master key, long enough to be one"

    with pytest.raises(ArchiveError, match="signature does not match"):
        verify(one_archive)


def test_verify_archive_refuses_a_missing_signature_and_bytes_past_the_signed_end(one_archive):
    with one_archive.open("ab") as out:
        out.write(b"\x1f\x8b junk")
    with pytest.raises(ArchiveError, match="past its signed end"):
        verify(one_archive)

    archive.signature_path(one_archive).unlink()
    with pytest.raises(ArchiveError, match="is missing"):
        verify(one_archive)


def test_verify_archive_refuses_a_signed_file_whose_events_break_the_format(folder, now):
    """Signed with the right key, yet wrong inside: an event twice, or out of the file's month."""
    path = folder / archive.file_name("access", 2026, 1)
    folder.mkdir(parents=True)
    writer = archive.ArchiveFile(folder, "access", 2026, 1, archive.archive_key()).open(write=True)
    writer.append([archive.encode({"id": 1, "at": "2026-01-05T00:00:00.000000Z"})], [1])
    writer.append([archive.encode({"id": 1, "at": "2026-01-06T00:00:00.000000Z"})], [1])
    with pytest.raises(ArchiveError, match="in the file twice"):
        verify(path)

    path.unlink()
    archive.signature_path(path).unlink()
    writer = archive.ArchiveFile(folder, "access", 2026, 1, archive.archive_key()).open(write=True)
    writer.append([archive.encode({"id": 2, "at": "2026-02-01T00:00:00.000000Z"})], [2])
    with pytest.raises(ArchiveError, match="not in 2026-01"):
        verify(path)


def test_the_documented_check_without_space_accepts_an_archive_and_refuses_a_changed_one(one_archive, settings):
    """docs/audit-retention.md shows how a site checks an archive with Python alone: that code, run as written."""
    text = (ROOT / "docs" / "audit-retention.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {"__name__": "documented"}
    exec(compile(code, "audit-retention.md", "exec"), namespace)  # noqa: S102 (our own documentation)

    assert namespace["check"](one_archive, settings.SPACE_MASTER_KEY) == verify(one_archive).events == 20
    with pytest.raises(AssertionError, match="signature does not match"):
        namespace["check"](one_archive, settings.SPACE_MASTER_KEY + "x")


# --- crashes ---------------------------------------------------------------------------------------------


def test_a_crash_between_archive_and_delete_neither_loses_nor_doubles_an_event(folder, now, monkeypatch):
    old = [store(now - (40 + n % 5) * DAY).pk for n in range(30)]
    young = store(now - DAY).pk

    def crash(model, ids):
        raise RuntimeError("power cut")

    monkeypatch.setattr(retention, "delete_archived", crash)
    with pytest.raises(RuntimeError):
        retention.purge(now, policy=POLICY, batch=8)
    monkeypatch.undo()
    assert remaining() == {*old, young}  # archived, not deleted

    report = retention.purge(now, policy=POLICY, batch=8)

    assert remaining() == {young}
    ids = [r["id"] for records in archived_records(folder).values() for r in records]
    assert sorted(ids) == sorted(old)  # each once
    assert report.classes["access"].deleted == 30
    for path in folder.glob("*.jsonl.gz"):
        verify(path)


def test_a_member_written_but_not_signed_is_cut_off_and_written_again(folder, now):
    first = store(now - 40 * DAY)
    retention.purge(now, policy=POLICY)
    second = store(first.at + dt.timedelta(seconds=1))
    [path] = folder.glob("*.jsonl.gz")
    with path.open("ab") as out:  # the crash: half a member past the signed end
        out.write(gzip.compress(b'{"id": 999999}\n')[:15])

    retention.purge(now, policy=POLICY)

    assert verify(path).events == 2
    assert [r["id"] for r in archived_records(folder)[path.name]] == [first.pk, second.pk]


def test_an_archived_id_taken_by_another_event_keeps_that_event(folder, now):
    """A database restored from an older backup gives out ids again that the archive holds already."""
    first = store(now - 40 * DAY)
    retention.purge(now, policy=POLICY)
    AuditEvent(id=first.pk, at=first.at + dt.timedelta(minutes=1), kind=AuditKind.DOOR_OPENED).save()

    report = retention.purge(now, policy=POLICY)

    assert report.classes["access"].conflicts == 1
    assert remaining() == {first.pk}
    assert SystemAuditEntry.objects.filter(action="audit_purged").count() == 2


def test_a_broken_archive_file_keeps_its_events_and_says_so(folder, now):
    first = store(now - 40 * DAY)
    retention.purge(now, policy=POLICY)
    second = store(first.at + dt.timedelta(seconds=1))
    [path] = folder.glob("*.jsonl.gz")
    path.write_bytes(path.read_bytes()[:-1])

    report = retention.purge(now, policy=POLICY)

    assert remaining() == {second.pk}
    assert report.classes["access"].failed == 1
    assert "cut short" in report.errors[0]


# --- what stays ------------------------------------------------------------------------------------------


def test_events_whose_deliveries_wait_are_kept_until_delivered(folder, now):
    subscription = WebhookSubscription(name="receiver", url="https://example.com/hook", all_partitions=True)
    subscription.set_secret()
    subscription.save()
    waiting = store(now - 40 * DAY)
    subscription.active = False  # no delivery for the next one
    subscription.save()
    no_delivery = store(now - 41 * DAY)

    report = retention.purge(now, policy=POLICY)

    assert remaining() == {waiting.pk}
    assert report.classes["access"].held == 1
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).count() == 1  # not touched

    WebhookDelivery.objects.update(status=DeliveryStatus.DELIVERED)
    retention.purge(now, policy=POLICY)

    assert remaining() == set()
    ids = sorted(r["id"] for records in archived_records(folder).values() for r in records)
    assert ids == sorted([waiting.pk, no_delivery.pk])


def test_the_append_only_guard_still_refuses_every_other_delete(now):
    event = store(now - 400 * DAY)
    entry = SystemAuditEntry.objects.create(action="login")

    for attempt in (
        event.delete,
        AuditEvent.objects.all().delete,
        AuditEvent.objects.filter(pk=event.pk).delete,
        entry.delete,
        SystemAuditEntry.objects.all().delete,
    ):
        with pytest.raises(AppendOnlyError):
            attempt()
    assert AuditEvent.objects.count() == SystemAuditEntry.objects.count() == 1


def test_a_dry_run_counts_and_writes_and_deletes_nothing(folder, now, settings, capsys):
    settings.SPACE_AUDIT_KEEP_ACCESS_DAYS = 30
    for n in range(3):
        store(now - (40 + n) * DAY)

    call_command("purge_audit", "--dry-run")

    out = capsys.readouterr().out
    assert "access: would archive 3, would delete 3" in out
    assert AuditEvent.objects.count() == 3
    assert not list(folder.glob("*.gz"))
    assert not SystemAuditEntry.objects.filter(action="audit_purged").exists()


def test_the_command_purges_by_the_settings_and_lists_its_files(folder, settings, capsys):
    settings.SPACE_AUDIT_KEEP_ACCESS_DAYS = 30
    old = timezone.now() - 40 * DAY
    [event] = events.record_many([AuditEvent(at=old, kind=AuditKind.ACCESS_DENIED)], now=old)

    call_command("purge_audit")

    out = capsys.readouterr().out
    assert "access: archived 1, deleted 1" in out
    assert archive.file_name("access", *_month(old)) in out
    assert not AuditEvent.objects.filter(pk=event.pk).exists()
    assert SystemAuditEntry.objects.get(action="audit_purged").via == "command"


def test_a_second_purge_while_one_runs_does_nothing(folder, now):
    store(now - 40 * DAY)
    folder.mkdir(parents=True)
    with open(folder / ".purge.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        report = retention.purge(now, policy=POLICY)
        with pytest.raises(CommandError, match="another purge is running"):
            call_command("purge_audit")

    assert report.skipped == "another purge is running"
    assert AuditEvent.objects.count() == 1


def test_the_purge_puts_back_the_connection_as_it_found_it(folder, now):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("the page cache is SQLite's")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        before = cursor.fetchone()[0]
        store(now - 40 * DAY)
        retention.purge(now, policy=POLICY)
        cursor.execute("PRAGMA cache_size")

        assert cursor.fetchone()[0] == before
    assert remaining() == set()


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own priority is Linux's")
def test_the_purge_works_on_a_thread_of_its_own_at_the_priority_asked(folder, now, monkeypatch):
    store(now - 40 * DAY)
    seen = []
    delete = retention.delete_archived

    def spying(model, ids):
        thread = threading.current_thread()
        seen.append((thread.name, os.getpriority(os.PRIO_PROCESS, thread.native_id)))
        delete(model, ids)

    monkeypatch.setattr(retention, "delete_archived", spying)
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    retention.purge(now, policy=POLICY, nice=5)

    assert seen == [("audit-purge", min(mine + 5, 19))]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
    assert remaining() == set()


# --- who runs it ----------------------------------------------------------------------------------------


def test_beat_runs_the_purge_task_nightly_and_runspace_daily_without_beat(settings, folder):
    from accesscontrol.tasks import purge_audit
    from space.celery import PURGE_AUDIT_EVERY_SECONDS, app
    from space.services import embedded_services

    schedule = app.conf.beat_schedule["purge-audit"]
    settings.CELERY_BROKER_URL = "memory://"
    [service] = [service for service in embedded_services() if getattr(service, "name", "") == "audit-retention"]

    assert schedule["task"] == purge_audit.name == "accesscontrol.tasks.purge_audit"
    assert (schedule["schedule"].hour, schedule["schedule"].minute) == ({3}, {17})
    assert service.function is retention.purge
    assert service.every == PURGE_AUDIT_EVERY_SECONDS == 86400
    assert purge_audit.run().startswith("audit purge: access: archived 0, deleted 0")


# --- the live trail stays writable -----------------------------------------------------------------------


@pytest.mark.slow
def test_the_live_trail_stays_writable_while_the_purge_runs(folder, now):
    old = now - 40 * DAY
    AuditEvent.objects.bulk_create(
        [AuditEvent(at=old + dt.timedelta(seconds=n), kind=AuditKind.ACCESS_GRANTED) for n in range(20_000)]
    )
    stop = threading.Event()
    written, failures, waits = [], [], []

    def live_trail():
        from django.db import connection

        try:
            while not stop.is_set():
                batch = [AuditEvent(at=timezone.now(), kind=AuditKind.DOOR_OPENED) for _ in range(20)]
                started = time.perf_counter()
                written.extend(e.pk for e in events.record_many(batch))
                waits.append(time.perf_counter() - started)
        except Exception as error:
            failures.append(error)
        finally:
            connection.close()

    writer = threading.Thread(target=live_trail)
    writer.start()
    try:
        report = retention.purge(now, policy=POLICY, batch=1000)
    finally:
        stop.set()
        writer.join(30)

    assert failures == []
    # Each window's DELETE holds SQLite's one writer for a fraction of a second at most.
    assert max(waits) < 2.0
    assert report.classes["access"].deleted == 20_000
    assert len(written) > 0
    assert remaining() == set(written)
    assert sum(verify(path).events for path in folder.glob("*.jsonl.gz")) == 20_000


def _month(moment: dt.datetime) -> tuple[int, int]:
    moment = moment.astimezone(dt.UTC)
    return moment.year, moment.month
