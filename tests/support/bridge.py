"""The real device bridge on 127.0.0.1, on an event loop thread of its own, as it runs under runbridge."""

import asyncio
import shutil
import tempfile
import threading

from accesscontrol.snapshot import SnapshotStore
from devices.sdp.bridge import Bridge


class RunningBridge:
    """A real Bridge on 127.0.0.1 on its own event loop thread, as it runs under runbridge."""

    def __init__(self, **options):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        # A decision journal of its own too: no test takes over the rows another test's bridge left.
        self.journal_tmp = None
        if "journal_dir" not in options:
            self.journal_tmp = options["journal_dir"] = tempfile.mkdtemp(prefix="space-bridge-journal-")
        self.bridge = Bridge(host="127.0.0.1", port=0, **options)
        # A store of its own: each test's database starts empty.
        self.bridge.store = SnapshotStore()
        self.call(self.bridge.start())

    def call(self, coroutine, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self):
        self.call(self.bridge.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if self.journal_tmp:
            shutil.rmtree(self.journal_tmp, ignore_errors=True)

    @property
    def port(self) -> int:
        return self.bridge.port

    @property
    def counters(self):
        return self.bridge.counters

    def reload(self):
        """Pick up database changes now instead of at the next refresh."""

        async def reload():
            await self.bridge.read(self.bridge.decider.refresh)
            await self.bridge._reload_registry(force=True)

        self.call(reload())
