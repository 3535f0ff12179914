"""Periodic housekeeping in runspace: a function called at start and then every so often, off the event loop."""

import asyncio
import threading

from core.periodic import PeriodicService
from tests.support.waiting import until


def run_for(service: PeriodicService, seconds: float) -> None:
    async def run():
        await service.start()
        await asyncio.sleep(seconds)  # how long it runs is what the tests count its calls over
        await service.stop()

    asyncio.run(run())


def test_it_calls_the_function_again_and_again_on_a_thread_of_its_own():
    threads = []
    service = PeriodicService("tick", lambda: threads.append(threading.current_thread().name), every=0.02)

    run_for(service, 0.3)

    assert len(threads) >= 3
    assert service.runs == len(threads)
    assert {name.startswith("tick") for name in threads} == {True}


def test_a_failing_run_is_logged_and_the_next_one_comes(caplog):
    def fail():
        raise RuntimeError("database away")

    service = PeriodicService("flaky", fail, every=0.02)

    run_for(service, 0.2)

    assert service.runs >= 2
    assert "Periodic flaky failed" in caplog.text


def test_stop_ends_the_wait_at_once():
    service = PeriodicService("slow", lambda: None, every=3600)

    async def run():
        await service.start()
        await until(lambda: service.runs == 1)  # the run at start is done: stop ends the wait, not a run
        started = asyncio.get_running_loop().time()
        await service.stop()
        return asyncio.get_running_loop().time() - started

    assert asyncio.run(run()) < 5
    assert service.runs == 1
