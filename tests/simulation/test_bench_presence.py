"""bench_presence: decisions with anti-passback and occupancy on and off, and the command's one JSON line."""

import json
import subprocess
import sys

import pytest

from accesscontrol.models import Presence, PresenceChange
from simulation.benchmarks import passback
from tests.support.processes import BASE_DIR


@pytest.mark.django_db
def test_every_decision_is_granted_on_and_off_and_the_passages_are_stored_with_their_events():
    result = passback.measure(cardholders=40, decisions=200, stored=120)

    assert (result["granted_off"], result["granted_on"], result["passages"]) == (200, 200, 200)
    assert result["decisions_per_s_off"] > 0 and result["decisions_per_s_on"] > 0
    assert result["stored_decisions"] == 120
    # 120 passages after the hour, stored in one batch: 40 people in, out, in again. All 40 are inside, and a
    # batch's change rows carry each person's last word only.
    assert Presence.objects.filter(inside=True).count() == 40
    assert PresenceChange.objects.count() == 40


@pytest.mark.slow
def test_the_command_prints_one_json_line_per_run():
    done = subprocess.run(
        [sys.executable, "manage.py", "bench_presence", "--only", "decisions", "--cardholders=20", "--decisions=60"],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    result = json.loads(line)
    assert result["decisions"]["database"] == "sqlite" and result["decisions"]["granted_on"] == 60
