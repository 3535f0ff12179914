"""What benches that run a long-lived service in their own process share: the service on a loop thread, and
waiting for a condition with a deadline."""

import asyncio
import threading
import time


class ServiceThread:
    """A service on an event loop thread of its own, as the device runtime would run it."""

    def __init__(self, service, name: str = "service", timeout: float = 60):
        self.service = service
        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name=name)
        self.thread.start()
        self.call(service.start())

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(self.timeout)

    def stop(self) -> None:
        self.call(self.service.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def wait(predicate, timeout: float, what: str, *, bench: str, every: float = 0.01) -> None:
    """Poll ``predicate`` every ``every`` seconds until it holds; TimeoutError naming ``bench`` and ``what``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{bench}: {what} within {timeout} s")
        time.sleep(every)
