"""HR feeds (integrations/hrfeeds): files made here, a watched folder, a real HTTPS server on loopback with its own
CA, and a real OpenSSH sshd started on a free loopback port with its own host key and a user key."""

import datetime as dt
import getpass
import http.server
import io
import os
import re
import ssl
import subprocess
import threading
import time
import zoneinfo
from pathlib import Path
from types import SimpleNamespace

import openpyxl
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.core.exceptions import ValidationError

from accesscontrol import sync
from core import certificates
from integrations.hrfeeds import locations
from integrations.hrfeeds.config import validate_settings
from integrations.hrfeeds.reader import read_feed
from tests.support.ports import free_port
from tests.support.waiting import wait_until

COLUMNS = {
    "key": "Employee ID",
    "last_name": "Surname",
    "first_name": "Given name",
    "email": "E-mail",
    "department": "Department",
    "expiration": "Leaving date",
    "groups": "Teams",
    "card_uid": "Badge",
    "blocked": "Status",
}
HEADER = list(COLUMNS.values())
ROWS = [
    ["1001", "Meier", "Anna", "anna.meier@example.com", "Finance", "", "Office;Garage", "04A1B2C3", "active"],
    ["1002", "Müller", "Jörg", "jorg@example.com", "IT", "2026-12-31", "Office", "", "active"],
    ["1003", "Núñez", "Zoë", "", "IT", "", "", "", "terminated"],
]
NOW = time.time()


class Recorder:
    """The core's progress, as read_feed reports it."""

    def __init__(self):
        self.total, self.done = None, 0

    def set_total(self, total):
        self.total = total

    def advance(self, count=1, message=""):
        self.done += count


def feed(settings, *, secret="", cursor=None, pk=1):
    """A source as read_feed sees one: settings, secret, cursor (the model's own attributes)."""
    return SimpleNamespace(pk=pk, name="HR", settings=settings, secret=secret, cursor=cursor or {})


def folder_settings(path: Path, **extra) -> dict:
    return {
        "location": "folder",
        "path": str(path),
        "columns": COLUMNS,
        "blocked_values": ["terminated"],
        **extra,
    }


def csv_bytes(rows, header=HEADER, delimiter=",", encoding="utf-8") -> bytes:
    lines = [delimiter.join(header)] + [delimiter.join(row) for row in rows]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def xlsx_bytes(rows, header=HEADER, sheet="People") -> bytes:
    book = openpyxl.Workbook()
    worksheet = book.active
    worksheet.title = sheet
    worksheet.append(header)
    for row in rows:
        worksheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def drop(folder: Path, name: str, data: bytes, age: float = 3600) -> Path:
    """A file written to the folder ``age`` seconds ago."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    os.utime(path, (NOW - age, NOW - age))
    return path


def read(settings, **kwargs):
    progress = Recorder()
    snapshot = read_feed(feed(settings, **kwargs), full=False, progress=progress, clock=lambda: NOW)
    return snapshot, progress


def by_key(snapshot) -> dict:
    return {person.key: person for person in snapshot.people}


def messages(snapshot) -> list[str]:
    return [f"{error.where}, {error.field}: {error.message}" for error in snapshot.errors]


# --- settings ----------------------------------------------------------------------------------------------------


def test_settings_are_completed_with_defaults(tmp_path):
    cleaned = validate_settings(folder_settings(tmp_path))

    assert cleaned["format"] == "auto" and cleaned["encoding"] == "utf-8-sig" and cleaned["delimiter"] == ","
    assert cleaned["date_formats"] == ["%Y-%m-%d"] and cleaned["groups_separator"] == ";"
    assert cleaned["settle_seconds"] == 30 and cleaned["pattern"] == "*"
    assert cleaned["blocked_values"] == ["terminated"]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"columns": {"last_name": "Surname"}}, "columns", "key is required"),
        ({"columns": {"key": "ID"}}, "columns", "last_name is required"),
        ({"columns": {"key": "ID", "last_name": "Name", "shoe_size": "Shoes"}}, "columns", "Unknown fields: shoe_size"),
        ({"columns": {"key": "ID", "last_name": "id"}}, "columns", "mapped twice"),
        ({"columns": ["ID", "Name"]}, "columns", "JSON object"),
        ({"date_formats": ["%Y-%m-%q"]}, "date_formats", "date formats"),
        ({"date_formats": "%Y-%m-%d"}, "date_formats", "date formats"),
        ({"encoding": "utf-16"}, "encoding", "latin-1"),
        ({"delimiter": "x"}, "delimiter", "tab"),
        ({"format": "xls"}, "format", "xlsx"),
        ({"blocked_values": []}, "blocked_values", "mean blocked"),
        ({"path": "relative/in"}, "path", "absolute"),
        ({"settle_seconds": 0}, "settle_seconds", "1 to 3600"),
        ({"archive": "archive"}, "archive", "absolute"),
        ({"surprise": 1}, "settings", "Unknown settings: surprise"),
        ({"location": "ftp"}, "location", "folder, https, sftp"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(tmp_path, change, field, words):
    with pytest.raises(ValidationError) as error:
        validate_settings({**folder_settings(tmp_path), **change})

    assert words in " ".join(error.value.message_dict[field])


def test_https_and_sftp_settings_are_checked():
    with pytest.raises(ValidationError) as error:
        validate_settings({"location": "https", "url": "http://hr.example/people.csv", "columns": COLUMNS})
    assert "https://" in error.value.message_dict["url"][0]

    with pytest.raises(ValidationError) as error:
        validate_settings({"location": "sftp", "host": "hr.example", "username": "", "path": "out.csv",
                           "host_key": "ssh-ed25519 AAAA", "port": 70000, "columns": COLUMNS})  # fmt: skip
    assert set(error.value.message_dict) == {"username", "path", "host_key", "port"}
    assert "pinned" in error.value.message_dict["host_key"][0]


# --- reading a file ----------------------------------------------------------------------------------------------


def test_a_csv_file_is_read_into_people_with_every_mapped_field(tmp_path, settings):
    settings.TIME_ZONE = "Europe/Zurich"
    drop(tmp_path, "people.csv", csv_bytes(ROWS))

    snapshot, progress = read(folder_settings(tmp_path))

    assert snapshot.complete is True and snapshot.errors == []
    people = by_key(snapshot)
    assert sorted(people) == ["1001", "1002", "1003"]
    anna = people["1001"]
    assert (anna.last_name, anna.first_name, anna.email, anna.department) == (
        "Meier", "Anna", "anna.meier@example.com", "Finance",
    )  # fmt: skip
    assert anna.groups == frozenset({"Office", "Garage"}) and anna.card_uid == "04A1B2C3" and not anna.blocked
    assert anna.origin == "line 2" and anna.expiration is None
    zurich = zoneinfo.ZoneInfo("Europe/Zurich")
    assert people["1002"].expiration == dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=zurich)  # the end of that day
    assert people["1003"].blocked is True
    assert (progress.total, progress.done) == (3, 3)
    assert "people.csv" in snapshot.description and "3 rows" in snapshot.description


def test_an_xlsx_workbook_is_read_with_its_typed_cells(tmp_path):
    rows = [[1001, "Meier", "Anna", "anna@example.com", "Finance", dt.datetime(2027, 3, 31), "Office", "", ""]]
    drop(tmp_path, "people.xlsx", xlsx_bytes(rows))

    snapshot, _ = read(folder_settings(tmp_path, format="xlsx"))

    assert snapshot.errors == []
    anna = by_key(snapshot)["1001"]  # the number 1001 is the key "1001"
    assert anna.origin == "row 2" and anna.expiration.date() == dt.date(2027, 3, 31)
    assert anna.expiration.time() == dt.time(23, 59, 59)


def test_auto_format_tells_a_workbook_from_csv_and_a_sheet_can_be_named(tmp_path):
    drop(tmp_path, "export.dat", xlsx_bytes(ROWS, sheet="Staff"))

    snapshot, _ = read(folder_settings(tmp_path, sheet="Staff"))
    assert len(snapshot.people) == 3

    drop(tmp_path, "export2.dat", xlsx_bytes(ROWS, sheet="Staff"))
    with pytest.raises(sync.SourceError, match="no sheet 'People'; its sheets: Staff"):
        read(folder_settings(tmp_path, sheet="People"))


def test_a_latin_1_csv_with_semicolons_is_read_when_the_feed_says_so(tmp_path):
    drop(tmp_path, "people.csv", csv_bytes(ROWS, delimiter=";", encoding="latin-1"))

    snapshot, _ = read(folder_settings(tmp_path, encoding="latin-1", delimiter=";"))

    assert by_key(snapshot)["1003"].first_name == "Zoë" and by_key(snapshot)["1002"].last_name == "Müller"


def test_a_latin_1_file_read_as_utf_8_fails_saying_to_set_the_encoding_and_is_kept_in_failed(tmp_path):
    drop(tmp_path, "people.csv", csv_bytes(ROWS, encoding="latin-1"))

    with pytest.raises(sync.SourceError, match=r"not utf-8-sig text \(line 3.*set the feed's encoding"):
        read(folder_settings(tmp_path))

    assert not (tmp_path / "people.csv").exists()
    assert [path.name[7:] for path in (tmp_path / "archive" / "failed").rglob("*.csv")] == ["people.csv"]


def test_a_missing_mapped_column_fails_naming_the_columns_found(tmp_path):
    header = ["Employee ID", "Surname", "Given name", "Mail"]
    drop(tmp_path, "people.csv", csv_bytes([["1", "A", "B", "c@example.com"]], header=header))

    with pytest.raises(sync.SourceError) as error:
        read(folder_settings(tmp_path))

    text = str(error.value)
    assert "no column 'E-mail', 'Department'" in text
    assert "its columns: 'Employee ID', 'Surname', 'Given name', 'Mail'" in text


def test_headers_match_whatever_their_case_and_spaces(tmp_path):
    header = [" employee id ", "SURNAME"]
    drop(tmp_path, "people.csv", csv_bytes([["7", "Ng"]], header=header))

    snapshot, _ = read(folder_settings(tmp_path, columns={"key": "Employee ID", "last_name": "Surname"}))

    assert [(person.key, person.last_name) for person in snapshot.people] == [("7", "Ng")]


def test_every_bad_row_is_reported_by_line_and_field_with_its_key(tmp_path):
    rows = [
        ROWS[0],
        ["1002", "Müller", "Jörg", "not-an-address", "IT", "31/12/2026", "Office", "XYZ", "active"],
        ["", "Nobody", "", "", "", "", "", "", ""],
        ["1004", "", "Kim", "", "", "", "", "", ""],
        ROWS[2],
    ]
    drop(tmp_path, "people.csv", csv_bytes(rows))

    snapshot, progress = read(folder_settings(tmp_path))

    assert sorted(by_key(snapshot)) == ["1001", "1003"]
    assert messages(snapshot) == [
        "line 3, email: 'not-an-address' is not an e-mail address",
        "line 3, expiration: '31/12/2026' is not a date (%Y-%m-%d)",
        "line 3, card_uid: 'XYZ' is not a card UID (2 to 64 hexadecimal digits)",
        "line 4, key: empty: every row needs the person's key",
        "line 5, last_name: empty: a cardholder needs a last name",
    ]
    assert [error.key for error in snapshot.errors] == ["1002", "1002", "1002", "", "1004"]  # kept, not leavers
    assert progress.done == 5


def test_a_quoted_field_over_several_lines_keeps_the_line_numbers_of_the_file(tmp_path):
    text = 'Employee ID,Surname,E-mail\r\n1,"Smith\r\nJones",a@example.com\r\n2,Lee,not-mail\r\n'
    drop(tmp_path, "people.csv", text.encode())

    snapshot, _ = read(
        folder_settings(tmp_path, columns={"key": "Employee ID", "last_name": "Surname", "email": "E-mail"})
    )

    assert messages(snapshot) == ["line 4, email: 'not-mail' is not an e-mail address"]


def test_every_row_of_a_duplicate_key_is_refused_and_kept_as_it_was(tmp_path):
    rows = [ROWS[0], ROWS[1], ["1001", "Meyer", "Anne", "", "", "", "", "", ""]]
    drop(tmp_path, "people.csv", csv_bytes(rows))

    snapshot, _ = read(folder_settings(tmp_path))

    assert sorted(by_key(snapshot)) == ["1002"]
    assert messages(snapshot) == [
        "line 2, key: the key '1001' is also on line 4: no row of it is read",
        "line 4, key: the key '1001' is also on line 2: no row of it is read",
    ]
    assert {error.key for error in snapshot.errors} == {"1001"}


def test_other_date_formats_and_times_are_read_as_configured(tmp_path, settings):
    settings.TIME_ZONE = "Europe/Zurich"
    columns = {"key": "ID", "last_name": "Name", "activation": "Start", "expiration": "End"}
    rows = [["1", "A", "01.02.2027", "28.02.2027 17:30"], ["2", "B", "2027-03-01", "2027-02-01"]]
    drop(tmp_path, "people.csv", csv_bytes(rows, header=list(columns.values())))

    snapshot, _ = read(
        folder_settings(tmp_path, columns=columns, date_formats=["%d.%m.%Y %H:%M", "%d.%m.%Y", "%Y-%m-%d"])
    )

    zurich = zoneinfo.ZoneInfo("Europe/Zurich")
    first = by_key(snapshot)["1"]
    assert first.activation == dt.datetime(2027, 2, 1, tzinfo=zurich)
    assert first.expiration == dt.datetime(2027, 2, 28, 17, 30, tzinfo=zurich)  # a time is kept as given
    assert messages(snapshot) == ["line 3, expiration: before the activation date"]


def test_a_file_that_is_not_a_table_fails_the_run(tmp_path):
    drop(tmp_path, "people.csv", b"")
    with pytest.raises(sync.SourceError, match="empty: it needs a header row"):
        read(folder_settings(tmp_path))

    drop(tmp_path, "people.xlsx", b"PK\x03\x04 truncated")
    with pytest.raises(sync.SourceError, match="not a readable XLSX workbook"):
        read(folder_settings(tmp_path))

    assert sorted(path.name[7:] for path in (tmp_path / "archive" / "failed").rglob("*.*")) == [
        "people.csv", "people.xlsx",
    ]  # fmt: skip


# --- the watched folder ------------------------------------------------------------------------------------------


def test_the_oldest_settled_file_is_taken_first_and_archived_when_applied(tmp_path, settings):
    settings.TIME_ZONE = "UTC"
    drop(tmp_path, "b-newer.csv", csv_bytes(ROWS[:1]), age=100)
    drop(tmp_path, "a-older.csv", csv_bytes(ROWS), age=200)

    snapshot, _ = read(folder_settings(tmp_path))
    assert len(snapshot.people) == 3
    snapshot.finish(True)

    day = dt.datetime.fromtimestamp(NOW, dt.UTC)
    archived = tmp_path / "archive" / f"{day:%Y-%m-%d}" / f"{day:%H%M%S}-a-older.csv"
    assert archived.read_bytes() == csv_bytes(ROWS) and not (tmp_path / "a-older.csv").exists()

    snapshot, _ = read(folder_settings(tmp_path))
    assert len(snapshot.people) == 1
    snapshot.finish(False)  # the run failed: kept apart, never read again
    assert [path.name for path in (tmp_path / "archive" / "failed").rglob("*.csv")] == [f"{day:%H%M%S}-b-newer.csv"]
    assert read(folder_settings(tmp_path))[0] is None


def test_a_file_still_being_written_is_left_alone_until_it_settles(tmp_path):
    path = drop(tmp_path, "people.csv", csv_bytes(ROWS), age=5)  # written 5 s ago

    assert read(folder_settings(tmp_path, settle_seconds=30))[0] is None
    assert path.exists()

    snapshot = read_feed(
        feed(folder_settings(tmp_path, settle_seconds=30)), full=False, progress=Recorder(), clock=lambda: NOW + 30
    )
    assert len(snapshot.people) == 3


def test_hidden_partial_and_unmatched_files_are_never_read(tmp_path):
    for name in (".people.csv", "people.csv.part", "~$people.xlsx", "notes.txt"):
        drop(tmp_path, name, csv_bytes(ROWS))
    (tmp_path / "archive").mkdir()

    assert read(folder_settings(tmp_path, pattern="*.csv"))[0] is None


def test_an_archive_that_cannot_be_made_fails_the_run_before_anything_is_read(tmp_path):
    drop(tmp_path, "people.csv", csv_bytes(ROWS))
    (tmp_path / "not-a-folder").write_text("a file where the archive should be")

    with pytest.raises(sync.SourceError, match=r"archive folder .* cannot be made"):
        read(folder_settings(tmp_path, archive=str(tmp_path / "not-a-folder" / "archive")))

    assert (tmp_path / "people.csv").exists()


def test_a_missing_watched_folder_fails_the_run(tmp_path):
    with pytest.raises(sync.SourceError, match="does not exist"):
        read(folder_settings(tmp_path / "nowhere"))


# --- HTTPS -------------------------------------------------------------------------------------------------------


class FeedServer:
    """A real HTTPS server on loopback, with a certificate from its own CA, serving one file with an ETag."""

    def __init__(self, folder: Path):
        made = certificates.make_site_certificate(["127.0.0.1"], folder)
        self.ca_file = str(made.paths.ca_cert)
        self.body, self.etag, self.token = csv_bytes(ROWS), '"v1"', "s3cret"
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(dict(self.headers))
                if self.headers.get("Authorization") != f"Bearer {server.token}":
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.headers.get("If-None-Match") == server.etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("ETag", server.etag)
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(made.paths.server_cert, made.paths.server_key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}/exports/people.csv"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def https_feed(tmp_path):
    server = FeedServer(tmp_path / "tls")
    yield server
    server.stop()


def https_settings(server, tmp_path, **extra):
    return {"location": "https", "url": server.url, "ca_file": server.ca_file, "columns": COLUMNS,
            "blocked_values": ["terminated"], "archive": str(tmp_path / "archive"), **extra}  # fmt: skip


def test_an_https_feed_is_fetched_with_its_token_and_an_unchanged_file_is_nothing_to_do(https_feed, tmp_path):
    settings = https_settings(https_feed, tmp_path)

    snapshot, _ = read(settings, secret="s3cret")
    assert len(snapshot.people) == 3 and snapshot.cursor["etag"] == '"v1"'
    snapshot.finish(True)
    assert [path.name[7:] for path in (tmp_path / "archive").rglob("*.csv")] == ["people.csv"]

    assert read(settings, secret="s3cret", cursor=snapshot.cursor)[0] is None  # 304 Not Modified
    assert https_feed.requests[-1]["If-None-Match"] == '"v1"'

    https_feed.body, https_feed.etag = csv_bytes(ROWS[:2]), '"v2"'
    snapshot, _ = read(settings, secret="s3cret", cursor=snapshot.cursor)
    assert len(snapshot.people) == 2 and snapshot.cursor["etag"] == '"v2"'


def test_a_full_run_fetches_the_file_even_when_unchanged(https_feed, tmp_path):
    cursor = {"etag": '"v1"', "sha256": locations.digest(https_feed.body)}
    snapshot = read_feed(feed(https_feed_settings := https_settings(https_feed, tmp_path), secret="s3cret",
                              cursor=cursor), full=True, progress=Recorder())  # fmt: skip
    assert len(snapshot.people) == 3 and "If-None-Match" not in https_feed.requests[-1]
    assert https_feed_settings["url"] in snapshot.description


def test_a_wrong_token_and_an_untrusted_certificate_fail_the_run(https_feed, tmp_path):
    with pytest.raises(sync.SourceError, match=r"answered 401 .*bearer token"):
        read(https_settings(https_feed, tmp_path), secret="wrong")

    with pytest.raises(sync.SourceError, match="TLS certificate not accepted"):
        read(https_settings(https_feed, tmp_path, ca_file=""), secret="s3cret")  # the system's store


# --- SFTP --------------------------------------------------------------------------------------------------------


def openssh_private(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption())  # fmt: skip


def openssh_public(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)


class Sshd:
    """Debian's OpenSSH sshd on a free loopback port: its own host key, one user key, the internal SFTP server."""

    def __init__(self, folder: Path):
        folder.mkdir()
        self.folder = folder
        host_key = ed25519.Ed25519PrivateKey.generate()
        self.user_key = ed25519.Ed25519PrivateKey.generate()
        (folder / "host_key").write_bytes(openssh_private(host_key))
        (folder / "host_key").chmod(0o600)
        (folder / "authorized_keys").write_bytes(openssh_public(self.user_key) + b"\n")
        self.port = free_port()
        (folder / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\n"
            f"PidFile {folder / 'sshd.pid'}\nAuthorizedKeysFile {folder / 'authorized_keys'}\n"
            "StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\n"
        )
        self.fingerprint = subprocess.run(
            ["/usr/bin/ssh-keygen", "-lf", str(folder / "host_key")], capture_output=True, text=True, check=True
        ).stdout.split()[1]
        self.log = open(folder / "sshd.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(folder / "sshd_config")], stdout=self.log, stderr=subprocess.STDOUT
        )
        wait_until(self.listening, 10, lambda: (folder / "sshd.log").read_text())

    def listening(self):
        if self.process.poll() is not None:
            raise AssertionError(f"sshd exited: {(self.folder / 'sshd.log').read_text()}")
        try:
            import socket

            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self):
        self.process.terminate()
        self.process.wait(10)
        self.log.close()


SSHD = "/usr/sbin/sshd"


@pytest.fixture
def sshd(tmp_path):
    if not Path(SSHD).exists():
        pytest.fail("Debian's openssh-server is not installed (scripts/install.sh installs it)")
    if not Path("/run/sshd").is_dir():  # sshd's privilege separation folder (systemd makes it on a real host)
        try:
            Path("/run/sshd").mkdir(mode=0o755)
        except PermissionError:
            pytest.skip("sshd needs /run/sshd, which only root can make here")
    server = Sshd(tmp_path / "sshd")
    yield server
    server.stop()


def sftp_settings(server, path: Path, tmp_path, **extra):
    return {"location": "sftp", "host": "127.0.0.1", "port": server.port, "username": getpass.getuser(),
            "path": str(path), "host_key": server.fingerprint, "columns": COLUMNS, "blocked_values": ["terminated"],
            "archive": str(tmp_path / "archive"), **extra}  # fmt: skip


def test_an_sftp_feed_is_fetched_with_a_user_key_and_an_unchanged_file_is_nothing_to_do(sshd, tmp_path):
    remote = tmp_path / "export" / "people.xlsx"
    remote.parent.mkdir()
    remote.write_bytes(xlsx_bytes(ROWS))
    secret = openssh_private(sshd.user_key).decode()
    settings = sftp_settings(sshd, remote, tmp_path)

    snapshot, progress = read(settings, secret=secret)
    assert len(snapshot.people) == 3 and progress.total == 3
    assert snapshot.cursor["size"] == remote.stat().st_size
    snapshot.finish(True)
    assert remote.exists()  # HR's export stays; the archive keeps the copy read
    assert [path.name[7:] for path in (tmp_path / "archive").rglob("*.xlsx")] == ["people.xlsx"]

    assert read(settings, secret=secret, cursor=snapshot.cursor)[0] is None

    remote.write_bytes(xlsx_bytes(ROWS[:1]))
    os.utime(remote, (NOW + 60, NOW + 60))
    snapshot, _ = read(settings, secret=secret, cursor=snapshot.cursor)
    assert len(snapshot.people) == 1


def test_an_sftp_server_whose_host_key_is_not_the_pinned_one_is_refused(sshd, tmp_path):
    secret = openssh_private(sshd.user_key).decode()
    other = "SHA256:" + "A" * 43

    with pytest.raises(sync.SourceError, match=re.escape(f"host key {sshd.fingerprint} is not the pinned one")):
        read(sftp_settings(sshd, tmp_path / "people.csv", tmp_path, host_key=other), secret=secret)


def test_a_refused_key_and_a_missing_file_fail_the_run(sshd, tmp_path):
    stranger = openssh_private(ed25519.Ed25519PrivateKey.generate()).decode()
    with pytest.raises(sync.SourceError, match="refused the user's password or key"):
        read(sftp_settings(sshd, tmp_path / "people.csv", tmp_path), secret=stranger)

    with pytest.raises(sync.SourceError, match="refused the user's password or key"):
        read(sftp_settings(sshd, tmp_path / "people.csv", tmp_path), secret="a password")  # password login is off

    secret = openssh_private(sshd.user_key).decode()
    with pytest.raises(sync.SourceError, match="no such file on the server"):
        read(sftp_settings(sshd, tmp_path / "missing.csv", tmp_path), secret=secret)


def test_nothing_listening_fails_the_run_saying_so(tmp_path):
    settings = {"location": "sftp", "host": "127.0.0.1", "port": free_port(), "username": "hr", "path": "/x.csv",
                "host_key": "SHA256:" + "A" * 43, "columns": COLUMNS}  # fmt: skip
    with pytest.raises(sync.SourceError, match="cannot connect"):
        read(settings, secret="pw")


# --- through the sync core ---------------------------------------------------------------------------------------


def people_rows(count: int, start: int = 1) -> list[list[str]]:
    return [
        [f"{n}", f"Person{n:04d}", "Ann", "", "Staff", "", "Office", f"0A0B{n:04X}", "active"]
        for n in range(start, start + count)
    ]


@pytest.fixture
def hr_source(db, tmp_path):
    from accesscontrol.models import CardholderSource
    from tests.factories import make_access_level, make_partition

    make_access_level(name="Office doors")
    source = CardholderSource(
        name="HR",
        kind="hr_feed",
        default_partition_id=make_partition("Main").pk,
        settings=folder_settings(tmp_path / "in", pattern="*.csv"),
        group_map={"Office": {"access_levels": ["Office doors"]}},
        max_leaver_percent=25,
    )
    sync.validate_source(source)
    source.save()
    (tmp_path / "in").mkdir()
    return source


def archived(tmp_path, failed=False) -> list[str]:
    base = tmp_path / "in" / "archive"
    found = (base / "failed").rglob("*.csv") if failed else (p for p in base.rglob("*.csv") if "failed" not in p.parts)
    return sorted(path.name[7:] for path in found)


def test_a_file_dropped_in_the_watched_folder_is_applied_by_the_tick_and_archived(hr_source, tmp_path):
    from accesscontrol.models import Cardholder, SyncStatus

    drop(tmp_path / "in", "people-1.csv", csv_bytes(people_rows(8)))
    unsettled = drop(tmp_path / "in", "people-2.csv", csv_bytes(people_rows(9)))
    os.utime(unsettled, None)  # written just now (the tick reads the real clock)

    assert "HR: applied" in sync.tick()

    assert Cardholder.objects.filter(source_link__source=hr_source).count() == 8
    anna = Cardholder.objects.get(ext_id="1")
    assert list(anna.access_levels.values_list("name", flat=True)) == ["Office doors"]
    assert list(anna.keys.values_list("uid", flat=True)) == ["0A0B0001"]
    run = hr_source.runs.get()
    assert run.status == SyncStatus.APPLIED and "people-1.csv" in run.description
    assert archived(tmp_path) == ["people-1.csv"]
    assert unsettled.exists()  # still being written: left for a later tick
    assert sync.tick() == "nothing due"  # HR: nothing new yet, and no run kept for it
    assert hr_source.runs.count() == 1


def test_a_row_gone_from_the_feed_is_a_leaver_with_keys_cancelled_and_blacklisted(hr_source, tmp_path):
    from accesscontrol.choices import KeyStatus
    from accesscontrol.models import BlacklistEntry, Cardholder, SyncStatus

    drop(tmp_path / "in", "monday.csv", csv_bytes(people_rows(8)))
    assert sync.run(hr_source).status == SyncStatus.APPLIED
    rows = people_rows(8)
    rows[6][8] = "terminated"  # 7: blocked at HR
    rows[4][3] = "not-mail"  # 5: a bad row keeps its person as they were
    del rows[7]  # 8: gone
    drop(tmp_path / "in", "tuesday.csv", csv_bytes(rows))

    run = sync.run(hr_source)

    assert run.status == SyncStatus.APPLIED, run.message
    assert {(leaver["key"], leaver["reason"]) for leaver in run.diff["left"]} == {("7", "blocked"), ("8", "gone")}
    assert run.counts["keys_cancelled"] == 2
    assert run.errors == [
        {"where": "line 6", "field": "email", "message": "'not-mail' is not an e-mail address", "key": "5"}
    ]
    for key in ("7", "8"):
        leaver = Cardholder.objects.get(ext_id=key)
        assert set(leaver.keys.values_list("status", flat=True)) == {KeyStatus.CANCELLED}
    assert set(BlacklistEntry.objects.values_list("uid", flat=True)) == {"0A0B0007", "0A0B0008"}
    assert Cardholder.objects.get(ext_id="5").keys.get().status == KeyStatus.ISSUED
    assert archived(tmp_path) == ["monday.csv", "tuesday.csv"]


def test_an_almost_empty_file_is_held_and_applied_only_when_approved(hr_source, tmp_path):
    from accesscontrol.models import SourcedCardholder, SyncStatus

    drop(tmp_path / "in", "full.csv", csv_bytes(people_rows(20)))
    sync.run(hr_source)
    drop(tmp_path / "in", "truncated.csv", csv_bytes(people_rows(1)))

    held = sync.run(hr_source)

    assert held.status == SyncStatus.HELD and "19 of 20 cardholders would be deactivated" in held.message
    assert SourcedCardholder.objects.filter(left_at__isnull=True).count() == 20
    assert (tmp_path / "in" / "truncated.csv").exists()  # a held file stays until approved (or removed)
    assert not sync.due(hr_source, dt.datetime.now(dt.UTC))

    approved = sync.run(hr_source, approves=held)

    assert approved.status == SyncStatus.APPLIED and approved.counts["left"] == 19
    assert archived(tmp_path) == ["full.csv", "truncated.csv"]


def test_a_dry_run_shows_the_diff_and_leaves_the_file_for_the_real_run(hr_source, tmp_path, capsys):
    from django.core.management import call_command

    from accesscontrol.models import Cardholder

    drop(tmp_path / "in", "people.csv", csv_bytes(people_rows(2)))

    call_command("sync_cardholders", "HR", "--dry-run")

    out = capsys.readouterr().out
    assert "Previewed" in out and "+ Ann Person0001 (1): Main; Office doors" in out
    assert not Cardholder.objects.exists() and (tmp_path / "in" / "people.csv").exists()
    call_command("sync_cardholders", "HR")
    assert Cardholder.objects.count() == 2 and archived(tmp_path) == ["people.csv"]


def test_a_file_with_a_missing_column_fails_the_run_and_goes_to_failed(hr_source, tmp_path):
    from accesscontrol.models import SyncStatus

    drop(tmp_path / "in", "people.csv", csv_bytes([["1", "A"]], header=["Employee ID", "Surname"]))

    run = sync.run(hr_source)

    assert run.status == SyncStatus.FAILED and "its columns: 'Employee ID', 'Surname'" in run.message
    assert archived(tmp_path, failed=True) == ["people.csv"] and archived(tmp_path) == []


def test_the_kind_checks_a_sources_settings_and_describes_it(db, tmp_path):
    from accesscontrol.models import CardholderSource

    source = CardholderSource(name="HR", kind="hr_feed", settings={"location": "folder", "path": "in"})
    with pytest.raises(ValidationError) as error:
        sync.validate_source(source)
    assert set(error.value.message_dict) == {"path", "columns"}
    source.settings = folder_settings(tmp_path, pattern="*.csv")
    assert sync.kinds()["hr_feed"].describe(source) == f"folder {tmp_path} (*.csv)"
    assert sync.kinds()["hr_feed"].watches(source)
    source.settings = {"location": "https", "url": "https://hr.example/p.csv"}
    assert not sync.kinds()["hr_feed"].watches(source)


def test_an_https_feed_through_the_core_saves_its_etag_so_the_next_run_has_nothing_new(db, https_feed, tmp_path):
    from accesscontrol.models import CardholderSource, SyncStatus
    from tests.factories import make_partition

    source = CardholderSource(name="HR web", kind="hr_feed", default_partition_id=make_partition("Main").pk,
                              settings=https_settings(https_feed, tmp_path))  # fmt: skip
    sync.validate_source(source)
    source.save()
    source.set_secret("s3cret")
    source.save()

    first = sync.run(source)

    assert first.status == SyncStatus.APPLIED and first.counts["added"] == 2  # 1003 is blocked: not created
    source.refresh_from_db()
    assert source.cursor["etag"] == '"v1"'
    assert sync.run(source).status == SyncStatus.NOTHING
    assert https_feed.requests[-1]["If-None-Match"] == '"v1"'
    assert not sync.kinds()["hr_feed"].watches(source)
