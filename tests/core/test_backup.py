"""The backup engine (core/backup): the sealed stream, the archive, SQLite and PostgreSQL round trips, retention."""

import contextlib
import datetime as dt
import io
import os
import sqlite3
import tarfile
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from core import backup
from core.backup import crypto, postgres
from core.backup.crypto import EncryptingWriter, decrypted_chunks

KEY = "a backup key of more than thirty-two characters"
OTHER_KEY = "another key, also more than thirty-two characters"
NOW = dt.datetime(2026, 12, 7, 2, 30, tzinfo=dt.UTC)
ABOUT = {"space_version": "0.1.0", "site": {"name": "Test site", "time_zone": "Europe/Madrid"}}


# --- the sealed stream ----------------------------------------------------------------------------


def seal(plaintext: bytes, chunk_size: int = 64, key: str = KEY) -> bytes:
    out = io.BytesIO()
    writer = EncryptingWriter(out, key, chunk_size=chunk_size)
    for start in range(0, len(plaintext), 50):  # written in pieces that do not match the chunks
        writer.write(plaintext[start : start + 50])
    writer.close()
    return out.getvalue()


def opened(sealed: bytes, key: str = KEY) -> bytes:
    return b"".join(decrypted_chunks(io.BytesIO(sealed), key))


def frame_offsets(sealed: bytes, chunk_size: int = 64) -> list[int]:
    frame = crypto.NONCE_SIZE + chunk_size + crypto.TAG_SIZE
    return list(range(crypto.HEADER.size, len(sealed), frame))


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 128, 200, 1000])
def test_a_sealed_stream_opens_to_what_was_written(size):
    plaintext = os.urandom(size)

    assert opened(seal(plaintext)) == plaintext


def test_every_chunk_has_a_nonce_of_its_own():
    sealed = seal(bytes(641))
    nonces = {sealed[offset : offset + crypto.NONCE_SIZE] for offset in frame_offsets(sealed)}

    assert len(nonces) == len(frame_offsets(sealed)) == 11  # ten full chunks and the last one of one byte


def test_a_stream_cut_at_a_chunk_boundary_is_refused():
    sealed = seal(os.urandom(300))
    cut = sealed[: frame_offsets(sealed)[2]]  # two whole chunks, neither sealed as the last

    with pytest.raises(backup.Damaged, match="chunk 1 does not authenticate"):
        opened(cut)


def test_a_stream_cut_inside_a_chunk_is_refused():
    sealed = seal(os.urandom(300))

    with pytest.raises(backup.Damaged):
        opened(sealed[:-5])


def test_a_stream_with_bytes_added_is_refused():
    sealed = seal(os.urandom(300))

    with pytest.raises(backup.Damaged):
        opened(sealed + os.urandom(crypto.NONCE_SIZE + crypto.TAG_SIZE + 10))


def test_swapped_chunks_are_refused():
    sealed = seal(os.urandom(300))
    first, second, third = frame_offsets(sealed)[:3]
    swapped = sealed[:first] + sealed[second:third] + sealed[first:second] + sealed[third:]

    with pytest.raises(backup.Damaged, match="chunk 0"):
        opened(swapped)


def test_a_chunk_of_another_backup_is_refused():
    one, other = seal(os.urandom(300)), seal(os.urandom(300))
    first, second = frame_offsets(one)[:2]
    mixed = one[:first] + other[first:second] + one[second:]

    with pytest.raises(backup.Damaged):
        opened(mixed)


def test_a_changed_byte_anywhere_in_the_chunks_is_refused():
    sealed = seal(os.urandom(300))
    for position in range(crypto.HEADER.size, len(sealed), 7):
        tampered = bytearray(sealed)
        tampered[position] ^= 0x01
        with pytest.raises(backup.Damaged):
            opened(bytes(tampered))


def test_a_wrong_key_is_told_apart_from_damage():
    with pytest.raises(backup.WrongKey, match="another backup key"):
        opened(seal(b"secret"), key=OTHER_KEY)


@pytest.mark.parametrize("key", [None, "", "short"])
def test_no_backup_is_sealed_without_a_key_of_adequate_length(key):
    with pytest.raises(backup.BackupError, match=r"SPACE_BACKUP_KEY|too short"):
        EncryptingWriter(io.BytesIO(), key)


def test_a_file_that_is_not_a_backup_is_refused():
    with pytest.raises(backup.Damaged, match="not a Space backup"):
        opened(b"SQLite format 3\x00" + bytes(100))


# --- SQLite: round trip ---------------------------------------------------------------------------


def sqlite_database(path, rows: int = 1000) -> dict:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, payload TEXT)")
        db.execute("CREATE TABLE totals (id INTEGER PRIMARY KEY, n INTEGER)")
        db.execute("CREATE TABLE django_migrations (id INTEGER PRIMARY KEY, app TEXT, name TEXT, applied TEXT)")
        db.execute("INSERT INTO django_migrations (app, name, applied) VALUES ('accesscontrol', '0001_initial', '')")
        db.executemany("INSERT INTO events (payload) VALUES (?)", [(f"event {n}" * 5,) for n in range(rows)])
        db.execute("INSERT INTO totals (id, n) VALUES (1, ?)", (rows,))
        db.commit()
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}


def make(database, tmp_path, now=NOW, key=KEY):
    return backup.make(database, tmp_path / "backups", key, work_dir=tmp_path / "work", about=ABOUT, now=now)


def test_a_sqlite_backup_verifies_and_restores_with_its_counts(tmp_path):
    source = sqlite_database(tmp_path / "live.sqlite3", rows=1000)
    made = make(source, tmp_path)
    target = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "restored" / "space.sqlite3")}

    verified = backup.verify(made.path, KEY, database=target, work_dir=tmp_path / "work")
    restored = backup.restore(made.path, KEY, database=target, work_dir=tmp_path / "work")

    assert made.path.name == "space-20261207T023000Z.spacebackup"
    assert made.size == made.path.stat().st_size
    assert made.path.stat().st_mode & 0o777 == 0o600
    assert verified == restored == made.manifest
    assert made.manifest["tables"] == {"django_migrations": 1, "events": 1000, "totals": 1}
    assert made.manifest["migrations"] == [["accesscontrol", "0001_initial"]]
    assert made.manifest["database"]["vendor"] == "sqlite"
    assert made.manifest["site"]["time_zone"] == "Europe/Madrid"
    assert "master key" in made.manifest["secrets"]
    assert set(made.manifest["members"]) == {"database.sqlite3", "RESTORE.txt"}
    with contextlib.closing(sqlite3.connect(target["NAME"])) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone() == (1000,)
        assert db.execute("SELECT payload FROM events ORDER BY id DESC LIMIT 1").fetchone() == ("event 999" * 5,)
    assert list((tmp_path / "work").iterdir()) == []  # scratch copies gone
    assert [path.name for path in (tmp_path / "backups").iterdir()] == [made.path.name]  # no partial file left


def test_verify_restores_nothing(tmp_path):
    made = make(sqlite_database(tmp_path / "live.sqlite3"), tmp_path)
    target = tmp_path / "empty.sqlite3"

    backup.verify(made.path, KEY, database={"ENGINE": "x.sqlite3", "NAME": str(target)}, work_dir=tmp_path / "w")

    assert not target.exists()


def test_a_backup_is_refused_when_a_byte_changed_it_was_cut_or_the_key_is_wrong(tmp_path):
    made = make(sqlite_database(tmp_path / "live.sqlite3", rows=20_000), tmp_path)
    data = made.path.read_bytes()
    target = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "target.sqlite3")}
    tampered, cut = tmp_path / "tampered.spacebackup", tmp_path / "cut.spacebackup"
    middle = len(data) // 2
    tampered.write_bytes(data[:middle] + bytes([data[middle] ^ 0x40]) + data[middle + 1 :])
    cut.write_bytes(data[:-100])

    for path, error in ((tampered, backup.Damaged), (cut, backup.Damaged)):
        with pytest.raises(error):
            backup.verify(path, KEY, database=target, work_dir=tmp_path / "work")
        with pytest.raises(error):
            backup.restore(path, KEY, database=target, work_dir=tmp_path / "work")
    with pytest.raises(backup.WrongKey):
        backup.restore(made.path, OTHER_KEY, database=target, work_dir=tmp_path / "work")

    assert not (tmp_path / "target.sqlite3").exists()
    assert list((tmp_path / "work").iterdir()) == []


def test_a_restore_into_a_database_with_tables_is_refused_and_changes_nothing(tmp_path):
    made = make(sqlite_database(tmp_path / "live.sqlite3"), tmp_path)
    occupied = sqlite_database(tmp_path / "occupied.sqlite3", rows=3)
    before = (tmp_path / "occupied.sqlite3").read_bytes()

    with pytest.raises(backup.NotEmpty, match="not empty"):
        backup.restore(made.path, KEY, database=occupied, work_dir=tmp_path / "work")

    assert (tmp_path / "occupied.sqlite3").read_bytes() == before


def test_a_restore_into_an_empty_sqlite_file_is_allowed(tmp_path):
    made = make(sqlite_database(tmp_path / "live.sqlite3", rows=5), tmp_path)
    target = tmp_path / "empty.sqlite3"
    sqlite3.connect(target).close()  # made by connecting: no tables

    backup.restore(made.path, KEY, database={"ENGINE": "x.sqlite3", "NAME": str(target)}, work_dir=tmp_path / "w")

    assert backup.sqlite.counts_of_file(target)["events"] == 5


def test_a_folder_goes_in_beside_the_database_and_comes_back_where_the_restore_says(tmp_path):
    photos = tmp_path / "photos"
    (photos / "0a").mkdir(parents=True)
    (photos / "0a" / "10-abc.jpg").write_bytes(os.urandom(5000))
    (photos / "0a" / "10-abc.thumb.jpg").write_bytes(os.urandom(500))
    (photos / ".backup.lock").write_bytes(b"")  # dot files (a lock, a file being written) stay out
    (photos / "0b").mkdir()
    (photos / "0b" / ".11-def.jpg.123.tmp").write_bytes(b"half")
    source = sqlite_database(tmp_path / "live.sqlite3", rows=5)
    made = backup.make(
        source, tmp_path / "backups", KEY, work_dir=tmp_path / "w", about=ABOUT, now=NOW, folders={"photos": photos}
    )
    target = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "restored" / "space.sqlite3")}
    elsewhere = tmp_path / "restored" / "photos"

    verified = backup.verify(made.path, KEY, database=target, work_dir=tmp_path / "w")
    backup.restore(made.path, KEY, database=target, work_dir=tmp_path / "w", folders={"photos": elsewhere})

    assert verified["folders"] == {"photos": {"member": "photos.tar", "files": 2, "bytes": 5500}}
    assert sorted(str(path.relative_to(elsewhere)) for path in elsewhere.rglob("*") if path.is_file()) == [
        "0a/10-abc.jpg",
        "0a/10-abc.thumb.jpg",
    ]
    assert (elsewhere / "0a" / "10-abc.jpg").read_bytes() == (photos / "0a" / "10-abc.jpg").read_bytes()


def test_a_packed_folder_whose_files_would_leave_it_is_refused(tmp_path):
    member = tmp_path / "photos.tar"
    with tarfile.open(member, "w") as tar:
        info = tarfile.TarInfo("../outside.jpg")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))

    with pytest.raises(backup.Damaged, match="could not be restored"):
        backup.folders.restore_folder(member, tmp_path / "photos")

    assert not (tmp_path / "outside.jpg").exists()


def test_a_backup_is_never_written_over_another(tmp_path):
    source = sqlite_database(tmp_path / "live.sqlite3")
    first = make(source, tmp_path)
    before = first.path.read_bytes()

    with pytest.raises(backup.BackupError, match="exists already"):
        make(source, tmp_path)

    assert first.path.read_bytes() == before


def test_a_backup_of_a_missing_database_fails_and_leaves_no_file(tmp_path):
    with pytest.raises(backup.BackupError, match="does not exist"):
        make({"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "none.sqlite3")}, tmp_path)

    assert list((tmp_path / "backups").iterdir()) == []


class Writer(threading.Thread):
    """Commits an event and the total that counts it, in one transaction each, as fast as it can."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.committed = 0
        self.error = None

    def run(self):
        try:
            with contextlib.closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
                while not self.stop.is_set():
                    db.execute("BEGIN IMMEDIATE")
                    db.execute("INSERT INTO events (payload) VALUES ('written during the backup')")
                    db.execute("UPDATE totals SET n = n + 1 WHERE id = 1")
                    db.execute("COMMIT")
                    self.committed += 1
        except Exception as error:  # told to the test
            self.error = error


@pytest.mark.slow
def test_a_sqlite_backup_is_consistent_while_another_thread_writes(tmp_path):
    source = sqlite_database(tmp_path / "live.sqlite3", rows=200_000)
    writer = Writer(source["NAME"])
    writer.start()
    try:
        while writer.committed < 100:  # the writer is going
            writer.join(0.01)
        before = writer.committed
        made = make(source, tmp_path)
        during = writer.committed - before
    finally:
        writer.stop.set()
        writer.join()
    target = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "restored.sqlite3")}
    backup.restore(made.path, KEY, database=target, work_dir=tmp_path / "work")

    assert writer.error is None
    assert during > 0  # the writer went on committing while the backup ran
    with contextlib.closing(sqlite3.connect(target["NAME"])) as db:
        events = db.execute("SELECT count(*) FROM events").fetchone()[0]
        total = db.execute("SELECT n FROM totals").fetchone()[0]
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert events == total == made.manifest["tables"]["events"]  # one moment's state, both tables alike
    # Between the rows committed before the backup began and after it ended (one more: committed, not yet counted).
    assert 200_000 + before <= events <= 200_000 + before + during + 1


# --- PostgreSQL: round trip with the real pg_dump and pg_restore ------------------------------------------


@pytest.fixture
def pg_server(transactional_db):
    """A PostgreSQL server's DATABASES entry (the test run's), to make and drop databases on."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (the test run's DATABASE_URL)")
    return dict(connection.settings_dict)


@contextlib.contextmanager
def pg_database(server: dict, rows: int = 0):
    """A database of its own (with an events table of ``rows`` rows unless 0: then empty), dropped after."""
    name = f"space_backup_test_{os.urandom(4).hex()}"
    with postgres._connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    database = {**server, "NAME": name}
    try:
        if rows:
            with postgres._connect(database) as db:
                db.execute("CREATE TABLE events (id bigserial PRIMARY KEY, payload text)")
                db.execute("CREATE TABLE totals (id int PRIMARY KEY, n bigint)")
                db.execute("INSERT INTO events (payload) SELECT 'event ' || g FROM generate_series(1, %s) g", [rows])
                db.execute("INSERT INTO totals VALUES (1, %s)", [rows])
        yield database
    finally:
        with postgres._connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_a_postgresql_backup_verifies_and_restores_into_an_empty_database(pg_server, tmp_path, monkeypatch):
    scratch = []  # the scratch database this verify makes (other tests may be verifying on the server meanwhile)
    making = postgres.scratch_database

    @contextlib.contextmanager
    def noted(database):
        with making(database) as name:
            scratch.append(name)
            yield name

    monkeypatch.setattr(postgres, "scratch_database", noted)
    with pg_database(pg_server, rows=5000) as source, pg_database(pg_server) as target:
        made = make(source, tmp_path)
        verified = backup.verify(made.path, KEY, database=target, work_dir=tmp_path / "work")
        restored = backup.restore(made.path, KEY, database=target, work_dir=tmp_path / "work")

        with postgres._connect(target) as db:
            assert db.execute("SELECT count(*), max(payload) FROM events").fetchone() == (5000, "event 999")
        assert len(scratch) == 1 and scratch[0].startswith("space_verify_")
        with postgres._connect(pg_server) as db:  # the scratch database of --verify is gone
            assert db.execute("SELECT count(*) FROM pg_database WHERE datname = %s", scratch).fetchone()[0] == 0

    assert verified == restored == made.manifest
    assert made.manifest["tables"] == {"events": 5000, "totals": 1}
    assert made.manifest["database"]["vendor"] == "postgresql"
    assert set(made.manifest["members"]) == {"database.pgdump", "RESTORE.txt"}


def test_a_postgresql_restore_into_a_database_with_tables_is_refused(pg_server, tmp_path):
    with pg_database(pg_server, rows=10) as source, pg_database(pg_server, rows=3) as occupied:
        made = make(source, tmp_path)

        with pytest.raises(backup.NotEmpty):
            backup.restore(made.path, KEY, database=occupied, work_dir=tmp_path / "work")

        with postgres._connect(occupied) as db:
            assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 3


def test_a_postgresql_backup_is_refused_when_tampered(pg_server, tmp_path):
    with pg_database(pg_server, rows=10) as source, pg_database(pg_server) as target:
        made = make(source, tmp_path)
        data = bytearray(made.path.read_bytes())
        data[-20] ^= 0x01
        made.path.write_bytes(bytes(data))

        with pytest.raises(backup.Damaged):
            backup.restore(made.path, KEY, database=target, work_dir=tmp_path / "work")
        assert postgres.is_empty(target)


@pytest.mark.slow
def test_a_postgresql_backup_is_one_snapshot_while_rows_are_written(pg_server, tmp_path):
    with pg_database(pg_server, rows=300_000) as source, pg_database(pg_server) as target:
        stop, written = threading.Event(), [0]

        def write():
            with postgres._connect(source, autocommit=True) as db:
                while not stop.is_set():
                    with db.transaction():
                        db.execute("INSERT INTO events (payload) VALUES ('during')")
                        db.execute("UPDATE totals SET n = n + 1")
                    written[0] += 1

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        try:
            while written[0] < 50:
                writer.join(0.01)
            before = written[0]
            made = make(source, tmp_path)
            during = written[0] - before
        finally:
            stop.set()
            writer.join()
        backup.restore(made.path, KEY, database=target, work_dir=tmp_path / "work")

        with postgres._connect(target) as db:
            events = db.execute("SELECT count(*) FROM events").fetchone()[0]
            total = db.execute("SELECT n FROM totals").fetchone()[0]
    assert during > 0
    assert events == total == made.manifest["tables"]["events"]


# --- names and retention ----------------------------------------------------------------------------


def test_a_backup_name_gives_back_its_moment_and_other_names_none():
    assert backup.moment_of(backup.file_name(NOW)) == NOW
    assert backup.moment_of("space-20261207T023000Z.spacebackup.partial") is None
    assert backup.moment_of("notes.txt") is None


def local(year, month, day, hour=2):
    return dt.datetime(year, month, day, hour, 30)


def test_retention_keeps_the_newest_of_each_day_week_and_month():
    # Daily backups for 100 days up to 2026-12-07, and a second one on the last day.
    moments = {f"d{n}": local(2026, 12, 7) - dt.timedelta(days=n) for n in range(100)}
    moments["late"] = local(2026, 12, 7, hour=14)

    kept = backup.to_keep(moments, daily=7, weekly=4, monthly=12)

    days = {moments[name].date() for name in kept}
    assert "late" in kept and "d0" not in kept  # the newest of its day
    assert {dt.date(2026, 12, d) for d in range(1, 8)} <= days  # seven days
    assert {dt.date(2026, 11, 29), dt.date(2026, 11, 22)} <= days  # Sundays: the newest of their ISO weeks
    assert {dt.date(2026, 11, 30), dt.date(2026, 10, 31), dt.date(2026, 9, 30), dt.date(2026, 8, 31)} <= days
    # Seven days; weeks 47 and 48 (50 and 49 are among the days); November back to August (December is).
    assert len(kept) == 7 + 2 + 4


def test_retention_counts_periods_that_have_backups_not_calendar_ones():
    moments = {"old": local(2026, 1, 1), "older": local(2025, 12, 30)}

    assert backup.to_keep(moments, daily=7, weekly=0, monthly=0) == {"old", "older"}


moment_sets = st.dictionaries(
    st.integers(0, 10_000),
    st.datetimes(min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2027, 1, 1)),
    max_size=60,
)


@given(moment_sets, st.integers(1, 10), st.integers(0, 6), st.integers(0, 14))
def test_retention_properties(moments, daily, weekly, monthly):
    kept = backup.to_keep(moments, daily=daily, weekly=weekly, monthly=monthly)

    assert kept <= set(moments)
    assert len(kept) <= daily + weekly + monthly
    if moments:
        assert max(moments, key=moments.get) in kept
    for name in kept:  # the newest of its day, or of its week, or of its month
        same_day = [m for m in moments.values() if m.date() == moments[name].date()]
        same_week = [m for m in moments.values() if m.isocalendar()[:2] == moments[name].isocalendar()[:2]]
        same_month = [m for m in moments.values() if (m.year, m.month) == (moments[name].year, moments[name].month)]
        assert moments[name] in (max(same_day), max(same_week), max(same_month))
    # Pruning again keeps everything that was kept.
    assert backup.to_keep({n: moments[n] for n in kept}, daily=daily, weekly=weekly, monthly=monthly) == kept
