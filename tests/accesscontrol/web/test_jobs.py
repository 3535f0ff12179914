"""Long work with a progress bar: the CSV import, the export, the bulk grant, and how jobs run and fail."""

import csv
import io
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from accesscontrol import jobs, tasks
from accesscontrol.models import Cardholder, Job, JobStatus, RuleChange, SystemAuditEntry
from tests.factories import make_access_level, make_cardholder, make_operator, make_partition
from tests.support.waiting import wait_until

VIEW = "accesscontrol.view_cardholder"
ADD = "accesscontrol.add_cardholder"
CHANGE = "accesscontrol.change_cardholder"
LEVELS = "accesscontrol.view_accesslevel"


@pytest.fixture(autouse=True)
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


@pytest.fixture
def inline_jobs(monkeypatch, django_capture_on_commit_callbacks):
    """Jobs run in the test's own thread and transaction as soon as the request commits."""
    monkeypatch.setattr(jobs, "dispatch", jobs.run)

    def post(client, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(*args, **kwargs)

    return post


def client_for(operator) -> Client:
    client = Client(REMOTE_ADDR="192.0.2.11")
    client.force_login(operator)
    return client


def upload(text: str, *, bom: bool = False, name: str = "people.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, (b"\xef\xbb\xbf" if bom else b"") + text.encode(), content_type="text/csv")


def only_job() -> Job:
    return Job.objects.get()


# --- import ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_import_creates_the_good_rows_and_reports_each_bad_one_by_line_and_column(inline_jobs, var_dir):
    partition = make_partition(name="Harbour House")
    make_access_level(name="Lobby", partition=partition)
    make_cardholder(ext_id="HR-1")
    operator = make_operator(VIEW, ADD, LEVELS, partitions=[partition])
    text = (
        "last_name,first_name,email,ext_id,access_levels,expiration,kind\n"
        "Okafor,Chidi,chidi@example.org,HR-2,Lobby,2031-01-31,\n"
        "Lindqvist,Maja,not-an-email,,,,\n"
        ",Nobody,,,,,\n"
        "Tanaka,Yui,,HR-1,Nowhere,,robot\n"
        '"Novak, Jr.",Petra,,HR-3,,2031-02-01 08:30,visitor\n'
        "Second,Okafor,,HR-2,,,\n"
    )

    response = inline_jobs(
        client_for(operator), reverse("cardholder_import"), {"file": upload(text, bom=True), "partition": partition.pk}
    )

    job = only_job()
    assert response["Location"] == reverse("job", args=[job.pk])
    assert (job.status, job.done, job.total, job.percent) == (JobStatus.SUCCEEDED, 6, 6, 100)
    assert job.message == "2 of 6 rows imported; 4 rows with errors, not imported."
    assert job.result["errors"] == [
        {"line": 3, "field": "email", "message": "Enter a valid email address."},
        {"line": 4, "field": "last_name", "message": "This field is required."},
        {"line": 5, "field": "kind", "message": "Select a valid choice. robot is not one of the available choices."},
        {"line": 5, "field": "access_levels", "message": "No access level named 'Nowhere'."},
        {"line": 5, "field": "ext_id", "message": "The external id 'HR-1' is another cardholder's."},
        {"line": 7, "field": "ext_id", "message": "The external id 'HR-2' is an earlier row's."},
    ]
    okafor = Cardholder.objects.get(ext_id="HR-2")
    novak = Cardholder.objects.get(ext_id="HR-3")
    assert (okafor.first_name, okafor.partition_id, okafor.email) == ("Chidi", partition.pk, "chidi@example.org")
    assert [level.name for level in okafor.access_levels.all()] == ["Lobby"]
    assert (novak.last_name, novak.kind, novak.expiration.hour, novak.expiration.minute) == (
        "Novak, Jr.",
        "visitor",
        8,
        30,
    )
    [entry] = SystemAuditEntry.objects.filter(action="import_cardholders")
    assert (entry.operator_id, entry.detail) == (operator.pk, {"job": job.pk, "cardholders": [okafor.pk, novak.pk]})
    assert set(RuleChange.objects.filter(model="cardholder").values_list("object_id", flat=True)) >= {
        okafor.pk,
        novak.pk,
    }
    assert list((var_dir / "imports").iterdir()) == []  # the upload is removed once read


@pytest.mark.django_db
def test_the_job_page_shows_the_errors_by_line(inline_jobs):
    operator = make_operator(VIEW, ADD, all_partitions=True)
    client = client_for(operator)
    inline_jobs(
        client,
        reverse("cardholder_import"),
        {"file": upload("last_name,email\nOkafor,bad\n"), "partition": make_partition().pk},
    )

    page = client.get(reverse("job", args=[only_job().pk])).content.decode()

    assert "Rows not imported" in page
    assert '<td class="num">2</td><td><code>email</code></td><td>Enter a valid email address.</td>' in page
    assert "hx-trigger" not in page  # finished: no more polling


@pytest.mark.django_db
def test_a_row_can_only_name_a_partition_the_operator_may_add_to(inline_jobs):
    mine = make_partition(name="Mine")
    make_partition(name="Other")
    operator = make_operator(VIEW, ADD, partitions=[mine])
    text = "last_name,partition\nInside,Mine\nOutside,Other\nDefault,\n"

    inline_jobs(client_for(operator), reverse("cardholder_import"), {"file": upload(text), "partition": mine.pk})

    assert sorted(Cardholder.objects.values_list("last_name", "partition_id")) == [
        ("Default", mine.pk),
        ("Inside", mine.pk),
    ]
    assert only_job().result["errors"] == [
        {"line": 3, "field": "partition", "message": "No partition named 'Other' that you may add cardholders to."}
    ]


@pytest.mark.django_db
def test_the_upload_form_refuses_a_partition_the_operator_may_not_use(inline_jobs):
    mine, other = make_partition(), make_partition()
    client = client_for(make_operator(VIEW, ADD, partitions=[mine]))

    response = inline_jobs(
        client, reverse("cardholder_import"), {"file": upload("last_name\nA\n"), "partition": other.pk}
    )

    assert response.status_code == 400
    assert "partition" in response.context["import_form"].errors
    assert not Job.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"first_name\nMaja\n", "The header row has no last_name column."),
        (b"last_name,shoe_size\nOkafor,44\n", "Unknown columns in the header row: shoe_size."),
        ("last_name\nSø\n".encode("latin-1"), "The file is not UTF-8 text (byte 12)."),
    ],
)
def test_a_file_that_is_not_a_usable_csv_fails_the_job_with_its_reason(inline_jobs, content, reason):
    client = client_for(make_operator(VIEW, ADD, all_partitions=True))
    file = SimpleUploadedFile("x.csv", content)

    inline_jobs(client, reverse("cardholder_import"), {"file": file, "partition": make_partition().pk})

    job = only_job()
    assert (job.status, job.message) == (JobStatus.FAILED, reason)
    assert not Cardholder.objects.exists()


@pytest.mark.django_db
def test_a_ten_thousand_row_file_is_imported(inline_jobs):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["last_name", "first_name", "ext_id", "email"])
    for number in range(10_000):
        writer.writerow([f"Holder {number}", "Sam", f"EXT-{number}", f"sam{number}@example.org"])
    client = client_for(make_operator(VIEW, ADD, all_partitions=True))

    started = time.monotonic()
    inline_jobs(
        client, reverse("cardholder_import"), {"file": upload(out.getvalue()), "partition": make_partition().pk}
    )
    elapsed = time.monotonic() - started

    job = only_job()
    assert (job.status, job.done, job.result["created"], job.result["errors"]) == (
        JobStatus.SUCCEEDED,
        10_000,
        10_000,
        [],
    )
    assert Cardholder.objects.count() == 10_000
    assert elapsed < 60


@pytest.mark.django_db
def test_without_the_add_permission_there_is_no_import():
    client = client_for(make_operator(VIEW, all_partitions=True))

    response = client.post(
        reverse("cardholder_import"), {"file": upload("last_name\nA\n"), "partition": make_partition().pk}
    )

    assert response.status_code == 403
    assert not Job.objects.exists()


# --- export ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_export_writes_the_filtered_cardholders_for_its_operator_alone(inline_jobs, var_dir):
    mine, other = make_partition(name="Mine"), make_partition()
    level = make_access_level(name="Lobby", partition=mine)
    make_cardholder(level, last_name="Okafor", first_name="Chidi", ext_id="HR-1", partition=mine)
    make_cardholder(last_name="Lindqvist", partition=mine)
    make_cardholder(last_name="Okada", partition=other)
    operator = make_operator(VIEW, partitions=[mine])
    client = client_for(operator)

    inline_jobs(client, reverse("cardholder_export"), {"q": "oka"})
    job = only_job()
    download = client.get(reverse("job_download", args=[job.pk]))
    stranger = client_for(make_operator(VIEW, all_partitions=True)).get(reverse("job_download", args=[job.pk]))
    superuser = client_for(make_operator(is_superuser=True)).get(reverse("job_download", args=[job.pk]))

    rows = list(csv.reader(io.StringIO(b"".join(download.streaming_content).decode("utf-8-sig"))))
    assert (job.status, job.done, job.total) == (JobStatus.SUCCEEDED, 1, 1)
    assert job.result_file.startswith("exports/") and (var_dir / job.result_file).is_file()
    assert rows == [
        [
            "last_name",
            "first_name",
            "title",
            "kind",
            "ext_id",
            "email",
            "phone_number",
            "activation",
            "expiration",
            "partition",
            "access_levels",
            "notes",
        ],
        ["Okafor", "Chidi", "", "staff", "HR-1", "", "", "", "", "Mine", "Lobby", ""],
    ]
    assert download["Content-Disposition"].startswith("attachment;")
    assert stranger.status_code == superuser.status_code == 404
    assert SystemAuditEntry.objects.get(action="export_cardholders").detail == {
        "job": job.pk,
        "count": 1,
        "filters": {"q": "oka"},
    }


# --- bulk grant ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_level_is_granted_to_the_cardholders_of_the_filter_the_operator_may_change(inline_jobs):
    mine, other = make_partition(), make_partition()
    level = make_access_level(name="Lobby", partition=mine)
    holding = make_cardholder(level, last_name="Visitor Holding", partition=mine)
    fresh = make_cardholder(last_name="Visitor Fresh", partition=mine)
    make_cardholder(last_name="Staff Member", partition=mine)
    elsewhere = make_cardholder(last_name="Visitor Elsewhere", partition=other)
    operator = make_operator(VIEW, CHANGE, LEVELS, partitions=[mine])

    inline_jobs(client_for(operator), reverse("cardholder_bulk_grant"), {"q": "visitor", "grant_level": level.pk})

    job = only_job()
    assert (job.status, job.message) == (JobStatus.SUCCEEDED, "Lobby granted to 1 cardholders.")
    assert sorted(level.cardholders.values_list("pk", flat=True)) == sorted([holding.pk, fresh.pk])
    assert not elsewhere.access_levels.exists()
    [entry] = SystemAuditEntry.objects.filter(action="grant_access_level")
    assert (entry.object_id, entry.detail) == (str(level.pk), {"job": job.pk, "cardholders": [fresh.pk]})


@pytest.mark.django_db
def test_without_the_change_permission_there_is_no_bulk_grant():
    level = make_access_level()
    make_cardholder()
    client = client_for(make_operator(VIEW, LEVELS, all_partitions=True))

    response = client.post(reverse("cardholder_bulk_grant"), {"grant_level": level.pk})

    assert response.status_code == 403
    assert not Job.objects.exists()
    assert not level.cardholders.exists()


# --- the jobs pages ----------------------------------------------------------------------


@pytest.mark.django_db
def test_operators_see_their_own_jobs_and_superusers_everyones():
    alice, bob = make_operator(), make_operator()
    own = Job.objects.create(kind="cardholder_export", operator=alice)
    theirs = Job.objects.create(kind="cardholder_export", operator=bob)
    superuser = client_for(make_operator(is_superuser=True))

    listed = client_for(alice).get(reverse("jobs")).context["page_obj"].object_list
    everyone = superuser.get(reverse("jobs")).context["page_obj"].object_list

    assert list(listed) == [own]
    assert set(everyone) == {own, theirs}
    assert client_for(alice).get(reverse("job", args=[theirs.pk])).status_code == 404


@pytest.mark.django_db
def test_a_running_jobs_partial_polls_every_second_with_its_progress():
    operator = make_operator()
    job = Job.objects.create(kind="cardholder_import", operator=operator, status=JobStatus.RUNNING, total=200, done=50)

    response = client_for(operator).get(reverse("job", args=[job.pk]), HTTP_HX_REQUEST="true")

    page = response.content.decode()
    assert "<html" not in page
    assert 'hx-trigger="every 1s"' in page
    assert 'aria-valuenow="25"' in page
    assert "width: 25%" in page


# --- how jobs run ---------------------------------------------------------------------


def _explode(job, progress):
    progress.set_total(10)
    progress.advance(3)
    raise RuntimeError("disk on fire")


@pytest.mark.django_db
def test_a_job_that_raises_is_marked_failed_with_the_reason(monkeypatch):
    monkeypatch.setitem(jobs.KINDS, "cardholder_export", "tests.accesscontrol.web.test_jobs._explode")
    job = Job.objects.create(kind="cardholder_export", operator=make_operator())

    jobs.run(job.pk)
    again = jobs.run(job.pk)

    job.refresh_from_db()
    assert (job.status, job.message, job.done, job.total) == (
        JobStatus.FAILED,
        "Failed unexpectedly: RuntimeError: disk on fire",
        3,
        10,
    )
    assert job.finished_at is not None
    assert again is None  # a redelivered task does not run it twice


@pytest.mark.django_db
def test_a_job_whose_process_died_is_marked_failed_when_it_stalls():
    import datetime as dt

    from django.utils import timezone

    long_ago = timezone.now() - dt.timedelta(minutes=10)
    stalled = Job.objects.create(
        kind="cardholder_export",
        status=JobStatus.RUNNING,
        started_at=long_ago,
        result={"heartbeat": long_ago.isoformat()},
    )
    alive = Job.objects.create(
        kind="cardholder_export",
        status=JobStatus.RUNNING,
        started_at=long_ago,
        result={"heartbeat": timezone.now().isoformat()},
    )

    assert jobs.fail_stalled() == 1

    stalled.refresh_from_db()
    alive.refresh_from_db()
    assert (stalled.status, stalled.message) == (
        JobStatus.FAILED,
        "The process running this job stopped before it finished.",
    )
    assert alive.status == JobStatus.RUNNING


@pytest.mark.django_db(transaction=True)
def test_in_the_embedded_profile_a_job_runs_in_a_thread_of_the_web_process():
    make_cardholder(last_name="Okafor")
    operator = make_operator(VIEW, all_partitions=True)

    client_for(operator).post(reverse("cardholder_export"), {})

    wait_until(lambda: only_job().finished, timeout=20, message="the export job finishing")
    job = only_job()
    assert (job.status, job.result["count"]) == (JobStatus.SUCCEEDED, 1)


@pytest.mark.django_db
def test_with_a_broker_a_job_is_a_celery_task_on_the_default_queue(
    settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    sent = []
    monkeypatch.setattr(tasks.run_job, "apply_async", lambda args, **options: sent.append((args, options)))
    make_cardholder()
    client = client_for(make_operator(VIEW, all_partitions=True))

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("cardholder_export"), {})
    job = only_job()
    queued_status = job.status
    outcome = tasks.run_job(job.pk)

    assert sent == [((job.pk,), {"retry": False})]
    assert queued_status == JobStatus.QUEUED
    assert outcome == f"job {job.pk}: succeeded"
    assert tasks.run_job.name == "accesscontrol.tasks.run_job"
