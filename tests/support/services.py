"""A long-lived service on an event loop thread of its own, as runspace or runservice would run it."""

import asyncio
import threading


class RunningService:
    """Start ``service`` on a fresh event loop thread; ``call`` runs coroutines there; ``stop`` ends both."""

    def __init__(self, service, start: bool = True):
        self.service = service
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        if start:
            self.call(service.start())

    def call(self, coroutine, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def run(self, function, *args, timeout: float = 30):
        """``function(*args)`` on the service's loop (its state is the loop's alone), and its result."""

        async def call():
            return function(*args)

        return self.call(call(), timeout)

    def stop(self) -> None:
        self.call(self.service.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
