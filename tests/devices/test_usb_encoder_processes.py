"""A USB encoder on a desk, end to end: a live runspace, the local bridge as a process, a pty to the encoder.

The server is ``manage.py runspace`` (tests/browser/conftest.py's LiveSpace) with
its own SQLite database; the local bridge is ``python -m devices.localbridge``
connected over a real websocket; the encoder is simulation/usb_encoder.py on a
real pseudo-terminal pair, in this process, so a test can put cards on it.
Encode jobs are rows put straight into the server's database, as
devices.encoding.create_encode_job leaves them; the test then reads the row.
"""

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from simulation.usb_encoder import SimulatedUsbEncoder
from tests.browser.conftest import BASE_DIR, LiveSpace, migrated_database  # noqa: F401 (a fixture)
from tests.support.waiting import wait_until

ENCODER_ID = 7001
UNBRIDGED_ID = 7002
KEY_HEX = "00112233445566778899aabbccddeeff"
UID = "04A1B2C3D4E5F6"
CARD_DATA = bytes(range(256)) * 12  # 3072 bytes: a 4K card holds it, a 2K one does not
SETUP = f"""
import json
from accesscontrol.models import Cardholder, Key
from devices.models import Device
ids = {{}}
for device_id, name in (({ENCODER_ID}, "Front desk encoder"), ({UNBRIDGED_ID}, "Back office encoder")):
    device = Device(device_id=device_id, name=name, kind="usb_encoder")
    device.set_key(bytes.fromhex("{KEY_HEX}"))
    device.save()
    ids[device_id] = device.pk
holder = Cardholder.objects.create(first_name="Grace", last_name="Hopper")
ids["key"] = Key.objects.create(cardholder=holder, uid="{UID}").pk
print(json.dumps(ids))
"""


class Site:
    """The live server, its database (read and written with sqlite3) and the ids SETUP made."""

    def __init__(self, server: LiveSpace, ids: dict):
        self.server = server
        self.ids = ids
        self.database = server.var / "space.sqlite3"

    def query(self, sql: str, *args):
        with sqlite3.connect(self.database, timeout=10) as connection:
            return connection.execute(sql, args).fetchall()

    def add_job(self, device_id: int = ENCODER_ID, data: bytes = CARD_DATA) -> int:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        with sqlite3.connect(self.database, timeout=10) as connection:
            cursor = connection.execute(
                "INSERT INTO devices_encodejob (key_id, encoder_id, purpose, data, status, progress, error, card_uid,"
                " created_at, updated_at) VALUES (?, ?, 'write', ?, 'queued', 0, '', '', ?, ?)",
                (self.ids["key"], self.ids[str(device_id)], data, now, now),
            )
            return cursor.lastrowid

    def job(self, job_id: int) -> dict:
        row = self.query("SELECT status, progress, error, card_uid FROM devices_encodejob WHERE id = ?", job_id)[0]
        return dict(zip(("status", "progress", "error", "card_uid"), row, strict=True))

    def wait_for_job(self, job_id: int, *statuses: str, timeout: float = 10) -> dict:
        return wait_until(
            lambda: (job := self.job(job_id))["status"] in statuses and job,
            timeout=timeout,
            message=lambda: f"job {job_id} ({self.job(job_id)}) becoming {statuses}",
        )

    def online(self, device_id: int) -> bool:
        return bool(self.query("SELECT online FROM devices_device WHERE device_id = ?", device_id)[0][0])

    def audit_kinds(self, device_id: int) -> list[str]:
        rows = self.query(
            "SELECT kind FROM accesscontrol_auditevent WHERE device_id = ? ORDER BY id", self.ids[str(device_id)]
        )
        return [kind for (kind,) in rows]


@pytest.fixture(scope="module")
def site(tmp_path_factory, migrated_database):  # noqa: F811 (the fixture imported above)
    server = LiveSpace(
        tmp_path_factory.mktemp("usb-encoder"),
        migrated_database,
        SPACE_ENCODE_CARD_WAIT_SECONDS=2,
        SPACE_USB_ENCODER_GRACE_SECONDS=1,
    )
    ids = server.shell(SETUP)
    server.start()
    yield Site(server, ids)
    server.stop()


@pytest.fixture
def encoder():
    simulated = SimulatedUsbEncoder().start()
    yield simulated
    simulated.stop()


class Bridge:
    def __init__(self, site: Site, port: str, directory: Path, key_hex: str = KEY_HEX, device_id: int = ENCODER_ID):
        key_file = directory / "encoder.key"
        key_file.write_text(key_hex + "\n")
        self.log_path = directory / "localbridge.log"
        arguments = ["--server", site.server.base_url, "--device-id", str(device_id), "--key-file", str(key_file)]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "devices.localbridge", *arguments, "--serial", port],
                cwd=BASE_DIR,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_connected(self, timeout: float = 10) -> "Bridge":
        wait_until(
            lambda: "Connected to" in self.log() or self.process.poll() is not None,
            timeout=timeout,
            message=lambda: f"the bridge connecting:\n{self.log()}",
        )
        assert self.process.poll() is None, self.log()
        return self

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)


@pytest.fixture
def start_bridge(site, encoder, tmp_path):
    bridges = []

    def start(**options) -> Bridge:
        bridge = Bridge(site, encoder.port, tmp_path, **options)
        bridges.append(bridge)
        return bridge

    yield start
    for bridge in bridges:
        bridge.stop()


@pytest.fixture
def bridge(start_bridge) -> Bridge:
    return start_bridge().wait_connected()


def test_a_key_is_written_on_the_card_on_the_desk_and_its_uid_recorded(site, encoder, bridge):
    encoder.place_card(UID, "desfire_ev3_4k")
    job = site.add_job()
    assert site.wait_for_job(job, "done", "failed") == {
        "status": "done",
        "progress": 100,
        "error": "",
        "card_uid": UID,
    }
    assert encoder.card.data == CARD_DATA
    assert site.online(ENCODER_ID)
    assert site.audit_kinds(ENCODER_ID)[-2:] == ["device_online", "key_encoded"]


def test_no_card_on_the_encoder_fails_with_no_card(site, encoder, bridge):
    job = site.add_job()
    assert site.wait_for_job(job, "waiting_card")["progress"] == 10
    assert site.wait_for_job(job, "done", "failed")["error"] == "no_card"


def test_a_card_of_the_wrong_type_is_refused_and_left_blank(site, encoder, bridge):
    encoder.place_card(UID, "desfire_ev3_2k")
    job = site.add_job()
    assert site.wait_for_job(job, "done", "failed")["error"] == "wrong_card_type"
    assert encoder.card.data == b""


def test_a_bridge_killed_mid_job_fails_the_job_as_encoder_offline(site, encoder, bridge):
    job = site.add_job()
    site.wait_for_job(job, "waiting_card")
    bridge.process.kill()
    assert site.wait_for_job(job, "done", "failed", timeout=5)["error"] == "encoder_offline"
    # The encoder's status is written in a transaction of its own, beside the job's: it may land just after.
    wait_until(lambda: not site.online(ENCODER_ID), timeout=5)
    wait_until(lambda: site.audit_kinds(ENCODER_ID)[-1] == "device_offline", timeout=5)


def test_a_job_for_an_encoder_without_a_bridge_fails_as_encoder_offline(site):
    job = site.add_job(UNBRIDGED_ID)
    assert site.job(job)["status"] == "queued"
    assert site.wait_for_job(job, "done", "failed", timeout=5)["error"] == "encoder_offline"


def test_a_bridge_with_the_wrong_key_is_refused_and_stops(site, encoder, start_bridge):
    bridge = start_bridge(key_hex="ff" * 16, device_id=UNBRIDGED_ID)
    assert bridge.process.wait(10) == 2
    assert "refused" in bridge.log()
    assert not site.online(UNBRIDGED_ID)
    assert site.audit_kinds(UNBRIDGED_ID) == []
