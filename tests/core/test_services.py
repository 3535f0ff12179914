"""Services beside the web server start in order and stop in reverse, whatever fails."""

import asyncio

import pytest

from core.services import start_all, stop_all


class Recorder:
    def __init__(self, name, log, fail_start=False, fail_stop=False):
        self.name, self.log, self.fail_start, self.fail_stop = name, log, fail_start, fail_stop

    async def start(self):
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.log.append(f"start {self.name}")

    async def stop(self):
        self.log.append(f"stop {self.name}")
        if self.fail_stop:
            raise RuntimeError(f"{self.name} cannot stop")


def test_services_start_in_order_and_stop_in_reverse():
    log = []
    services = [Recorder("bridge", log), Recorder("fias", log)]

    started = asyncio.run(start_all(services))
    asyncio.run(stop_all(started))

    assert log == ["start bridge", "start fias", "stop fias", "stop bridge"]


def test_a_failed_start_stops_the_services_already_started():
    log = []
    services = [Recorder("bridge", log), Recorder("fias", log, fail_start=True), Recorder("ship", log)]

    with pytest.raises(RuntimeError, match="fias cannot start"):
        asyncio.run(start_all(services))

    assert log == ["start bridge", "stop bridge"]


def test_a_service_that_fails_to_stop_does_not_keep_the_others_running():
    log = []
    services = [Recorder("bridge", log), Recorder("fias", log, fail_stop=True)]

    asyncio.run(stop_all(services))

    assert log == ["stop fias", "stop bridge"]
