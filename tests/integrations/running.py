"""A service on an event loop of its own thread, as it runs under runspace or runconnector, for tests that
drive it from the test's thread (the database work of both sides sees the same test database)."""

import asyncio
import threading


class LoopThread:
    """An event loop running on a daemon thread; ``call`` runs a coroutine there and waits for its result."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coroutine, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class RunningService(LoopThread):
    """``service`` started on a loop thread of its own."""

    def __init__(self, service):
        super().__init__()
        self.service = service
        self.call(service.start())

    def stop(self):
        self.call(self.service.stop())
        self.close()
