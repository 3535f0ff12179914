"""simulation/benchmarks/schedule.py: one schedule boundary on a generated site, every door told."""

import pytest

from devices.models import DeviceCommand
from simulation.benchmarks.schedule import measure_boundary


@pytest.mark.django_db
def test_the_boundary_stores_every_mode_and_queues_a_command_per_door():
    result = measure_boundary(doors=50)

    assert (result["doors"], result["stored"], result["commands"]) == (50, 50, 50)
    assert result["boundary_seconds"] > 0
    assert DeviceCommand.objects.count() == 100  # the start's resync, then the boundary
