"""The decision journal: a decision's audit row outlives a bridge killed before its writer stored it.

The bridge answers ``access`` from memory before the row is committed (devices/sdp/journal.py says why); the
row is in a file of the bridge's own first, and the next bridge to start stores the rows a dead one left.
tests/space/test_production_processes.py proves it with a SIGKILLed worker; these pin down the parts.
"""

import datetime as dt
import os

import pytest
from django.utils import timezone

from accesscontrol.models import AuditEvent
from devices.sdp import journal
from devices.sdp.journal import DecisionJournal, Leftovers
from tests.devices.client import Client
from tests.devices.conftest import UID
from tests.support.bridge import RunningBridge
from tests.support.waiting import wait_until


def decision(device_pk: int, req: int, at: dt.datetime | None = None, **fields) -> AuditEvent:
    return AuditEvent(
        at=at or timezone.now(),
        kind=fields.pop("kind", "access_granted"),
        reason="granted",
        device_id=device_pk,
        key_uid=UID,
        detail={"req": req, "reader": 1, "online": True},
        **fields,
    )


def lines(path) -> int:
    return len(path.read_bytes().splitlines())


class TestTheFile:
    def test_it_is_emptied_once_every_row_is_stored(self, tmp_path):
        kept = DecisionJournal(tmp_path)
        for req in (1, 2, 3):
            assert kept.append(decision(1, req))
        path = kept.files[0].path
        kept.stored(2)
        assert lines(path) == 3
        kept.stored(1)
        assert lines(path) == 0
        kept.close()
        assert not path.exists()

    def test_a_bridge_that_stops_with_rows_unstored_leaves_them_for_the_next(self, tmp_path):
        dead = DecisionJournal(tmp_path)
        dead.append(decision(1, 1))
        dead.append(decision(1, 2, kind="access_denied"))
        dead.close()  # what the kernel does for a killed bridge: the file stays, its lock goes

        leftovers = Leftovers(tmp_path)
        assert [(e.kind, e.detail["req"], e.device_id) for e in leftovers.events] == [
            ("access_granted", 1, 1),
            ("access_denied", 2, 1),
        ]
        leftovers.done()
        assert list(tmp_path.iterdir()) == []

    def test_the_file_of_a_live_bridge_is_not_taken_over(self, tmp_path):
        live = DecisionJournal(tmp_path)
        live.append(decision(1, 1))
        assert Leftovers(tmp_path).events == []
        live.stored(1)
        live.close()

    def test_a_row_cut_short_by_the_kill_is_skipped(self, tmp_path):
        dead = DecisionJournal(tmp_path)
        dead.append(decision(1, 1))
        os.write(dead.files[0].fd, b'{"kind":"access_gra')
        dead.close()
        assert [e.detail["req"] for e in Leftovers(tmp_path).events] == [1]

    def test_a_full_file_is_closed_and_deleted_once_its_rows_are_stored(self, tmp_path, monkeypatch):
        monkeypatch.setattr(journal, "SEGMENT_ROWS", 2)
        kept = DecisionJournal(tmp_path)
        for req in range(5):
            kept.append(decision(1, req))
        assert [file.rows for file in kept.files] == [2, 2, 1]
        first, second, third = (file.path for file in kept.files)
        kept.stored(3)
        assert (first.exists(), second.exists(), third.exists()) == (False, True, True)
        kept.stored(2)
        assert (second.exists(), lines(third)) == (False, 0)
        kept.close()

    def test_a_row_that_cannot_be_written_does_not_stop_the_decision(self, tmp_path):
        kept = DecisionJournal(tmp_path)
        os.close(kept.files[0].fd)
        kept.files[0].fd = os.open(os.devnull, os.O_RDONLY)  # every write fails, as on a full disk
        assert kept.append(decision(1, 1)) is False
        assert kept.unstored == 0
        kept.close()


@pytest.mark.django_db(transaction=True)
class TestTheNextBridge:
    def test_it_stores_the_rows_a_dead_bridge_left_once_and_the_stored_ones_not_again(self, site, tmp_path):
        device = site["device"]
        already = decision(device.pk, 1)
        AuditEvent.objects.bulk_create([already])
        dead = DecisionJournal(tmp_path)
        dead.append(already)  # stored, but the bridge died before it could say so
        dead.append(decision(device.pk, 2, access_point_id=site["door"].pk, cardholder_id=site["holder"].pk))
        dead.append(decision(device.pk + 1000, 3))  # a device deleted since
        dead.close()

        first = RunningBridge(journal_dir=tmp_path)
        first.stop()
        second = RunningBridge(journal_dir=tmp_path)
        second.stop()

        rows = AuditEvent.objects.filter(kind="access_granted").order_by("detail__req")
        assert [(row.detail["req"], row.device_id) for row in rows] == [(1, device.pk), (2, device.pk)]
        assert rows[1].cardholder_name == "Ada Lovelace" and rows[1].access_point_id == site["door"].pk
        assert first.counters["journaled_decisions_recovered"] == 1
        assert second.counters["journaled_decisions_recovered"] == 0
        assert list(tmp_path.iterdir()) == []

    def test_a_decision_is_journaled_before_it_is_answered_and_dropped_once_stored(self, site, tmp_path):
        running = RunningBridge(journal_dir=tmp_path)
        client = Client(running.port, site["device"].device_id, bytes(range(16)))
        try:
            client.handshake()
            journaled = []
            original = running.bridge.answer

            def answer(state, session, seq, message, address=None):
                if message.get("t") == "decision":
                    journaled.append(running.bridge.journal.appended)
                return original(state, session, seq, message, address)

            running.bridge.answer = answer
            reply = client.request({"t": "access", "req": 1, "reader": 1, "cred": {"kind": "card", "uid": UID}})
            assert reply["grant"] is True
            assert journaled == [1]
            wait_until(lambda: running.bridge.journal.unstored == 0)
            assert AuditEvent.objects.filter(kind="access_granted", device=site["device"]).count() == 1
            assert lines(running.bridge.journal.files[0].path) == 0
        finally:
            client.close()
            running.stop()
        assert list(tmp_path.iterdir()) == []

    def test_a_bridge_that_cannot_write_its_journal_still_decides(self, site, tmp_path):
        (tmp_path / "a-file").write_text("")
        running = RunningBridge(journal_dir=tmp_path / "a-file" / "journal")
        client = Client(running.port, site["device"].device_id, bytes(range(16)))
        try:
            client.handshake()
            reply = client.request({"t": "access", "req": 1, "reader": 1, "cred": {"kind": "card", "uid": UID}})
            assert running.bridge.journal is None
            assert reply["grant"] is True
            wait_until(lambda: AuditEvent.objects.filter(kind="access_granted", device=site["device"]).exists())
        finally:
            client.close()
            running.stop()
