"""``manage.py runconnector fias`` as a real process: it connects to a simulated PMS, runs the link start,
answers a KR from its own database, and stops cleanly on SIGTERM."""

import asyncio
import subprocess
import sys
import threading

import pytest

from integrations.pms.fias import Record
from simulation.fias_pms import SimulatedPms
from tests.support.processes import BASE_DIR, environment, migrated_var_dir, stop

pytestmark = pytest.mark.slow


def test_runconnector_fias_links_answers_and_stops_on_sigterm(tmp_path_factory, tmp_path):
    var = migrated_var_dir(tmp_path_factory)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def call(coroutine, timeout=60):
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)

    pms = SimulatedPms()
    call(pms.start())
    output = tmp_path / "runconnector.log"
    with output.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runconnector", "fias"],
            cwd=BASE_DIR,
            env=environment(var, SPACE_FIAS_ADDRESS=f"127.0.0.1:{pms.port}"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            records = call(pms.linked(60))
            assert [record.type for record in records][:2] == ["LD", "LR"]
            answer, _ = call(pms.request(Record.make("KR", ("KC", "DESK1"), ("RN", "101"), ("GD", "391231"))))
            assert (answer.type, answer.get("AS")) == ("KA", "UR")  # an empty site knows no room 101
            assert stop(process) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            call(pms.stop())
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
    assert "FIAS" in output.read_text() and "stopped" in output.read_text()
